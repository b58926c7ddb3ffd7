use modular_core::{DynamicConfig, Secret};
use serde::Serialize;

#[derive(PartialEq, Serialize, DynamicConfig)]
struct PoolConfig {
    #[config(nested)]
    url: Secret<String>,
}

fn main() {}
