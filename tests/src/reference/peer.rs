//! The stand-in node: a listener that reads once per connection, rounds of DigestPulls, the
//! full-state backstop, merge by per-entry max (its own entry raised only by itself).

use super::*;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Settings of a [`ReferencePeer`]; `..Default::default()` fills the reference defaults.
#[derive(Clone, Debug)]
pub struct ReferenceConfig {
    /// How often a DigestPull round runs (reference: 2 s).
    pub sync_interval: Duration,
    /// How often full state is pushed; `None`: ten times `sync_interval`.
    pub full_sync_interval: Option<Duration>,
    /// Peers per DigestPull round (reference: 2); full sync goes to `max(1, fanout / 2)`.
    pub fanout: usize,
    /// Static peers (`host:port`).
    pub peers: Vec<String>,
    /// A peer not heard from for this long is not chosen (reference: 30 s).
    pub failure_timeout: Duration,
    /// A peer with this many consecutive send failures is not chosen (reference: 5).
    pub max_failures: u32,
    /// Deadline for an outgoing connect.
    pub connect_timeout: Duration,
    /// Deadline for the first (only) read of an incoming connection.
    pub read_timeout: Duration,
    /// How long the checking reads after the first one wait for more bytes.
    pub extra_read_timeout: Duration,
}

impl Default for ReferenceConfig {
    fn default() -> Self {
        ReferenceConfig {
            sync_interval: Duration::from_secs(2),
            full_sync_interval: None,
            fanout: 2,
            peers: Vec::new(),
            failure_timeout: Duration::from_secs(30),
            max_failures: 5,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(5),
            extra_read_timeout: Duration::from_millis(300),
        }
    }
}

#[derive(Clone, Debug)]
struct PeerEntry {
    failures: u32,
    last_heard: Instant,
}

struct State {
    inc: BTreeMap<String, u64>,
    dec: BTreeMap<String, u64>,
    peers: BTreeMap<String, PeerEntry>,
    rng: u64,
}

