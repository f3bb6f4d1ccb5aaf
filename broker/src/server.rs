//! Start-up and shutdown of one broker: log dirs and `meta.properties`, the metadata image,
//! recovery of every hosted partition, listeners, background maintenance, and the graceful
//! stop (stop accepting, finish in-flight requests, flush, checkpoint).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use strata_config::BrokerConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::group::{GroupConfig, GroupCoordinator};
use crate::metadata::{kafka_uuid, meta_properties, BrokerEndpoint, BrokerInfo, MetadataStore};
use crate::metrics::BrokerMetrics;
use crate::network::{accept_loop, ListenerContext};
use crate::offsets_topic::{OffsetsTopicLog, OFFSETS_TOPIC};
use crate::partition::manager::{now_ms, ReplicaManager};
use crate::topics;
use crate::txn::producer_ids::ProducerIdManager;

/// Name of the file (in the first log dir) holding the metadata image of a broker on its own.
const METADATA_SNAPSHOT: &str = "strata-cluster-metadata.json";
/// The metadata quorum's log, vote and snapshots (in the first log dir) in a cluster.
const QUORUM_DIR: &str = "strata-metadata-quorum";
const PRODUCER_ID_BLOCK: &str = "strata-producer-id-block";
/// How long shutdown waits for in-flight requests before closing the logs anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

