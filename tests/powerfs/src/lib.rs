//! PowerFs: an in-memory FUSE file system that forgets, when the "power" is cut, every change
//! that was not made durable — the test bed of Tally's power-loss test
//! (`host/tests/power_loss.rs`), which runs the real `tally node` on it.
//!
//! Every object has two views: what is *current* (what reads, `stat` and `readdir` see) and
//! what is *durable* (what survives [`PowerFs::cut`]).
//!
//! ## The contract
//!
//! - **File data and size** (`write` at any offset, appends, truncation or extension through
//!   `setattr`) become durable only when *that file* is fsynced (`fsync` or `fdatasync`).
//! - **Directory entries** (create, mkdir, rename, unlink, rmdir) become durable only when the
//!   directory holding them is fsynced (`fsync` of a directory fd, which the kernel sends as
//!   `fsyncdir`). One exception, as ext4 does it: fsyncing a file that no durable entry
//!   names yet (a new file) also makes its current entry durable. Only its own entry: the
//!   directories above it stay as durable as they were. A rename or an unlink needs the
//!   fsync of the directory (both directories, for a rename across two).
//! - [`PowerFs::cut`] discards every change that is not durable: each file goes back to its
//!   durable bytes, each directory to its durable entries, and every object that no durable
//!   entry reaches from the root (never durably linked, or only through a directory that
//!   was not) vanishes. An unlink or rename undone brings back the file it had removed or
//!   replaced, with its durable bytes.
//! - Not versioned: permissions, owners and times (kept as they are now). Hard links,
//!   symbolic links, special files and extended attributes are not supported. `flock` and
//!   POSIX locks are the kernel's own (local to this machine, never refused).
//!
//! This is stricter than real file systems in one way: a new file that is not fsynced comes
//! back empty even if its directory was fsynced (ext4 with `data=ordered` would often have
//! written it). That is the point: the test must fail whenever durability rests on luck.
//!
//! ## Use
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! let fs = tally_powerfs::PowerFs::new();
//! let dir = tempfile::tempdir()?;
//! let mounted = fs.mount(dir.path())?;
//! std::fs::write(dir.path().join("a"), b"not fsynced")?;
//! mounted.unmount()?; // the kernel must not keep stale names, sizes or pages
//! let report = fs.cut();
//! assert_eq!(report.objects_vanished, 1);
//! let _mounted = fs.mount(dir.path())?;
//! assert!(!dir.path().join("a").exists());
//! # Ok(()) }
//! ```
//!
//! The kernel is told to cache nothing of ours (entries and attributes live zero seconds,
//! files are opened with `direct_io`, no writeback cache), so every write reaches this
//! process before the `write` call returns. A cut while mounted is allowed, but a process
//! holding files open keeps writing to them; the faithful power cut is: stop the writers,
//! unmount, cut, mount again — what the power-loss test does.
//!
//! Mounting needs `/dev/fuse` and either root (the `mount` syscall) or `fusermount3`
//! (Debian's `fuse3`); it is the pure-Rust mount path of `fuser`, without libfuse.

mod fuse;
mod tree;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// What one [`PowerFs::cut`] discarded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Current bytes lost: of each file that survives, every byte from the first offset
    /// changed since its last fsync; of each file that vanishes, all of them.
    pub bytes_discarded: u64,
    /// Directory entries whose current and durable views differed (created, removed or
    /// renamed without the directory's fsync).
    pub entries_reverted: u64,
    /// Files and directories the root reached before the cut and no longer does.
    pub objects_vanished: u64,
    /// Files and directories the root reaches again (unlinks and renames undone).
    pub objects_restored: u64,
}

/// What the file system has done since it was made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// `fsync`/`fdatasync` of files.
    pub fsyncs: u64,
    /// `fsync` of directories.
    pub fsyncdirs: u64,
    /// Power cuts.
    pub cuts: u64,
    /// `write` requests.
    pub writes: u64,
    /// Bytes those wrote.
    pub bytes_written: u64,
    /// Files created.
    pub creates: u64,
    /// Directories created.
    pub mkdirs: u64,
    /// Files removed.
    pub unlinks: u64,
    /// Directories removed.
    pub rmdirs: u64,
    /// Renames.
    pub renames: u64,
    /// Bytes discarded by every cut together.
    pub bytes_discarded: u64,
    /// What the last cut discarded.
    pub last_cut: CutReport,
}

