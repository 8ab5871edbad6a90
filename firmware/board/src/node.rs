//! Starting a board's node: its replica built from flash, its handles.

use crate::persist::{self, Store};
use crate::settings;
use core::ops::Range;
use embassy_net::Stack;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embedded_storage_async::nor_flash::NorFlash;
use static_cell::StaticCell;
use tally_core::named::MapStores;
use tally_core::Config;
use tally_embassy::{Node, NodeConfig, Persister, Runner, State};

/// What a board's node is: its name, engine settings (with the cluster key, see
/// [`settings::keyed`]), gossip port and build-time peers.
#[derive(Clone, Copy, Debug)]
pub struct Settings<'s> {
    /// The node name; it counts under `name#incarnation`.
    pub name: &'s str,
    /// Engine settings (frame and message limits, intervals).
    pub engine: Config,
    /// The gossip port.
    pub port: u16,
    /// Static peers, `a.b.c.d:port,...` (see [`settings::peers`]).
    pub peers: &'s str,
    /// The counters the buttons count on (`TALLY_BUTTONS`, see [`crate::buttons`]).
    pub buttons: &'s str,
}

/// A started node's handles: spawn the runner and, when there is a store, the persistence
/// task (`store.run(persister)`); keep the node for the buttons and the LED.
pub struct Started<
    F: NorFlash + 'static,
    M: RawMutex + 'static,
    const N: usize,
    const P: usize,
    const L: usize,
    const A: usize,
    Named: MapStores<L> + 'static,
    const W: usize,
> {
    /// The handle.
    pub node: Node<'static, M, N, P, L, Named>,
    /// The I/O loops, for a task of their own.
    pub runner: Runner<'static, M, N, P, L, A, Named>,
    /// The persistence side and its store, for the persistence task; `None` when the node
    /// runs without a store (volatile: a power cut forgets).
    pub persist: Option<(
        Persister<'static, M, N, P, L, Named>,
        &'static mut Store<F, W>,
    )>,
}

/// Opens the store on `range` of `flash` (in `cells.0`), builds the replica from it (see
/// [`persist::open_replica`]) and starts the node (in `cells.1`) on `stack` before the network
/// is up: it counts at once and advertises the DHCP address once there is one. `rng` makes
/// a fresh incarnation. The flash is read blocking: this runs once, at boot, and so the
/// store's code is built where the persistence task's is (not again in each `async` caller).
pub fn start<
    F: NorFlash,
    M: RawMutex,
    const N: usize,
    const P: usize,
    const L: usize,
    const A: usize,
    Named: MapStores<L> + 'static,
    const W: usize,
>(
    stack: Stack<'static>,
    cells: (
        &'static StaticCell<Store<F, W>>,
        &'static StaticCell<State<M, N, P, L, A, Named>>,
    ),
    flash: F,
    range: Range<u32>,
    settings: &Settings<'_>,
    rng: &mut impl rand_core::RngCore,
) -> Option<Started<F, M, N, P, L, A, Named, W>> {
    let mut store = match Store::sized(flash, range) {
        Ok(s) => Some(cells.0.init(s)),
        Err(e) => {
            warn!("flash store unusable: {}", e);
            None
        }
    };
    let engine = settings.engine;
    let now = tally_embassy::now();
    let opened = persist::open_replica(store.as_deref_mut(), settings.name, engine, now, rng);
    let replica = match embassy_futures::block_on(opened) {
        Ok(r) => r,
        Err(e) => {
            warn!("cannot build the node: {}", e);
            return None;
        }
    };
    let durable = replica.is_durable();
    let peers = settings::peers(settings.peers);
    let config = NodeConfig::new(settings.port).peers(&peers);
    let (node, runner, persister) =
        match tally_embassy::new(stack, cells.1.init(State::new(replica)), &config) {
            Ok(x) => x,
            Err(e) => {
                warn!("cannot start the node: {}", e);
                return None;
            }
        };
    // Whether frames are authenticated; never the key.
    info!(
        "tally node {} ({} peers, cluster key: {})",
        node.id().as_str(),
        peers.len(),
        engine.cluster_key.is_some()
    );
    Some(Started {
        node,
        runner,
        persist: store.filter(|_| durable).map(|s| (persister, s)),
    })
}
