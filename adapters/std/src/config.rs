//! [`NodeConfig`]: what a std node binds, whom it knows, and its limits.

use crate::journal::Journal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tally_core::{Config, SnapshotPolicy};

/// Settings of a [`Node`](crate::Node). `NodeConfig::new(listen)` gives the defaults.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Where to accept gossip (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The address written in outgoing headers, where peers reply. Default: the bound address.
    pub advertise: Option<String>,
    /// The node's name. Default: the advertised address, as in the reference. The node counts
    /// under the entry `name#incarnation` (see [`tally_core::Identity`]).
    pub name: Option<String>,
    /// An entry id (`name#incarnation`) stored with the state being restored: the node resumes
    /// it. `None`, or an id that does not parse: a fresh incarnation of the name. Pass it only
    /// together with the state stored beside it.
    pub resume: Option<String>,
    /// State read back from the journal, merged before the node starts.
    pub restore: Vec<(String, u64, u64)>,
    /// Named counters' cells `(name, id, totals)` read back from the journal, sorted by name
    /// then id, merged before the node starts.
    pub restore_named: Vec<(String, String, tally_core::named::Totals)>,
    /// Where records go: with a journal, every write is answered only once durable, and merged
    /// state is snapshotted on `snapshots`. `None`: a volatile node.
    pub journal: Option<Arc<dyn Journal>>,
    /// When merged state is snapshotted into the journal (default every 5 s while it changes).
    pub snapshots: SnapshotPolicy,
    /// Static peers (`host:port`).
    pub peers: Vec<String>,
    /// Engine settings (sync interval, fan-out, failure detection, limits).
    pub engine: Config,
    /// Deadline for a whole incoming frame, from accept to end of stream (default 5 s).
    pub read_timeout: Duration,
    /// Deadline for an outgoing connect (default 1 s).
    pub connect_timeout: Duration,
    /// Incoming connections handled at once (workers, default 8).
    pub workers: usize,
    /// Accepted connections waiting for a worker; beyond this they are shed (default 64).
    pub backlog: usize,
    /// Outgoing frames waiting for a sender thread; beyond this they are dropped (default 256).
    pub send_queue: usize,
    /// Sender threads (default 4).
    pub senders: usize,
    /// Datagrams (`docs/EXTENSIONS.md` §5): bind a UDP socket on the gossip address and send
    /// frames of at most this many bytes to Tally peers that announced datagrams as one
    /// datagram each (default [`Config::DATAGRAM`], 1,200). 0: TCP only, and the capability is
    /// not announced. If the UDP port cannot be bound the node runs TCP only and says so.
    pub max_datagram: u16,
    /// SWIM membership (`docs/EXTENSIONS.md` §7) on the datagram socket (default on; needs
    /// `max_datagram` > 0).
    pub membership: bool,
}

impl NodeConfig {
    /// Defaults for a node listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        let mut engine = Config::host();
        engine.compressor = Some(crate::compress::zstd_in_place);
        Self {
            listen,
            advertise: None,
            name: None,
            resume: None,
            restore: Vec::new(),
            restore_named: Vec::new(),
            journal: None,
            snapshots: SnapshotPolicy::HOST,
            peers: Vec::new(),
            engine,
            read_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            workers: 8,
            backlog: 64,
            send_queue: 256,
            senders: 4,
            max_datagram: Config::DATAGRAM,
            membership: true,
        }
    }

    /// Sets the sync interval (and the full-sync interval to ten times it).
    pub fn sync_interval(mut self, every: Duration) -> Self {
        let ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        self.engine = self
            .engine
            .with_sync_interval(tally_core::Duration::from_millis(ms));
        self
    }

    /// Adds static peers.
    pub fn peers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, peers: I) -> Self {
        self.peers.extend(peers.into_iter().map(Into::into));
        self
    }

    /// Sets the node's name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Makes the node durable: its records go to `journal`.
    pub fn journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = Some(journal);
        self
    }
}
