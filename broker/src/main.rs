//! `strata [--config server.properties] [--override key=value]...`
//! `strata [--config ...] add-scram 'SCRAM-SHA-512=[name=admin,password=...]'...` (broker stopped)

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

/// A Kafka-compatible broker in one binary.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    /// A Kafka-style server.properties file. Without it, development defaults are used:
    /// node.id=1, log.dirs=./data, listeners PLAINTEXT://127.0.0.1:9092 and (unless
    /// `listeners` is overridden) SASL_SSL://127.0.0.1:9093 with a generated CA, server
    /// certificate, admin user and <data dir>/client.properties.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Sets any configuration key, winning over the file: --override log.dirs=/var/lib/strata
    #[arg(long = "override", value_name = "KEY=VALUE", global = true)]
    overrides: Vec<String>,
    /// Log format: text (default) or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Adds SCRAM credentials to the first log dir and exits, so that a first administrator
    /// exists before any client can connect (like `kafka-storage format --add-scram`). Run it
    /// while the broker is stopped.
    AddScram {
        /// MECHANISM=[name=USER,password=PASSWORD(,iterations=N)], e.g.
        /// 'SCRAM-SHA-512=[name=admin,password=admin-secret]'
        #[arg(required = true, value_name = "ENTRY")]
        entries: Vec<String>,
    },
}

fn init_logging(format: &str) {
    // openraft reports every failed heartbeat to an unreachable voter (several lines every
    // two seconds while a broker is down); strata-quorum logs a peer going away and coming
    // back once each, so those two openraft modules are quiet unless STRATA_LOG asks.
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,openraft::replication=off,openraft::engine::handler::replication_handler=off",
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let overrides = cli
        .overrides
        .iter()
        .map(|o| strata_config::parse_override(o))
        .collect::<Result<Vec<_>, _>>()?;
    let mut loaded = strata_config::load(cli.config.as_deref(), &overrides)?;
    if let Some(Command::AddScram { entries }) = &cli.command {
        return add_scram(&loaded.config, entries);
    }
    // Secure by default: on development defaults (no --config, no listeners given) the
    // broker also serves SASL_SSL on 127.0.0.1:9093 with generated TLS material and admin.
    let listeners_given = overrides.iter().any(|(k, _)| k == "listeners");
    if cli.config.is_none() && !listeners_given {
        loaded = secure_defaults(&loaded.config, &overrides)?;
    }
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strata")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let config = loaded.config;
        // The health endpoint first: /health/live answers (and /health/ready says 503)
        // while a long log recovery runs in `open`.
        let endpoint = strata_broker::server::start_metrics_endpoint(&config).await?;
        let broker =
            tokio::task::spawn_blocking(move || strata_broker::server::open(config)).await??;
        let stop = CancellationToken::new();
        tokio::spawn(wait_for_signals(stop.clone()));
        strata_broker::server::run_with_endpoint(broker, stop, endpoint).await
    })
}

/// Prepares the quickstart material in the first log dir and reloads the config with the
/// SASL_SSL listener; the user's overrides still win over what it adds.
fn secure_defaults(
    config: &strata_config::BrokerConfig,
    overrides: &[(String, String)],
) -> anyhow::Result<strata_config::LoadedConfig> {
    use strata_broker::security::quickstart;
    let dir = config
        .log_dirs
        .first()
        .context("log.dirs: at least one log directory is required")?;
    let quickstart = quickstart::prepare(dir)?;
    let mut all = quickstart.overrides.clone();
    if !overrides.iter().any(|(k, _)| k == "super.users") {
        // The generated admin may do anything once an authorizer is turned on.
        all.push((
            "super.users".to_owned(),
            format!("User:{}", quickstart::ADMIN_USER),
        ));
    }
    all.extend(overrides.iter().cloned());
    let loaded = strata_config::load(None, &all)?;
    println!(
        "strata: SASL_SSL (SCRAM-SHA-512) on {} for user {}; client config {}: {}",
        quickstart::SECURE_LISTENER,
        quickstart::ADMIN_USER,
        if quickstart.created {
            "written to"
        } else {
            "at"
        },
        quickstart.client_properties.display()
    );
    Ok(loaded)
}

fn add_scram(config: &strata_config::BrokerConfig, entries: &[String]) -> anyhow::Result<()> {
    use strata_broker::security::bootstrap;
    let specs = entries
        .iter()
        .map(|e| bootstrap::parse_spec(e))
        .collect::<Result<Vec<_>, _>>()?;
    let dir = config
        .log_dirs
        .first()
        .context("log.dirs: at least one log directory is required")?;
    bootstrap::add_scram(dir, &specs)?;
    for spec in &specs {
        println!(
            "added {} credentials for user {} to {}",
            spec.mechanism.mechanism_name(),
            spec.user,
            dir.display()
        );
    }
    Ok(())
}

/// First SIGTERM/SIGINT: graceful shutdown. Second: exit at once.
async fn wait_for_signals(stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    for round in 0..2 {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        if round == 0 {
            tracing::info!("signal received: shutting down gracefully (again to force)");
            stop.cancel();
        } else {
            tracing::warn!("second signal: exiting immediately");
            std::process::exit(1);
        }
    }
}
