use modular_core::DynamicConfig;
use serde::Serialize;

#[derive(PartialEq, Serialize, DynamicConfig)]
#[config(allow_unknown_fields)]
struct Common {
    timeout_ms: u64,
}

#[derive(PartialEq, Serialize, DynamicConfig)]
#[config(allow_unknown_fields)]
struct PoolConfig {
    max_conns: u32,
    #[serde(flatten)]
    common: Common,
}

fn main() {}
