//! SIGHUP reloads the configuration. Its own test binary: the signal goes to this process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use modular_core::events::{AttributesReader, EventFilter, event_data};
use modular_core::reload::ReloadOptions;
use modular_core::{Application, BoxError, InitContext, Module};
use serde_json::json;
use support::reload::{Behaviour, Journal, ModuleConfig, Recorder};

struct Watched(Journal);

#[modular_core::async_trait]
impl Module for Watched {
    fn name(&self) -> &str {
        "hup"
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        ctx.config::<ModuleConfig>()?;
        ctx.register_reloadable(Recorder::new("hup", Behaviour::Succeed, &self.0));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_configuration() {
    let journal = Journal::default();
    let mut app = Application::builder()
        .env_prefix(None)
        .module(Watched(journal.clone()))
        .with_reload_options(ReloadOptions {
            watch_files: false,
            health_gate: false,
            ..ReloadOptions::default()
        })
        .handle_signals(true)
        .build()
        .await
        .unwrap();
    let mut events = app
        .events()
        .subscribe(EventFilter::exact("com.modular.config.reload.completed"));
    app.start().await.unwrap();
    // Change the sources without reloading, as an operator editing a file would.
    app.config()
        .set_overrides([("hup.level".to_owned(), json!(42))].into_iter().collect());

    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let event = tokio::time::timeout(Duration::from_secs(20), events.recv())
        .await
        .expect("a reload within 20 s")
        .unwrap();
    assert_eq!(event.ty(), "com.modular.config.reload.completed");
    assert_eq!(event_data(&event).unwrap()["trigger"], json!("signal"));
    assert_eq!(journal.calls()[0].level, Some(42));
    assert_eq!(app.config().version(), 2);
    app.stop().await.unwrap();
}