pub fn is_internal_topic(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

/// Everything request handlers share.
pub struct Broker {
    /// The static configuration (server.properties, --override). Keys that can change at
    /// runtime are read through [`Broker::current_config`] instead.
    pub config: BrokerConfig,
    /// The static configuration with the dynamic broker configs of the metadata image on
    /// top; replaced whole by AlterConfigs on a BROKER resource.
    current: std::sync::RwLock<Arc<BrokerConfig>>,
    pub metadata: Arc<MetadataStore>,
    pub replicas: Arc<ReplicaManager>,
    pub producer_ids: ProducerIdManager,
    pub groups: Arc<GroupCoordinator>,
    pub started_at: Instant,
    /// SCRAM credentials (SASL/PLAIN checks them too).
    pub credentials: Arc<crate::security::credentials::CredentialStore>,
    pub metrics: BrokerMetrics,
    /// ACLs and the checks made against them (a no-op without `authorizer.class.name`).
    pub authorizer: Arc<crate::security::authorizer::Authorizer>,
    /// Incremental fetch sessions (KIP-227).
    pub fetch_sessions: crate::fetch_session::FetchSessionCache,
    /// Transactional ids and their transactions (KIP-98).
    pub transactions: crate::txn::coordinator::TransactionCoordinator,
    /// Client byte rates against their quotas.
    pub quotas: crate::quota::QuotaManager,
    /// Followers' fetchers, one per leader followed.
    pub fetchers: crate::replication::fetcher::FetcherManager,
}

impl Broker {
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The effective configuration: dynamic per-broker > dynamic cluster default > static.
    /// Topic defaults, message.max.bytes and log.cleaner.backoff.ms are read from it.
    pub fn current_config(&self) -> Arc<BrokerConfig> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Publishes a new effective configuration (the caller holds the admin guard and has
    /// persisted the dynamic configs it came from).
    pub(crate) fn set_current_config(&self, config: BrokerConfig) {
        let mut slot = self.current.write().unwrap_or_else(|p| p.into_inner());
        *slot = Arc::new(config);
    }
}

/// Opens the broker's state: the slow part of start-up (log recovery) happens here.
pub fn open(config: BrokerConfig) -> anyhow::Result<Arc<Broker>> {
    if config.log_dirs.is_empty() {
        bail!("log.dirs: at least one log directory is required");
    }
    for dir in &config.log_dirs {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("log.dirs: cannot create {}", dir.display()))?;
    }
    let cluster_id = match meta_properties::existing_cluster_id(&config.log_dirs)? {
        Some(id) => id,
        None => config
            .cluster_id
            .clone()
            .unwrap_or_else(|| kafka_uuid::to_base64(&kafka_uuid::random_uuid())),
    };
    for dir in &config.log_dirs {
        meta_properties::ensure(dir, &cluster_id, config.node_id)?;
    }
    let first_dir: PathBuf = config
        .log_dirs
        .first()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("./data"));
    let local = local_broker_info(&config);
    let metadata = Arc::new(if config.controller_quorum_voters.is_empty() {
        MetadataStore::open(first_dir.join(METADATA_SNAPSHOT), cluster_id.clone(), local)?
    } else {
        // The quorum fills the image in when it starts (`run`).
        MetadataStore::for_cluster(cluster_id.clone())
    });
    let replicas = Arc::new(ReplicaManager::new(config.log_dirs.clone()));
    let producer_ids = ProducerIdManager::open(first_dir.join(PRODUCER_ID_BLOCK));
    let groups = GroupCoordinator::new(
        group_config(&config),
        Arc::new(OffsetsTopicLog::new(
            replicas.clone(),
            usize::try_from(config.min_insync_replicas).unwrap_or(1),
        )),
    );
    let topics_for_validation = metadata.clone();
    groups.set_topic_validator(Arc::new(move |topic: &str, partition: i32| {
        topics_for_validation
            .image()
            .topic(topic)
            .is_some_and(|t| usize::try_from(partition).is_ok_and(|p| p < t.partitions.len()))
    }));
    let credentials = Arc::new(crate::security::credentials::CredentialStore::open(
        first_dir.join(crate::security::credentials::CREDENTIALS_FILE),
    )?);
    let authorizer = Arc::new(crate::security::authorizer::Authorizer::open(
        &config, &first_dir,
    )?);
    let current = effective_config(&config, &metadata.image());
    let fetch_sessions = crate::fetch_session::FetchSessionCache::new(
        config.max_incremental_fetch_session_cache_slots,
    );
    let transactions = crate::txn::coordinator::TransactionCoordinator::new(
        replicas.clone(),
        groups.clone(),
        crate::txn::coordinator::TransactionConfig {
            state_log_partitions: config.transaction_state_log_num_partitions,
            max_timeout_ms: config.transaction_max_timeout_ms,
        },
    );
    let quotas = crate::quota::QuotaManager::new(
        config.quota_window_size_seconds.saturating_mul(1000),
        config.quota_window_num,
    );
    let broker = Arc::new(Broker {
        fetchers: crate::replication::fetcher::FetcherManager::default(),
        quotas,
        transactions,
        authorizer,
        fetch_sessions,
        current: std::sync::RwLock::new(Arc::new(current)),
        config,
        metadata,
        replicas,
        producer_ids,
        groups,
        started_at: Instant::now(),
        credentials,
        metrics: BrokerMetrics::new().context("registering metrics")?,
    });

    broker
        .metadata
        .set_publisher(crate::replication::publisher::ReplicaPublisher::new(
            &broker,
        ));
    hold_recovery_for_tests();
    let image = broker.metadata.image();
    let recovery_started = Instant::now();
    let mut opened = 0usize;
    for topic in image.topics.values() {
        let config = topics::log_config(
            &topics::resolve_topic_config(&broker, &topic.configs)
                .map_err(|(_, msg)| anyhow::anyhow!("topic {}: {msg}", topic.name))?,
        );
        for p in topic
            .partitions
            .iter()
            .filter(|p| p.replicas.contains(&broker.node_id()))
        {
            let _partition = broker
                .replicas
                .open_partition(
                    &topic.name,
                    p.partition,
                    topic.id,
                    p.leader_epoch,
                    config.clone(),
                )
                .with_context(|| format!("recovering {}-{}", topic.name, p.partition))?;
            opened += 1;
        }
    }
    tracing::info!(
        cluster_id = %cluster_id,
        node_id = broker.node_id(),
        partitions = opened,
        elapsed_ms = recovery_started.elapsed().as_millis() as u64,
        "logs loaded"
    );
    Ok(broker)
}

/// Test hook, off unless the variable is set: while the file it names exists (at most
/// [`HOLD_RECOVERY_MAX`]), start-up waits before recovering the logs, so that a test can
/// look at the broker mid-recovery deterministically instead of hoping a big log is slow.
pub const HOLD_RECOVERY_ENV: &str = "STRATA_TEST_HOLD_RECOVERY_WHILE_FILE_EXISTS";
const HOLD_RECOVERY_MAX: Duration = Duration::from_secs(120);

