//! [`SimStorage`]: an in-memory [`Storage`] that knows which bytes and directory entries were
//! made durable, so a test can [`crash`](SimStorage::crash) it and see what a power loss leaves.
//! For tests only: the log uses [`FsStorage`](super::FsStorage) everywhere else.
//!
//! The model: each file has its current bytes and its durable bytes (as of its last `sync`);
//! the directory has its current entries and its durable entries (as of its last `sync_dir`).
//! A crash keeps only durable entries, each with only its durable bytes — a created file that
//! was never dir-synced vanishes, a removed file whose removal was not dir-synced comes back.

use super::storage::{LockGuard, Storage, StorageFile};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// In-memory storage with crash simulation and fault injection: see [`SimStorage::crash`].
/// Clones share the same simulated disk.
#[derive(Clone, Debug, Default)]
pub struct SimStorage {
    fs: Arc<Mutex<SimFs>>,
    epoch: u64,
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Lowest offset changed since the last sync.
    dirty_from: usize,
}

impl Inode {
    fn sync(&mut self) {
        let from = self.dirty_from.min(self.data.len());
        self.durable.truncate(from);
        self.durable
            .extend_from_slice(self.data.get(from..).unwrap_or_default());
        self.dirty_from = self.data.len();
    }
}

#[derive(Debug, Default)]
struct SimFs {
    epoch: u64,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    locked: BTreeSet<PathBuf>,
    fail_append: Option<io::ErrorKind>,
    fail_sync: Option<io::ErrorKind>,
}

impl SimFs {
    fn inode(&mut self, path: &Path) -> io::Result<&mut Inode> {
        let ino = *self.names.get(path).ok_or(io::ErrorKind::NotFound)?;
        self.inodes
            .get_mut(&ino)
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    /// Drops inodes that no name, current or durable, refers to.
    fn collect(&mut self) {
        let live: BTreeSet<u64> = self
            .names
            .values()
            .chain(self.durable_names.values())
            .copied()
            .collect();
        self.inodes.retain(|ino, _| live.contains(ino));
    }
}

fn stale() -> io::Error {
    io::Error::other("simulated storage: this handle belongs to a crashed process")
}

impl SimStorage {
    /// An empty simulated disk.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> io::Result<MutexGuard<'_, SimFs>> {
        let fs = self
            .fs
            .lock()
            .map_err(|_| io::Error::other("simulated storage: lock poisoned"))?;
        if fs.epoch == self.epoch {
            Ok(fs)
        } else {
            Err(stale())
        }
    }

    /// Simulates power loss. Each file has its current bytes and its durable bytes (as of its
    /// last `sync`); the directory has its current entries and its durable ones (as of its
    /// last `sync_dir`). A crash keeps only durable entries, each with only its durable bytes:
    /// every byte not synced and every directory change not dir-synced is lost (a created file
    /// never dir-synced vanishes, a removed file whose removal was not dir-synced comes back).
    /// Locks are released, and every handle from before (this storage, its clones and the
    /// files they opened) fails from now on. Returns the handle for the "rebooted" machine.
    pub fn crash(&self) -> SimStorage {
        let mut fs = match self.fs.lock() {
            Ok(fs) => fs,
            Err(poisoned) => poisoned.into_inner(),
        };
        fs.epoch += 1;
        fs.names = fs.durable_names.clone();
        for inode in fs.inodes.values_mut() {
            inode.data = inode.durable.clone();
            inode.dirty_from = inode.data.len();
        }
        fs.locked.clear();
        fs.fail_append = None;
        fs.fail_sync = None;
        fs.collect();
        SimStorage {
            fs: Arc::clone(&self.fs),
            epoch: fs.epoch,
        }
    }

    /// The next append fails with `kind`, after writing half of its bytes (as a full disk may).
    pub fn fail_next_append(&self, kind: io::ErrorKind) {
        if let Ok(mut fs) = self.state() {
            fs.fail_append = Some(kind);
        }
    }

    /// The next file sync fails with `kind`, leaving nothing new durable.
    pub fn fail_next_sync(&self, kind: io::ErrorKind) {
        if let Ok(mut fs) = self.state() {
            fs.fail_sync = Some(kind);
        }
    }

    /// Current and durable length of a file, if it exists.
    pub fn lengths(&self, path: &Path) -> Option<(usize, usize)> {
        let mut fs = self.state().ok()?;
        let inode = fs.inode(path).ok()?;
        Some((inode.data.len(), inode.durable.len()))
    }
}

#[derive(Debug)]
struct SimFile {
    storage: SimStorage,
    ino: u64,
}

impl SimFile {
    fn with<T>(&self, f: impl FnOnce(&mut SimFs, u64) -> io::Result<T>) -> io::Result<T> {
        let mut fs = self.storage.state()?;
        f(&mut fs, self.ino)
    }
}

impl StorageFile for SimFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.with(|fs, ino| {
            let fault = fs.fail_append.take();
            let inode = fs.inodes.get_mut(&ino).ok_or(io::ErrorKind::NotFound)?;
            match fault {
                Some(kind) => {
                    let half = data.get(..data.len() / 2).unwrap_or_default();
                    inode.data.extend_from_slice(half);
                    Err(kind.into())
                }
                None => {
                    inode.data.extend_from_slice(data);
                    Ok(())
                }
            }
        })
    }

    fn sync(&mut self) -> io::Result<()> {
        self.with(|fs, ino| {
            if let Some(kind) = fs.fail_sync.take() {
                return Err(kind.into());
            }
            fs.inodes
                .get_mut(&ino)
                .ok_or(io::ErrorKind::NotFound)?
                .sync();
            Ok(())
        })
    }
}

#[derive(Debug)]
struct SimLock {
    storage: SimStorage,
    dir: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        if let Ok(mut fs) = self.storage.state() {
            fs.locked.remove(&self.dir);
        }
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        self.state().map(drop)
    }

    fn lock(&self, dir: &Path) -> io::Result<LockGuard> {
        if !self.state()?.locked.insert(dir.to_path_buf()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(Box::new(SimLock {
            storage: self.clone(),
            dir: dir.to_path_buf(),
        }))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let fs = self.state()?;
        Ok(fs
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| Some(p.file_name()?.to_str()?.to_owned()))
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        Ok(self.state()?.inode(path)?.data.clone())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut fs = self.state()?;
        if fs.names.contains_key(path) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let ino = fs.next_inode;
        fs.next_inode += 1;
        fs.inodes.insert(ino, Inode::default());
        fs.names.insert(path.to_path_buf(), ino);
        Ok(Box::new(SimFile {
            storage: self.clone(),
            ino,
        }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let ino = *self
            .state()?
            .names
            .get(path)
            .ok_or(io::ErrorKind::NotFound)?;
        Ok(Box::new(SimFile {
            storage: self.clone(),
            ino,
        }))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut fs = self.state()?;
        let inode = fs.inode(path)?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        if len < inode.data.len() {
            inode.data.truncate(len);
            inode.dirty_from = inode.dirty_from.min(len);
        }
        inode.sync();
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut fs = self.state()?;
        fs.names.remove(path).ok_or(io::ErrorKind::NotFound)?;
        fs.collect();
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut fs = self.state()?;
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        fs.durable_names.retain(|p, _| !in_dir(p));
        let current: Vec<(PathBuf, u64)> = fs
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, ino)| (p.clone(), *ino))
            .collect();
        fs.durable_names.extend(current);
        fs.collect();
        Ok(())
    }
}
