use modular_core::DynamicConfig;
use serde::Serialize;

#[derive(PartialEq, Serialize)]
struct RetryConfig {
    max_attempts: u32,
}

#[derive(PartialEq, Serialize, DynamicConfig)]
#[config(allow_unknown_fields)]
struct PoolConfig {
    #[config(dynamic)]
    max_conns: u32,
    #[config(nested)]
    retry: RetryConfig,
}

fn main() {}
