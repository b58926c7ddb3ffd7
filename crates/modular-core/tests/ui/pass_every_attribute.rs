//! Every supported attribute together, a generic struct, and a struct written by `macro_rules!`.
use std::collections::{BTreeMap, HashMap};

use modular_core::config::FieldError;
use modular_core::{DynamicConfig, Secret};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[config(dynamic)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RetryConfig {
    max_attempts: u32,
    backoff_ms: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[config(validate = "PoolConfig::check")]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PoolConfig {
    url: Secret<String>,
    replica_url: Option<Secret<String>>,
    #[config(dynamic)]
    #[serde(default, rename = "max")]
    max_conns: u32,
    #[config(sensitive)]
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[config(dynamic, nested)]
    retry: RetryConfig,
    #[config(nested)]
    fallback: Option<RetryConfig>,
    #[config(nested)]
    replicas: HashMap<String, RetryConfig>,
    labels: BTreeMap<String, String>,
    #[serde(skip)]
    cache: Vec<u8>,
    r#type: String,
}

impl PoolConfig {
    fn check(&self) -> Result<(), Vec<FieldError>> {
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, DynamicConfig)]
#[config(allow_unknown_fields)]
struct Wrapper<T: PartialEq + Serialize> {
    #[config(dynamic)]
    value: T,
}

#[derive(Clone, Debug, PartialEq, Serialize, DynamicConfig)]
struct Empty;

macro_rules! config_struct {
    ($name:ident { $($field:ident: $ty:ty),* }) => {
        #[derive(Clone, Debug, PartialEq, Serialize, DynamicConfig)]
        #[config(allow_unknown_fields)]
        struct $name {
            $(#[config(dynamic, nested)] $field: $ty,)*
        }
    };
}

config_struct!(Generated { retry: RetryConfig });

fn main() {
    let names: Vec<&str> = PoolConfig::FIELDS.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        [
            "url",
            "replica-url",
            "max",
            "password",
            "retry",
            "fallback",
            "replicas",
            "labels",
            "type"
        ]
    );
    assert_eq!(Wrapper::<u8>::FIELDS.len(), 1);
    assert!(Empty::FIELDS.is_empty());
    assert_eq!(Generated::FIELDS[0].name, "retry");
}
