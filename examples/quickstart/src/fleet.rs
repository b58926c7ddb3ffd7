//! `--features fleet`: the service's keys in a NATS JetStream key-value bucket, layered over
//! the config file and watched (see the `modular-config-nats` crate).

use std::path::Path;

use modular_config_nats::{FleetModule, NatsKv, NatsKvOptions};
use modular_core::ApplicationBuilder;

/// Adds the bucket layer and the fleet module when `QUICKSTART_FLEET_URL` is set.
pub(crate) async fn layer(
    builder: ApplicationBuilder,
    data_dir: &Path,
) -> anyhow::Result<ApplicationBuilder> {
    let Ok(url) = std::env::var("QUICKSTART_FLEET_URL") else {
        return Ok(builder);
    };
    let bucket = std::env::var("QUICKSTART_FLEET_BUCKET").unwrap_or_else(|_| "config".to_owned());
    let service =
        std::env::var("QUICKSTART_FLEET_SERVICE").unwrap_or_else(|_| "quickstart".to_owned());
    let options =
        NatsKvOptions::new(url, bucket, service).cache_path(data_dir.join("fleet-cache.json"));
    tracing::info!(url = %options.redacted_url(), bucket = %options.bucket, service = %options.service, "fleet config");
    let kv = NatsKv::connect(options).await?;
    Ok(builder
        .config_remote(kv.clone())
        .module(FleetModule::new(kv)))
}
