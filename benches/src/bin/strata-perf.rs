//! `strata-perf`: a load generator for any Kafka-compatible broker, in the spirit of
//! kafka-producer-perf-test / kafka-consumer-perf-test. It negotiates versions with
//! ApiVersions, finds partition leaders with Metadata, pipelines Produce (or runs Fetch) on one
//! connection per leader, and prints records/s, MB/s and latency percentiles.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use strata_benches::batch::{BatchTemplate, Compression};
use strata_benches::client::KafkaConnection;
use strata_benches::fixtures::now_ms;
use strata_benches::group_consume::{consume_in_group, GroupLoad, OnFetch};
use strata_benches::latency::{self, LatencyLoad, TAG_LEN};
use strata_benches::ops::{self, TopicLayout, Versions};
use strata_benches::pipeline::{
    self, FetchEnd, FetchLoad, Idempotence, ProduceLoad, SharedProgress,
};
use strata_benches::security::ClientSecurity;

const CLIENT_ID: &str = "strata-perf";

/// Load generator for Kafka-compatible brokers (Strata, Apache Kafka, Redpanda, ...).
#[derive(Debug, Parser)]
#[command(name = "strata-perf", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write records as fast as the broker acknowledges them.
    Produce(ProduceArgs),
    /// Read records from the earliest offset of every partition.
    Consume(ConsumeArgs),
    /// Time records end to end, one at a time, from produce until a waiting consumer's Fetch
    /// returns them (as kafka-e2e-latency).
    Latency(LatencyArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// host:port of any broker of the cluster.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long)]
    topic: String,
    /// Records to produce or consume.
    #[arg(long)]
    records: u64,
    /// No progress bar (for logs and scripts).
    #[arg(long)]
    quiet: bool,
    /// A Kafka client properties file for TLS and SASL (security.protocol, sasl.mechanism
    /// PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512, sasl.jaas.config, a PEM truststore, a PEM key
    /// store for client certificates), as the Kafka tools' --producer.config /
    /// --consumer.config / --command-config.
    #[arg(long, visible_aliases = ["producer.config", "consumer.config"])]
    command_config: Option<std::path::PathBuf>,
    /// Connections to each partition leader, its partitions dealt among them in turn, as that
    /// many producers or consumers would share them (one request pipeline each). Not with
    /// --group, whose member keeps one connection a leader as Kafka's consumer does.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    connections: u32,
}

impl Common {
    fn security(&self) -> anyhow::Result<ClientSecurity> {
        match &self.command_config {
            None => Ok(ClientSecurity::plaintext()),
            Some(path) => ClientSecurity::from_properties_file(path)
                .with_context(|| format!("client config {}", path.display())),
        }
    }
}

/// What the records written look like and how they are acknowledged (produce and latency).
#[derive(Debug, Args)]
struct WriteArgs {
    /// Bytes of each record's value (records have no key and no headers; for latency at
    /// least 8, the first 8 naming the record).
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// 0, 1 or -1 (all in-sync replicas).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true, value_parser = clap::value_parser!(i16).range(-1..=1))]
    acks: i16,
}

#[derive(Debug, Args)]
struct ProduceArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    write: WriteArgs,
    /// Upper bound on one record batch's size in bytes (as the producer's batch.size).
    #[arg(long, default_value_t = 16 * 1024)]
    batch_size: usize,
    /// Partitions to create the topic with when it does not exist yet.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Produce requests outstanding per connection (as max.in.flight.requests.per.connection).
    #[arg(long, default_value_t = 5)]
    in_flight: usize,
    /// Records per second at most, spread over the connections (as kafka-producer-perf-test's
    /// --throughput); unlimited when absent.
    #[arg(long, value_parser = positive_rate)]
    throughput: Option<f64>,
    /// Codec of every batch (as the producer's compression.type); --batch-size bounds the
    /// records before compression, as the producer's batch.size does.
    #[arg(long = "compression-type", value_enum, default_value_t = Compression::None)]
    compression: Compression,
    /// Produce as an idempotent producer (as the producer's enable.idempotence=true, the
    /// Java client's default): a producer id from InitProducerId, and every partition's
    /// batches numbered by sequence, which the broker checks. Needs --acks -1 and at most 5
    /// requests in flight, as Kafka's producer does.
    #[arg(long)]
    idempotence: bool,
}

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a positive number of records per second"
        )),
    }
}

