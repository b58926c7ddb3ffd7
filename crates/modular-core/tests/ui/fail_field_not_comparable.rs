use modular_core::DynamicConfig;
use serde::Serialize;

#[derive(Serialize)]
struct Endpoint {
    host: String,
}

#[derive(Serialize, DynamicConfig)]
#[config(allow_unknown_fields)]
struct PoolConfig {
    #[config(dynamic)]
    max_conns: u32,
    endpoint: Endpoint,
}

fn main() {}
