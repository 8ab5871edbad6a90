//! The node's store in flash, with `sequential-storage`'s map: power-fail safe (an item is
//! written whole, with a CRC, before the previous one stops counting; a cut mid-write leaves
//! the previous value) and wear-levelled over the pages it is given.
//!
//! The replica decides what to persist (`tally_core::replica`); this module only keeps its
//! records, one item per kind, each the latest of its kind:
//!
//! | key | item | written |
//! |---:|---|---|
//! | [`KEY_IDENTITY`] | Identity record: the entry id `name#incarnation` | when an incarnation starts, before its first press counts |
//! | [`KEY_LOCAL`] | Local record: the own totals | at every press, before it counts |
//! | [`KEY_STATE`] | Snapshot record: every entry and named cell the node knows | by [`SNAPSHOTS`], at most every 10 min while merges change it |
//! | [`KEY_NAMED`] + k | NamedLocal record: the own totals in one named counter (k < [`NAMED_KEYS`]) | at every press on that counter, before it counts |
//!
//! An item is a version byte ([`FORMAT_VERSION`](tally_core::store::FORMAT_VERSION)) and a
//! record of the core's codec ([`tally_core::store`]); version 1 items (`[1][count][entries]`,
//! written by earlier firmware under keys 0 and 1) still read back, so an old store keeps its
//! value. Recovery merges the state and the own totals (per-entry max), named counters
//! included. A named counter keeps its key for the store's life (found again by the name in
//! its item); a removed counter's item stays and restores nothing the removal's floors do not
//! cover.
//!
//! **Identity.** [`Store::open`] resumes the stored incarnation only when everything stored was
//! read and restored; otherwise — a wiped or new store, an unreadable item, state that does not
//! fit — the node starts a fresh incarnation, so its presses count under an entry no peer can
//! hold higher. What could be read is merged as other entries, and snapshotted at once under
//! the new incarnation.

use core::ops::Range;
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_time::{Duration, Timer};
use embedded_storage_async::nor_flash::NorFlash;
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::map::{MapConfig, MapStorage};
use tally_core::named::{MapStores, Totals};
use tally_core::store::{
    begin_item, decode_item, snapshot_len, Cells, EncodeError, Entries, Record, SliceSink,
};
use tally_core::{
    Config, FixedReplica, Identity, Incarnation, Instant, PersistKind, Persisting, ReplicaConfig,
    SnapshotPolicy,
};
use tally_embassy::Persister;

/// Key of the own totals (Local record).
pub const KEY_LOCAL: u8 = 0;
/// Key of the whole known state (Snapshot record).
pub const KEY_STATE: u8 = 1;
/// Key of the entry id (Identity record).
pub const KEY_IDENTITY: u8 = 2;
/// Key of the format marker: [`FORMAT_MARK`], written once the range is known to be a Tally
/// store (first boot of this firmware, or after erasing foreign data).
pub const KEY_FORMAT: u8 = 3;
/// Key of the first named counter's own totals (NamedLocal record); the counters take the
/// [`NAMED_KEYS`] keys from here.
pub const KEY_NAMED: u8 = 16;
/// Named counters whose own totals a store keeps: a board's map holds at most this many.
pub const NAMED_KEYS: usize = 16;
/// The format marker's value.
pub const FORMAT_MARK: [u8; 4] = *b"TLY\x02";
/// The boards' snapshot policy: the whole merged state at most every 10 minutes while other
/// nodes' entries change. Presses do not count (`merges_only`): the Local item, written at
/// every press, already holds the own totals, and what merges brought peers hold too and send
/// again. This is what keeps the flash for over ten years (README "Boards", `tests/wear.rs`).
pub const SNAPSHOTS: SnapshotPolicy = SnapshotPolicy {
    interval: tally_core::Duration::from_secs(600),
    after_changes: 0,
    merges_only: true,
};
/// Largest item without named counters: a version byte and a snapshot of 32 entries of
/// 64-byte ids.
pub const MAX_ITEM: usize = 1 + snapshot_len(32, 64, 0, 0);
/// Work buffer of the map: the largest item plus its key, rounded up to flash words.
pub const WORK: usize = work_size(0);

