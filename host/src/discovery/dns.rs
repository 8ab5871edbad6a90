//! DNS seeds (`tally node --peers-dns NAME:PORT`): the node resolves each seed again and again
//! and keeps the addresses it gets as peers — the way a Kubernetes headless service or Akka's
//! DNS discovery is used. A seed is either `NAME:PORT` (its A and AAAA records, each at PORT) or
//! an SRV name such as `_tally._tcp.example.org` (each record's target and port).
//!
//! Peers resolved this way are [`PeerSource::Dns`]; after a round in which every seed
//! answered, those the names no longer give are removed (a seed that fails to answer keeps its
//! peers: a DNS outage does not empty the table). I/O and time are this task's: it runs on the
//! tokio runtime of `tally node`, with hickory's resolver (the system's `resolv.conf`, or
//! `--dns-server`).

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{ResolveError, TokioResolver};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tally_core::PeerSource;
use tally_std::Node;
use tokio_util::sync::CancellationToken;

/// How often seeds are resolved by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Most addresses taken from one round of all seeds (a name with more is cut off, logged).
pub const MAX_ADDRESSES: usize = 256;

/// One seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsSeed {
    /// A and AAAA records of `name`, each at `port`.
    Host {
        /// The name.
        name: String,
        /// The gossip port of every address.
        port: u16,
    },
    /// SRV records of `name` (`_service._proto.domain`): each target at its port.
    Srv {
        /// The name.
        name: String,
    },
}

impl DnsSeed {
    /// Parses `NAME:PORT` or an SRV name (starting with `_`, no port).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with('_') {
            if text.contains(':') {
                return Err(format!(
                    "{text:?}: an SRV seed has no port (the records give it)"
                ));
            }
            return Ok(DnsSeed::Srv {
                name: checked_name(text)?,
            });
        }
        let (name, port) = text.rsplit_once(':').ok_or_else(|| {
            format!("{text:?} is not NAME:PORT or an SRV name (_service._tcp.domain)")
        })?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{text:?}: the port is not a number from 1 to 65535"))?;
        if port == 0 {
            return Err(format!("{text:?}: port 0"));
        }
        Ok(DnsSeed::Host {
            name: checked_name(name)?,
            port,
        })
    }
}

/// A DNS name: 1–253 bytes of letters, digits, `-`, `_` and `.`.
fn checked_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!("{name:?} is not a DNS name"))
    }
}

/// The seeds of a node and how it resolves them.
#[derive(Clone, Debug)]
pub struct DnsSeeds {
    /// The seeds.
    pub seeds: Vec<DnsSeed>,
    /// The server to ask (`None`: the system's configuration).
    pub server: Option<SocketAddr>,
    /// Time between two rounds.
    pub every: Duration,
}

impl DnsSeeds {
    fn resolver(&self) -> Result<TokioResolver, ResolveError> {
        let mut builder = match self.server {
            Some(server) => {
                let group =
                    NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], group),
                    TokioConnectionProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio()?,
        };
        // Every round asks again: records may change at any time.
        let options = builder.options_mut();
        options.positive_max_ttl = Some(Duration::ZERO);
        options.negative_max_ttl = Some(Duration::ZERO);
        options.timeout = Duration::from_secs(2);
        options.attempts = 2;
        Ok(builder.build())
    }

    /// Resolves every seed and keeps `node`'s DNS peers in step, every [`Self::every`], until
    /// `token` is cancelled. `advertise` (the node's own gossip address) is never added.
    pub async fn run(self, node: Arc<Node>, advertise: String, token: CancellationToken) {
        let resolver = match self.resolver() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "DNS seeds: no resolver; seeds are not used");
                return;
            }
        };
        loop {
            let (found, complete) = resolve_all(&resolver, &self.seeds).await;
            apply(&node, &advertise, &found, complete);
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(self.every) => {}
            }
        }
    }
}

/// Every address the seeds give now, and whether every seed answered.
async fn resolve_all(resolver: &TokioResolver, seeds: &[DnsSeed]) -> (BTreeSet<String>, bool) {
    let mut found = BTreeSet::new();
    let mut complete = true;
    for seed in seeds {
        match resolve(resolver, seed).await {
            Ok(addrs) => {
                for a in addrs {
                    if found.len() >= MAX_ADDRESSES {
                        tracing::warn!(
                            max = MAX_ADDRESSES,
                            "DNS seeds: too many addresses; the rest are ignored"
                        );
                        break;
                    }
                    found.insert(a.to_string());
                }
            }
            Err(e) => {
                complete = false;
                tracing::warn!(seed = ?seed, error = %e, "DNS seeds: lookup failed; keeping its peers");
            }
        }
    }
    (found, complete)
}

/// The addresses one seed gives.
async fn resolve(
    resolver: &TokioResolver,
    seed: &DnsSeed,
) -> Result<Vec<SocketAddr>, ResolveError> {
    match seed {
        DnsSeed::Host { name, port } => {
            let ips = resolver.lookup_ip(fqdn(name)).await?;
            Ok(ips.iter().map(|ip| SocketAddr::new(ip, *port)).collect())
        }
        DnsSeed::Srv { name } => {
            let records = resolver.srv_lookup(fqdn(name)).await?;
            let mut out = Vec::new();
            for srv in records.iter() {
                let target = srv.target().to_utf8();
                match resolver.lookup_ip(target.as_str()).await {
                    Ok(ips) => out.extend(ips.iter().map(|ip| SocketAddr::new(ip, srv.port()))),
                    Err(e) => {
                        tracing::debug!(target = %target, error = %e, "DNS seeds: SRV target did not resolve")
                    }
                }
            }
            Ok(out)
        }
    }
}

/// `name` as an absolute name (no search domains tried).
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// Adds what was found; after a complete round, removes DNS peers no longer found.
fn apply(node: &Node, advertise: &str, found: &BTreeSet<String>, complete: bool) {
    for addr in found {
        if addr == advertise {
            continue;
        }
        match node.add_peer(addr, PeerSource::Dns) {
            Ok(true) => tracing::info!(addr = %addr, "DNS seeds: new peer"),
            Ok(false) => {}
            Err(e) => tracing::debug!(addr = %addr, error = %e, "DNS seeds: peer not added"),
        }
    }
    if !complete {
        return;
    }
    for p in node.peers() {
        if p.source == PeerSource::Dns && !found.contains(&p.addr) && node.remove_peer(&p.addr) {
            tracing::info!(addr = %p.addr, "DNS seeds: peer no longer resolves; removed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_as_documented() {
        assert_eq!(
            DnsSeed::parse("tally.default.svc:9000"),
            Ok(DnsSeed::Host {
                name: "tally.default.svc".into(),
                port: 9000
            })
        );
        assert_eq!(
            DnsSeed::parse("_tally._tcp.example.org"),
            Ok(DnsSeed::Srv {
                name: "_tally._tcp.example.org".into()
            })
        );
        for bad in [
            "tally",
            "tally:0",
            "tally:70000",
            "ta lly:9000",
            ":9000",
            "_x._tcp:1",
        ] {
            assert!(DnsSeed::parse(bad).is_err(), "{bad}");
        }
    }
}
