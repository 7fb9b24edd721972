//! The compiled-component cache: precompiled artefacts on disk, so a
//! restart does not compile every component again.
//!
//! Loading an artefact runs it as native code inside the server, so the
//! cache trusts nothing it cannot prove it wrote itself:
//! - the directory belongs to this user and has mode 0700 (created so; one
//!   of ours that is open to others is tightened; anyone else's is not
//!   used at all);
//! - a file is read only if it is a regular file owned by this user;
//! - every artefact starts with an HMAC-SHA-256 tag over its name and its
//!   bytes, keyed by 32 random bytes kept in the directory's `key` file
//!   (mode 0600). An artefact whose tag does not verify is ignored, and the
//!   component is compiled again.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The key's file in the cache directory.
const KEY_FILE: &str = "key";
const KEY_LEN: usize = 32;
/// An HMAC-SHA-256 tag.
const TAG_LEN: usize = 32;

/// A cache directory that passed the checks, and its key.
pub struct ComponentCache {
    dir: PathBuf,
    key: hmac::Key,
}

/// Why a cache directory is not used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot create {dir}: {source}")]
    Create {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{dir} is not a directory")]
    NotDirectory { dir: PathBuf },
    #[error("{dir} belongs to uid {owner}, not to this user (uid {uid})")]
    NotOwner { dir: PathBuf, owner: u32, uid: u32 },
    #[error("cannot make {dir} private (mode 0700): {source}")]
    Permissions {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read or create the cache key {path}: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ComponentCache {
    /// Opens `dir`, creating it (mode 0700) and its key if missing.
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        let create = |source| CacheError::Create {
            dir: dir.to_owned(),
            source,
        };
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(create)?;
        }
        match DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(create(e)),
        }
        // Not followed: a symbolic link could point anywhere.
        let meta = fs::symlink_metadata(dir).map_err(create)?;
        if !meta.is_dir() {
            return Err(CacheError::NotDirectory {
                dir: dir.to_owned(),
            });
        }
        let uid = rustix::process::geteuid().as_raw();
        if meta.uid() != uid {
            return Err(CacheError::NotOwner {
                dir: dir.to_owned(),
                owner: meta.uid(),
                uid,
            });
        }
        if meta.mode() & 0o077 != 0 {
            tracing::warn!(
                "compiled-component cache {} was open to other users (mode {:o}); making it 0700",
                dir.display(),
                meta.mode() & 0o777
            );
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
                CacheError::Permissions {
                    dir: dir.to_owned(),
                    source,
                }
            })?;
        }
        let key_path = dir.join(KEY_FILE);
        let key = read_or_create_key(&key_path, uid).map_err(|source| CacheError::Key {
            path: key_path,
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
        })
    }

    /// The artefact stored under `name`, if this user wrote it and its tag
    /// verifies.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        let path = self.dir.join(name);
        let bytes = read_own_file(&path, rustix::process::geteuid().as_raw()).ok()?;
        if bytes.len() < TAG_LEN {
            return None;
        }
        let (tag, artefact) = bytes.split_at(TAG_LEN);
        match hmac::verify(&self.key, &signed(name, artefact), tag) {
            Ok(()) => Some(artefact.to_vec()),
            Err(_) => {
                tracing::warn!(
                    "ignoring {}: its authentication tag does not verify",
                    path.display()
                );
                None
            }
        }
    }

    /// Stores `artefact` under `name` with its tag; a failure only costs a
    /// compile on the next start.
    pub fn put(&self, name: &str, artefact: &[u8]) {
        let tag = hmac::sign(&self.key, &signed(name, artefact));
        let path = self.dir.join(name);
        // Write then rename, so a concurrent reader never sees half a file.
        let partial = self.dir.join(format!("{name}.{}.tmp", std::process::id()));
        let written = private_file(&partial).and_then(|mut file| {
            file.write_all(tag.as_ref())?;
            file.write_all(artefact)
        });
        if written.and_then(|()| fs::rename(&partial, &path)).is_err() {
            let _ = fs::remove_file(&partial);
        }
    }
}

/// What a tag covers: the file's name (an artefact cannot pass for
/// another component's) and the artefact.
fn signed(name: &str, artefact: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(name.len() + 1 + artefact.len());
    message.extend_from_slice(name.as_bytes());
    message.push(0);
    message.extend_from_slice(artefact);
    message
}

/// A new file only this user may read or write; fails if it exists.
fn private_file(path: &Path) -> io::Result<fs::File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// The contents of a regular file owned by `uid`, and only by it writable.
fn read_own_file(path: &Path, uid: u32) -> io::Result<Vec<u8>> {
    let file = fs::File::open(path)?;
    // The metadata of what was opened, not of whatever the path names now.
    let meta = file.metadata()?;
    if !meta.is_file() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "not a private file of this user",
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    io::Read::read_to_end(&mut &file, &mut bytes)?;
    Ok(bytes)
}

