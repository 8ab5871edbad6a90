//! [`NodeConfig`]: what an embassy node accepts on, whom it knows, and its I/O deadlines.
//!
//! The node's identity, engine settings and durability are the replica's (built by the
//! caller, see [`crate::State::new`]); this is only what the I/O loops need.

use embassy_time::Duration;

/// Settings of a node's I/O. `NodeConfig::new(port)` gives the defaults.
///
/// Everything is borrowed: the strings are only read while [`crate::new`] starts the node.
#[derive(Clone, Copy, Debug)]
pub struct NodeConfig<'c> {
    /// The gossip port to accept on (all local addresses).
    pub port: u16,
    /// A fixed address for outgoing headers (`ip:port`). Default `None`: the runner follows
    /// the stack's IPv4 address (`ip:port`, set when DHCP gives a lease, again when it
    /// changes, cleared while the stack has none: the node counts offline meanwhile).
    pub advertise: Option<&'c str>,
    /// Static peers (`a.b.c.d:port`: IPv4 literals, no name lookup).
    pub peers: &'c [&'c str],
    /// Deadline for a whole incoming frame, from accept to end of stream (default 5 s).
    pub read_timeout: Duration,
    /// Deadline for an outgoing connect (default 1 s).
    pub connect_timeout: Duration,
    /// Deadline for writing a frame and closing after the connect (default 2 s).
    pub write_timeout: Duration,
}

impl<'c> NodeConfig<'c> {
    /// Defaults for a node that accepts on `port` and advertises the stack's address.
    pub fn new(port: u16) -> Self {
        Self {
            port,
            advertise: None,
            peers: &[],
            read_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(2),
        }
    }

    /// Advertises `addr` (`ip:port`) instead of following the stack's address.
    pub fn advertise(mut self, addr: &'c str) -> Self {
        self.advertise = Some(addr);
        self
    }

    /// Sets the static peers.
    pub fn peers(mut self, peers: &'c [&'c str]) -> Self {
        self.peers = peers;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_builders() {
        let peers = ["10.0.0.2:9000"];
        let c = NodeConfig::new(9000).peers(&peers);
        assert_eq!(c.port, 9000);
        assert_eq!(c.advertise, None);
        assert_eq!(c.peers, ["10.0.0.2:9000"]);
        assert_eq!(c.read_timeout, Duration::from_secs(5));
        assert_eq!(
            c.advertise("10.0.0.1:9000").advertise,
            Some("10.0.0.1:9000")
        );
    }
}
