//! The few file operations the log needs, behind a trait: [`FsStorage`] (the real file system,
//! used everywhere) and [`SimStorage`](super::SimStorage) (in memory, for crash tests).

use std::any::Any;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Name of the lock file in the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// A file opened for appending.
pub trait StorageFile: Send + Debug {
    /// Appends all of `data` at the end of the file.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
}

/// What the log may be holding while the directory is locked; dropping it unlocks.
pub type LockGuard = Box<dyn Any + Send + Sync>;

/// File operations of the log. Paths are full paths; the log only touches its data directory.
pub trait Storage: Send + Sync + Debug {
    /// Creates `dir` (and its parents) if missing, durably: the parent of every directory it
    /// creates is synced, so a power cut cannot take a new data directory away with its log.
    /// Fails with `NotADirectory` if `dir` is a file.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Takes the exclusive lock of `dir` (its [`LOCK_FILE`]), writing and syncing it, which
    /// also proves the directory writable. Fails with `WouldBlock` if someone else holds it.
    fn lock(&self, dir: &Path) -> io::Result<LockGuard>;
    /// Names of the entries of `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole content of a file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Creates a new, empty file (failing if it exists) and opens it for appending. The new
    /// directory entry is durable only after [`Storage::sync_dir`].
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for appending.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Cuts a file to `len` bytes and makes that durable.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Removes a file; durable only after [`Storage::sync_dir`].
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` (creations, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system (`std::fs`).
#[derive(Clone, Copy, Debug, Default)]
pub struct FsStorage;

#[derive(Debug)]
struct FsFile(File);

/// The locked `LOCK` file. Dropping it unlocks explicitly: a child forked meanwhile by any
/// thread of the process shares the open file description until it execs, and merely closing
/// our descriptor would leave the lock held through its copy.
#[derive(Debug)]
struct FsLock(File);

impl Drop for FsLock {
    fn drop(&mut self) {
        let _ = fs2::FileExt::unlock(&self.0);
    }
}

impl StorageFile for FsFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        if let Ok(meta) = fs::metadata(dir) {
            if !meta.is_dir() {
                return Err(io::ErrorKind::NotADirectory.into());
            }
        }
        // The missing ancestors, outermost first.
        let mut missing = Vec::new();
        let mut at = Some(dir);
        while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            missing.push(d.to_path_buf());
            at = d.parent();
        }
        fs::create_dir_all(dir)?;
        for d in missing.iter().rev() {
            if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(parent)?.sync_all()?;
            }
        }
        Ok(())
    }

    fn lock(&self, dir: &Path) -> io::Result<LockGuard> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))?;
        // `flock(LOCK_EX | LOCK_NB)`; std's `File::try_lock` does the same but needs Rust 1.89,
        // above the workspace's MSRV. Fails with `WouldBlock` when held elsewhere.
        fs2::FileExt::try_lock_exclusive(&file)?;
        // Writing the pid and syncing proves, at start, that the directory takes writes.
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_all()?;
        Ok(Box::new(FsLock(file)))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(FsFile(file)))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Box::new(FsFile(file)))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}
