use modular_core::DynamicConfig;
use serde::Serialize;

#[derive(PartialEq, Serialize, DynamicConfig)]
#[config(allow_unknown_fields)]
struct PoolConfig {
    #[config(dynamc)]
    max_conns: u32,
}

fn main() {}
