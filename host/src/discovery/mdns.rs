//! Zero-config on a LAN (`tally node --mdns`): the node announces itself by mDNS/DNS-SD as
//! an instance of [`SERVICE`] and takes every other instance it sees as a peer — no addresses
//! given, no discovery service. Opt-in on hosts, so that a bare start never multicasts; the
//! tests run it in network namespaces.
//!
//! The instance's TXT record carries `id` (the node id) and `addr` (the gossip address it
//! advertises, the one its frames carry); a peer is added under `addr`, or, for an instance
//! without it, under each IPv4 address of its record at its port. An instance that leaves (its
//! goodbye, or its records' expiry) is removed if it was an mDNS peer. The announcement is made
//! on the interface of the listen address only (every interface when the node listens on
//! `0.0.0.0`).
//!
//! I/O and time are the `mdns-sd` daemon's (a thread of its own) and this task's (a blocking
//! thread that reads the daemon's events); nothing here touches the node's sockets.

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tally_core::PeerSource;
use tally_std::Node;
use tokio_util::sync::CancellationToken;

/// The DNS-SD service type of Tally's gossip port (`_tally._tcp`).
pub const SERVICE: &str = "_tally._tcp.local.";

/// How often the event loop looks at its cancellation token.
const POLL: Duration = Duration::from_millis(200);

/// Announces the node at `advertise` (its gossip address) and adds every other instance as
/// a peer until `token` is cancelled; then withdraws the announcement.
pub async fn run(node: Arc<Node>, advertise: SocketAddr, token: CancellationToken) {
    let id = node.id().to_string();
    let task = tokio::task::spawn_blocking(move || {
        if let Err(e) = announce_and_browse(&node, &id, advertise, &token) {
            tracing::error!(error = %e, "mDNS: stopped");
        }
    });
    let _ = task.await;
}

/// An mDNS instance name from a node id: the boards' rule (`tally_core::mdns::instance_label`).
fn instance_name(id: &str) -> String {
    tally_core::mdns::instance_label(id).as_str().to_string()
}

fn announce_and_browse(
    node: &Node,
    id: &str,
    advertise: SocketAddr,
    token: &CancellationToken,
) -> Result<(), mdns_sd::Error> {
    let daemon = ServiceDaemon::new()?;
    if !advertise.ip().is_unspecified() {
        daemon.disable_interface(IfKind::All)?;
        daemon.enable_interface(IfKind::Addr(advertise.ip()))?;
    }
    let instance = instance_name(id);
    let host = format!("{instance}.local.");
    let addr = advertise.to_string();
    let properties = [("id", id), ("addr", addr.as_str())];
    let info = if advertise.ip().is_unspecified() {
        ServiceInfo::new(
            SERVICE,
            &instance,
            &host,
            "",
            advertise.port(),
            &properties[..],
        )?
        .enable_addr_auto()
    } else {
        ServiceInfo::new(
            SERVICE,
            &instance,
            &host,
            advertise.ip(),
            advertise.port(),
            &properties[..],
        )?
    };
    let fullname = info.get_fullname().to_string();
    daemon.register(info)?;
    let events = daemon.browse(SERVICE)?;
    tracing::info!(instance = %fullname, "mDNS: announced; browsing {SERVICE}");
    // Peers added per instance, to remove them when it leaves.
    let mut added: HashMap<String, Vec<String>> = HashMap::new();
    while !token.is_cancelled() {
        let Ok(event) = events.recv_timeout(POLL) else {
            if events.is_disconnected() {
                break;
            }
            continue;
        };
        match event {
            ServiceEvent::ServiceResolved(info) if info.get_fullname() != fullname => {
                let addrs = peer_addresses(&info);
                for a in &addrs {
                    if *a == addr {
                        continue;
                    }
                    match node.add_peer(a, PeerSource::Mdns) {
                        Ok(true) => tracing::info!(addr = %a, "mDNS: new peer"),
                        Ok(false) => {}
                        Err(e) => tracing::debug!(addr = %a, error = %e, "mDNS: peer not added"),
                    }
                }
                added.insert(info.get_fullname().to_string(), addrs);
            }
            ServiceEvent::ServiceRemoved(_, name) => {
                for a in added.remove(&name).unwrap_or_default() {
                    let from_mdns = node
                        .peers()
                        .iter()
                        .any(|p| p.addr == a && p.source == PeerSource::Mdns);
                    if from_mdns && node.remove_peer(&a) {
                        tracing::info!(addr = %a, "mDNS: peer left");
                    }
                }
            }
            _ => {}
        }
    }
    let _ = daemon.unregister(&fullname);
    let _ = daemon.shutdown();
    Ok(())
}

/// Where an instance gossips: its `addr` property when that is `host:port`, else each IPv4
/// address of its record at its port.
fn peer_addresses(info: &ServiceInfo) -> Vec<String> {
    if let Some(a) = info.get_property_val_str("addr") {
        if tally_core::frame::is_gossip_address(a) {
            return vec![a.to_string()];
        }
    }
    info.get_addresses()
        .iter()
        .filter(|ip| matches!(ip, IpAddr::V4(_)))
        .map(|ip| SocketAddr::new(*ip, info.get_port()).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_are_dns_labels() {
        assert_eq!(instance_name("10.0.0.1:9000"), "10-0-0-1-9000");
        assert_eq!(instance_name("door#00ab12cd"), "door-00ab12cd");
        assert_eq!(instance_name(""), "tally");
        assert_eq!(instance_name(&"x".repeat(80)).len(), 63);
    }
}