fn hold_recovery_for_tests() {
    let Some(path) = std::env::var_os(HOLD_RECOVERY_ENV).map(PathBuf::from) else {
        return;
    };
    let started = Instant::now();
    if path.exists() {
        tracing::warn!(
            "test hook {HOLD_RECOVERY_ENV}: holding log recovery while {} exists",
            path.display()
        );
    }
    while path.exists() && started.elapsed() < HOLD_RECOVERY_MAX {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The static configuration with the image's dynamic broker configs on top; entries that
/// no longer validate are ignored with an error log, as Kafka does at start-up.
pub(crate) fn effective_config(
    config: &BrokerConfig,
    image: &crate::metadata::MetadataImage,
) -> BrokerConfig {
    let default = image.dynamic_configs_of("");
    let per_broker = image.dynamic_configs_of(&config.node_id.to_string());
    let (effective, ignored) = config.with_valid_dynamic(&default, &per_broker);
    for what in ignored {
        tracing::error!("dynamic broker config ignored, it no longer validates: {what}");
    }
    if !effective.dynamic_default.is_empty() || !effective.dynamic_broker.is_empty() {
        tracing::info!(
            cluster_default = ?effective.dynamic_default.keys().collect::<Vec<_>>(),
            per_broker = ?effective.dynamic_broker.keys().collect::<Vec<_>>(),
            "dynamic broker configs applied"
        );
    }
    effective
}

/// Runs the broker until `stop` fires, then shuts down gracefully.
pub async fn run(broker: Arc<Broker>, stop: CancellationToken) -> anyhow::Result<()> {
    let endpoint = start_metrics_endpoint(&broker.config).await?;
    run_with_endpoint(broker, stop, endpoint).await
}

/// [`run`] with the metrics and health endpoint already serving (started before
/// [`open`], so that it answers during log recovery); `None` when it is disabled.
pub async fn run_with_endpoint(
    broker: Arc<Broker>,
    stop: CancellationToken,
    endpoint: Option<MetricsEndpoint>,
) -> anyhow::Result<()> {
    crate::network::check_unauthenticated_listeners(&broker.config)?;
    if let Some(endpoint) = &endpoint {
        endpoint.endpoint.set_broker(broker.clone());
    }
    broker
        .fetchers
        .start(tokio::runtime::Handle::current(), &broker)
        .context("the inter-broker listener")?;
    let cluster = if broker.metadata.is_cluster() {
        Some(join_cluster(&broker).await?)
    } else {
        load_groups(&broker).await?;
        load_transactions(&broker)?;
        None
    };
    let connections = TaskTracker::new();
    let accepting = CancellationToken::new();
    let threads = match broker.config.connection_threads {
        0 => None,
        n => Some(Arc::new(
            crate::network::threads::ConnectionThreads::start(n)
                .context("strata.connection.threads: starting the connection threads")?,
        )),
    };
    let mut listener_tasks = Vec::new();
    // The controller listener belongs to the metadata quorum (`join_cluster`).
    for listener in broker
        .config
        .listeners
        .iter()
        .filter(|l| !broker.config.controller_listener_names.contains(&l.name))
    {
        let addr = format!("{}:{}", listener.host, listener.port);
        let socket = TcpListener::bind(&addr).await.with_context(|| {
            format!(
                "listeners: cannot bind {} listener to {addr}",
                listener.name
            )
        })?;
        let local_addr = socket.local_addr()?;
        tracing::info!(listener = %listener.name, address = %local_addr, "listening");
        let context = ListenerContext::for_listener(&broker.config, listener, local_addr)?;
        listener_tasks.push(tokio::spawn(accept_loop(
            socket,
            context,
            broker.clone(),
            accepting.clone(),
            connections.clone(),
            threads.clone(),
        )));
    }
    let maintenance = tokio::spawn(maintenance_loop(broker.clone(), accepting.clone()));
    let txn_timeouts = tokio::spawn(transaction_timeout_loop(broker.clone(), accepting.clone()));
    let isr_expiry = tokio::spawn(crate::replication::leader::isr_expiry_loop(
        broker.clone(),
        accepting.clone(),
    ));
    let controller = tokio::spawn(crate::replication::controller::controller_loop(
        broker.clone(),
        accepting.clone(),
    ));
    broker.metrics.set_ready(true);
    tracing::info!(node_id = broker.node_id(), "strata started");

    stop.cancelled().await;
    if cluster.is_some() {
        hand_over_leaderships(&broker).await;
    }
    broker.metrics.set_ready(false);
    tracing::info!("shutting down: no new connections or requests");
    accepting.cancel();
    for task in listener_tasks {
        let _ = task.await;
    }
    connections.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "in-flight requests did not finish within {SHUTDOWN_GRACE:?}; closing logs anyway"
        );
    }
    let _ = maintenance.await;
    let _ = txn_timeouts.await;
    let _ = isr_expiry.await;
    let _ = controller.await;
    broker.fetchers.shutdown();
    if let Some(link) = cluster {
        link.shutdown().await;
    }
    if let Some(threads) = threads.and_then(|t| Arc::try_unwrap(t).ok()) {
        // Joining threads blocks: off the async workers.
        tokio::task::spawn_blocking(move || threads.stop()).await?;
    }
    broker.groups.shutdown();
    let broker_for_close = broker.clone();
    tokio::task::spawn_blocking(move || broker_for_close.replicas.shutdown()).await?;
    if let Some(endpoint) = endpoint {
        endpoint.stop.cancel();
        let _ = endpoint.task.await;
    }
    tracing::info!("shutdown complete: logs flushed and checkpointed");
    Ok(())
}

