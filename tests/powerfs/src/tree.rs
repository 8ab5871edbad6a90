//! The in-memory tree with its two views, *current* and *durable*, and the cut that throws the
//! current view away. No FUSE here: [`crate::fuse`] translates kernel requests into these calls.

use crate::{CutReport, Stats};
use fuser::{Errno, FileAttr, FileType, INodeNo};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

/// The root directory's inode number.
pub(crate) const ROOT: u64 = INodeNo::ROOT.0;

/// Ownership, permissions and times: kept in the current view only (not part of the contract).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

impl Meta {
    pub fn new(perm: u16, uid: u32, gid: u32) -> Self {
        let now = SystemTime::now();
        Self {
            perm,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }
}

/// A file's bytes: `cur` is what reads see, `dur` what survives a cut. Invariant: both agree
/// on their first `same` bytes (`same <= min(cur.len(), dur.len())`), so a sync or a cut only
/// copies what follows.
#[derive(Debug, Default)]
struct FileData {
    cur: Vec<u8>,
    dur: Vec<u8>,
    same: usize,
}

impl FileData {
    /// Notes that `cur` may differ from `dur` from `offset` on.
    fn touch(&mut self, offset: usize) {
        self.same = self.same.min(offset).min(self.cur.len());
    }

    fn sync(&mut self) {
        self.dur.truncate(self.same);
        self.dur
            .extend_from_slice(self.cur.get(self.same..).unwrap_or_default());
        self.same = self.cur.len();
    }

    /// Reverts to the durable bytes; returns how many current bytes were lost.
    fn revert(&mut self) -> u64 {
        let lost = self.cur.len().saturating_sub(self.same) as u64;
        self.cur.truncate(self.same);
        self.cur
            .extend_from_slice(self.dur.get(self.same..).unwrap_or_default());
        self.same = self.cur.len();
        lost
    }
}

/// A directory's entries, name → inode, in both views.
#[derive(Debug, Default)]
struct DirData {
    cur: BTreeMap<OsString, u64>,
    dur: BTreeMap<OsString, u64>,
}

impl DirData {
    /// Entries whose current and durable views differ (a name in one only, or bound to
    /// another inode).
    fn differing(&self) -> u64 {
        let only_cur = self
            .cur
            .iter()
            .filter(|(name, ino)| self.dur.get(*name) != Some(ino))
            .count();
        let only_dur = self
            .dur
            .keys()
            .filter(|name| !self.cur.contains_key(*name))
            .count();
        (only_cur + only_dur) as u64
    }
}

#[derive(Debug)]
enum Kind {
    File(FileData),
    Dir(DirData),
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    meta: Meta,
    /// Open file handles (kept alive while unreachable).
    open: u32,
}

/// Which view to follow when walking the tree.
#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    Current,
    Durable,
    Both,
}

/// The whole file system.
#[derive(Debug)]
pub(crate) struct Tree {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    stats: Stats,
}

