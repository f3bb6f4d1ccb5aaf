//! Replication: where replicas go (`placement`), what each broker does with a new metadata
//! image (`publisher`: open and delete logs, lead or follow), followers copying their
//! leaders (`fetcher`, connecting as `inter_broker` says), and the active controller's duties (`controller`: fencing dead
//! brokers, electing leaders, ISR changes).

pub mod client;
pub mod controller;
pub mod fetcher;
pub mod inter_broker;
pub mod leader;
pub mod placement;
pub mod publisher;
