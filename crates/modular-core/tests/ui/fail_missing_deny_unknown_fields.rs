use modular_core::DynamicConfig;
use serde::{Deserialize, Serialize};

// A misspelled key (`max_con: 5`) would be silently ignored: the derive insists on
// `#[serde(deny_unknown_fields)]` or an explicit `#[config(allow_unknown_fields)]`.
#[derive(Clone, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(default)]
struct PoolConfig {
    #[config(dynamic)]
    max_conns: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self { max_conns: 10 }
    }
}

// The opt-out compiles.
#[derive(Clone, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[config(allow_unknown_fields)]
struct Lenient {
    max_conns: u32,
}

fn main() {}
