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

/// An application running the module over `masker`, its section `section`, with the
/// module's events at hand.
pub struct App {
    pub app: modular_core::Application,
    pub masker: Masker,
    pub events: modular_core::events::EventStream,
}

pub async fn start(section: Value, masker: &Masker) -> anyhow::Result<App> {
    start_with(section, masker, false).await
}

pub async fn start_with(section: Value, masker: &Masker, tripwire: bool) -> anyhow::Result<App> {
    let mut app = build(section, masker, tripwire).await?;
    app.start().await?;
    let events = app
        .events()
        .subscribe(modular_core::events::EventFilter::prefix(
            "com.modular.logmasker.",
        ));
    Ok(App {
        app,
        masker: masker.clone(),
        events,
    })
}

pub async fn build(
    section: Value,
    masker: &Masker,
    tripwire: bool,
) -> Result<modular_core::Application, modular_core::Error> {
    let mut builder = modular_testkit::test_builder()
        .config_defaults(serde_json::json!({ "logmasker": section }))
        .module(modular_logmasker::LogMaskerModule::with_masker(
            masker.clone(),
        ));
    if tripwire {
        builder = builder.module(modular_testkit::conformance::Tripwire::after("logmasker"));
    }
    builder.build().await
}

impl App {
    /// The data of every `com.modular.logmasker.<ty>` event received so far.
    pub fn events_of(&mut self, ty: &str) -> Vec<Value> {
        use cloudevents::AttributesReader as _;
        let full = format!("com.modular.logmasker.{ty}");
        self.events
            .drain()
            .iter()
            .filter(|e| e.ty() == full)
            .map(|e| {
                modular_core::events::event_data(e)
                    .cloned()
                    .unwrap_or(Value::Null)
            })
            .collect()
    }

    /// The module's health report, freshly checked.
    pub async fn health(&self) -> modular_core::health::HealthReport {
        let health = self.app.health().expect("health aggregator");
        let answer = health.force_refresh().await;
        answer
            .reports
            .iter()
            .find(|r| r.module == "logmasker")
            .cloned()
            .expect("a logmasker report")
    }

    /// What `f` logs through the masker's text layer.
    pub fn log(&self, f: impl FnOnce()) -> String {
        text_with(&self.masker, f)
    }

    pub async fn finish(mut self) -> anyhow::Result<()> {
        self.app.stop().await?;
        Ok(())
    }
}
