//! Topic and dynamic broker configuration through a real admin client (confluent-kafka):
//! create with configs, DescribeConfigs sources, IncrementalAlterConfigs and legacy
//! AlterConfigs, validate-only, INVALID_CONFIG, and overrides that survive a restart.

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

/// Dynamic broker configs (BROKER "" and "1") through confluent-kafka: sources, synonyms,
/// refusals with Kafka's codes, validate-only, segments rolling at a dynamically lowered
/// log.segment.bytes, and both layers surviving a restart until deleted.
#[test]
fn dynamic_broker_configs_apply_live_and_survive_restart() {
    let mut broker = Broker::start_with(&[("log.retention.hours", "2")]);
    let data_dir = broker.data_dir().display().to_string();
    let phase = |broker: &Broker, phase: &str| {
        let out = run_python(
            "ck_broker_configs.py",
            &[
                "--bootstrap",
                &broker.bootstrap(),
                "--data-dir",
                &data_dir,
                "--phase",
                phase,
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let alter = phase(&broker, "alter");
    assert!(alter.contains("OK broker configs alter"), "{alter}");
    let status = broker.sigterm_and_wait();
    assert!(status.success(), "SIGTERM exit: {status}");
    broker.restart();
    let verify = phase(&broker, "verify");
    assert!(verify.contains("OK broker configs verify"), "{verify}");
}
