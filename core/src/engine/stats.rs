//! [`Stats`]: what the engine did, for metrics.

use crate::error::WireError;
use crate::message::MessageType;

/// Running totals kept by the engine. Plain integers: adapters export them as metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Valid frames received, by [`MessageType::index`].
    pub frames_in: [u64; 4],
    /// Frames sent, by [`MessageType::index`].
    pub frames_out: [u64; 4],
    /// Bytes of frames received (valid or not).
    pub bytes_in: u64,
    /// Bytes of TCP payload produced for sending.
    pub bytes_out: u64,
    /// Frames sent compressed.
    pub compressed_out: u64,
    /// Valid frames received compressed (decoded with zstd).
    pub compressed_in: u64,
    /// Message bytes of Pushes of the full state (before compression).
    pub full_push_bytes: u64,
    /// Message bytes of delta Pushes (before compression).
    pub delta_push_bytes: u64,
    /// Pushes merged (changed or not).
    pub merges: u64,
    /// Pushes that changed the state.
    pub merges_changed: u64,
    /// Rejected input, by [`WireError::index`].
    pub rejects: [u64; WireError::COUNT],
    /// Replies dropped because the transmit queue was full.
    pub shed: u64,
    /// Replies dropped by the per-address reply rate limit.
    pub replies_limited: u64,
    /// Pushes not sent because the buffer could not hold even one entry.
    pub emit_failures: u64,
    /// Peers added (any source).
    pub peers_added: u64,
    /// Peers that went down.
    pub peers_down: u64,
    /// Peers pruned.
    pub peers_pruned: u64,
    /// Senders not added because the peer table was full.
    pub peers_refused: u64,
    /// Digest exchanges started (one per adaptive interval).
    pub rounds: u64,
    /// Eager pushes queued (one per peer of each push).
    pub eager_pushes: u64,
    /// Hellos sent (answers included).
    pub hellos_out: u64,
    /// Hellos received.
    pub hellos_in: u64,
    /// Frames sent as datagrams.
    pub datagrams_out: u64,
    /// DigestPulls sent as datagrams that had no answer in time (counted as failed sends).
    pub datagrams_unanswered: u64,
    /// Named counters refused whole on merge (no room for their name, ids or cells).
    pub named_refused: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            frames_in: [0; 4],
            frames_out: [0; 4],
            bytes_in: 0,
            bytes_out: 0,
            compressed_out: 0,
            compressed_in: 0,
            full_push_bytes: 0,
            delta_push_bytes: 0,
            merges: 0,
            merges_changed: 0,
            rejects: [0; WireError::COUNT],
            shed: 0,
            replies_limited: 0,
            emit_failures: 0,
            peers_added: 0,
            peers_down: 0,
            peers_pruned: 0,
            peers_refused: 0,
            rounds: 0,
            eager_pushes: 0,
            hellos_out: 0,
            hellos_in: 0,
            datagrams_out: 0,
            datagrams_unanswered: 0,
            named_refused: 0,
        }
    }
}

impl Stats {
    /// Rejects of one kind.
    pub fn rejected(&self, e: WireError) -> u64 {
        self.rejects.get(e.index()).copied().unwrap_or(0)
    }

    /// All rejects.
    pub fn rejected_total(&self) -> u64 {
        self.rejects.iter().sum()
    }

    /// Valid frames received of one type.
    pub fn received(&self, t: MessageType) -> u64 {
        self.frames_in.get(t.index()).copied().unwrap_or(0)
    }

    /// Frames sent of one type.
    pub fn sent(&self, t: MessageType) -> u64 {
        self.frames_out.get(t.index()).copied().unwrap_or(0)
    }

    pub(crate) fn reject(&mut self, e: WireError) {
        if let Some(n) = self.rejects.get_mut(e.index()) {
            *n += 1;
        }
    }
}
