use modular_core::DynamicConfig;
use serde::Serialize;

#[derive(PartialEq, Serialize, DynamicConfig)]
#[config(allow_unknown_fields)]
#[config(dynamic, nested)]
struct PoolConfig {
    #[config(dynamic, dynamic)]
    max_conns: u32,
    #[config(sensitive = true)]
    password: String,
}

fn main() {}