#[derive(Debug)]
struct Shared {
    tree: Arc<Mutex<tree::Tree>>,
    mounted: AtomicBool,
}

/// The file system: its contents outlive each mount. Clones share it.
#[derive(Clone, Debug)]
pub struct PowerFs {
    shared: Arc<Shared>,
}

impl Default for PowerFs {
    fn default() -> Self {
        Self::new()
    }
}

impl PowerFs {
    /// An empty file system (its root is durable, with no entries).
    pub fn new() -> Self {
        let tree = tree::Tree::new(tree::Meta::new(0o755, 0, 0));
        Self {
            shared: Arc::new(Shared {
                tree: Arc::new(Mutex::new(tree)),
                mounted: AtomicBool::new(false),
            }),
        }
    }

    fn tree(&self) -> MutexGuard<'_, tree::Tree> {
        self.shared
            .tree
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Mounts it on the existing directory `path` (served by a background thread) until the
    /// returned [`Mounted`] is unmounted or dropped. The root takes the owner and permissions
    /// of `path`. One mount at a time.
    ///
    /// # Errors
    /// Already mounted, `path` unusable, or the mount itself failed (no `/dev/fuse`, not root
    /// and no `fusermount3`): the message says which and where.
    pub fn mount(&self, path: impl AsRef<Path>) -> io::Result<Mounted> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let path = path.as_ref();
        let context = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!(
                    "mounting PowerFs on {}: {e} (needs /dev/fuse, and root or fusermount3 \
                     from Debian's fuse3)",
                    path.display()
                ),
            )
        };
        let meta = std::fs::metadata(path).map_err(context)?;
        if self.shared.mounted.swap(true, Ordering::SeqCst) {
            return Err(context(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "this PowerFs is already mounted",
            )));
        }
        let perm = u16::try_from(meta.permissions().mode() & 0o7777).unwrap_or(0o755);
        self.tree()
            .set_root_meta(tree::Meta::new(perm, meta.uid(), meta.gid()));
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("powerfs".into()),
            fuser::MountOption::Subtype("powerfs".into()),
        ];
        let fs = fuse::FuseFs {
            tree: Arc::clone(&self.shared.tree),
        };
        match fuser::spawn_mount(fs, path, &config) {
            Ok(session) => Ok(Mounted {
                session: Some(session),
                path: path.to_path_buf(),
                fs: self.clone(),
            }),
            Err(e) => {
                self.shared.mounted.store(false, Ordering::SeqCst);
                Err(context(e))
            }
        }
    }

    /// Cuts the power: discards every change that is not durable (see the crate docs) and
    /// says what went.
    pub fn cut(&self) -> CutReport {
        self.tree().cut()
    }

    /// What it has done so far.
    pub fn stats(&self) -> Stats {
        self.tree().stats()
    }
}

/// A mounted [`PowerFs`]; unmounts on drop.
#[derive(Debug)]
pub struct Mounted {
    session: Option<fuser::BackgroundSession>,
    path: PathBuf,
    fs: PowerFs,
}

impl Mounted {
    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts and waits for the serving thread to end.
    ///
    /// # Errors
    /// The unmount failed (busy: a process still has files open there); the drop that
    /// follows then detaches it lazily.
    pub fn unmount(mut self) -> io::Result<()> {
        self.unmount_now()
    }

    fn unmount_now(&mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let result = session.umount_and_join();
        self.fs.shared.mounted.store(false, Ordering::SeqCst);
        result.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("unmounting PowerFs from {}: {e}", self.path.display()),
            )
        })
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_now() {
            eprintln!("{e}; detaching it lazily");
            if let Err(e) = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH) {
                eprintln!("lazy unmount of {}: {e}", self.path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests;
