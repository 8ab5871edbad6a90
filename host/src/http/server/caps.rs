//! Connection caps: at most `max_connections` open connections in all, and at most
//! `max_connections_per_client` from one client address. A connection holds a [`Slot`] for
//! as long as it lives; dropping the slot gives it back. No I/O and no clock here: the accept
//! loop ([`super::serve`]) asks, and closes what is refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// What a server refused or cut, by reason (read them at any time).
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    /// Connections closed at once because [`super::ServeLimits::max_connections`] were open.
    pub connections_limited: AtomicU64,
    /// Connections closed at once because their client already had
    /// [`super::ServeLimits::max_connections_per_client`] open.
    pub client_connections_limited: AtomicU64,
    /// Connections closed because a request's headers did not arrive within
    /// [`super::ServeLimits::header_timeout`].
    pub header_timeouts: AtomicU64,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The total cap is reached.
    Total,
    /// This client's cap is reached.
    Client,
}

impl Refused {
    /// Counts the refusal in `counters`.
    pub fn count(self, counters: &ConnectionCounters) {
        let counter = match self {
            Refused::Total => &counters.connections_limited,
            Refused::Client => &counters.client_connections_limited,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// The open connections, against both caps.
#[derive(Debug)]
pub struct Caps {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<Open>,
}

/// One admitted connection's place; given back on drop.
#[derive(Debug)]
pub struct Slot {
    caps: Arc<Caps>,
    client: IpAddr,
}

impl Caps {
    /// Caps of `max_total` connections, `max_per_client` from one address.
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_client,
            open: Mutex::new(Open::default()),
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a connection from `client`, or why not. IPv4-mapped IPv6 addresses count
    /// as their IPv4 address.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Slot, Refused> {
        let client = client.to_canonical();
        let mut open = self.open();
        if open.total >= self.max_total {
            return Err(Refused::Total);
        }
        let mine = open.per_client.get(&client).copied().unwrap_or(0);
        if mine >= self.max_per_client {
            return Err(Refused::Client);
        }
        open.total += 1;
        open.per_client.insert(client, mine + 1);
        Ok(Slot {
            caps: Arc::clone(self),
            client,
        })
    }

    /// Connections open now.
    pub fn total(&self) -> usize {
        self.open().total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.caps.open();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_refuse_then_readmit_after_release() {
        let caps = Caps::new(3, 2);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let c: IpAddr = [127, 0, 0, 3].into();
        let a1 = caps.admit(a).unwrap();
        let _a2 = caps.admit(a).unwrap();
        assert_eq!(caps.admit(a).unwrap_err(), Refused::Client);
        let _b1 = caps.admit(b).unwrap();
        assert_eq!(caps.admit(c).unwrap_err(), Refused::Total);
        drop(a1);
        assert_eq!(caps.total(), 2);
        let _c1 = caps.admit(c).unwrap();
        assert_eq!(caps.admit(a).unwrap_err(), Refused::Total);
    }

    #[test]
    fn mapped_ipv6_counts_as_ipv4() {
        let caps = Caps::new(10, 1);
        let v4: IpAddr = [10, 0, 0, 1].into();
        let mapped: IpAddr = std::net::Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().into();
        let slot = caps.admit(v4).unwrap();
        assert_eq!(caps.admit(mapped).unwrap_err(), Refused::Client);
        drop(slot);
        assert!(caps.open().per_client.is_empty());
    }
}
