use std::collections::HashMap;

use modular_core::DynamicConfig;
use serde::Serialize;

#[derive(PartialEq, Serialize)]
struct ReplicaConfig {
    max_conns: u32,
}

#[derive(PartialEq, Serialize, DynamicConfig)]
#[config(allow_unknown_fields)]
struct PoolConfig {
    #[config(nested)]
    fallback: Option<ReplicaConfig>,
    #[config(nested)]
    replicas: HashMap<String, ReplicaConfig>,
}

fn main() {}
