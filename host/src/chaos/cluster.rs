//! The nodes under test: real `tally node` processes, one per namespace of the [`Lab`], each
//! with its own data directory (durable: fsync on every write), gossip on its `eth0` address
//! and HTTP on its namespace's loopback. Kill is SIGKILL; a restart runs the same command on
//! the same directory — or, for the checker's own test, on an emptied one under the same id.

use super::board::{Board, BoardSpec};
use super::client::Target;
use super::netns::{Lab, BOARD_TAP};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Gossip port of every node (inside its namespace).
const GOSSIP_PORT: u16 = 9000;
/// HTTP port of every node (on its namespace's loopback).
const HTTP_PORT: u16 = 8000;

/// The running nodes.
pub struct Cluster {
    lab: Lab,
    exe: PathBuf,
    dir: PathBuf,
    sync_interval: Duration,
    children: Vec<Option<Child>>,
    wipe_on_restart: bool,
    board: Option<Arc<Mutex<Board>>>,
}

/// The board, whoever left its lock poisoned.
pub fn lock(board: &Mutex<Board>) -> MutexGuard<'_, Board> {
    board.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Cluster {
    /// Starts a node in each of `lab`'s namespaces, data under `dir` (made before the lab, so
    /// that its DHCP server can keep its files there; removed on drop), and the board
    /// (`board`: its binary) when the lab has one.
    pub fn start(
        lab: Lab,
        exe: PathBuf,
        dir: PathBuf,
        sync_interval: Duration,
        wipe_on_restart: bool,
        board: Option<PathBuf>,
    ) -> Result<Self> {
        let n = lab.nodes();
        let mut cluster = Self {
            lab,
            exe,
            dir,
            sync_interval,
            children: (0..n).map(|_| None).collect(),
            wipe_on_restart,
            board: None,
        };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        if let (Some(bin), Some(netns)) = (board, cluster.lab.board_namespace()) {
            let spec = BoardSpec {
                bin,
                netns,
                tap: BOARD_TAP.into(),
                flash: cluster.dir.join("board.flash"),
                log: cluster.dir.join("board.log"),
                peers: (0..n)
                    .map(|j| format!("{}:{GOSSIP_PORT}", cluster.lab.address(j)))
                    .collect(),
                sync_interval,
                mdns: false,
            };
            cluster.board = Some(Arc::new(Mutex::new(Board::start(spec)?)));
        }
        Ok(cluster)
    }

    /// The board, if there is one.
    pub fn board(&self) -> Option<Arc<Mutex<Board>>> {
        self.board.clone()
    }

    /// The network.
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// Where each node's clients find it.
    pub fn targets(&self) -> Vec<Target> {
        (0..self.lab.nodes())
            .map(|i| Target {
                netns: Some(self.lab.namespace(i)),
                addr: SocketAddr::from(([127, 0, 0, 1], HTTP_PORT)),
            })
            .collect()
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("n{i}"))
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let ns = self.lab.namespace(i);
        let listen = format!("{}:{GOSSIP_PORT}", self.lab.address(i));
        let mut peers: Vec<String> = (0..self.lab.nodes())
            .filter(|j| *j != i)
            .map(|j| format!("{}:{GOSSIP_PORT}", self.lab.address(j)))
            .collect();
        if self.lab.board_namespace().is_some() {
            peers.push(format!("{}:{GOSSIP_PORT}", self.lab.board_address()));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("n{i}.log")))
            .context("cannot open the node's log")?;
        let sync = format!("{}ms", self.sync_interval.as_millis());
        let http = format!("127.0.0.1:{HTTP_PORT}");
        let data = self.data_dir(i);
        let child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(&self.exe)
            .args(["node", "--listen", &listen, "--http", &http, "--id"])
            .arg(format!("n{i}"))
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--peers",
                &peers.join(","),
                "--sync-interval",
                &sync,
                "--log",
                "warn",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start node {i}"))?;
        if let Some(slot) = self.children.get_mut(i) {
            *slot = Some(child);
        }
        Ok(())
    }

    /// Kills participant `i` (SIGKILL; `ip netns exec` runs the node in its own process).
    pub fn kill(&mut self, i: usize) {
        if i >= self.lab.nodes() {
            if let Some(b) = &self.board {
                lock(b).kill();
            }
            return;
        }
        if let Some(mut child) = self.children.get_mut(i).and_then(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts participant `i` again if it is down.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        if i >= self.lab.nodes() {
            return match &self.board {
                Some(b) => lock(b).restart(),
                None => Ok(()),
            };
        }
        if self.children.get(i).is_some_and(Option::is_some) {
            return Ok(());
        }
        if self.wipe_on_restart {
            let _ = std::fs::remove_dir_all(self.data_dir(i));
        }
        self.spawn(i)
    }

    /// Waits until every node answers (at most `within`).
    pub fn wait_up(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let reads = super::client::read_all(&self.targets(), Duration::from_millis(500));
            if reads.iter().all(Option::is_some) {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!("nodes not up after {within:?}: {reads:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.lab.participants() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
