//! The config file watcher.
//!
//! It watches each config file's directory, not the file: editors save by renaming a new
//! file over the old one, and Kubernetes updates a mounted ConfigMap by swapping the
//! `..data` symlink, neither of which a watch on the file itself survives. Any event in the
//! directory starts a trailing debounce; when it ends, the watched files' content is
//! compared with what was last seen, and only a real change triggers a reload.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::{ReloadOrchestrator, ReloadTrigger};
use crate::error::Error;

/// A running watcher; dropping it stops watching.
pub struct ConfigWatcher {
    _watcher: notify::RecommendedWatcher,
    directories: Vec<PathBuf>,
}

impl std::fmt::Debug for ConfigWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatcher")
            .field("directories", &self.directories)
            .finish()
    }
}

/// A fingerprint of the files' current content (a missing file counts as empty and absent).
pub fn content_fingerprint(files: &[PathBuf]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for file in files {
        // `read` follows symlinks, so a swapped `..data` link shows its new target's content.
        match std::fs::read(file) {
            Ok(bytes) => {
                1u8.hash(&mut hasher);
                bytes.hash(&mut hasher);
            }
            Err(_) => 0u8.hash(&mut hasher),
        }
    }
    hasher.finish()
}

fn directory_of(file: &Path) -> PathBuf {
    let absolute = if file.is_absolute() {
        file.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(file))
            .unwrap_or_else(|_| file.to_path_buf())
    };
    absolute
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

impl ConfigWatcher {
    /// Starts watching `files` and asking `orchestrator` for a reload after each change
    /// (trailing `debounce`). The debounce task is owned by the orchestrator's tracker.
    pub fn start(
        files: Vec<PathBuf>,
        debounce: Duration,
        orchestrator: ReloadOrchestrator,
    ) -> Result<Self, Error> {
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Every event counts: never filter by the config file's name (see module docs).
                if event.is_ok() {
                    let _ = tx.send(());
                }
            })
            .map_err(|e| Error::Watch {
                path: files
                    .first()
                    .map(|f| f.display().to_string())
                    .unwrap_or_default(),
                message: e.to_string(),
            })?;
        let directories: BTreeSet<PathBuf> = files.iter().map(|f| directory_of(f)).collect();
        // An optional file in a directory that does not exist (yet) is not watched; the other
        // files still are.
        let directories: BTreeSet<PathBuf> = directories
            .into_iter()
            .filter(|dir| {
                let exists = dir.is_dir();
                if !exists {
                    tracing::warn!(directory = %dir.display(), "config directory does not exist; not watched");
                }
                exists
            })
            .collect();
        for dir in &directories {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| Error::Watch {
                    path: dir.display().to_string(),
                    message: e.to_string(),
                })?;
        }
        let cancel = orchestrator.cancellation().clone();
        let tasks = orchestrator.tasks().clone();
        // The content the running config was loaded from, so an edit made while the modules
        // were starting is not mistaken for the baseline.
        let mut last = orchestrator
            .store()
            .loaded_fingerprint()
            .unwrap_or_else(|| content_fingerprint(&files));
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    event = rx.recv() => if event.is_none() { return },
                }
                // Trailing debounce: wait until the directory has been quiet for `debounce`, but
                // no longer than `max_wait` in all, so a file written continuously next to the
                // config (a log, a database) cannot postpone the reload forever.
                let max_wait =
                    tokio::time::sleep(debounce.saturating_mul(4).max(Duration::from_secs(1)));
                tokio::pin!(max_wait);
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(debounce) => break,
                        _ = &mut max_wait => break,
                        event = rx.recv() => if event.is_none() { return },
                    }
                }
                let now = content_fingerprint(&files);
                if now == last {
                    continue;
                }
                last = now;
                tracing::info!("config file changed; reloading");
                let outcome = orchestrator.reload(ReloadTrigger::File).await;
                tracing::debug!(
                    status = outcome.status.as_str(),
                    version = outcome.version,
                    "file reload finished"
                );
            }
        });
        Ok(Self {
            _watcher: watcher,
            directories: directories.into_iter().collect(),
        })
    }

    /// The directories being watched.
    pub fn directories(&self) -> &[PathBuf] {
        &self.directories
    }
}