impl Tree {
    /// An empty tree whose root has `meta`.
    pub fn new(meta: Meta) -> Self {
        let root = Node {
            kind: Kind::Dir(DirData::default()),
            meta,
            open: 0,
        };
        Self {
            nodes: HashMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// Sets the root's owner and permissions (at each mount, from the mount point).
    pub fn set_root_meta(&mut self, meta: Meta) {
        if let Some(root) = self.nodes.get_mut(&ROOT) {
            root.meta = meta;
        }
    }

    fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn dir(&self, ino: u64) -> Result<&DirData, Errno> {
        match &self.node(ino)?.kind {
            Kind::Dir(d) => Ok(d),
            Kind::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut DirData, Errno> {
        match &mut self.node_mut(ino)?.kind {
            Kind::Dir(d) => Ok(d),
            Kind::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileData, Errno> {
        match &mut self.node_mut(ino)?.kind {
            Kind::File(f) => Ok(f),
            Kind::Dir(_) => Err(Errno::EISDIR),
        }
    }

    /// The attributes the kernel sees (current view).
    pub fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let node = self.node(ino)?;
        let (kind, size, nlink) = match &node.kind {
            Kind::File(f) => (FileType::RegularFile, f.cur.len() as u64, 1),
            Kind::Dir(_) => (FileType::Directory, 0, 2),
        };
        let m = node.meta;
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: m.atime,
            mtime: m.mtime,
            ctime: m.ctime,
            crtime: m.ctime,
            kind,
            perm: m.perm,
            nlink,
            uid: m.uid,
            gid: m.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.dir(parent)?
            .cur
            .get(name)
            .copied()
            .ok_or(Errno::ENOENT)
    }

    fn insert(&mut self, parent: u64, name: &OsStr, kind: Kind, meta: Meta) -> Result<u64, Errno> {
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        let ino = self.next_ino;
        let dir = self.dir_mut(parent)?;
        if dir.cur.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        dir.cur.insert(name.to_owned(), ino);
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                kind,
                meta,
                open: 0,
            },
        );
        if let Ok(p) = self.node_mut(parent) {
            p.meta.mtime = SystemTime::now();
        }
        Ok(ino)
    }

    /// Creates a file (or, unless `exclusive`, finds the existing one) and opens it.
    pub fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        meta: Meta,
        exclusive: bool,
    ) -> Result<u64, Errno> {
        if let Some(&ino) = self.dir(parent)?.cur.get(name) {
            if exclusive {
                return Err(Errno::EEXIST);
            }
            self.file_mut(ino)?;
            self.open(ino)?;
            return Ok(ino);
        }
        let ino = self.insert(parent, name, Kind::File(FileData::default()), meta)?;
        self.stats.creates += 1;
        self.open(ino)?;
        Ok(ino)
    }

    pub fn mkdir(&mut self, parent: u64, name: &OsStr, meta: Meta) -> Result<u64, Errno> {
        let ino = self.insert(parent, name, Kind::Dir(DirData::default()), meta)?;
        self.stats.mkdirs += 1;
        Ok(ino)
    }

    pub fn unlink(&mut self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        if matches!(self.node(ino)?.kind, Kind::Dir(_)) {
            return Err(Errno::EISDIR);
        }
        self.dir_mut(parent)?.cur.remove(name);
        self.stats.unlinks += 1;
        self.gc();
        Ok(())
    }

    pub fn rmdir(&mut self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        if !self.dir(ino)?.cur.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        self.dir_mut(parent)?.cur.remove(name);
        self.stats.rmdirs += 1;
        self.gc();
        Ok(())
    }

    /// Whether `ancestor` is `ino` or holds it (current view).
    fn holds(&self, ancestor: u64, ino: u64) -> bool {
        let mut stack = vec![ancestor];
        let mut seen = HashSet::new();
        while let Some(at) = stack.pop() {
            if at == ino {
                return true;
            }
            if seen.insert(at) {
                if let Ok(d) = self.dir(at) {
                    stack.extend(d.cur.values().copied());
                }
            }
        }
        false
    }

    /// Renames `parent/name` to `newparent/newname`, replacing a file there (or an empty
    /// directory, if the source is one).
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        noreplace: bool,
    ) -> Result<(), Errno> {
        if newname.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        let ino = self.lookup(parent, name)?;
        self.dir(newparent)?;
        let is_dir = matches!(self.node(ino)?.kind, Kind::Dir(_));
        if is_dir && self.holds(ino, newparent) {
            return Err(Errno::EINVAL);
        }
        if let Some(&target) = self.dir(newparent)?.cur.get(newname) {
            if target == ino {
                return Ok(());
            }
            if noreplace {
                return Err(Errno::EEXIST);
            }
            match (&self.node(target)?.kind, is_dir) {
                (Kind::Dir(_), false) => return Err(Errno::EISDIR),
                (Kind::File(_), true) => return Err(Errno::ENOTDIR),
                (Kind::Dir(d), true) if !d.cur.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        self.dir_mut(parent)?.cur.remove(name);
        self.dir_mut(newparent)?.cur.insert(newname.to_owned(), ino);
        self.stats.renames += 1;
        self.gc();
        Ok(())
    }

    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        match &self.node(ino)?.kind {
            Kind::File(f) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let end = start.saturating_add(size as usize).min(f.cur.len());
                Ok(f.cur.get(start..end).unwrap_or_default().to_vec())
            }
            Kind::Dir(_) => Err(Errno::EISDIR),
        }
    }

    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let written = u32::try_from(data.len()).map_err(|_| Errno::EINVAL)?;
        let start = usize::try_from(offset).map_err(|_| Errno::EFBIG)?;
        let end = start.checked_add(data.len()).ok_or(Errno::EFBIG)?;
        let f = self.file_mut(ino)?;
        f.touch(start);
        if f.cur.len() < end {
            f.cur.resize(end, 0);
        }
        if let Some(dst) = f.cur.get_mut(start..end) {
            dst.copy_from_slice(data);
        }
        self.stats.writes += 1;
        self.stats.bytes_written += data.len() as u64;
        if let Ok(n) = self.node_mut(ino) {
            n.meta.mtime = SystemTime::now();
        }
        Ok(written)
    }

