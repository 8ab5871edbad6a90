//! The TAP board node as a participant: `tally-tap-node` (the boards' program on Linux, see
//! `firmware/linux-tap`) on a TAP device attached to the harness's bridge, its address from a
//! `dnsmasq` there, its flash a file that outlives its process. A client writes through its
//! buttons (±1 a press, over stdin) and is told nothing: a press counts as *ok* only once the
//! board's own entry shows it; otherwise it is *indeterminate* (it may still be stored). When
//! the board resets by itself (watchdog, panic) it is started again, as its chip would run its
//! firmware again.

use super::checker::Outcome;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long the board may take to answer one question.
const ANSWER: Duration = Duration::from_secs(2);

/// How to start the board.
#[derive(Clone, Debug)]
pub struct BoardSpec {
    /// The `tally-tap-node` binary.
    pub bin: PathBuf,
    /// The namespace its TAP device is in (the bridge's).
    pub netns: String,
    /// The TAP device.
    pub tap: String,
    /// Its flash file.
    pub flash: PathBuf,
    /// Its log.
    pub log: PathBuf,
    /// The hosts' gossip addresses.
    pub peers: Vec<String>,
    /// Its gossip interval.
    pub sync_interval: Duration,
    /// LAN discovery by mDNS (`--mdns`).
    pub mdns: bool,
}

/// The running board (or the one to start again).
pub struct Board {
    spec: BoardSpec,
    process: Option<(Child, ChildStdin, Receiver<String>)>,
    /// Down on purpose (the nemesis killed it): not started again until [`Board::restart`].
    killed: bool,
}

impl Board {
    /// Starts it and waits until it is ready.
    pub fn start(spec: BoardSpec) -> Result<Self> {
        let mut board = Self {
            spec,
            process: None,
            killed: false,
        };
        board.spawn()?;
        Ok(board)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log)
            .context("cannot open the board's log")?;
        let sync = self.spec.sync_interval.as_millis().to_string();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.spec.netns])
            .arg(&self.spec.bin)
            .args(["--tap", &self.spec.tap, "--flash"])
            .arg(&self.spec.flash)
            .args(["--id", "board", "--peers", &self.spec.peers.join(",")])
            .args(["--sync-interval-ms", &sync])
            .args(self.spec.mdns.then_some("--mdns"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("cannot start the board")?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("the board has no stdin/stdout");
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.starts_with("ready ") => break,
                Ok(_) => {}
                Err(_) => bail!("the board did not start"),
            }
        }
        self.process = Some((child, stdin, rx));
        Ok(())
    }

    /// Starts it again if it ended by itself (a reset).
    fn revive(&mut self) {
        if self.killed {
            return;
        }
        let ended = match &mut self.process {
            Some((child, _, _)) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        };
        if ended {
            self.process = None;
            let _ = self.spawn();
        }
    }

    /// Asks `question`; the first answer line starting with `prefix`, without it.
    fn ask(&mut self, question: &str, prefix: &str) -> Option<String> {
        self.revive();
        let (_, stdin, lines) = self.process.as_mut()?;
        while lines.try_recv().is_ok() {}
        writeln!(stdin, "{question}").ok()?;
        stdin.flush().ok()?;
        let deadline = Instant::now() + ANSWER;
        loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Some(rest.to_string());
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// The board's own entry, `(inc, dec)`.
    fn local(&mut self) -> Option<(u64, u64)> {
        let answer = self.ask("local", "local ")?;
        let (i, d) = answer.split_once(' ')?;
        Some((i.parse().ok()?, d.parse().ok()?))
    }

    /// The board's value.
    pub fn value(&mut self) -> Option<i64> {
        self.ask("value", "value ")?.parse().ok()
    }

    /// The board's peers: `(address, source, state)`, as its `peers` command reports them
    /// (source `mdns`, `static` or `other`; state `alive` or `down`).
    pub fn peers(&mut self) -> Option<Vec<(String, String, String)>> {
        let answer = self.ask("peers", "peers")?;
        answer
            .split_whitespace()
            .map(|pair| {
                let (addr, rest) = pair.split_once('=')?;
                let (source, state) = rest.split_once(':')?;
                Some((addr.to_string(), source.to_string(), state.to_string()))
            })
            .collect()
    }

    /// One press: +1 (`up`) or −1.
    pub fn press(&mut self, up: bool) -> Outcome {
        let Some(before) = self.local() else {
            return Outcome::Failed; // no board to press: nothing happened
        };
        let Some((_, stdin, _)) = self.process.as_mut() else {
            return Outcome::Failed;
        };
        let button = if up { "press inc" } else { "press dec" };
        if writeln!(stdin, "{button}")
            .and_then(|()| stdin.flush())
            .is_err()
        {
            return Outcome::Indeterminate;
        }
        let want = if up {
            (before.0 + 1, before.1)
        } else {
            (before.0, before.1 + 1)
        };
        // The press takes 80 ms; its record is written once it is released.
        let deadline = Instant::now() + ANSWER;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            match self.local() {
                Some(now) if now == want => return Outcome::Ok,
                Some(_) => {}
                None => return Outcome::Indeterminate,
            }
        }
        Outcome::Indeterminate
    }

    /// Kills it (SIGKILL); it stays down until [`Board::restart`].
    pub fn kill(&mut self) {
        self.killed = true;
        if let Some((mut child, _, _)) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on its flash file, if it is down.
    pub fn restart(&mut self) -> Result<()> {
        self.killed = false;
        if self.process.is_none() {
            self.spawn()?;
        }
        Ok(())
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        self.kill();
    }
}
