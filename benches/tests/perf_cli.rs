//! The `strata-perf` binary as users run it, against a broker in this process: an idempotent
//! produce (`--idempotence`) is acknowledged and read back in full, and the settings Kafka's
//! producer refuses with idempotence are refused by name.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};
use std::sync::Arc;

use strata_benches::inproc::InProcessBroker;

/// Runs `strata-perf <command> --bootstrap <addr> --topic idem --quiet <args>`.
fn strata_perf(command: &str, addr: &str, args: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata-perf"))
        .args([command, "--bootstrap", addr, "--topic", "idem", "--quiet"])
        .args(args.split_whitespace())
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn an_idempotent_produce_is_acknowledged_and_read_back() {
    let runtime = Arc::new(tokio::runtime::Runtime::new().unwrap());
    let broker = InProcessBroker::start(runtime.clone(), &[]).unwrap();
    let addr = broker.addr.as_str();
    // 1,000 records of 100 B, 13 a 1,500 B batch: 76 whole batches over both
    // partitions and a remainder batch whose sequence continues its partition's.
    let produced = strata_perf(
        "produce",
        addr,
        "--records 1000 --partitions 2 --batch-size 1500 --acks -1 --idempotence",
    );
    assert!(produced.status.success(), "{}", text(&produced));
    let report = String::from_utf8_lossy(&produced.stdout);
    assert!(
        report.contains("idempotent (producer id "),
        "{}",
        text(&produced)
    );
    let consumed = strata_perf("consume", addr, "--records 1000 --idle-timeout-secs 5");
    assert!(consumed.status.success(), "{}", text(&consumed));

    for (acks, in_flight) in [("1", "5"), ("-1", "6")] {
        let refused = strata_perf(
            "produce",
            addr,
            &format!("--records 10 --acks {acks} --in-flight {in_flight} --idempotence"),
        );
        assert!(!refused.status.success(), "{}", text(&refused));
        assert!(
            String::from_utf8_lossy(&refused.stderr)
                .contains("--idempotence needs --acks -1 and --in-flight of at most 5"),
            "{}",
            text(&refused)
        );
    }
    drop(broker);
}