struct StandIn {
    id: String,
    config: ReferenceConfig,
    state: Mutex<State>,
    received: Mutex<Vec<Received>>,
    rejected: AtomicU64,
    stop: AtomicBool,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StandIn {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Runs `f` on a tracked worker thread (connections, sends).
    fn spawn(self: &Arc<Self>, f: impl FnOnce(&Arc<StandIn>) + Send + 'static) {
        if self.stopping() {
            return;
        }
        let me = Arc::clone(self);
        let handle = std::thread::Builder::new()
            .name("reference-worker".into())
            .spawn(move || f(&me));
        if let Ok(h) = handle {
            let mut workers = lock(&self.workers);
            workers.retain(|w| !w.is_finished());
            workers.push(h);
        }
    }

    fn push_message(&self) -> Message {
        let s = self.state();
        Message::push(&self.id, s.inc.clone(), s.dec.clone())
    }

    fn own_digest(&self) -> u64 {
        let s = self.state();
        digest(&s.inc, &s.dec)
    }

    /// Up to `k` random live peers.
    fn choose(&self, k: usize) -> Vec<String> {
        let now = Instant::now();
        let mut s = self.state();
        let mut live: Vec<String> = s
            .peers
            .iter()
            .filter(|(_, p)| {
                p.failures < self.config.max_failures
                    && now.saturating_duration_since(p.last_heard) < self.config.failure_timeout
            })
            .map(|(a, _)| a.clone())
            .collect();
        let k = k.min(live.len());
        for i in 0..k {
            s.rng ^= s.rng << 13;
            s.rng ^= s.rng >> 7;
            s.rng ^= s.rng << 17;
            let span = (live.len() - i) as u64;
            let j = i + (s.rng % span) as usize;
            live.swap(i, j);
        }
        live.truncate(k);
        live
    }

    /// Sends `m` to `to` on a new connection, from a worker thread.
    fn send(self: &Arc<Self>, to: String, m: &Message) {
        let Ok(buf) = wire_buffer(&self.id, &encode_frame(m)) else {
            return;
        };
        self.spawn(move |me| {
            let ok = deliver(&to, &buf, me.config.connect_timeout).is_ok();
            let mut s = me.state();
            if let Some(p) = s.peers.get_mut(&to) {
                if ok {
                    p.failures = 0;
                } else {
                    p.failures = p.failures.saturating_add(1);
                }
            }
        });
    }

    fn sync_round(self: &Arc<Self>) {
        let dig = self.own_digest();
        let pull = Message::digest_only(Kind::DigestPull, &self.id, dig);
        for to in self.choose(self.config.fanout) {
            self.send(to, &pull);
        }
    }

    fn full_sync_round(self: &Arc<Self>) {
        let push = self.push_message();
        for to in self.choose((self.config.fanout / 2).max(1)) {
            self.send(to, &push);
        }
    }

    /// Applies one valid message from the header address `from`.
    fn apply(self: &Arc<Self>, from: &str, m: &Message) {
        {
            let mut s = self.state();
            if from != self.id {
                let p = s.peers.entry(from.to_owned()).or_insert(PeerEntry {
                    failures: 0,
                    last_heard: Instant::now(),
                });
                p.failures = 0;
                p.last_heard = Instant::now();
            }
        }
        match m.kind {
            Kind::Push => {
                let mut s = self.state();
                let s = &mut *s;
                for (side, theirs) in [(&mut s.inc, &m.inc), (&mut s.dec, &m.dec)] {
                    for (id, &v) in theirs {
                        if *id == self.id || v == 0 {
                            continue;
                        }
                        let e = side.entry(id.clone()).or_insert(0);
                        *e = (*e).max(v);
                    }
                }
            }
            Kind::DigestPull => {
                let mine = self.own_digest();
                let reply = if m.dig == mine {
                    Message::digest_only(Kind::DigestAck, &self.id, mine)
                } else {
                    self.push_message()
                };
                self.send(from.to_owned(), &reply);
            }
            Kind::DigestAck => {}
        }
    }

    fn handle(self: &Arc<Self>, mut stream: TcpStream) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(self.config.read_timeout));
        let mut buf = vec![0u8; READ_LIMIT];
        let (raw, read_error) = match stream.read(&mut buf) {
            Ok(n) => (buf.get(..n).unwrap_or_default().to_vec(), None),
            Err(e) => (Vec::new(), Some(format!("read failed: {e}"))),
        };
        let outcome = match read_error {
            Some(e) => Err(e),
            None => split_header(&raw).and_then(|(from, frame)| {
                decode_frame(frame)
                    .map(|m| (from.clone(), m))
                    .map_err(|e| format!("{e} (from {from})"))
            }),
        };
        let from = split_header(&raw).map(|(f, _)| f).unwrap_or_default();
        match &outcome {
            Ok((from, m)) => self.apply(from, m),
            Err(_) => {
                self.rejected.fetch_add(1, Ordering::SeqCst);
            }
        }
        // Checking only: did the sender send anything beyond what one read got?
        let _ = stream.set_read_timeout(Some(self.config.extra_read_timeout));
        let mut extra = 0usize;
        let mut scratch = [0u8; 4096];
        loop {
            match stream.read(&mut scratch) {
                Ok(0) => break,
                Ok(k) => extra = extra.saturating_add(k),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let (decoded, message, error) = match outcome {
            Ok((_, m)) => (true, Some(m), None),
            Err(e) => (false, None, Some(e)),
        };
        lock(&self.received).push(Received {
            from,
            raw,
            decoded,
            message,
            error,
            extra_bytes_after_first_read: extra,
        });
    }
}

fn deliver(to: &str, buf: &[u8], connect_timeout: Duration) -> io::Result<()> {
    let addr = to
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, connect_timeout)?;
    stream.write_all(buf)?;
    stream.flush()?;
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

fn sleep_until(stand_in: &StandIn, deadline: Instant) -> bool {
    loop {
        if stand_in.stopping() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(10)));
    }
}

fn run_timers(stand_in: &Arc<StandIn>) {
    let sync = stand_in.config.sync_interval.max(Duration::from_millis(1));
    let full = stand_in.config.full_sync_interval.unwrap_or(sync * 10);
    let start = Instant::now();
    let (mut next_sync, mut next_full) = (start + sync, start + full);
    loop {
        if !sleep_until(stand_in, next_sync.min(next_full)) {
            return;
        }
        let now = Instant::now();
        if now >= next_full {
            stand_in.full_sync_round();
            next_full += full;
        }
        if now >= next_sync {
            stand_in.sync_round();
            next_sync += sync;
        }
    }
}