/// The cache key: read if it is a private file of ours of the right
/// size; otherwise replaced by a new random one (which orphans every
/// artefact tagged with the old).
fn read_or_create_key(path: &Path, uid: u32) -> io::Result<[u8; KEY_LEN]> {
    let valid = |bytes: &[u8]| <[u8; KEY_LEN]>::try_from(bytes).ok();
    if let Some(key) = read_private(path, uid)?.as_deref().and_then(valid) {
        return Ok(key);
    }
    let _ = fs::remove_file(path);
    let mut key = [0; KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| io::Error::other("no random bytes from the system"))?;
    // Written whole under another name, then linked: another process
    // starting now sees either no key or a complete one.
    let partial = path.with_extension(format!("{}.tmp", std::process::id()));
    let _ = fs::remove_file(&partial);
    private_file(&partial)?.write_all(&key)?;
    let linked = fs::hard_link(&partial, path);
    let _ = fs::remove_file(&partial);
    match linked {
        Ok(()) => Ok(key),
        // Another process won: use its key.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_private(path, uid)?
            .as_deref()
            .and_then(valid)
            .ok_or_else(|| io::Error::other("another process wrote an invalid key")),
        Err(e) => Err(e),
    }
}

/// A file's contents if it is a regular file of `uid` that no one else may
/// read or write; `None` if it is missing or not such a file.
fn read_private(path: &Path, uid: u32) -> io::Result<Option<Vec<u8>>> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
        Ok(meta) if !meta.is_file() || meta.uid() != uid || meta.mode() & 0o077 != 0 => {
            tracing::warn!(
                "replacing {}: not a private file of this user",
                path.display()
            );
            return Ok(None);
        }
        Ok(_) => {}
    }
    match read_own_file(path, uid) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn creates_a_private_directory_and_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/components");
        let cache = ComponentCache::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        assert_eq!(fs::read(dir.join(KEY_FILE)).unwrap().len(), KEY_LEN);
        cache.put("x.cwasm", b"artefact");
        assert_eq!(mode(&dir.join("x.cwasm")), 0o600);
        assert_eq!(cache.get("x.cwasm").as_deref(), Some(&b"artefact"[..]));
        assert_eq!(cache.get("y.cwasm"), None);
        // The key stays: a second process trusts the first one's files.
        let again = ComponentCache::open(&dir).unwrap();
        assert_eq!(again.get("x.cwasm").as_deref(), Some(&b"artefact"[..]));
    }

    #[test]
    fn an_open_directory_of_ours_is_made_private() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o777)).unwrap();
        ComponentCache::open(tmp.path()).unwrap();
        assert_eq!(mode(tmp.path()), 0o700);
    }

    #[test]
    fn forged_or_moved_artefacts_are_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ComponentCache::open(tmp.path()).unwrap();
        cache.put("a.cwasm", b"genuine code");
        let genuine = fs::read(tmp.path().join("a.cwasm")).unwrap();
        // Same tag, other bytes.
        let mut forged = genuine.clone();
        forged[TAG_LEN..].copy_from_slice(b"evil code!!!");
        fs::write(tmp.path().join("a.cwasm"), &forged).unwrap();
        assert_eq!(cache.get("a.cwasm"), None);
        // A genuine artefact under another component's name.
        fs::write(tmp.path().join("b.cwasm"), &genuine).unwrap();
        assert_eq!(cache.get("b.cwasm"), None);
        // Tagged with another cache's key.
        let other = tempfile::tempdir().unwrap();
        ComponentCache::open(other.path())
            .unwrap()
            .put("a.cwasm", b"evil code!!!");
        fs::copy(other.path().join("a.cwasm"), tmp.path().join("a.cwasm")).unwrap();
        assert_eq!(cache.get("a.cwasm"), None);
        // Too short to hold a tag.
        fs::write(tmp.path().join("a.cwasm"), b"short").unwrap();
        assert_eq!(cache.get("a.cwasm"), None);
    }

    #[test]
    fn a_key_others_could_read_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ComponentCache::open(tmp.path()).unwrap();
        cache.put("a.cwasm", b"code");
        let key = tmp.path().join(KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let reopened = ComponentCache::open(tmp.path()).unwrap();
        assert_eq!(mode(&key), 0o600);
        // A new key: the old artefacts no longer verify.
        assert_eq!(reopened.get("a.cwasm"), None);
    }

    /// Needs root, to hand files to another user.
    #[test]
    fn files_and_directories_of_other_users_are_not_used() {
        if rustix::process::geteuid().as_raw() != 0 {
            eprintln!("skipped: needs root to chown");
            return;
        }
        let nobody = 65534;
        let tmp = tempfile::tempdir().unwrap();
        let cache = ComponentCache::open(tmp.path()).unwrap();
        cache.put("a.cwasm", b"code");
        let file = tmp.path().join("a.cwasm");
        std::os::unix::fs::chown(&file, Some(nobody), None).unwrap();
        assert_eq!(cache.get("a.cwasm"), None);
        // Group- or world-writable, though ours.
        std::os::unix::fs::chown(&file, Some(0), None).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(cache.get("a.cwasm"), None);

        let theirs = tmp.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(nobody), None).unwrap();
        let e = ComponentCache::open(&theirs).err().unwrap();
        assert!(
            matches!(e, CacheError::NotOwner { owner: 65534, .. }),
            "{e}"
        );
        // Nor a symbolic link to a directory, even one of ours.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path(), &link).unwrap();
        let e = ComponentCache::open(&link).err().unwrap();
        assert!(matches!(e, CacheError::NotDirectory { .. }), "{e}");
    }
}
