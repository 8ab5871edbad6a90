//! What a read produced ([`Ingress`]) and what the transport did ([`TransportStats`]): one type
//! for both adapters, exported under the same names.

/// Largest §2 header: a length byte and up to 255 address bytes.
pub const MAX_HEADER: usize = 256;

/// What an adapter's read of one incoming connection produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingress<'a> {
    /// The whole TCP payload, read to end of stream: §2 header and frame.
    Payload(&'a [u8]),
    /// More bytes than the frame limit plus [`MAX_HEADER`].
    TooLarge,
    /// Not finished within the read deadline.
    TooSlow,
    /// Reset or failed before end of stream.
    Reset,
}

/// Counters of the transport around a replica, the same on every platform.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TransportStats {
    /// Connections whose read ended, whatever it produced (reported through `ingest`).
    pub accepted: u64,
    /// Reads that ended without a whole frame: too large, too slow or reset.
    pub read_failed: u64,
    /// Connections dropped unread because every reader was busy (hosts' bounded backlog).
    pub shed: u64,
    /// Frames delivered to peers.
    pub sent: u64,
    /// Frames that could not be delivered (bad address, connect or write failed).
    pub send_failed: u64,
    /// Frames dropped before sending because the send queue was full.
    pub send_dropped: u64,
    /// Datagrams received on the gossip port, whatever they held.
    pub datagrams_in: u64,
    /// Frames sent as datagrams (no delivery report: counted when handed to the socket).
    pub datagrams_out: u64,
}

impl TransportStats {
    /// Every counter with its stable metric name, for exporters.
    pub fn named(&self) -> [(&'static str, u64); 8] {
        [
            ("accepted", self.accepted),
            ("read_failed", self.read_failed),
            ("shed", self.shed),
            ("sent", self.sent),
            ("send_failed", self.send_failed),
            ("send_dropped", self.send_dropped),
            ("datagrams_in", self.datagrams_in),
            ("datagrams_out", self.datagrams_out),
        ]
    }
}
