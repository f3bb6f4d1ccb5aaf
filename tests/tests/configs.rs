//! Topic configuration through a real admin client (confluent-kafka): create with
//! configs, DescribeConfigs sources, IncrementalAlterConfigs and legacy AlterConfigs,
//! validate-only, INVALID_CONFIG, and overrides that survive a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use strata_tests::{run_python, Broker};

#[test]
fn topic_configs_alter_describe_and_survive_restart() {
    let mut broker = Broker::start();
    let out = run_python(
        "ck_configs.py",
        &["--bootstrap", &broker.bootstrap(), "--phase", "alter"],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK configs alter"));
    let status = broker.sigterm_and_wait();
    assert!(status.success(), "SIGTERM exit: {status}");
    broker.restart();
    let out = run_python(
        "ck_configs.py",
        &["--bootstrap", &broker.bootstrap(), "--phase", "verify"],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK configs verify"));
}