/// The running metrics and health endpoint.
pub struct MetricsEndpoint {
    pub endpoint: Arc<crate::http::Endpoint>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Binds the /metrics and health endpoint (`metrics.listener`, else the registry's
/// `strata.metrics.listener`) and serves it: live at once, ready once a broker handed to
/// it by [`run_with_endpoint`] says so. A bind failure stops start-up: a broker silently
/// without its endpoint, or a scraper reading another broker's port, is worse than a
/// clear error.
pub async fn start_metrics_endpoint(
    config: &BrokerConfig,
) -> anyhow::Result<Option<MetricsEndpoint>> {
    let spec = match config.originals.get("metrics.listener") {
        Some(documented) => documented.clone(),
        None => config.metrics_listener.clone().unwrap_or_default(),
    };
    let Some(address) = crate::http::listener_address(&spec)? else {
        tracing::info!("metrics endpoint disabled (metrics.listener is empty or 0)");
        return Ok(None);
    };
    let socket = crate::http::bind(&address).await?;
    let local = socket.local_addr()?;
    tracing::info!(address = %local, "metrics listening on http://{local}");
    let endpoint = crate::http::Endpoint::new()?;
    let stop = CancellationToken::new();
    let task = tokio::spawn(crate::http::serve(socket, endpoint.clone(), stop.clone()));
    Ok(Some(MetricsEndpoint {
        endpoint,
        stop,
        task,
    }))
}

fn group_config(config: &BrokerConfig) -> GroupConfig {
    GroupConfig {
        offsets_topic_num_partitions: config.offsets_topic_num_partitions,
        group_initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
        group_min_session_timeout_ms: config.group_min_session_timeout_ms,
        group_max_session_timeout_ms: config.group_max_session_timeout_ms,
        group_max_size: config.group_max_size,
        offsets_retention_minutes: config.offsets_retention_minutes,
        offsets_retention_check_interval_ms: config.offsets_retention_check_interval_ms,
        offset_metadata_max_bytes: usize::try_from(config.offset_metadata_max_bytes)
            .unwrap_or(4096),
        node_id: config.node_id,
    }
}

/// Replays `__consumer_offsets` into the group coordinator before clients are served.
/// Starts this node's member of the metadata quorum, then registers the broker (its
/// endpoints and rack). Registering on every start, even when the replayed image already
/// shows this broker, is also how a restarted broker catches up before it serves: the
/// registration returns once this node applied it, so every change committed while it was
/// away (its fencing, leaderships moved elsewhere) is in its image by then, as Kafka's
/// brokers catch up on the metadata log before they open their listeners.
async fn join_cluster(
    broker: &Arc<Broker>,
) -> anyhow::Result<Arc<crate::metadata::cluster::ClusterLink>> {
    let dir = broker
        .config
        .log_dirs
        .first()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("./data"))
        .join(QUORUM_DIR);
    let local_security = crate::security::replicated::LocalSecurity::of(broker);
    let local_cluster_id = broker.metadata.image().cluster_id.clone();
    let link = crate::metadata::cluster::start(&broker.metadata, &broker.config, dir).await?;
    let me = local_broker_info(&broker.config);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match link
            .commit(vec![crate::metadata::MetadataRecord::RegisterBroker(
                me.clone(),
            )])
            .await
        {
            Ok(()) => {
                let image = broker.metadata.image();
                if image.brokers.get(&me.node_id) == Some(&me)
                    && !image.fenced.contains(&me.node_id)
                {
                    break;
                }
                // Fenced again at once (the controller had not heard from us yet): retry.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) if Instant::now() < deadline => {
                tracing::info!(error = %e, "registering with the metadata quorum; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => bail!("cannot register with the metadata quorum: {e}"),
        }
    }
    tracing::info!(
        node_id = me.node_id,
        brokers = broker.metadata.image().brokers.len(),
        "registered with the cluster"
    );
    agree_cluster_id(broker, &link, local_cluster_id).await?;
    crate::security::replicated::seed_cluster(broker, local_security)
        .await
        .context("seeding the cluster's ACLs and SCRAM credentials")?;
    Ok(link)
}

/// Every member names the same cluster id to clients (librdkafka warns, and tools compare
/// them): the first node to join proposes its meta.properties id and it stands.
async fn agree_cluster_id(
    broker: &Broker,
    link: &crate::metadata::cluster::ClusterLink,
    local: String,
) -> anyhow::Result<()> {
    if !broker.metadata.image().cluster_id_agreed {
        link.commit(vec![crate::metadata::MetadataRecord::AgreeClusterId {
            cluster_id: local.clone(),
        }])
        .await
        .context("agreeing on the cluster id")?;
    }
    let agreed = broker.metadata.image().cluster_id.clone();
    if agreed != local {
        tracing::info!(cluster_id = %agreed, meta_properties = %local,
            "serving the cluster's id; this node's meta.properties names another");
    }
    Ok(())
}

/// Kafka's controlled shutdown: before a cluster member stops serving, it fences itself
/// (ShutDownBroker) so that the controller moves its leaderships to in-sync replicas on
/// other brokers, and waits until its image shows that (at most broker.session.timeout.ms,
/// after which the controller would have done it anyway). Clients meanwhile get
/// NOT_LEADER_OR_FOLLOWER here and move to the new leaders, instead of waiting out a session
/// timeout against a broker that is gone.
async fn hand_over_leaderships(broker: &Broker) {
    let me = broker.node_id();
    let led = |broker: &Broker| {
        broker
            .metadata
            .image()
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.leader == me)
            .count()
    };
    let before = led(broker);
    let bound = Duration::from_millis(broker.config.broker_session_timeout_ms.max(1) as u64);
    let deadline = Instant::now() + bound;
    let record = crate::metadata::MetadataRecord::ShutDownBroker { node_id: me };
    match tokio::time::timeout(bound, broker.metadata.commit_async(vec![record])).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "controlled shutdown: not committed; stopping anyway");
            return;
        }
        Err(_) => {
            tracing::warn!("controlled shutdown: no quorum answer in time; stopping anyway");
            return;
        }
    }
    while led(broker) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = led(broker);
    if left == 0 {
        tracing::info!(
            handed_over = before,
            "controlled shutdown: leaderships moved to other brokers"
        );
    } else {
        tracing::warn!(
            still_led = left,
            "controlled shutdown: some leaderships did not move in time"
        );
    }
}

