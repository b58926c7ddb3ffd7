use modular_core::{DynamicConfig, Secret};
use serde::Serialize;

#[derive(PartialEq, Serialize, DynamicConfig)]
#[config(allow_unknown_fields)]
struct PoolConfig {
    #[config(nested)]
    url: Secret<String>,
}

fn main() {}