/// The work buffer a store needs for a map of `cells` named cells (64-byte names and ids):
/// the largest snapshot item plus its key, rounded up to flash words. A firmware with named
/// counters gives it as the store's `W`.
pub const fn work_size(cells: usize) -> usize {
    1 + snapshot_len(32, 64, cells, tally_core::named::MAX_NAME) + 64
}
/// Pause after a failed write before the next try.
pub const RETRY: Duration = Duration::from_secs(1);

/// Why the store failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum PersistError {
    /// The flash range is not usable by the map (alignment, fewer than two pages).
    BadRange,
    /// The flash or the map reported an error.
    Storage,
    /// A record does not fit [`WORK`] (a replica larger than 32 entries of 64-byte ids).
    TooLarge,
    /// The node name cannot make an entry id (empty, or too long for the id bound).
    BadName,
    /// The replica could not be built (its stores cannot hold the own entry).
    Refused,
    /// Every key for named counters is taken ([`NAMED_KEYS`]): the write is refused.
    NoNamedKey,
}

impl core::fmt::Display for PersistError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            PersistError::BadRange => "flash range unusable",
            PersistError::Storage => "flash error",
            PersistError::TooLarge => "record larger than the work buffer",
            PersistError::BadName => "node name cannot make an entry id",
            PersistError::Refused => "replica cannot be built",
            PersistError::NoNamedKey => "no store key left for another named counter",
        })
    }
}

/// Where the records to persist come from: a running node's [`Persister`], or a bare replica
/// (tests, where the caller commits).
pub trait RecordSource {
    /// The next record into `sink` (see `Replica::poll_persist`).
    fn poll(&mut self, sink: &mut SliceSink<'_>) -> Result<Option<Persisting>, EncodeError>;
    /// The record `seq` and those before it are durable.
    fn persisted(&mut self, seq: u64);
    /// The record `seq` could not be written.
    fn failed(&mut self, seq: u64, kind: PersistKind);
}

impl<M: RawMutex, const N: usize, const P: usize, const L: usize, Named: MapStores<L>> RecordSource
    for Persister<'_, M, N, P, L, Named>
{
    fn poll(&mut self, sink: &mut SliceSink<'_>) -> Result<Option<Persisting>, EncodeError> {
        Persister::poll(self, sink)
    }
    fn persisted(&mut self, seq: u64) {
        Persister::persisted(self, seq);
    }
    fn failed(&mut self, seq: u64, kind: PersistKind) {
        Persister::failed(self, seq, kind);
    }
}

impl<const N: usize, const P: usize, const L: usize, Named: MapStores<L>> RecordSource
    for FixedReplica<N, P, L, Named>
{
    fn poll(&mut self, sink: &mut SliceSink<'_>) -> Result<Option<Persisting>, EncodeError> {
        self.poll_persist(sink)
    }
    fn persisted(&mut self, seq: u64) {
        FixedReplica::persisted(self, seq);
    }
    fn failed(&mut self, seq: u64, kind: PersistKind) {
        self.persist_failed(seq, kind);
    }
}

/// What [`Store::open`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Opened {
    /// Whether the stored incarnation was resumed.
    pub incarnation: Incarnation,
    /// Entries merged from the store (state and own totals).
    pub entries: usize,
    /// Something stored could not be read or restored (the incarnation is then fresh).
    pub unreadable: bool,
    /// The range held foreign data (another firmware's) and was erased.
    pub erased: bool,
}

