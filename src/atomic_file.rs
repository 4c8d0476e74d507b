//! Writing a file so that no reader ever sees half of it: the one way archbuild writes layouts,
//! caches, reports, patches and `archbuild.toml`.
//!
//! Content goes to a temporary file created exclusively (`O_EXCL`, a random name) in the
//! target's own folder, is synced to disk and then renamed over the target, so a reader sees the
//! old file or the new one, never a mix; a failure at any step removes the temporary file.
//! After the rename the folder itself is synced, so that the new name survives a crash.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `target` atomically.
pub fn write(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(target, |file| file.write_all(bytes))
}

/// Writes to `target` atomically through `fill`, which receives the temporary file.
pub fn write_with(
    target: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let prefix = temp_prefix(target);
    let mut temp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(folder(target))?;
    fill(temp.as_file_mut())?;
    temp.as_file().sync_all()?;
    temp.persist(target).map_err(|e| e.error)?;
    sync_folder(folder(target))
}

/// Syncs a folder's entries to disk (the names created or renamed in it), as `fsync(2)` on
/// the folder does.
pub fn sync_folder(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Places a copy of `source` at `target` atomically: a hard link where both are on one file
/// system (no bytes copied), a copy otherwise.
pub fn place(source: &Path, target: &Path) -> std::io::Result<()> {
    let prefix = temp_prefix(target);
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(TEMP_SUFFIX);
    let temp = builder.make_in(folder(target), |path| {
        match std::fs::hard_link(source, path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                // Another file system (or no links there): an exclusive copy instead.
                let mut out = std::fs::File::create_new(path)?;
                let copied = std::fs::File::open(source)
                    .and_then(|mut input| std::io::copy(&mut input, &mut out))
                    .and_then(|_| out.sync_all());
                if copied.is_err() {
                    let _ = std::fs::remove_file(path);
                }
                copied
            }
            linked => linked,
        }
    })?;
    temp.persist(target).map_err(|e| e.error)?;
    Ok(())
}

const TEMP_SUFFIX: &str = ".tmp";

/// Temporary names are hidden and say which file they become: `.index.json.XXXXXX.tmp`.
fn temp_prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file");
    format!(".{name}.")
}

fn folder(target: &Path) -> &Path {
    target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn replaces_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("index.json");
        write(&target, b"old").unwrap();
        write(&target, b"new content").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new content");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_failing_writer_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("report.json");
        write(&target, b"old").unwrap();
        let err = write_with(&target, |f| {
            f.write_all(b"half")?;
            Err(std::io::Error::other("disk on fire"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn concurrent_writers_of_one_file_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("blob");
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| (0..50).try_for_each(|_| write(&target, b"same"))))
                .collect();
            for h in handles {
                h.join().unwrap().unwrap();
            }
        });
        assert_eq!(std::fs::read(&target).unwrap(), b"same");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn places_a_file_by_link_or_copy() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        std::fs::write(&source, b"blob bytes").unwrap();
        let target = dir.path().join("sha256-abc");
        place(&source, &target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"blob bytes");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_missing_folder_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("no/such/folder/file");
        assert!(write(&target, b"x").is_err());
    }
}