    /// Truncates or extends (with zeros) a file.
    pub fn set_size(&mut self, ino: u64, size: u64) -> Result<(), Errno> {
        let size = usize::try_from(size).map_err(|_| Errno::EFBIG)?;
        let f = self.file_mut(ino)?;
        f.touch(size);
        f.cur.resize(size, 0);
        if let Ok(n) = self.node_mut(ino) {
            n.meta.mtime = SystemTime::now();
        }
        Ok(())
    }

    pub fn set_meta(&mut self, ino: u64, change: impl FnOnce(&mut Meta)) -> Result<(), Errno> {
        let node = self.node_mut(ino)?;
        change(&mut node.meta);
        node.meta.ctime = SystemTime::now();
        Ok(())
    }

    /// `fsync`/`fdatasync` of `ino`: a file's data and size become durable, and so does the
    /// entry of a file not durably linked anywhere yet (as ext4 does for a new file). On a
    /// directory it is [`Tree::fsyncdir`].
    pub fn fsync(&mut self, ino: u64) -> Result<(), Errno> {
        if matches!(self.node(ino)?.kind, Kind::Dir(_)) {
            return self.fsyncdir(ino);
        }
        self.file_mut(ino)?.sync();
        self.stats.fsyncs += 1;
        let linked = self.nodes.values().any(|n| match &n.kind {
            Kind::Dir(d) => d.dur.values().any(|&i| i == ino),
            Kind::File(_) => false,
        });
        if !linked {
            for node in self.nodes.values_mut() {
                if let Kind::Dir(d) = &mut node.kind {
                    let names: Vec<OsString> = d
                        .cur
                        .iter()
                        .filter(|(_, &i)| i == ino)
                        .map(|(name, _)| name.clone())
                        .collect();
                    for name in names {
                        d.dur.insert(name, ino);
                    }
                }
            }
        }
        Ok(())
    }

    /// `fsync` of a directory: its entries (creations, renames, removals) become durable.
    pub fn fsyncdir(&mut self, ino: u64) -> Result<(), Errno> {
        let d = self.dir_mut(ino)?;
        d.dur = d.cur.clone();
        self.stats.fsyncdirs += 1;
        self.gc();
        Ok(())
    }

    /// The current entries of a directory, for `readdir`.
    pub fn entries(&self, ino: u64) -> Result<Vec<(u64, FileType, OsString)>, Errno> {
        let d = self.dir(ino)?;
        Ok(d.cur
            .iter()
            .map(|(name, &i)| {
                let kind = match self.nodes.get(&i).map(|n| &n.kind) {
                    Some(Kind::Dir(_)) => FileType::Directory,
                    _ => FileType::RegularFile,
                };
                (i, kind, name.clone())
            })
            .collect())
    }

    pub fn open(&mut self, ino: u64) -> Result<(), Errno> {
        let node = self.node_mut(ino)?;
        node.open = node.open.saturating_add(1);
        Ok(())
    }