/// The node's records in a flash range. Holds two buffers of `W` bytes ([`WORK`] without
/// named counters, [`work_size`] with them).
pub struct Store<F: NorFlash, const W: usize = WORK> {
    map: MapStorage<u8, F, Cache<Uncached, Uncached, Uncached, u8>>,
    work: [u8; W],
    item: [u8; W],
    /// The named counter of each key, as a hash of its name (0: free); a match is confirmed
    /// by the name in the item.
    named: [u32; NAMED_KEYS],
}

type Flash<F> = MapStorage<u8, F, Cache<Uncached, Uncached, Uncached, u8>>;

impl<F: NorFlash> Store<F> {
    /// A store on `range` of `flash` (page-aligned, at least two erase pages) with the work
    /// buffers of a node without named counters ([`WORK`]).
    pub fn new(flash: F, range: Range<u32>) -> Result<Self, PersistError> {
        Self::sized(flash, range)
    }
}

impl<F: NorFlash, const W: usize> Store<F, W> {
    /// A store on `range` of `flash` with work buffers of `W` bytes (see [`work_size`]).
    pub fn sized(flash: F, range: Range<u32>) -> Result<Self, PersistError> {
        let config = MapConfig::try_new(range).map_err(|_| PersistError::BadRange)?;
        Ok(Self {
            map: MapStorage::new(flash, config, Cache::new_uncached()),
            work: [0; W],
            item: [0; W],
            named: [0; NAMED_KEYS],
        })
    }

    /// Reads the store and builds the node's durable replica from it: the stored incarnation
    /// of `name` when everything stored was restored, else a fresh one (`rng`), with what
    /// could be read merged in. `engine` and `snapshots` are the replica's settings.
    pub async fn open<const N: usize, const P: usize, const L: usize, Named: MapStores<L>>(
        &mut self,
        name: &str,
        engine: Config,
        snapshots: SnapshotPolicy,
        now: Instant,
        rng: &mut impl rand_core::RngCore,
    ) -> Result<(FixedReplica<N, P, L, Named>, Opened), PersistError> {
        if 1 + snapshot_len(N, L, 0, 0) > W {
            return Err(PersistError::TooLarge);
        }
        let config = ReplicaConfig::durable(engine, snapshots);
        let erased = self.claim().await?;
        let Self {
            map,
            work,
            item,
            named,
        } = self;
        let mut unreadable = false;
        // The identity first, copied out: its buffer is read into again.
        let stored = match read(map, work, KEY_IDENTITY).await {
            Ok(Some(Record::Identity(id))) => match Identity::<L>::parse(id) {
                Ok(i) => Some(i),
                Err(_) => {
                    unreadable = true;
                    None
                }
            },
            Ok(None) => None,
            Ok(Some(_)) | Err(()) => {
                unreadable = true;
                None
            }
        };
        // Everything else is read once to see that it reads, and again below to restore it.
        for key in [KEY_STATE, KEY_LOCAL].into_iter().chain(named_keys()) {
            unreadable |= read(map, item, key).await.is_err();
        }

        let stored_id = stored.as_ref().map(|i| i.entry_id().as_str());
        // Another name (a new TALLY_ID) also makes a fresh incarnation: the old entry stays
        // as another node's.
        let (identity, how) =
            Identity::<L>::resume_or_fresh(Some(name), name, stored_id, !unreadable, rng)
                .map_err(|_| PersistError::BadName)?;
        let mut replica =
            FixedReplica::new(identity, how, config, now).map_err(|_| PersistError::Refused)?;
        let mut incarnation = how;
        let entries = match restore_all(map, work, item, named, &mut replica).await {
            Ok(n) => n,
            Err(n) if how == Incarnation::Fresh => n,
            Err(_) => {
                // The stored state does not fit this replica: a fresh incarnation, with what fits.
                unreadable = true;
                let identity = Identity::fresh(name, rng).map_err(|_| PersistError::BadName)?;
                replica = FixedReplica::new(identity, Incarnation::Fresh, config, now)
                    .map_err(|_| PersistError::Refused)?;
                incarnation = Incarnation::Fresh;
                restore_all(map, work, item, named, &mut replica)
                    .await
                    .unwrap_or_else(|n| n)
            }
        };
        if incarnation == Incarnation::Fresh && entries > 0 {
            // What was read sits under keys the new incarnation overwrites: keep it in a
            // snapshot first (it comes right after the identity in the stream).
            let _ = replica.request_snapshot();
        }
        Ok((
            replica,
            Opened {
                incarnation,
                entries,
                unreadable,
                erased,
            },
        ))
    }

