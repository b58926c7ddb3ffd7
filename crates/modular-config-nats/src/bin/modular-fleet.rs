//! `modular-fleet`: put, read and watch a service's fleet configuration in a NATS JetStream
//! key-value bucket.
//!
//! ```text
//! modular-fleet [--url nats://127.0.0.1:4222] [--bucket config] put SERVICE FILE.yaml
//! modular-fleet set SERVICE PATH VALUE      # one YAML value at a dotted config path
//! modular-fleet unset SERVICE PATH
//! modular-fleet get SERVICE                 # every key of the service
//! modular-fleet status SERVICE              # every instance's latest ACK/NACK
//! ```
//! `MODULAR_FLEET_URL` and `MODULAR_FLEET_BUCKET` stand in for the flags.

use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: modular-fleet [--url URL] [--bucket BUCKET] (put SERVICE FILE | set SERVICE PATH VALUE | unset SERVICE PATH | get SERVICE | status SERVICE)";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("modular-fleet: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Vec<String>) -> Result<(), String> {
    modular_core::install_default_crypto_provider();
    let mut url =
        std::env::var("MODULAR_FLEET_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let mut bucket = std::env::var("MODULAR_FLEET_BUCKET").unwrap_or_else(|_| "config".to_owned());
    let mut rest = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--url" => url = args.next().ok_or(USAGE)?,
            "--bucket" => bucket = args.next().ok_or(USAGE)?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => rest.push(arg),
        }
    }
    let shown = modular_config_nats::ops::redact_url(&url);
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(3))
        .connect(url.as_str())
        .await
        .map_err(|e| format!("cannot connect to {shown}: {}", e.kind()))?;
    let js = async_nats::jetstream::new(client);
    let store = modular_config_nats::ops::open_bucket(&js, &bucket, 5)
        .await
        .map_err(|e| format!("cannot open bucket {bucket} at {shown}: {e}"))?;
    match rest
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["put", service, file] => {
            let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
            modular_core::config::parse_yaml(&text)
                .map_err(|e| format!("{file}: not YAML: {e}"))?;
            let revision = store
                .put(*service, text.into())
                .await
                .map_err(|e| e.to_string())?;
            println!("{service}: revision {revision}");
        }
        ["set", service, path, value] => {
            modular_core::config::parse_yaml(value).map_err(|e| format!("not YAML: {e}"))?;
            let revision = store
                .put(format!("{service}.{path}"), value.to_string().into())
                .await
                .map_err(|e| e.to_string())?;
            println!("{service}.{path}: revision {revision}");
        }
        ["unset", service, path] => {
            store
                .delete(format!("{service}.{path}"))
                .await
                .map_err(|e| e.to_string())?;
            println!("{service}.{path}: deleted");
        }
        ["get", service] => {
            let prefix = format!("{service}.");
            let keys = modular_config_nats::ops::list_keys(&store, |key| {
                key == *service || key.starts_with(&prefix)
            })
            .await
            .map_err(|e| e.to_string())?;
            for key in keys {
                if let Some(entry) = store.entry(key.as_str()).await.map_err(|e| e.to_string())? {
                    println!(
                        "{key} (revision {}): {}",
                        entry.revision,
                        String::from_utf8_lossy(&entry.value)
                    );
                }
            }
        }
        ["status", service] => {
            let statuses = modular_config_nats::ops::fleet_statuses(
                &store,
                service,
                Duration::from_secs(3600),
            )
            .await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&statuses).map_err(|e| e.to_string())?
            );
        }
        _ => return Err(USAGE.to_owned()),
    }
    Ok(())
}