#[derive(Debug, Args)]
struct ConsumeArgs {
    #[command(flatten)]
    common: Common,
    /// Fetch max_bytes (as fetch.max.bytes).
    #[arg(long, default_value_t = 52_428_800)]
    fetch_max_bytes: i32,
    /// Fetch partition_max_bytes (as max.partition.fetch.bytes).
    #[arg(long, default_value_t = 1_048_576)]
    partition_max_bytes: i32,
    /// Give up when no record arrives for this many seconds (with --group: stop, commit and
    /// leave, as kafka-consumer-perf-test's --timeout).
    #[arg(long, default_value_t = 10)]
    idle_timeout_secs: u64,
    /// Consume as a member of this consumer group (as kafka-consumer-perf-test's --group):
    /// the range assignment over the group's members, positions from the group's committed
    /// offsets (the earliest where none are), committed at every rebalance and at the end.
    /// Without it, every partition is read from its earliest offset and nothing is committed.
    #[arg(long)]
    group: Option<String>,
    /// With --group: heartbeat.interval.ms.
    #[arg(long, default_value_t = 3000)]
    heartbeat_interval_ms: u64,
}

#[derive(Debug, Args)]
struct LatencyArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    write: WriteArgs,
    /// The consumer's fetch.max.wait.ms: how long its Fetch may wait at the broker for data.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i32).range(0..))]
    max_wait_ms: i32,
    /// Milliseconds between one record coming back and the next being written, as records
    /// that arrive apart: the consumer's Fetch waits at the broker meanwhile (not counted).
    #[arg(long, default_value_t = 0)]
    interval_ms: u64,
    /// Partition to write and read (created as one partition when the topic does not exist).
    #[arg(long, default_value_t = 0)]
    partition: i32,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("strata-perf: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Produce(args) => produce(args).await,
            Command::Consume(args) => consume(args).await,
            Command::Latency(args) => latency(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata-perf: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Connects to the bootstrap broker and finds (or, when `create` is given, creates) the topic.
async fn discover(common: &Common, create: Option<i32>) -> anyhow::Result<(Versions, TopicLayout)> {
    let mut conn =
        KafkaConnection::connect_with(&common.bootstrap, CLIENT_ID, &common.security()?).await?;
    let versions = ops::negotiate(&mut conn).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut created = false;
    loop {
        if let Some(layout) = ops::describe_topic(&mut conn, &versions, &common.topic).await? {
            if layout.partitions.iter().all(|(_, leader)| *leader >= 0) {
                return Ok((versions, layout));
            }
        } else if let (Some(partitions), false) = (create, created) {
            ops::create_topic(&mut conn, &versions, &common.topic, partitions).await?;
            created = true;
        } else if create.is_none() {
            bail!("topic {} does not exist", common.topic);
        }
        if Instant::now() > deadline {
            bail!(
                "topic {} has no leader for every partition after 30 s",
                common.topic
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Partitions grouped by the address of their leader.
fn by_leader(layout: &TopicLayout) -> anyhow::Result<BTreeMap<String, Vec<i32>>> {
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (partition, leader) in &layout.partitions {
        let addr = layout.brokers.get(leader).with_context(|| {
            format!("partition {partition}: leader {leader} is not among the brokers in Metadata")
        })?;
        out.entry(addr.clone()).or_default().push(*partition);
    }
    Ok(out)
}

fn progress(total: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} records ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    // Microseconds, 1 µs .. 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).context("creating a latency histogram")
}

async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let common = &args.common;
    if common.records == 0 {
        bail!("--records must be at least 1");
    }
    if args.idempotence && (args.write.acks != -1 || args.in_flight > 5) {
        // Kafka's producer refuses the same configuration (its ConfigException).
        bail!(
            "--idempotence needs --acks -1 and --in-flight of at most 5, found --acks {} and --in-flight {}",
            args.write.acks,
            args.in_flight
        );
    }
    let (versions, layout) = discover(common, Some(args.partitions)).await?;
    let security = common.security()?;
    let leaders = lanes(&layout, common.connections)?;
    let producer = if args.idempotence {
        let mut conn =
            KafkaConnection::connect_with(&common.bootstrap, CLIENT_ID, &security).await?;
        Some(ops::init_producer_id(&mut conn, &versions).await?)
    } else {
        None
    };
    let per_batch = BatchTemplate::records_per_batch(args.batch_size, args.write.record_size)
        .min(usize::try_from(common.records).unwrap_or(usize::MAX));
    let batch = BatchTemplate::compressed(
        per_batch,
        args.write.record_size,
        now_ms(),
        args.compression,
    )?;
    // Whole batches, then one smaller batch for the remainder, so exactly --records are sent.
    let requests = common.records / per_batch as u64;
    let remainder = usize::try_from(common.records % per_batch as u64).unwrap_or(0);
    let tail = match remainder {
        0 => None,
        n => Some(BatchTemplate::compressed(
            n,
            args.write.record_size,
            now_ms(),
            args.compression,
        )?),
    };
    let sent_records = common.records;
    let partition_count = layout.partitions.len() as u64;
    let bar = progress(sent_records, common.quiet);
    let wire_bytes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut assigned = 0u64;
    for (i, (addr, partitions)) in leaders.iter().enumerate() {
        // Requests in proportion to the partitions each leader has; the last takes the rest.
        let share = if i + 1 == leaders.len() {
            requests - assigned
        } else {
            requests * partitions.len() as u64 / partition_count
        };
        assigned += share;
        let load = ProduceLoad {
            topic: common.topic.clone(),
            partitions: partitions.clone(),
            batch: batch.to_bytes(),
            records_per_batch: per_batch as u64,
            acks: args.write.acks,
            version: versions.produce,
            requests: share,
            in_flight: args.in_flight,
            throughput: args
                .throughput
                .map(|rate| rate * partitions.len() as f64 / partition_count as f64),
            idempotence: producer.map(|(producer_id, epoch)| Idempotence {
                producer_id,
                epoch,
                next_sequences: vec![0; partitions.len()],
            }),
        };
        // The first leader also sends the remainder batch, after its whole ones.
        let tail_load = tail.as_ref().filter(|_| i == 0).map(|t| ProduceLoad {
            batch: t.to_bytes(),
            records_per_batch: t.records() as u64,
            requests: 1,
            idempotence: load.idempotence_after(),
            ..load.clone()
        });
        let (addr, bar, wire_bytes) = (addr.clone(), bar.clone(), wire_bytes.clone());
        let security = security.clone();
        tasks.spawn(async move {
            let mut conn = KafkaConnection::connect_with(&addr, CLIENT_ID, &security).await?;
            let mut histogram = new_histogram()?;
            for load in std::iter::once(&load).chain(tail_load.as_ref()) {
                let batch_len = load.batch.len() as u64;
                pipeline::produce(&mut conn, load, |latency, records| {
                    let micros = u64::try_from(latency.as_micros())
                        .unwrap_or(u64::MAX)
                        .max(1);
                    let _ = histogram.record(micros);
                    bar.inc(records);
                    wire_bytes.fetch_add(batch_len, Ordering::Relaxed);
                })
                .await?;
            }
            anyhow::Ok(histogram)
        });
    }
    let histogram = join_all(tasks).await?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    report(
        "produce",
        sent_records,
        Some(sent_records * args.write.record_size as u64),
        wire_bytes.load(Ordering::Relaxed),
        elapsed,
        &format!(
            "{} B records, {per_batch} per {} B batch ({}), acks={}, {} partitions, {} in flight per connection{}",
            args.write.record_size,
            batch.len(),
            match args.compression {
                Compression::None => "uncompressed".to_owned(),
                codec => format!("{codec:?}").to_lowercase(),
            },
            args.write.acks,
            partition_count,
            args.in_flight,
            match producer {
                Some((id, epoch)) => format!(", idempotent (producer id {id}, epoch {epoch})"),
                None => String::new(),
            }
        ),
        (args.write.acks != 0).then_some(&histogram),
    );
    Ok(())
}

async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let (versions, layout) = discover(common, None).await?;
    let security = common.security()?;
    let bar = progress(common.records, common.quiet);
    let wire_bytes = Arc::new(AtomicU64::new(0));
    let histogram = Arc::new(std::sync::Mutex::new(new_histogram()?));
    let on_fetch: OnFetch = {
        let (bar, wire_bytes, histogram) = (bar.clone(), wire_bytes.clone(), histogram.clone());
        Arc::new(move |latency: Duration, records: u64, bytes: u64| {
            let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            if let Ok(mut h) = histogram.lock() {
                let _ = h.record(micros.max(1));
            }
            wire_bytes.fetch_add(bytes, Ordering::Relaxed);
            bar.inc(records);
        })
    };
    let fetch = FetchLoad {
        topic: common.topic.clone(),
        offsets: Vec::new(),
        version: versions.fetch,
        max_wait_ms: 500,
        max_bytes: args.fetch_max_bytes,
        partition_max_bytes: args.partition_max_bytes,
        records: common.records,
        idle_timeout: Duration::from_secs(args.idle_timeout_secs),
    };
    let started = Instant::now();
    let (records, group_note) = match &args.group {
        Some(_) if common.connections > 1 => {
            bail!("--connections applies without --group only (a group member keeps one connection a leader)")
        }
        Some(group) => {
            let load = GroupLoad {
                group: group.clone(),
                topic: common.topic.clone(),
                leaders: leader_of_each(&layout)?,
                fetch,
                heartbeat_interval: Duration::from_millis(args.heartbeat_interval_ms),
            };
            let mut conn =
                KafkaConnection::connect_with(&common.bootstrap, CLIENT_ID, &security).await?;
            let run = consume_in_group(&mut conn, &versions, &security, CLIENT_ID, &load, on_fetch)
                .await?;
            if run.ran_dry {
                eprintln!(
                    "consume: WARNING: the group's partitions ran dry after {} of {} records \
                     ({} s without a record)",
                    run.records, common.records, args.idle_timeout_secs
                );
            }
            // As kafka-consumer-perf-test's fetch.time.ms: the rates leave out the time spent
            // joining (group.initial.rebalance.delay.ms alone holds a new group's first join
            // for 3 s on Kafka).
            let note = format!(
                "group {group}: {} generation(s), {:.0} ms joining and syncing (not counted in \
                 the rates above), {:.2} s in all",
                run.generations,
                run.rebalance_time.as_secs_f64() * 1000.0,
                started.elapsed().as_secs_f64()
            );
            (run.records, Some((note, run.rebalance_time)))
        }
        None => (
            consume_all(
                &versions,
                &security,
                &layout,
                common.connections,
                fetch,
                on_fetch,
            )
            .await?,
            None,
        ),
    };
    let joining = group_note.as_ref().map_or(Duration::ZERO, |(_, t)| *t);
    let elapsed = started.elapsed().saturating_sub(joining);
    bar.finish_and_clear();
    let bytes = wire_bytes.load(Ordering::Relaxed);
    let histogram = histogram
        .lock()
        .map_err(|_| anyhow::anyhow!("latency histogram poisoned"))?
        .clone();
    report(
        "consume",
        records,
        None,
        bytes,
        elapsed,
        &format!(
            "{} partitions, fetch.max.bytes={}, max.partition.fetch.bytes={} (MB/s counts record batches as stored: headers and framing included)",
            layout.partitions.len(),
            args.fetch_max_bytes,
            args.partition_max_bytes
        ),
        Some(&histogram),
    );
    if let Some((note, _)) = group_note {
        println!("consume: {note}");
    }
    Ok(())
}

async fn latency(args: LatencyArgs) -> anyhow::Result<()> {
    let common = &args.common;
    if common.records == 0 {
        bail!("--records must be at least 1");
    }
    if common.connections != 1 {
        bail!("--connections does not apply to latency (one producer and one consumer connection)");
    }
    if args.write.record_size < TAG_LEN {
        bail!(
            "--record-size must be at least {TAG_LEN} (the first {TAG_LEN} bytes name the record), found {}",
            args.write.record_size
        );
    }
    let (versions, layout) = discover(common, Some(1)).await?;
    let leader = leader_of_each(&layout)?
        .remove(&args.partition)
        .with_context(|| format!("topic {} has no partition {}", common.topic, args.partition))?;
    let security = common.security()?;
    let mut producer = KafkaConnection::connect_with(&leader, CLIENT_ID, &security).await?;
    let mut consumer = KafkaConnection::connect_with(&leader, CLIENT_ID, &security).await?;
    let start = ops::latest_offsets(&mut consumer, &versions, &common.topic, &[args.partition])
        .await?
        .first()
        .map(|(_, offset)| *offset)
        .context("ListOffsets named no offset for the partition")?;
    let load = LatencyLoad {
        topic: common.topic.clone(),
        partition: args.partition,
        acks: args.write.acks,
        produce_version: versions.produce,
        fetch_version: versions.fetch,
        max_wait_ms: args.max_wait_ms,
        records: common.records,
        record_size: args.write.record_size,
        pause: Duration::from_millis(args.interval_ms),
        nonce: rand::random(),
    };
    let bar = progress(common.records, common.quiet);
    let mut delivered = new_histogram()?;
    let mut acknowledged = new_histogram()?;
    let started = Instant::now();
    latency::measure(&mut producer, &mut consumer, &load, start, |sample| {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = delivered.record(micros(sample.delivered));
        if let Some(ack) = sample.acknowledged {
            let _ = acknowledged.record(micros(ack));
        }
        bar.inc(1);
    })
    .await?;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    bar.finish_and_clear();
    println!(
        "latency: {} B records one at a time to {}-{}, acks={}, fetch.max.wait.ms={}, {} ms apart",
        args.write.record_size,
        common.topic,
        args.partition,
        args.write.acks,
        args.max_wait_ms,
        args.interval_ms
    );
    println!(
        "latency: {} records in {secs:.2} s ({:.0} records/s)",
        common.records,
        common.records as f64 / secs
    );
    print_percentiles(
        "latency: end to end (produce written to record fetched)",
        &delivered,
    );
    if args.write.acks != 0 {
        print_percentiles("latency: produce acknowledged", &acknowledged);
    }
    Ok(())
}

fn print_percentiles(what: &str, h: &Histogram<u64>) {
    let ms = |micros: u64| micros as f64 / 1000.0;
    println!(
        "{what}: avg {:.2} ms, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        h.mean() / 1000.0,
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
    );
}

/// Every partition from its earliest offset, one connection and fetch loop per leader.
async fn consume_all(
    versions: &Versions,
    security: &ClientSecurity,
    layout: &TopicLayout,
    connections: u32,
    fetch: FetchLoad,
    on_fetch: OnFetch,
) -> anyhow::Result<u64> {
    let progress = Arc::new(SharedProgress::default());
    let mut tasks = tokio::task::JoinSet::new();
    for (addr, partitions) in lanes(layout, connections)? {
        let (versions, security, progress) = (*versions, security.clone(), progress.clone());
        let (mut fetch, on_fetch) = (fetch.clone(), on_fetch.clone());
        tasks.spawn(async move {
            let mut conn = KafkaConnection::connect_with(&addr, CLIENT_ID, &security).await?;
            fetch.offsets = ops::earliest_offsets(&mut conn, &versions, &fetch.topic, &partitions).await?;
            let idle = fetch.idle_timeout;
            let (end, _) = pipeline::fetch_shared(&mut conn, fetch, &progress, |l, r, b| {
                on_fetch(l, r, b)
            })
            .await?;
            if end == FetchEnd::Idle {
                bail!("no records from {addr} for {idle:?}; the topic holds fewer records than asked for?");
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a fetch task panicked")??;
    }
    Ok(progress.records.load(Ordering::Relaxed))
}

/// One (leader address, partitions) entry a connection: each leader's partitions dealt in turn
/// among at most `connections` connections to it.
fn lanes(layout: &TopicLayout, connections: u32) -> anyhow::Result<Vec<(String, Vec<i32>)>> {
    let mut out = Vec::new();
    for (addr, partitions) in by_leader(layout)? {
        let n = partitions.len().min(connections as usize).max(1);
        let mut dealt = vec![Vec::new(); n];
        for (i, p) in partitions.into_iter().enumerate() {
            if let Some(lane) = dealt.get_mut(i % n) {
                lane.push(p);
            }
        }
        out.extend(dealt.into_iter().map(|lane| (addr.clone(), lane)));
    }
    Ok(out)
}

/// Each partition's leader address.
fn leader_of_each(layout: &TopicLayout) -> anyhow::Result<BTreeMap<i32, String>> {
    Ok(by_leader(layout)?
        .into_iter()
        .flat_map(|(addr, partitions)| partitions.into_iter().map(move |p| (p, addr.clone())))
        .collect())
}

/// Waits for every task and merges their histograms; the first failure wins.
async fn join_all(
    mut tasks: tokio::task::JoinSet<anyhow::Result<Histogram<u64>>>,
) -> anyhow::Result<Histogram<u64>> {
    let mut merged = new_histogram()?;
    while let Some(joined) = tasks.join_next().await {
        let histogram = joined.context("a load task panicked")??;
        merged
            .add(&histogram)
            .context("merging latency histograms")?;
    }
    Ok(merged)
}

fn report(
    what: &str,
    records: u64,
    payload_bytes: Option<u64>,
    wire_bytes: u64,
    elapsed: Duration,
    setup: &str,
    latency: Option<&Histogram<u64>>,
) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!("{what}: {setup}");
    let values = payload_bytes.map_or(String::new(), |b| {
        format!("{:.1} MB/s of values, ", b as f64 / secs / 1e6)
    });
    println!(
        "{what}: {records} records in {secs:.2} s: {:.0} records/s, {values}{:.1} MB/s of batches",
        records as f64 / secs,
        wire_bytes as f64 / secs / 1e6,
    );
    match latency {
        Some(h) if !h.is_empty() => println!(
            "{what}: request latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} requests)",
            h.value_at_quantile(0.50) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.value_at_quantile(0.999) as f64 / 1000.0,
            h.max() as f64 / 1000.0,
            h.len()
        ),
        _ => println!("{what}: no latency (acks=0 has no responses)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_deal_each_leaders_partitions_in_turn() {
        let layout = TopicLayout {
            partitions: vec![(0, 1), (1, 2), (2, 1), (3, 1), (4, 2)],
            brokers: [(1, "a:1".to_owned()), (2, "b:2".to_owned())].into(),
            controller_id: 1,
        };
        let got = lanes(&layout, 2).unwrap();
        assert_eq!(
            got,
            [
                ("a:1".to_owned(), vec![0, 3]),
                ("a:1".to_owned(), vec![2]),
                ("b:2".to_owned(), vec![1]),
                ("b:2".to_owned(), vec![4]),
            ]
        );
        // More connections than partitions: one a partition, no empty lanes.
        assert_eq!(lanes(&layout, 8).unwrap().len(), 5);
        assert_eq!(lanes(&layout, 1).unwrap().len(), 2);
    }
}