    /// Makes sure the range is a Tally store before anything is read from it: with the format
    /// marker it is. Without one it is either a store of earlier Tally firmware (Tally items
    /// that all read back: kept) or something else — empty, another firmware's data, bytes
    /// the map cannot use — which is erased once. Either way the marker is written, so this
    /// happens once. Returns whether it erased.
    async fn claim(&mut self) -> Result<bool, PersistError> {
        let Self { map, work, .. } = self;
        if let Ok(Some(mark)) = map.fetch_item::<&[u8]>(work, &KEY_FORMAT).await {
            if mark == FORMAT_MARK {
                return Ok(false);
            }
        }
        let mut found = false;
        let mut damaged = false;
        for key in [KEY_IDENTITY, KEY_LOCAL, KEY_STATE] {
            match read(map, work, key).await {
                Ok(Some(_)) => found = true,
                Ok(None) => {}
                Err(()) => damaged = true,
            }
        }
        let erase = !found || damaged;
        if erase {
            warn!("store: no Tally data in its range; erasing it once");
            map.erase_all().await.map_err(|_| PersistError::Storage)?;
        }
        map.store_item(work, &KEY_FORMAT, &&FORMAT_MARK[..])
            .await
            .map_err(|_| PersistError::Storage)?;
        Ok(erase)
    }

    /// Writes every record `source` has waiting, in order, each as the item of its kind, and
    /// reports each durable. Returns how many were written; on a failed write the record is
    /// reported failed and the error returned.
    pub async fn save(&mut self, source: &mut impl RecordSource) -> Result<usize, PersistError> {
        let mut written = 0;
        loop {
            let mut sink = SliceSink::new(&mut self.item);
            begin_item(&mut sink).map_err(|_| PersistError::TooLarge)?;
            let Some(p) = source.poll(&mut sink).map_err(|_| PersistError::TooLarge)? else {
                return Ok(written);
            };
            let len = sink.len();
            let Self {
                map,
                work,
                item,
                named,
            } = self;
            let value: &[u8] = item.get(..len).ok_or(PersistError::TooLarge)?;
            let (key, taken) = match p.kind {
                PersistKind::Identity => (KEY_IDENTITY, None),
                PersistKind::Local => (KEY_LOCAL, None),
                PersistKind::Snapshot => (KEY_STATE, None),
                PersistKind::NamedLocal => match named_key(map, work, named, value).await {
                    Ok(k) => k,
                    Err(e) => {
                        source.failed(p.seq, p.kind);
                        return Err(e);
                    }
                },
            };
            if map.store_item(work, &key, &value).await.is_err() {
                if let Some(slot) = taken.and_then(|k| named.get_mut(k)) {
                    // Newly taken for this write: free again.
                    *slot = 0;
                }
                source.failed(p.seq, p.kind);
                return Err(PersistError::Storage);
            }
            source.persisted(p.seq);
            written += 1;
        }
    }

    /// The persistence task of a running node: waits for records, writes them, and so
    /// commits the presses they carry. Never returns; after a failed write it pauses
    /// [`RETRY`] (the replica asks again for what it needs).
    pub async fn run<M: RawMutex, const N: usize, const P: usize, const L: usize, Named>(
        &mut self,
        mut persister: Persister<'_, M, N, P, L, Named>,
    ) -> !
    where
        Named: MapStores<L>,
    {
        loop {
            persister.wait().await;
            if let Err(e) = self.save(&mut persister).await {
                warn!("persist: {}", e);
                Timer::after(RETRY).await;
            }
        }
    }

