//! The harness's network: one network namespace per node, each with a veth pair to a bridge
//! that lives in a namespace of its own. Addresses exist only inside these namespaces, which
//! are named after the harness's pid and removed (with every process left in them) when the
//! [`Lab`] drops — and, for runs killed outright, by the next run. Faults are iptables rules
//! inside the node namespaces. All I/O here is `ip(8)` and `iptables(8)` run as children.

use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;
use std::process::Command;

/// Namespaces of this harness are named `tchaos<pid>-…`.
const PREFIX: &str = "tchaos";

/// Runs a command; fails with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The namespaces of one run.
pub struct Lab {
    prefix: String,
    nodes: usize,
    board: bool,
}

/// The TAP device of the board, on the bridge.
pub const BOARD_TAP: &str = "tb0";

impl Lab {
    /// Creates the bridge and `nodes` node namespaces, node `i` at [`Lab::address`]`(i)` on
    /// its `eth0`; with `board`, a TAP device on the bridge for the board node and a DHCP
    /// server (`dnsmasq`, pid file in `dir`) that gives it [`Lab::board_address`]. Needs root.
    pub fn create(nodes: usize, board: Option<&std::path::Path>) -> Result<Self> {
        if nodes == 0 || nodes > 200 {
            bail!("between 1 and 200 nodes, not {nodes}");
        }
        remove_stale();
        let lab = Self {
            prefix: format!("{PREFIX}{}", std::process::id()),
            nodes,
            board: board.is_some(),
        };
        let br = lab.bridge();
        run("ip", &["netns", "add", &br])?;
        run("ip", &["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &br, "link", "set", "br0", "up"])?;
        for i in 0..nodes {
            let ns = lab.namespace(i);
            let port = format!("p{i}");
            let cidr = format!("{}/24", lab.address(i));
            run("ip", &["netns", "add", &ns])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            run(
                "ip",
                &[
                    "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                    "netns", &ns,
                ],
            )?;
            run(
                "ip",
                &["-n", &br, "link", "set", &port, "master", "br0", "up"],
            )?;
            run("ip", &["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        if let Some(dir) = board {
            lab.add_board(dir)?;
        }
        Ok(lab)
    }

    fn add_board(&self, dir: &std::path::Path) -> Result<()> {
        let br = self.bridge();
        run(
            "ip",
            &["-n", &br, "tuntap", "add", "dev", BOARD_TAP, "mode", "tap"],
        )?;
        run(
            "ip",
            &["-n", &br, "link", "set", BOARD_TAP, "master", "br0", "up"],
        )?;
        run(
            "ip",
            &["-n", &br, "addr", "add", "10.77.0.254/24", "dev", "br0"],
        )?;
        let board = self.board_address().to_string();
        let range = format!("--dhcp-range={board},{board},255.255.255.0,2m");
        let pid = format!("--pid-file={}", dir.join("dnsmasq.pid").display());
        let leases = format!("--dhcp-leasefile={}", dir.join("dnsmasq.leases").display());
        run(
            "ip",
            &[
                "netns",
                "exec",
                &br,
                "dnsmasq",
                "--port=0",
                "--interface=br0",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--user=root",
                "--dhcp-authoritative",
                &range,
                &pid,
                &leases,
            ],
        )
    }

    /// The namespace the board's TAP device is in.
    pub fn board_namespace(&self) -> Option<String> {
        self.board.then(|| self.bridge())
    }

    /// The board's address (by DHCP).
    pub fn board_address(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, 200)
    }

    /// Participants: the nodes, then the board if there is one (index [`Lab::nodes`]).
    pub fn participants(&self) -> usize {
        self.nodes + usize::from(self.board)
    }

    /// The number of node namespaces.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Node `i`'s namespace.
    pub fn namespace(&self, i: usize) -> String {
        format!("{}-n{i}", self.prefix)
    }

    fn bridge(&self) -> String {
        format!("{}-br", self.prefix)
    }

    /// Node `i`'s address (10.77.0.i+1).
    pub fn address(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, u8::try_from(i + 1).unwrap_or(u8::MAX))
    }

    /// Runs iptables in node `i`'s namespace.
    pub fn iptables(&self, i: usize, rule: &[&str]) -> Result<()> {
        let ns = self.namespace(i);
        let mut args = vec!["netns", "exec", &ns, "iptables", "-w"];
        args.extend_from_slice(rule);
        run("ip", &args)
    }

    /// A participant's address (the board's is index [`Lab::nodes`]).
    fn participant_address(&self, i: usize) -> Ipv4Addr {
        if i >= self.nodes {
            self.board_address()
        } else {
            self.address(i)
        }
    }

    /// Drops every packet between participants `a` and `b` (both ways; the rules sit at the
    /// nodes' ends — the board has no iptables).
    pub fn cut(&self, a: usize, b: usize) -> Result<()> {
        for (here, there) in [(a, b), (b, a)] {
            if here >= self.nodes {
                continue;
            }
            let peer = self.participant_address(there).to_string();
            self.iptables(here, &["-A", "INPUT", "-s", &peer, "-j", "DROP"])?;
            self.iptables(here, &["-A", "OUTPUT", "-d", &peer, "-j", "DROP"])?;
        }
        Ok(())
    }

    /// Drops each packet on every node's `eth0` with probability `p` (in and out).
    pub fn lose(&self, p: f64) -> Result<()> {
        let p = format!("{p:.3}");
        for i in 0..self.nodes {
            for (chain, dir) in [("INPUT", "-i"), ("OUTPUT", "-o")] {
                self.iptables(
                    i,
                    &[
                        "-A",
                        chain,
                        dir,
                        "eth0",
                        "-m",
                        "statistic",
                        "--mode",
                        "random",
                        "--probability",
                        &p,
                        "-j",
                        "DROP",
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Removes every rule: the network is whole again.
    pub fn heal(&self) -> Result<()> {
        for i in 0..self.nodes {
            self.iptables(i, &["-F"])?;
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        remove(&self.bridge());
        for i in 0..self.nodes {
            remove(&self.namespace(i));
        }
    }
}

/// Kills what runs in namespace `ns` and removes it.
fn remove(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    let _ = Command::new("ip").args(["netns", "del", ns]).status();
}

/// Removes the namespaces of earlier runs whose harness is gone (killed outright).
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !pid.is_empty() && !alive {
            remove(name);
        }
    }
}
