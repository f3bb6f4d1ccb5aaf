//! `strata.connection.threads`: with connections pinned to connection threads of their own,
//! real clients work as on the shared runtime — confluent-kafka's idempotent producer with
//! every codec, pipelined produce order, kafka-python's admin (whose handlers block in
//! place), and a balanced confluent-kafka group.

// Tests may unwrap: a panic here is a failed assertion with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use strata_tests::{run_python, Broker};

fn threaded_broker() -> Broker {
    Broker::start_with(&[
        ("strata.connection.threads", "2"),
        ("group.initial.rebalance.delay.ms", "0"),
    ])
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn clients_work_with_connections_on_their_own_threads() {
    let mut broker = threaded_broker();
    let bootstrap = broker.bootstrap();
    let output = run_python(
        "ck_idempotent.py",
        &[
            "--bootstrap",
            &bootstrap,
            "--records-per-codec",
            "10000",
            "--partitions",
            "4",
        ],
    );
    assert!(
        stdout(&output).contains("OK confluent-kafka idempotent: 40000 records"),
        "{}",
        stdout(&output)
    );
    let output = run_python(
        "ck_pipelined_order.py",
        &["--bootstrap", &bootstrap, "--records", "10000"],
    );
    assert!(
        stdout(&output).contains("OK pipelined order"),
        "{}",
        stdout(&output)
    );
    let output = run_python(
        "kp_admin.py",
        &["--bootstrap", &bootstrap, "--records", "1000"],
    );
    assert!(
        stdout(&output).contains("OK kafka-python"),
        "{}",
        stdout(&output)
    );
    // Shutdown stops the connection threads after the connections: a clean exit.
    let status = broker.sigterm_and_wait();
    assert!(
        status.success(),
        "strata exited with {status} after SIGTERM"
    );
}

#[test]
fn a_group_balances_with_connections_on_their_own_threads() {
    let mut broker = threaded_broker();
    let state = broker.scratch_dir().join("group-state.json");
    let output = run_python(
        "ck_group_balance.py",
        &[
            "--bootstrap",
            &broker.bootstrap(),
            "--phase",
            "balance",
            "--state",
            state.to_str().unwrap(),
            "--records",
            "20000",
            "--records-after-leave",
            "2000",
        ],
    );
    assert!(
        stdout(&output)
            .contains("OK confluent-kafka group: 22000 records consumed exactly once by 3 members"),
        "{}",
        stdout(&output)
    );
    // Shutdown stops the connection threads after the connections: a clean exit.
    let status = broker.sigterm_and_wait();
    assert!(
        status.success(),
        "strata exited with {status} after SIGTERM"
    );
}