    /// Gives the flash back.
    pub fn into_flash(self) -> F {
        self.map.destroy().0
    }
}

/// Builds the node's replica from `store`: durable, restored from it (see [`Store::open`]);
/// without a store, or when it cannot be read at all, volatile under a fresh incarnation (it
/// counts, but a power cut forgets; [`FixedReplica::is_durable`] tells which). Logs what it
/// found.
pub async fn open_replica<
    F,
    const W: usize,
    const N: usize,
    const P: usize,
    const L: usize,
    Named,
>(
    store: Option<&mut Store<F, W>>,
    name: &str,
    engine: Config,
    now: Instant,
    rng: &mut impl rand_core::RngCore,
) -> Result<FixedReplica<N, P, L, Named>, PersistError>
where
    F: NorFlash,
    Named: MapStores<L>,
{
    let opened = match store {
        Some(store) => store.open(name, engine, SNAPSHOTS, now, rng).await,
        None => Err(PersistError::BadRange),
    };
    match opened {
        Ok((replica, o)) => {
            info!(
                "store: {} {}, {} entries restored{}, value {}",
                if o.incarnation == Incarnation::Resumed {
                    "resumed"
                } else {
                    "fresh incarnation"
                },
                replica.id().as_str(),
                o.entries,
                if o.unreadable {
                    " (some unreadable)"
                } else {
                    ""
                },
                replica.value() as i64
            );
            Ok(replica)
        }
        Err(e) => {
            warn!("no flash store ({}): counting without it", e);
            let identity = Identity::fresh(name, rng).map_err(|_| PersistError::BadName)?;
            let config = ReplicaConfig::volatile(engine);
            FixedReplica::new(identity, Incarnation::Fresh, config, now)
                .map_err(|_| PersistError::Refused)
        }
    }
}

/// Reads and decodes the item under `key`: `Ok(None)` when there is none, `Err` when it
/// cannot be read or decoded.
async fn read<'b, F: NorFlash, const W: usize>(
    map: &mut Flash<F>,
    buf: &'b mut [u8; W],
    key: u8,
) -> Result<Option<Record<'b>>, ()> {
    match map.fetch_item::<&[u8]>(buf, &key).await {
        Ok(Some(bytes)) => decode_item(bytes).map(Some).map_err(|_| ()),
        Ok(None) => Ok(None),
        Err(_) => Err(()),
    }
}

/// The keys of the named counters' own totals.
fn named_keys() -> impl Iterator<Item = u8> {
    (0..NAMED_KEYS as u8).map(|k| KEY_NAMED + k)
}

/// The hash a key's counter is known by in [`Store`] (never 0: 0 marks a free key).
fn name_hash(name: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in name.as_bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h.max(1)
}

/// The key for the NamedLocal `record` (an encoded item): the one its counter has, else a
/// free one, taken now (returned as the second value, to free it again if the write fails).
async fn named_key<F: NorFlash, const W: usize>(
    map: &mut Flash<F>,
    work: &mut [u8; W],
    named: &mut [u32; NAMED_KEYS],
    record: &[u8],
) -> Result<(u8, Option<usize>), PersistError> {
    let Ok(Record::NamedLocal { name, .. }) = decode_item(record) else {
        return Err(PersistError::TooLarge);
    };
    let h = name_hash(name);
    for (k, key) in named_keys().enumerate() {
        if named.get(k) != Some(&h) {
            continue;
        }
        // The hash matches: the key is this counter's if its item names it.
        if let Ok(Some(Record::NamedLocal { name: held, .. })) = read(map, work, key).await {
            if held == name {
                return Ok((key, None));
            }
        }
    }
    let free = named.iter().position(|&x| x == 0);
    match free.and_then(|k| Some((k, named.get_mut(k)?, KEY_NAMED.checked_add(k as u8)?))) {
        Some((k, slot, key)) => {
            *slot = h;
            Ok((key, Some(k)))
        }
        None => Err(PersistError::NoNamedKey),
    }
}

