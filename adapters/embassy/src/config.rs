//! [`NodeConfig`]: what an embassy node listens on, whom it knows, and its limits.

use embassy_time::Duration;
use tally_core::Config;

/// Settings of a node. `NodeConfig::new(advertise, port)` gives the defaults.
///
/// Everything is borrowed: the strings are only read while [`crate::new`] builds the engine.
#[derive(Clone, Copy, Debug)]
pub struct NodeConfig<'c> {
    /// The gossip port to accept on (all local addresses).
    pub port: u16,
    /// The address written in outgoing headers, where peers reach this node (`ip:port`,
    /// usually the DHCP address and `port`).
    pub advertise: &'c str,
    /// The node id. Default: `advertise`, as in the reference. A board whose address comes
    /// from DHCP should pass a stable id (e.g. from its MAC), so that its entry survives a new
    /// lease.
    pub id: Option<&'c str>,
    /// Static peers (`a.b.c.d:port`: IPv4 literals, no name lookup).
    pub peers: &'c [&'c str],
    /// Engine settings. Default: [`Config::mcu`] (4 KiB frames, 64-byte ids, 32 entries).
    pub engine: Config,
    /// Deadline for a whole incoming frame, from accept to end of stream (default 5 s).
    pub read_timeout: Duration,
    /// Deadline for an outgoing connect (default 1 s).
    pub connect_timeout: Duration,
    /// Deadline for writing a frame and closing after the connect (default 2 s).
    pub write_timeout: Duration,
}

impl<'c> NodeConfig<'c> {
    /// Defaults for a node reachable at `advertise` that accepts on `port`.
    pub fn new(advertise: &'c str, port: u16) -> Self {
        Self {
            port,
            advertise,
            id: None,
            peers: &[],
            engine: Config::mcu(),
            read_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(2),
        }
    }

    /// Sets the node id.
    pub fn id(mut self, id: &'c str) -> Self {
        self.id = Some(id);
        self
    }

    /// Sets the static peers.
    pub fn peers(mut self, peers: &'c [&'c str]) -> Self {
        self.peers = peers;
        self
    }

    /// Sets the sync interval (and the full-sync interval to ten times it).
    pub fn sync_interval(mut self, every: Duration) -> Self {
        self.engine = self
            .engine
            .with_sync_interval(tally_core::Duration::from_millis(every.as_millis()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_builders() {
        let peers = ["10.0.0.2:9000"];
        let c = NodeConfig::new("10.0.0.1:9000", 9000)
            .id("board-1")
            .peers(&peers)
            .sync_interval(Duration::from_millis(200));
        assert_eq!(c.port, 9000);
        assert_eq!(c.id, Some("board-1"));
        assert_eq!(c.peers, ["10.0.0.2:9000"]);
        assert_eq!(c.engine.sync_interval.as_millis(), 200);
        assert_eq!(c.engine.full_sync_interval.as_millis(), 2000);
        assert_eq!(c.engine.frame_limits, tally_core::FrameLimits::MCU);
        assert_eq!(c.read_timeout, Duration::from_secs(5));
    }
}
