//! DNS seeds against a real DNS server: Debian's `dnsmasq` and four `tally node`s in a network
//! namespace made for this test (removed, with every process in it, on every exit path; all
//! traffic stays on the namespace's loopback). Node A knows no peer, only two seeds: the A
//! record `seeds.test:9102` and the SRV name `_tally._tcp.seeds.test`. The records change
//! during the test (dnsmasq reads its hosts file again on SIGHUP):
//!
//! 1. `seeds.test` → 127.0.0.2 (node B), the SRV record → `srv-target.test:9102` → 127.0.0.4
//!    (node D): A finds both, and all three count together (5 + 7);
//! 2. `seeds.test` → 127.0.0.3 (node C): A finds C, drops B as a DNS peer (B stays a peer only
//!    while it sends), and C's count reaches A (5 + 7 + 11).
//!
//! Needs root, `ip`, `curl` and `dnsmasq` (`scripts/setup` installs them); without them it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::netns::{inc_in, peers_in, value_in, wait_until, Children};
use std::process::Command;
use std::time::Duration;
use tally::chaos::netns::Lab;

const TALLY: &str = env!("CARGO_BIN_EXE_tally");
const DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn peers_dns_joins_nodes_through_records_that_change() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.2 seeds.test\n").unwrap();
    // One namespace of the chaos harness's Lab; everything here lives on its loopback.
    let lab = Lab::create(1, None)
        .unwrap_or_else(|e| panic!("the DNS-seed test needs root and ip(8): {e:#}"));
    let ns = lab.namespace(0);
    let mut children = Children::default();
    let pid_file = dir.path().join("dnsmasq.pid");
    let dnsmasq_args = [
        "dnsmasq".to_string(),
        "--keep-in-foreground".into(),
        "--port=5353".into(),
        "--listen-address=127.0.0.1".into(),
        "--bind-interfaces".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        format!("--addn-hosts={}", hosts.display()),
        "--local-ttl=0".into(),
        "--host-record=srv-target.test,127.0.0.4".into(),
        "--srv-host=_tally._tcp.seeds.test,srv-target.test,9102".into(),
        format!("--pid-file={}", pid_file.display()),
        "--user=root".into(),
    ];
    let dnsmasq: Vec<&str> = dnsmasq_args.iter().map(String::as_str).collect();
    children.spawn_in(&ns, &dnsmasq, &dir.path().join("dnsmasq.log"));
    let node = |ip: &str, port: u16, http: u16| {
        vec![
            TALLY.to_string(),
            "node".into(),
            "--listen".into(),
            format!("{ip}:{port}"),
            "--http".into(),
            format!("{ip}:{http}"),
            "--sync-interval".into(),
            "200ms".into(),
            "--log".into(),
            "warn".into(),
        ]
    };
    let mut a = node("127.0.0.1", 9101, 8101);
    a.extend([
        "--peers-dns".into(),
        "seeds.test:9102,_tally._tcp.seeds.test".into(),
        "--dns-server".into(),
        "127.0.0.1:5353".into(),
        "--dns-interval".into(),
        "200ms".into(),
    ]);
    for (name, argv) in [
        ("a", a),
        ("b", node("127.0.0.2", 9102, 8102)),
        ("c", node("127.0.0.3", 9102, 8102)),
        ("d", node("127.0.0.4", 9102, 8102)),
    ] {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        children.spawn_in(&ns, &argv, &dir.path().join(format!("{name}.log")));
    }
    let (a, b, c, d) = (
        "http://127.0.0.1:8101",
        "http://127.0.0.2:8102",
        "http://127.0.0.3:8102",
        "http://127.0.0.4:8102",
    );
    let value = |url: &str| value_in(&ns, url);
    let peers = |url: &str| peers_in(&ns, url);
    for url in [a, b, c, d] {
        wait_until(&format!("{url} answers"), DEADLINE, || value(url).is_some());
    }
    // 1. A finds B by its A record and D by the SRV record; nobody else knows anybody.
    let dns_peer =
        |peers: &[(String, String)], addr: &str| peers.iter().any(|(p, s)| p == addr && s == "dns");
    wait_until("A resolves B and D", DEADLINE, || {
        let p = peers(a);
        dns_peer(&p, "127.0.0.2:9102") && dns_peer(&p, "127.0.0.4:9102")
    });
    let inc = |url: &str, by: &str| inc_in(&ns, url, by);
    inc(b, "5");
    inc(d, "7");
    for url in [a, b, d] {
        wait_until(&format!("{url} counts 12"), DEADLINE, || {
            value(url) == Some(12)
        });
    }
    assert_eq!(value(c), Some(0), "C is in no record yet: nobody knows it");
    // 2. The A record moves to C.
    std::fs::write(&hosts, "127.0.0.3 seeds.test\n").unwrap();
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", pid.trim()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_until("A resolves C and no longer B", DEADLINE, || {
        let p = peers(a);
        dns_peer(&p, "127.0.0.3:9102") && !dns_peer(&p, "127.0.0.2:9102")
    });
    inc(c, "11");
    for url in [a, c] {
        wait_until(&format!("{url} counts 23"), DEADLINE, || {
            value(url) == Some(23)
        });
    }
    println!("A's peers at the end: {:?}", peers(a));
}