    pub fn release(&mut self, ino: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.open = node.open.saturating_sub(1);
            if node.open == 0 {
                self.gc();
            }
        }
    }

    /// Inodes reachable from the root through `view`'s entries.
    fn reachable(&self, view: View) -> HashSet<u64> {
        let mut seen = HashSet::new();
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            if !seen.insert(ino) {
                continue;
            }
            if let Some(Node {
                kind: Kind::Dir(d), ..
            }) = self.nodes.get(&ino)
            {
                if view != View::Durable {
                    stack.extend(d.cur.values().copied());
                }
                if view != View::Current {
                    stack.extend(d.dur.values().copied());
                }
            }
        }
        seen
    }

    /// Forgets inodes that no view reaches and no handle holds.
    fn gc(&mut self) {
        let keep = self.reachable(View::Both);
        self.nodes
            .retain(|ino, node| node.open > 0 || keep.contains(ino));
    }

    /// The power cut: every file back to its durable bytes, every directory to its durable
    /// entries; what no durable entry reaches any more is gone.
    pub fn cut(&mut self) -> CutReport {
        let before = self.reachable(View::Current);
        let mut report = CutReport::default();
        let mut lost = HashMap::new();
        for (&ino, node) in &mut self.nodes {
            match &mut node.kind {
                Kind::File(f) => {
                    let whole = f.cur.len() as u64;
                    let tail = f.revert();
                    lost.insert(ino, (tail, whole));
                }
                Kind::Dir(d) => {
                    report.entries_reverted += d.differing();
                    d.cur = d.dur.clone();
                }
            }
        }
        let after = self.reachable(View::Durable);
        for ino in &before {
            let (tail, whole) = lost.get(ino).copied().unwrap_or_default();
            if after.contains(ino) {
                report.bytes_discarded += tail;
            } else {
                report.bytes_discarded += whole;
                report.objects_vanished += 1;
            }
        }
        report.objects_restored = after.difference(&before).count() as u64;
        self.nodes
            .retain(|ino, node| node.open > 0 || after.contains(ino));
        self.stats.cuts += 1;
        self.stats.bytes_discarded += report.bytes_discarded;
        self.stats.last_cut = report;
        report
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]
    use super::*;

    fn tree() -> Tree {
        Tree::new(Meta::new(0o755, 0, 0))
    }

    fn file(t: &mut Tree, parent: u64, name: &str, data: &[u8]) -> u64 {
        let ino = t
            .create(parent, OsStr::new(name), Meta::new(0o644, 0, 0), true)
            .unwrap();
        t.write(ino, 0, data).unwrap();
        t.release(ino);
        ino
    }

    fn content(t: &Tree, parent: u64, name: &str) -> Option<Vec<u8>> {
        let ino = t.lookup(parent, OsStr::new(name)).ok()?;
        Some(t.read(ino, 0, u32::MAX).unwrap())
    }

    #[test]
    fn powerfs_tree_unsynced_tail_is_lost_and_counted() {
        let mut t = tree();
        let a = file(&mut t, ROOT, "a", b"durable");
        t.fsync(a).unwrap();
        t.write(a, 7, b"+tail").unwrap();
        t.write(a, 0, b"D").unwrap();
        assert_eq!(content(&t, ROOT, "a").unwrap(), b"Durable+tail");
        let r = t.cut();
        assert_eq!(content(&t, ROOT, "a").unwrap(), b"durable");
        // Every current byte from the first changed offset on: "Durable+tail" is 12 bytes.
        assert_eq!(r.bytes_discarded, 12);
        assert_eq!((r.objects_vanished, r.objects_restored), (0, 0));
    }

    #[test]
    fn powerfs_tree_truncate_is_durable_only_after_fsync() {
        let mut t = tree();
        let a = file(&mut t, ROOT, "a", b"0123456789");
        t.fsync(a).unwrap();
        t.set_size(a, 3).unwrap();
        t.cut();
        assert_eq!(content(&t, ROOT, "a").unwrap(), b"0123456789");
        t.set_size(a, 3).unwrap();
        t.write(a, 5, b"x").unwrap();
        t.fsync(a).unwrap();
        t.cut();
        assert_eq!(content(&t, ROOT, "a").unwrap(), b"012\0\0x");
    }

    #[test]
    fn powerfs_tree_new_file_entry_follows_its_fsync_but_not_its_directory() {
        let mut t = tree();
        let d = t
            .mkdir(ROOT, OsStr::new("d"), Meta::new(0o755, 0, 0))
            .unwrap();
        let inner = file(&mut t, d, "inner", b"lost with d");
        t.fsync(inner).unwrap();
        let top = file(&mut t, ROOT, "top", b"kept");
        t.fsync(top).unwrap();
        let r = t.cut();
        assert_eq!(content(&t, ROOT, "top").unwrap(), b"kept");
        assert!(
            t.lookup(ROOT, OsStr::new("d")).is_err(),
            "d was never fsynced"
        );
        assert_eq!(r.objects_vanished, 2, "d and d/inner");
        assert!(!t.nodes.contains_key(&inner));
    }

    #[test]
    fn powerfs_tree_gc_keeps_what_a_cut_would_restore() {
        let mut t = tree();
        let a = file(&mut t, ROOT, "a", b"x");
        t.fsync(a).unwrap();
        t.unlink(ROOT, OsStr::new("a")).unwrap();
        assert!(t.nodes.contains_key(&a), "still durably linked");
        t.fsyncdir(ROOT).unwrap();
        assert!(!t.nodes.contains_key(&a), "no view reaches it");
    }
}
