//! [`Config`]: the engine's timing, fan-out, failure detection and limits.

use crate::frame::FrameLimits;
use crate::message::MessageLimits;
use crate::peers::Detector;
use crate::time::Duration;

/// Compresses `buf[..len]` in place (the rest of `buf` is spare room) and returns the new
/// length, or `None` to send the message plain. Hosts pass a zstd compressor; the core itself
/// never compresses.
pub type Compressor = fn(buf: &mut [u8], len: usize) -> Option<usize>;

/// Engine settings. Defaults follow spec §6 and the host limits of §7.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The minimum interval between digest exchanges, `I_min` of the adaptive rounds (see
    /// `engine::trickle`): one *round* (default 2 s). In each interval the node sends a
    /// DigestPull to `fanout` random live peers; quiet intervals double, up to
    /// `sync_interval · 2^max_doublings`.
    pub sync_interval: Duration,
    /// How many times a quiet interval may double (default 6: up to 64 rounds, 128 s).
    /// 0 gives the reference's fixed interval.
    pub max_doublings: u8,
    /// A local change, or a merge that changed the state, is pushed at once as a delta to
    /// `eager_fanout` peers; changes within `eager_delay` of the last such push wait for the
    /// next one, so a burst of writes costs one push per `eager_delay` (default 5 ms). While
    /// pushes follow each other that closely, the wait doubles, up to `eager_delay_max`.
    pub eager_delay: Duration,
    /// The longest wait between two eager pushes under sustained writes (default 40 ms).
    pub eager_delay_max: Duration,
    /// Peers of each eager push (default 0: automatic, `0.7·log2(live peers) + 3`, which
    /// reaches every node of a cluster of that size with high probability — see
    /// `docs/EXTENSIONS.md` §4).
    pub eager_fanout: u8,
    /// Whether local changes and merges are pushed eagerly (default true).
    pub eager: bool,
    /// A peer that has not told us it speaks quiet liveness (a reference node) gets a frame at
    /// least this often, so its own silence detector keeps us alive (default 5 s: the reference
    /// drops a peer after 30 s).
    pub keepalive: Duration,
    /// How often a hello is sent again to a peer that never answered one (default 30 s).
    pub hello_retry: Duration,
    /// Every `full_sync_interval`, a full Push to max(1, fanout/2) live peers (default 20 s).
    pub full_sync_interval: Duration,
    /// Peers per sync round (default 2).
    pub fanout: u8,
    /// Failure detection (max fails 5, silence 30 s, prune after 60 s).
    pub detector: Detector,
    /// Limits on received frames.
    pub frame_limits: FrameLimits,
    /// Limits on received messages.
    pub message_limits: MessageLimits,
    /// Messages longer than this are offered to the compressor (default 1024, as the reference).
    pub compress_above: usize,
    /// Optional compressor for outgoing messages.
    pub compressor: Option<Compressor>,
    /// Push only what a peer is not known to hold (spec §6 allows partial Pushes). When false,
    /// every Push carries the full state, as the reference does.
    pub delta_sync: bool,
    /// Largest frame this node sends (flag byte included, §2 header not): a Push that would be
    /// larger carries a window of entries and the next one continues. Default 16,128 bytes, so
    /// that with its header a frame stays under the 16 KiB a reference node reads; set 4 KiB
    /// when microcontrollers are in the cluster.
    pub max_frame_out: usize,
    /// The cluster key (spec §8): every frame sent is tagged, every frame received must be.
    /// `None`: reference-compatible, no tags (and tagged frames are refused).
    pub cluster_key: Option<crate::auth::ClusterKey>,
    /// Frames of at most this many bytes (§2 header included) go as one UDP datagram to peers
    /// that announced datagrams (`docs/EXTENSIONS.md` §5); larger ones, and every frame to
    /// other peers, go over TCP. 0 (the default): this node has no datagram socket and does not
    /// announce the capability. Adapters that bind one set it (see [`Config::DATAGRAM`]).
    pub max_datagram: u16,
    /// Most replies (Push, DigestAck, DigestPull answers) sent to one address per sync
    /// interval; beyond, they are shed and counted. Bounds what a flood of DigestPulls naming
    /// a victim's address can make this node send to it (default 4).
    pub max_replies_per_interval: u8,
}

impl Config {
    /// The datagram size adapters use (`max_datagram`): a frame this long, with IPv4 and UDP
    /// headers, fits an Ethernet or Wi-Fi MTU of 1,500 bytes unfragmented.
    pub const DATAGRAM: u16 = 1200;

    /// Host defaults.
    pub fn host() -> Self {
        Self {
            sync_interval: Duration::from_secs(2),
            full_sync_interval: Duration::from_secs(20),
            max_doublings: 6,
            eager_delay: Duration::from_millis(5),
            eager_delay_max: Duration::from_millis(40),
            eager_fanout: 0,
            eager: true,
            keepalive: Duration::from_secs(5),
            hello_retry: Duration::from_secs(30),
            fanout: 2,
            detector: Detector::default(),
            frame_limits: FrameLimits::HOST,
            message_limits: MessageLimits::HOST,
            compress_above: 1024,
            compressor: None,
            delta_sync: true,
            max_frame_out: 16 * 1024 - 256,
            cluster_key: None,
            max_replies_per_interval: 4,
            max_datagram: 0,
        }
    }

    /// Microcontroller defaults (4 KiB frames, 64-byte ids, 32 entries; the frame limits are the
    /// Pico W's, [`FrameLimits::MCU`]).
    pub fn mcu() -> Self {
        Self {
            frame_limits: FrameLimits::MCU,
            message_limits: MessageLimits::MCU,
            max_frame_out: 4 * 1024,
            ..Self::host()
        }
    }

    /// Sets the limits on received frames: a board's own, from [`crate::frame::BOARDS`] (e.g.
    /// `Config::mcu().with_frame_limits(FrameLimits::W5500)`).
    pub fn with_frame_limits(mut self, limits: FrameLimits) -> Self {
        self.frame_limits = limits;
        self
    }

    /// The reference's behaviour: a fixed round, no eager pushes.
    pub fn fixed_rounds(mut self) -> Self {
        self.max_doublings = 0;
        self.eager = false;
        self
    }

    /// Sets the sync interval and the full-sync interval to ten times it (spec §6).
    pub fn with_sync_interval(mut self, every: Duration) -> Self {
        self.sync_interval = every;
        self.full_sync_interval = every.saturating_mul(10);
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::host()
    }
}
