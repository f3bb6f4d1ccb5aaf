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

/// Runs `script` with `args` and asserts its summary holds `expected`.
fn run_ok(script: &str, args: &[&str], expected: &str) {
    let output = run_python(script, args);
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains(expected), "{script}: {summary}");
}

#[test]
fn clients_work_with_connections_on_their_own_threads() {
    let mut broker = threaded_broker();
    let bootstrap = broker.bootstrap();
    let b = ["--bootstrap", bootstrap.as_str()];
    run_ok(
        "ck_idempotent.py",
        &[
            &b[..],
            &["--records-per-codec", "10000", "--partitions", "4"],
        ]
        .concat(),
        "OK confluent-kafka idempotent: 40000 records",
    );
    run_ok(
        "ck_pipelined_order.py",
        &[&b[..], &["--records", "10000"]].concat(),
        "OK pipelined order",
    );
    run_ok(
        "kp_admin.py",
        &[&b[..], &["--records", "1000"]].concat(),
        "OK kafka-python",
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
    run_ok(
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
        "OK confluent-kafka group: 22000 records consumed exactly once by 3 members",
    );
    let status = broker.sigterm_and_wait();
    assert!(
        status.success(),
        "strata exited with {status} after SIGTERM"
    );
}
