//! The pools' TLS files, watched: a CA bundle or client certificate rotated on disk (by
//! cert-manager, a mounted Secret's `..data` swap, an editor's atomic save) gives its pool a
//! new client without a config reload.
//!
//! A `notify` watch on every directory that holds one of the files (the directory, not the
//! file, so renames and symlink swaps are seen), a trailing debounce, then the table is
//! rebuilt aside from the config it was built from: a pool whose files' content is unchanged
//! keeps its client and pooled connections (the TLS fingerprint), one whose content changed
//! gets a new client, and the table is swapped in the way a reload commits one. Files that
//! do not load (a half-written key, a bundle with no certificate) keep the running table and
//! degrade health until a good set arrives.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::ReverseProxyConfig;

/// How long the directories must stay quiet before the files are read: a rotation writes a
/// certificate and its key as two files, which must be read together.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(250);

/// The longest a burst of events puts the rebuild off, counted from its first event.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(1);

/// The directories holding `config`'s TLS files (none when watching is off).
pub(crate) fn directories(config: &ReverseProxyConfig) -> Vec<PathBuf> {
    if !config.watch_tls_files {
        return Vec::new();
    }
    let dirs: BTreeSet<PathBuf> = config.pools.values().flat_map(pool_directories).collect();
    dirs.into_iter().collect()
}

/// The directories holding one pool's TLS files.
pub(crate) fn pool_directories(pool: &crate::config::PoolConfig) -> Vec<PathBuf> {
    let Some(tls) = &pool.tls else {
        return Vec::new();
    };
    [&tls.ca_file, &tls.client_cert_file, &tls.client_key_file]
        .into_iter()
        .flatten()
        .map(|file| modular_core::reload::directory_of(file))
        .collect()
}

/// What the watcher needs of the module: the config the running table was built from, a
/// rebuild from the files as they are now, and a wake-up when another table is swapped in.
pub(crate) trait Rotate: Send + Sync + 'static {
    fn built_from(&self) -> Arc<ReverseProxyConfig>;
    fn rotate(&self);
    fn swapped(&self) -> tokio::sync::futures::Notified<'_>;
    /// The directories watched now (for health details).
    fn watching(&self, dirs: &[PathBuf]);
}

/// Runs until `cancel`: watches the directories of the running table's TLS files, re-arming
/// whenever a table is swapped in (its files may be others), and rebuilds after each quiet
/// period following a change.
pub(crate) async fn run<R: Rotate>(live: Arc<R>, cancel: tokio_util::sync::CancellationToken) {
    loop {
        let swapped = live.swapped();
        tokio::pin!(swapped);
        swapped.as_mut().enable();
        let dirs = directories(&live.built_from());
        let (events, mut changed) = mpsc::channel::<()>(1);
        let watcher = if dirs.is_empty() {
            None
        } else {
            modular_core::reload::watch_directories(&dirs, events, "reverseproxy")
        };
        live.watching(if watcher.is_some() { &dirs } else { &[] });
        // A file may have changed between the table's build and this watch (a reload's
        // prepare read them earlier); after the watcher's own rotation this finds nothing.
        if !dirs.is_empty() {
            live.rotate();
        }
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = &mut swapped => break,
                Some(()) = changed.recv() => {
                    if !quiet(&mut changed, &cancel).await {
                        return;
                    }
                    live.rotate();
                }
            }
        }
    }
}

/// Waits out a burst of events: until [`DEBOUNCE`] passes with none, but no longer than
/// [`MAX_WAIT`] (a file written on and on beside the TLS files, a log, cannot put the
/// rotation off for ever). False when cancelled.
async fn quiet(
    changed: &mut mpsc::Receiver<()>,
    cancel: &tokio_util::sync::CancellationToken,
) -> bool {
    let at_most = tokio::time::sleep(MAX_WAIT);
    tokio::pin!(at_most);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return false,
            () = tokio::time::sleep(DEBOUNCE) => return true,
            () = &mut at_most => return true,
            Some(()) = changed.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_waited_out_but_never_for_longer_than_max_wait() {
        let cancel = tokio_util::sync::CancellationToken::new();
        let (events, mut changed) = mpsc::channel(1);
        // Silence after the burst's first event: the debounce.
        let started = tokio::time::Instant::now();
        assert!(quiet(&mut changed, &cancel).await);
        assert_eq!(started.elapsed(), DEBOUNCE);
        // An event every 100 ms, for ever: cut at MAX_WAIT.
        let writer = tokio::spawn(async move {
            loop {
                let _ = events.try_send(());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let started = tokio::time::Instant::now();
        assert!(quiet(&mut changed, &cancel).await);
        assert_eq!(started.elapsed(), MAX_WAIT);
        cancel.cancel();
        assert!(!quiet(&mut changed, &cancel).await);
        writer.abort();
    }

    #[test]
    fn the_directories_of_every_pools_tls_files_are_watched_once() {
        let config: ReverseProxyConfig = serde_json::from_value(serde_json::json!({
            "routes": [{ "match": { "prefix": "/" }, "pool": "a" }],
            "pools": {
                "a": { "backends": [{ "url": "https://127.0.0.1:1" }],
                       "tls": { "ca_file": "/etc/tls/ca.pem",
                                "client_cert_file": "/etc/tls/client.pem",
                                "client_key_file": "/run/keys/client.key" } },
                "b": { "backends": [{ "url": "https://127.0.0.1:2" }],
                       "tls": { "ca_file": "/etc/tls/other-ca.pem" } },
                "c": { "backends": [{ "url": "http://127.0.0.1:3" }] },
            },
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            directories(&config),
            vec![PathBuf::from("/etc/tls"), PathBuf::from("/run/keys")]
        );
        let off = ReverseProxyConfig {
            watch_tls_files: false,
            ..config
        };
        assert!(directories(&off).is_empty());
    }
}
