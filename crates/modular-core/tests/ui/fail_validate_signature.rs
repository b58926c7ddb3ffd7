use modular_core::DynamicConfig;
use serde::Serialize;

#[derive(PartialEq, Serialize, DynamicConfig)]
#[config(allow_unknown_fields)]
#[config(validate = "check")]
struct PoolConfig {
    max_conns: u32,
}

fn check(config: &PoolConfig) -> bool {
    config.max_conns > 0
}

fn main() {}