/// This broker as Metadata describes it.
fn local_broker_info(config: &BrokerConfig) -> BrokerInfo {
    BrokerInfo {
        node_id: config.node_id,
        endpoints: config
            .advertised_listeners
            .iter()
            .map(|l| BrokerEndpoint {
                listener: l.name.clone(),
                host: l.host.clone(),
                port: l.port,
            })
            .collect(),
        rack: config.broker_rack.clone(),
    }
}

async fn load_groups(broker: &Broker) -> anyhow::Result<()> {
    let Some(topic) = broker.metadata.image().topic(OFFSETS_TOPIC).cloned() else {
        return Ok(());
    };
    let started = Instant::now();
    for p in &topic.partitions {
        if let Err(code) = broker.groups.load_partition(p.partition).await {
            bail!(
                "loading {OFFSETS_TOPIC}-{} failed with Kafka error code {code}",
                p.partition
            );
        }
    }
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "consumer groups loaded"
    );
    Ok(())
}

/// Replays `__transaction_state` and finishes transactions a stop caught half-ended, after
/// the groups (whose held transactional offsets the markers may decide).
fn load_transactions(broker: &Broker) -> anyhow::Result<()> {
    let started = Instant::now();
    let loaded = tokio::task::block_in_place(|| broker.transactions.load())
        .map_err(|code| anyhow::anyhow!("loading __transaction_state failed: {code:?}"))?;
    let hanging = tokio::task::block_in_place(|| broker.transactions.abort_unknown_transactions());
    tracing::info!(
        transactional_ids = loaded,
        hanging_aborted = hanging,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "transactions loaded"
    );
    Ok(())
}

