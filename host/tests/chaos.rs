//! The fault harness (`tally chaos`) on real nodes in network namespaces, as CI runs it: a
//! short schedule of every fault passes the checker; restarting a killed node on an emptied
//! data directory (the writes it took while cut off exist nowhere else) makes it fail. Needs
//! root, ip(8) and iptables — CI's `scripts/setup` installs them; without them the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

/// Runs `tally chaos` with `args` and `--json`: its exit status and report.
fn chaos(args: &[&str]) -> (bool, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .arg("chaos")
        .args(args)
        .arg("--json")
        .output()
        .expect("run tally chaos");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    let report =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("no report ({e}); stderr: {stderr}"));
    (out.status.success(), report)
}

fn count(report: &serde_json::Value, phase: &str, what: &str) -> u64 {
    report["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["phase"] == phase)
        .map(|p| p[what].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn a_short_schedule_of_every_fault_passes_the_checker() {
    let (ok, report) = chaos(&[
        "--nodes",
        "3",
        "--duration",
        "31s",
        "--fault",
        "4s",
        "--heal",
        "3s",
        "--seed",
        "1",
        "--faults",
        "partition,isolate,bridge,kill,isolate-kill,loss",
    ]);
    assert!(ok, "{}", report["verdict"]);
    assert_eq!(report["valid"], true);
    assert!(report["agreed_after_ms"].is_u64(), "the nodes agreed");
    let faults = report["faults"].as_array().map_or(0, Vec::len);
    assert_eq!(faults, 4, "3 s healthy, then 4 × (4 s fault + 3 s healthy)");
    assert!(report["total"]["ok"].as_u64().unwrap_or(0) > 100);
    // The writes went on under the faults (the clients reach their own node).
    let under_faults: u64 = ["partition", "bridge", "kill", "isolate+kill", "loss"]
        .iter()
        .map(|p| count(&report, p, "ok"))
        .sum();
    assert!(under_faults > 0, "{report}");
}

#[test]
fn a_node_restarted_on_a_wiped_directory_makes_the_checker_fail() {
    // The node cut off takes writes only it holds, is killed, and comes back empty: they are
    // lost, and the final value cannot be explained by the history. (Should the lost deltas
    // happen to sum to 0 the value cannot show it: a second seed then decides.)
    let mut verdicts = Vec::new();
    for seed in ["5", "6"] {
        let (ok, report) = chaos(&[
            "--nodes",
            "3",
            "--duration",
            "11s",
            "--fault",
            "4s",
            "--heal",
            "3s",
            "--seed",
            seed,
            "--faults",
            "isolate-kill",
            "--wipe-on-restart",
        ]);
        assert!(count(&report, "isolate+kill", "ok") > 0, "{report}");
        if !ok {
            assert_eq!(report["valid"], false);
            assert!(
                report["verdict"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("invalid"),
                "{report}"
            );
            return;
        }
        verdicts.push(report["verdict"].clone());
    }
    panic!("the checker missed the lost writes: {verdicts:?}");
}
