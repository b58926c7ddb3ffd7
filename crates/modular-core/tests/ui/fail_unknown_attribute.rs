use modular_core::DynamicConfig;
use serde::Serialize;

#[derive(PartialEq, Serialize, DynamicConfig)]
#[config(allow_unknown_fields)]
struct PoolConfig {
    #[config(dynamic)]
    max_conns: u32,
    #[config(foo)]
    min_conns: u32,
}

fn main() {}
