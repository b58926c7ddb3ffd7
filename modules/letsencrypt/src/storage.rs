//! The storage directory: the account's credentials per directory URL and each certificate's
//! chain and key. The directory is 0700, every file 0600, every write goes to a temporary
//! file in the same directory that is synced and renamed over the old one, so a crash
//! leaves the old file or the new one, never half of either.
//!
//! ```text
//! <storage_dir>/accounts/<host>-<hash>.json     instant-acme's AccountCredentials
//! <storage_dir>/certificates/<name>/chain.pem   leaf first
//! <storage_dir>/certificates/<name>/key.pem     PKCS#8
//! ```

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The module's files under one directory.
#[derive(Clone, Debug)]
pub(crate) struct Storage {
    dir: PathBuf,
}

/// A certificate as stored: PEM chain and PEM key.
#[derive(Clone)]
pub(crate) struct StoredCertificate {
    pub(crate) chain_pem: String,
    pub(crate) key_pem: String,
}

impl std::fmt::Debug for StoredCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCertificate")
            .field("chain_pem_len", &self.chain_pem.len())
            .finish_non_exhaustive()
    }
}

/// Creates `dir` and its parents with mode 0700 (an existing directory is tightened to it).
pub(crate) fn ensure_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

impl Storage {
    /// The storage at `dir`, created 0700.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        ensure_dir(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The directory.
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The account file for `directory_url`.
    pub(crate) fn account_path(&self, directory_url: &str) -> PathBuf {
        let host: String = directory_url
            .trim_start_matches("https://")
            .chars()
            .take_while(|c| *c != '/')
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        // FNV-1a: stable across processes (the file must be found again after a restart).
        let hash = directory_url
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        self.dir
            .join("accounts")
            .join(format!("{host}-{:08x}.json", hash as u32))
    }

    /// The stored account credentials (JSON), if any.
    pub(crate) fn read_account(&self, directory_url: &str) -> io::Result<Option<String>> {
        read_optional(&self.account_path(directory_url))
    }

    /// Stores the account credentials (JSON).
    pub(crate) fn write_account(&self, directory_url: &str, json: &str) -> io::Result<()> {
        write_atomic(&self.account_path(directory_url), json.as_bytes())
    }

    fn certificate_dir(&self, name: &str) -> PathBuf {
        self.dir.join("certificates").join(name)
    }

    /// The chain file of certificate `name`.
    pub(crate) fn chain_path(&self, name: &str) -> PathBuf {
        self.certificate_dir(name).join("chain.pem")
    }

    /// The key file of certificate `name`.
    pub(crate) fn key_path(&self, name: &str) -> PathBuf {
        self.certificate_dir(name).join("key.pem")
    }

    /// Certificate `name`, when both files are there.
    pub(crate) fn read_certificate(&self, name: &str) -> io::Result<Option<StoredCertificate>> {
        let (Some(chain_pem), Some(key_pem)) = (
            read_optional(&self.chain_path(name))?,
            read_optional(&self.key_path(name))?,
        ) else {
            return Ok(None);
        };
        Ok(Some(StoredCertificate { chain_pem, key_pem }))
    }

    /// Stores certificate `name`: the key first, so a chain on disk always has its key (a key
    /// without its new chain is replaced at the next issuance; the pair is checked on load).
    pub(crate) fn write_certificate(
        &self,
        name: &str,
        certificate: &StoredCertificate,
    ) -> io::Result<()> {
        write_atomic(&self.key_path(name), certificate.key_pem.as_bytes())?;
        write_atomic(&self.chain_path(name), certificate.chain_pem.as_bytes())
    }
}

fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `path` (mode 0600) through a synced temporary file renamed over it.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let parent = path
        .parent()
        .ok_or_else(|| io::Error::other(format!("{} has no directory", path.display())))?;
    ensure_dir(parent)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = parent.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&aside)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&aside, path)?;
        // The rename is durable once the directory entry is.
        fs::File::open(parent)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&aside);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_directory_is_0700_and_files_0600_and_written_whole() {
        let root = tempfile::tempdir().unwrap();
        let storage = Storage::open(&root.path().join("acme")).unwrap();
        assert_eq!(mode(storage.dir()), 0o700);
        let stored = StoredCertificate {
            chain_pem: "chain".to_owned(),
            key_pem: "key".to_owned(),
        };
        storage.write_certificate("web", &stored).unwrap();
        storage
            .write_certificate(
                "web",
                &StoredCertificate {
                    chain_pem: "chain2".to_owned(),
                    key_pem: "key2".to_owned(),
                },
            )
            .unwrap();
        assert_eq!(mode(&storage.key_path("web")), 0o600);
        assert_eq!(mode(&storage.chain_path("web")), 0o600);
        let read = storage.read_certificate("web").unwrap().unwrap();
        assert_eq!(
            (read.chain_pem.as_str(), read.key_pem.as_str()),
            ("chain2", "key2")
        );
        let leftovers: Vec<_> = fs::read_dir(storage.chain_path("web").parent().unwrap())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        assert!(storage.read_certificate("other").unwrap().is_none());
    }

    #[test]
    fn accounts_are_kept_per_directory_url() {
        let root = tempfile::tempdir().unwrap();
        let storage = Storage::open(root.path()).unwrap();
        storage
            .write_account("https://a.example/dir", "{}")
            .unwrap();
        assert!(
            storage
                .read_account("https://a.example/dir")
                .unwrap()
                .is_some()
        );
        assert!(
            storage
                .read_account("https://b.example/dir")
                .unwrap()
                .is_none()
        );
        assert_eq!(mode(&storage.account_path("https://a.example/dir")), 0o600);
    }
}
