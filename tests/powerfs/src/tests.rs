//! Tests through a real mount (they need `/dev/fuse` and root or `fusermount3`; a mount that
//! fails fails the test).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use super::*;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};

/// A mounted PowerFs on a temporary directory. `mounted` is declared first so that it is
/// dropped (unmounted) before the directory is removed, also when a test panics.
struct Fixture {
    mounted: Option<Mounted>,
    fs: PowerFs,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let fs = PowerFs::new();
        let dir = tempfile::tempdir().unwrap();
        let mounted = fs
            .mount(dir.path())
            .unwrap_or_else(|e| panic!("PowerFs must mount for this test: {e}"));
        Self {
            mounted: Some(mounted),
            fs,
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Unmount, cut, mount again.
    fn power_cut(&mut self) -> CutReport {
        self.mounted.take().unwrap().unmount().unwrap();
        let report = self.fs.cut();
        self.mounted = Some(self.fs.mount(self.dir.path()).unwrap());
        report
    }

    fn sync_dir(&self, name: &str) {
        File::open(self.path(name)).unwrap().sync_all().unwrap();
    }
}

fn write_synced(path: &Path, data: &[u8]) {
    let mut f = File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn powerfs_unsynced_writes_are_lost_at_a_cut() {
    let mut t = Fixture::new();
    fs::write(t.path("a"), b"never fsynced").unwrap();
    write_synced(&t.path("b"), b"v1;");
    let mut b = OpenOptions::new().append(true).open(t.path("b")).unwrap();
    b.write_all(b"v2;").unwrap();
    drop(b);
    t.sync_dir(""); // the entries of a and b are durable; a's bytes are not
    assert_eq!(fs::read(t.path("b")).unwrap(), b"v1;v2;");
    let report = t.power_cut();
    assert_eq!(fs::read(t.path("a")).unwrap(), b"", "a comes back empty");
    assert_eq!(fs::read(t.path("b")).unwrap(), b"v1;", "b loses its tail");
    assert_eq!(report.bytes_discarded, 13 + 3);
    assert_eq!((report.objects_vanished, report.entries_reverted), (0, 0));
    let stats = t.fs.stats();
    assert_eq!((stats.cuts, stats.fsyncs, stats.fsyncdirs), (1, 1, 1));
    assert_eq!(stats.bytes_discarded, 16);
}

#[test]
fn powerfs_fsynced_data_survives_a_cut() {
    let mut t = Fixture::new();
    let mut f = File::create(t.path("log")).unwrap();
    f.write_all(b"header").unwrap();
    f.write_all(b"-record1").unwrap();
    f.sync_data().unwrap();
    f.set_len(7).unwrap(); // truncation, then overwrite at an offset
    f.sync_all().unwrap();
    drop(f);
    let report = t.power_cut();
    assert_eq!(fs::read(t.path("log")).unwrap(), b"header-");
    assert_eq!(report, CutReport::default());
}

#[test]
fn powerfs_new_file_entry_is_durable_with_its_fsync_not_its_directory() {
    let mut t = Fixture::new();
    write_synced(&t.path("synced"), b"kept");
    fs::write(t.path("unsynced"), b"gone").unwrap();
    fs::create_dir(t.path("d")).unwrap();
    write_synced(&t.path("d/inner"), b"gone with d");
    let report = t.power_cut();
    assert_eq!(fs::read(t.path("synced")).unwrap(), b"kept");
    assert!(
        !t.path("unsynced").exists(),
        "never fsynced, nor its directory"
    );
    assert!(!t.path("d").exists(), "mkdir without fsync of the root");
    assert_eq!(report.objects_vanished, 3, "unsynced, d, d/inner");
    assert_eq!(report.bytes_discarded, 4 + 11);
    let mut names: Vec<String> = fs::read_dir(t.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["synced"]);

    // With the root fsynced, d survives, and so does its fsynced file.
    fs::create_dir(t.path("d")).unwrap();
    t.sync_dir("");
    write_synced(&t.path("d/inner"), b"kept too");
    t.power_cut();
    assert_eq!(fs::read(t.path("d/inner")).unwrap(), b"kept too");
}

#[test]
fn powerfs_rename_without_fsyncdir_is_undone() {
    let mut t = Fixture::new();
    write_synced(&t.path("IDENTITY"), b"old");
    t.sync_dir("");
    write_synced(&t.path("IDENTITY.tmp"), b"new");
    fs::rename(t.path("IDENTITY.tmp"), t.path("IDENTITY")).unwrap();
    assert_eq!(fs::read(t.path("IDENTITY")).unwrap(), b"new");
    // Fsyncing the renamed file is not enough: the directory holds the rename.
    File::open(t.path("IDENTITY")).unwrap().sync_all().unwrap();
    let report = t.power_cut();
    assert_eq!(fs::read(t.path("IDENTITY")).unwrap(), b"old");
    assert_eq!(fs::read(t.path("IDENTITY.tmp")).unwrap(), b"new");
    assert_eq!(
        report.entries_reverted, 2,
        "IDENTITY rebound, IDENTITY.tmp back"
    );
    assert_eq!(report.objects_restored, 1, "the replaced file");

    fs::rename(t.path("IDENTITY.tmp"), t.path("IDENTITY")).unwrap();
    t.sync_dir("");
    t.power_cut();
    assert_eq!(fs::read(t.path("IDENTITY")).unwrap(), b"new");
    assert!(!t.path("IDENTITY.tmp").exists());
}

#[test]
fn powerfs_unlink_without_fsyncdir_is_undone() {
    let mut t = Fixture::new();
    write_synced(&t.path("wal-1.log"), b"segment one");
    write_synced(&t.path("wal-2.log"), b"segment two");
    t.sync_dir("");
    fs::remove_file(t.path("wal-1.log")).unwrap();
    fs::remove_file(t.path("wal-2.log")).unwrap();
    t.sync_dir("");
    write_synced(&t.path("wal-3.log"), b"segment three");
    t.sync_dir("");
    fs::remove_file(t.path("wal-3.log")).unwrap();
    let report = t.power_cut();
    assert!(!t.path("wal-1.log").exists());
    assert!(!t.path("wal-2.log").exists());
    assert_eq!(fs::read(t.path("wal-3.log")).unwrap(), b"segment three");
    assert_eq!(report.objects_restored, 1);
    assert_eq!(t.fs.stats().unlinks, 3);
}

#[test]
fn powerfs_serves_what_the_wal_uses() {
    let t = Fixture::new();
    let dir = t.path("data");
    fs::create_dir_all(&dir).unwrap();
    // The lock file: flock must work (and exclude a second holder).
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("LOCK"))
        .unwrap();
    fs2::FileExt::try_lock_exclusive(&lock).unwrap();
    let other = File::open(dir.join("LOCK")).unwrap();
    assert!(fs2::FileExt::try_lock_exclusive(&other).is_err());
    // Appends through two opens, each landing at the end.
    let mut seg = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(dir.join("wal-1.log"))
        .unwrap();
    seg.write_all(&[7u8; 100_000]).unwrap();
    seg.sync_data().unwrap();
    drop(seg);
    let mut seg = OpenOptions::new()
        .append(true)
        .open(dir.join("wal-1.log"))
        .unwrap();
    seg.write_all(b"tail").unwrap();
    let mut back = Vec::new();
    File::open(dir.join("wal-1.log"))
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back.len(), 100_004);
    assert_eq!(&back[100_000..], b"tail");
    assert_eq!(fs::metadata(dir.join("wal-1.log")).unwrap().len(), 100_004);
    let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap()).collect();
    assert_eq!(names.len(), 2);
    fs::remove_dir(t.path("data")).unwrap_err();
}

#[test]
fn powerfs_mount_failures_are_errors() {
    let fs = PowerFs::new();
    let e = fs.mount("/nonexistent/powerfs/mountpoint").unwrap_err();
    assert!(e.to_string().contains("mounting PowerFs"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let mounted = fs.mount(dir.path()).unwrap();
    let e = fs.mount(other.path()).unwrap_err();
    assert!(e.to_string().contains("already mounted"), "{e}");
    mounted.unmount().unwrap();
    fs.mount(other.path()).unwrap().unmount().unwrap();
}
