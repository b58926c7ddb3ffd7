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
use tokio_util::sync::CancellationToken;

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

/// The directory holding `file` (made absolute against the current directory): what a
/// watch must cover to see the file replaced by a rename or a symlink swap.
pub fn directory_of(file: &Path) -> PathBuf {
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

/// A watch on directories that a module reads files from (schemas, TLS material): each
/// event in one of them sends `()` on the queue given to [`watch_directories`]. Dropping it
/// stops the watch.
pub struct DirectoryWatch {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for DirectoryWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryWatch").finish_non_exhaustive()
    }
}

/// Watches `directories` (not recursively; the directory, not the file, so editors' atomic
/// saves and a mounted volume's `..data` symlink swap are seen). Each event sends `()` on
/// `events`, and an event that finds the queue full is dropped: give it one slot, which
/// already says "something changed", then read the files. A directory that cannot be
/// watched is logged (under `owner`) and skipped; `None` when the platform gives no
/// watcher at all.
pub fn watch_directories(
    directories: &[PathBuf],
    events: mpsc::Sender<()>,
    owner: &str,
) -> Option<DirectoryWatch> {
    let handler = move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = events.try_send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::warn!(module = owner, %error, "cannot watch files");
            return None;
        }
    };
    for dir in directories {
        if let Err(error) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(module = owner, dir = %dir.display(), %error, "cannot watch a directory");
        }
    }
    Some(DirectoryWatch { _watcher: watcher })
}

/// The sending side of the watcher's event queue, called on notify's own thread.
#[derive(Clone, Debug)]
pub(crate) struct EventSender(mpsc::Sender<()>);

impl EventSender {
    /// Says "something changed in a watched directory". The queue has one slot: an event
    /// that finds it full is dropped, and nothing is lost by that, since the slot already
    /// says so and the debounce then reads the files' content, not the events. A burst of
    /// any number of events holds one slot.
    pub(crate) fn notify(&self) {
        let _ = self.0.try_send(());
    }
}

/// The watcher's event queue (bounded: one slot, see [`EventSender::notify`]).
pub(crate) fn event_queue() -> (EventSender, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel(1);
    (EventSender(tx), rx)
}

/// Runs `on_quiet` after each burst of events, once the directory has been quiet for
/// `debounce` (trailing), but no later than `max(4 × debounce, 1 s)` after the burst began, so
/// a file written continuously next to the config (a log, a database) cannot postpone the
/// reload forever.
pub(crate) async fn debounced<F, Fut>(
    mut events: mpsc::Receiver<()>,
    debounce: Duration,
    cancel: CancellationToken,
    mut on_quiet: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            event = events.recv() => if event.is_none() { return },
        }
        let max_wait = tokio::time::sleep(debounce.saturating_mul(4).max(Duration::from_secs(1)));
        tokio::pin!(max_wait);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(debounce) => break,
                _ = &mut max_wait => break,
                event = events.recv() => if event.is_none() { return },
            }
        }
        on_quiet().await;
    }
}

impl ConfigWatcher {
    /// Starts watching `files` and asking `orchestrator` for a reload after each change
    /// (trailing `debounce`). The debounce task is owned by the orchestrator's tracker.
    pub fn start(
        files: Vec<PathBuf>,
        debounce: Duration,
        orchestrator: ReloadOrchestrator,
    ) -> Result<Self, Error> {
        let (tx, rx) = event_queue();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Every event counts: never filter by the config file's name (see module docs).
                if event.is_ok() {
                    tx.notify();
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
        let on_quiet = move || {
            let now = content_fingerprint(&files);
            let changed = now != last;
            last = now;
            let orchestrator = orchestrator.clone();
            async move {
                if !changed {
                    return;
                }
                tracing::info!("config file changed; reloading");
                let outcome = orchestrator.reload(ReloadTrigger::File).await;
                tracing::debug!(
                    status = outcome.status.as_str(),
                    version = outcome.version,
                    "file reload finished"
                );
            }
        };
        tasks.spawn(debounced(rx, debounce, cancel, on_quiet));
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::reload::ReloadOptions;

    /// Counts `on_quiet` calls of a debouncer over a fresh queue.
    fn counting(debounce: Duration) -> (EventSender, Arc<AtomicUsize>, CancellationToken) {
        let (tx, rx) = event_queue();
        let fired = Arc::new(AtomicUsize::new(0));
        let cancel = CancellationToken::new();
        let counter = Arc::clone(&fired);
        tokio::spawn(debounced(rx, debounce, cancel.clone(), move || {
            counter.fetch_add(1, Ordering::SeqCst);
            std::future::ready(())
        }));
        (tx, fired, cancel)
    }

    async fn settle() {
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_debounce_waits_250ms_after_the_last_event() {
        let (tx, fired, cancel) = counting(ReloadOptions::default().debounce);
        tx.notify();
        settle().await;
        tokio::time::sleep(Duration::from_millis(249)).await;
        settle().await;
        assert_eq!(fired.load(Ordering::SeqCst), 0, "no reload before 250 ms");
        tokio::time::sleep(Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(fired.load(Ordering::SeqCst), 1, "the reload at 250 ms");

        // Trailing: an event 200 ms into the window starts it again.
        tx.notify();
        settle().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.notify();
        settle().await;
        tokio::time::sleep(Duration::from_millis(249)).await;
        settle().await;
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(fired.load(Ordering::SeqCst), 2);
        cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn ten_thousand_events_hold_one_queue_slot_and_make_one_reload() {
        let (tx, rx) = event_queue();
        for _ in 0..10_000 {
            tx.notify();
        }
        assert_eq!(rx.len(), 1, "a burst holds one slot");
        let fired = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&fired);
        let cancel = CancellationToken::new();
        tokio::spawn(debounced(
            rx,
            Duration::from_millis(250),
            cancel.clone(),
            move || {
                counter.fetch_add(1, Ordering::SeqCst);
                std::future::ready(())
            },
        ));
        tokio::time::sleep(Duration::from_secs(5)).await;
        settle().await;
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        cancel.cancel();
    }
}