/// Aborts transactions past their timeout, every
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
async fn transaction_timeout_loop(broker: Arc<Broker>, stop: CancellationToken) {
    let every = Duration::from_millis(
        u64::try_from(
            broker
                .config
                .transaction_abort_timed_out_transaction_cleanup_interval_ms,
        )
        .unwrap_or(10_000)
        .max(10),
    );
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stop.cancelled() => return,
        }
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || {
            b.transactions.abort_timed_out(&b.producer_ids);
            // A dynamic key: read afresh.
            let expiration_ms = b.current_config().transactional_id_expiration_ms;
            b.transactions.expire_transactional_ids(expiration_ms);
        })
        .await;
    }
}

/// Flush policy, retention and recovery-point checkpoints, on Kafka's schedule keys.
async fn maintenance_loop(broker: Arc<Broker>, stop: CancellationToken) {
    let tick = Duration::from_millis(
        u64::try_from(
            broker
                .config
                .log_flush_scheduler_interval_ms
                .clamp(100, 1000),
        )
        .unwrap_or(1000),
    );
    let retention_every = broker.config.log_retention_check_interval_ms.max(1000);
    // log.flush.offset.checkpoint.interval.ms (Kafka's 60 s): recovery points, log start
    // offsets, high watermarks and the cleaner's progress are checkpointed together.
    let checkpoint_every =
        i64::from(broker.config.log_flush_offset_checkpoint_interval_ms).max(100);
    let (mut last_retention, mut last_checkpoint) = (now_ms(), now_ms());
    let (mut cleaner, mut last_clean): (Option<tokio::task::JoinHandle<()>>, i64) = (None, 0);
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = stop.cancelled() => return,
        }
        let now = now_ms();
        let retention_due = now - last_retention >= retention_every;
        let checkpoint_due = now - last_checkpoint >= checkpoint_every;
        if retention_due {
            last_retention = now;
        }
        if checkpoint_due {
            last_checkpoint = now;
        }
        // The log cleaner: one pass at a time over compacted partitions, beside (never
        // inside) the flush/retention tick, every log.cleaner.backoff.ms (dynamic: read
        // afresh each tick).
        let clean_every = broker
            .current_config()
            .get("log.cleaner.backoff.ms")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(15_000)
            .max(100);
        if broker.config.log_cleaner_enable
            && now - last_clean >= clean_every
            && cleaner.as_ref().is_none_or(|c| c.is_finished())
        {
            last_clean = now;
            let b = broker.clone();
            cleaner = Some(tokio::task::spawn_blocking(move || {
                // Read per pass: the key is a dynamic broker config.
                let dedupe_buffer_size =
                    u64::try_from(b.current_config().log_cleaner_dedupe_buffer_size).unwrap_or(1);
                for p in b.replicas.all() {
                    p.clean(now_ms(), dedupe_buffer_size);
                }
            }));
        }
        // Rates of clients that went away.
        broker.quotas.prune(now);
        let b = broker.clone();
        let producer_expiration_ms = broker.current_config().producer_id_expiration_ms;
        let _ = tokio::task::spawn_blocking(move || {
            for p in b.replicas.all() {
                p.maintain(now, retention_due);
                if retention_due {
                    // With retention's schedule: forget producers idle past
                    // producer.id.expiration.ms (a dynamic key, read afresh).
                    p.expire_producers(now, producer_expiration_ms);
                }
            }
            if checkpoint_due {
                b.replicas.checkpoint_recovery_points();
            }
        })
        .await;
    }
}
