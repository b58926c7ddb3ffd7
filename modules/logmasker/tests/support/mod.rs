//! Shared fixtures: a captured writer, a subscriber masking into it, and an application
//! running the module.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use modular_logmasker::{LogMaskerConfig, MaskRule, Masker};
use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;

/// Every byte written to it, shared by its clones; it fails its writes while `failing`.
#[derive(Clone, Default)]
pub struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    failing: Arc<AtomicBool>,
}

impl Capture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }

    pub fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

pub struct CaptureWriter(Capture);

impl io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.failing.load(Ordering::SeqCst) {
            return Err(io::Error::other("the disk is full"));
        }
        self.0
            .bytes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(self.clone())
    }
}

/// The default config plus `rules` first.
pub fn config(rules: Vec<MaskRule>) -> LogMaskerConfig {
    LogMaskerConfig {
        rules,
        ..LogMaskerConfig::default()
    }
}

/// What `f` logs, through the masked text layer of a masker over `config`.
pub fn text(config: &LogMaskerConfig, f: impl FnOnce()) -> String {
    let masker = Masker::from_config(config).unwrap();
    text_with(&masker, f)
}

pub fn text_with(masker: &Masker, f: impl FnOnce()) -> String {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(masker.layer(capture.clone()));
    tracing::subscriber::with_default(subscriber, f);
    capture.text()
}

/// What `f` logs, through the masked JSON layer, one value per line.
pub fn json(config: &LogMaskerConfig, f: impl FnOnce()) -> Vec<Value> {
    let masker = Masker::from_config(config).unwrap();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(masker.json_layer(capture.clone()));
    tracing::subscriber::with_default(subscriber, f);
    capture
        .lines()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The same config with the opt-in IP patterns on.
pub fn with_ips(mut config: LogMaskerConfig) -> LogMaskerConfig {
    use modular_logmasker::{Builtin, Strategy};
    config
        .rules
        .push(MaskRule::builtin(Builtin::Ipv4, Strategy::Redact));
    config
        .rules
        .push(MaskRule::builtin(Builtin::Ipv6, Strategy::Redact));
    config
}
