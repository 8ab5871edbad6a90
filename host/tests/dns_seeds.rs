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
//! Needs root, `ip` and `dnsmasq` (`scripts/setup` installs them); without them it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TALLY: &str = env!("CARGO_BIN_EXE_tally");
const DEADLINE: Duration = Duration::from_secs(30);

/// The namespace and what runs in it; dropped, it kills them and deletes the namespace.
struct Netns {
    name: String,
    children: Vec<Child>,
}

impl Netns {
    fn new() -> Self {
        let name = format!("tally-dns-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "the DNS-seed test needs root and ip(8) to make a network namespace"
        );
        let ns = Self {
            name,
            children: Vec::new(),
        };
        assert!(ns.run(&["ip", "link", "set", "lo", "up"]).status.success());
        ns
    }

    fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    fn run(&self, argv: &[&str]) -> std::process::Output {
        self.command(argv).output().unwrap()
    }

    fn spawn(&mut self, argv: &[&str], log: &Path) {
        let out = std::fs::File::create(log).unwrap();
        let child = self
            .command(argv)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        self.children.push(child);
    }

    /// The counter value of the node whose HTTP API is `http` (an address in the namespace).
    fn value(&self, http: &str) -> Option<i64> {
        let out = self.run(&[TALLY, "get", "--node", &format!("http://{http}")]);
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    /// The peers of that node as `(addr, source)`.
    fn peers(&self, http: &str) -> Vec<(String, String)> {
        let out = self.run(&[
            "curl",
            "-s",
            "--max-time",
            "2",
            &format!("http://{http}/peers"),
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array()
            .map(|peers| {
                peers
                    .iter()
                    .map(|p| {
                        (
                            p["addr"].as_str().unwrap_or_default().to_string(),
                            p["source"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < DEADLINE, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn peers_dns_joins_nodes_through_records_that_change() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.2 seeds.test\n").unwrap();
    let mut ns = Netns::new();
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
    ns.spawn(&dnsmasq, &dir.path().join("dnsmasq.log"));
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
        ns.spawn(&argv, &dir.path().join(format!("{name}.log")));
    }
    let (a, b, c, d) = (
        "127.0.0.1:8101",
        "127.0.0.2:8102",
        "127.0.0.3:8102",
        "127.0.0.4:8102",
    );
    for http in [a, b, c, d] {
        wait_until(&format!("{http} answers"), || ns.value(http).is_some());
    }
    // 1. A finds B by its A record and D by the SRV record; nobody else knows anybody.
    let dns_peer =
        |peers: &[(String, String)], addr: &str| peers.iter().any(|(p, s)| p == addr && s == "dns");
    wait_until("A resolves B and D", || {
        let p = ns.peers(a);
        dns_peer(&p, "127.0.0.2:9102") && dns_peer(&p, "127.0.0.4:9102")
    });
    let inc = |http: &str, by: &str| {
        let out = ns.run(&[
            TALLY,
            "inc",
            "--by",
            by,
            "--node",
            &format!("http://{http}"),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    inc(b, "5");
    inc(d, "7");
    for http in [a, b, d] {
        wait_until(&format!("{http} counts 12"), || ns.value(http) == Some(12));
    }
    assert_eq!(
        ns.value(c),
        Some(0),
        "C is in no record yet: nobody knows it"
    );
    // 2. The A record moves to C.
    std::fs::write(&hosts, "127.0.0.3 seeds.test\n").unwrap();
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", pid.trim()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_until("A resolves C and no longer B", || {
        let p = ns.peers(a);
        dns_peer(&p, "127.0.0.3:9102") && !dns_peer(&p, "127.0.0.2:9102")
    });
    inc(c, "11");
    for http in [a, c] {
        wait_until(&format!("{http} counts 23"), || ns.value(http) == Some(23));
    }
    println!("A's peers at the end: {:?}", ns.peers(a));
}