/// Reads every stored record and merges it into `replica` (the state, the own totals, each
/// named counter's own totals), noting which key each named counter has. The entries and cells
/// merged; `Err` with those merged when one was refused (more than the replica holds).
async fn restore_all<
    F: NorFlash,
    const W: usize,
    const N: usize,
    const P: usize,
    const L: usize,
    Named,
>(
    map: &mut Flash<F>,
    work: &mut [u8; W],
    item: &mut [u8; W],
    named: &mut [u32; NAMED_KEYS],
    replica: &mut FixedReplica<N, P, L, Named>,
) -> Result<usize, usize>
where
    Named: MapStores<L>,
{
    let state = read(map, work, KEY_STATE).await.ok().flatten();
    let local = read(map, item, KEY_LOCAL).await.ok().flatten();
    let (mut merged, mut refused) = match restore(replica, &[state, local]) {
        Ok(n) => (n, false),
        Err(n) => (n, true),
    };
    *named = [0; NAMED_KEYS];
    for (k, key) in named_keys().enumerate() {
        let Ok(Some(Record::NamedLocal { name, id, inc, dec })) = read(map, item, key).await else {
            continue;
        };
        if let Some(slot) = named.get_mut(k) {
            *slot = name_hash(name);
        }
        let totals = Totals {
            inc,
            dec,
            floor_inc: 0,
            floor_dec: 0,
        };
        match replica.restore_named(FoundCells::One(Some((name, id, totals)))) {
            Ok(_) => merged += 1,
            Err(_) => refused = true,
        }
    }
    if refused {
        Err(merged)
    } else {
        Ok(merged)
    }
}

/// Merges `records` into `replica`; the entries and cells merged, `Err` with those merged when
/// one was refused (more entries or cells than the replica holds).
fn restore<const N: usize, const P: usize, const L: usize, Named: MapStores<L>>(
    replica: &mut FixedReplica<N, P, L, Named>,
    records: &[Option<Record<'_>>],
) -> Result<usize, usize> {
    let mut merged = 0;
    let mut refused = false;
    for record in records.iter().flatten() {
        let (entries, cells) = match record {
            Record::Snapshot(entries, cells) => (Found::Many(entries.clone()), cells.clone()),
            Record::Local { id, inc, dec } => (Found::One(Some((*id, *inc, *dec))), Cells::EMPTY),
            Record::Identity(_) | Record::NamedLocal { .. } => continue,
        };
        let n = entries.clone().count();
        match replica.restore(entries) {
            Ok(_) => merged += n,
            Err(_) => refused = true,
        }
        let c = cells.clone().count();
        if c > 0 {
            match replica.restore_named(FoundCells::Many(cells)) {
                Ok(_) => merged += c,
                Err(_) => refused = true,
            }
        }
    }
    if refused {
        Err(merged)
    } else {
        Ok(merged)
    }
}

/// The entries of a Snapshot or the one of a Local record, as one iterator type (one merge
/// routine in the image, not two).
#[derive(Clone)]
enum Found<'a> {
    Many(Entries<'a>),
    One(Option<(&'a str, u64, u64)>),
}

/// The cells of a Snapshot or the one of a NamedLocal record, as one iterator type (one
/// named merge routine in the image, not two).
#[derive(Clone)]
enum FoundCells<'a> {
    Many(Cells<'a>),
    One(Option<(&'a str, &'a str, Totals)>),
}

impl<'a> Iterator for FoundCells<'a> {
    type Item = (&'a str, &'a str, Totals);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            FoundCells::Many(cells) => cells.next(),
            FoundCells::One(one) => one.take(),
        }
    }
}

impl<'a> Iterator for Found<'a> {
    type Item = (&'a str, u64, u64);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Found::Many(entries) => entries.next(),
            Found::One(one) => one.take(),
        }
    }
}