fn run_listener(stand_in: &Arc<StandIn>, listener: &TcpListener) {
    while !stand_in.stopping() {
        match listener.accept() {
            Ok((stream, _)) => stand_in.spawn(move |me| me.handle(stream)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// The stand-in reference node. Its id is its gossip address, `127.0.0.1:port`.
pub struct ReferencePeer {
    stand_in: Arc<StandIn>,
    threads: Vec<JoinHandle<()>>,
}

impl ReferencePeer {
    /// Binds `127.0.0.1:0`, adds the static peers and starts the listener and timer threads.
    pub fn start(config: ReferenceConfig) -> io::Result<ReferencePeer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let id = listener.local_addr()?.to_string();
        let now = Instant::now();
        let peers = config
            .peers
            .iter()
            .filter(|p| **p != id)
            .map(|p| {
                let entry = PeerEntry {
                    failures: 0,
                    last_heard: now,
                };
                (p.clone(), entry)
            })
            .collect();
        let mut inc = BTreeMap::new();
        let mut dec = BTreeMap::new();
        inc.insert(id.clone(), 0);
        dec.insert(id.clone(), 0);
        let mut seed = std::collections::hash_map::RandomState::new().build_hasher();
        seed.write(id.as_bytes());
        let stand_in = Arc::new(StandIn {
            id,
            config,
            state: Mutex::new(State {
                inc,
                dec,
                peers,
                rng: seed.finish() | 1,
            }),
            received: Mutex::new(Vec::new()),
            rejected: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            workers: Mutex::new(Vec::new()),
        });
        let mut threads = Vec::new();
        let s = Arc::clone(&stand_in);
        threads.push(
            std::thread::Builder::new()
                .name("reference-listener".into())
                .spawn(move || run_listener(&s, &listener))?,
        );
        let s = Arc::clone(&stand_in);
        let timers = std::thread::Builder::new()
            .name("reference-timers".into())
            .spawn(move || run_timers(&s));
        match timers {
            Ok(t) => threads.push(t),
            Err(e) => {
                let mut me = ReferencePeer { stand_in, threads };
                me.stop();
                return Err(e);
            }
        }
        Ok(ReferencePeer { stand_in, threads })
    }

    /// The gossip address, which is also the node id.
    pub fn addr(&self) -> String {
        self.stand_in.id.clone()
    }

    /// Raises its own increments by `by`; returns the new value.
    pub fn increment(&self, by: u64) -> i128 {
        let mut s = self.stand_in.state();
        let e = s.inc.entry(self.stand_in.id.clone()).or_insert(0);
        *e = e.saturating_add(by);
        value_of(&s)
    }

    /// Raises its own decrements by `by`; returns the new value.
    pub fn decrement(&self, by: u64) -> i128 {
        let mut s = self.stand_in.state();
        let e = s.dec.entry(self.stand_in.id.clone()).or_insert(0);
        *e = e.saturating_add(by);
        value_of(&s)
    }

    /// Sum of increments minus sum of decrements.
    pub fn value(&self) -> i128 {
        value_of(&self.stand_in.state())
    }

    /// The state: (increments, decrements) per node id.
    pub fn state(&self) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
        let s = self.stand_in.state();
        (s.inc.clone(), s.dec.clone())
    }

    /// The digest of its state.
    pub fn digest(&self) -> u64 {
        self.stand_in.own_digest()
    }

    /// Adds a peer (a no-op for itself or one already known).
    pub fn add_peer(&self, addr: &str) {
        if addr == self.stand_in.id {
            return;
        }
        self.stand_in
            .state()
            .peers
            .entry(addr.to_owned())
            .or_insert(PeerEntry {
                failures: 0,
                last_heard: Instant::now(),
            });
    }

    /// Known peers with their consecutive send failures.
    pub fn peers(&self) -> Vec<(String, u32)> {
        let s = self.stand_in.state();
        s.peers
            .iter()
            .map(|(a, p)| (a.clone(), p.failures))
            .collect()
    }

    /// Every connection received so far, in order of completion.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.stand_in.received).clone()
    }

    /// Connections whose header or frame did not decode.
    pub fn rejected(&self) -> u64 {
        self.stand_in.rejected.load(Ordering::SeqCst)
    }

    /// Stops and joins every thread (also done on drop).
    pub fn stop(&mut self) {
        self.stand_in.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        loop {
            let batch: Vec<JoinHandle<()>> = lock(&self.stand_in.workers).drain(..).collect();
            if batch.is_empty() {
                break;
            }
            for t in batch {
                let _ = t.join();
            }
        }
    }
}

impl Drop for ReferencePeer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn value_of(s: &State) -> i128 {
    let inc: i128 = s.inc.values().map(|v| i128::from(*v)).sum();
    let dec: i128 = s.dec.values().map(|v| i128::from(*v)).sum();
    inc - dec
}
