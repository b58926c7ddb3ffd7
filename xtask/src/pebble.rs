//! The ACME test CA: Debian's `pebble` and `pebble-challtestsrv` (its DNS, answering every
//! name with 127.0.0.1), started with the config in `.ci/pebble/`. Pebble ships no
//! certificate for its own HTTPS listener, so a throwaway CA and a leaf for 127.0.0.1 are
//! made with `openssl` next to the runtime config; tests trust that CA for the directory
//! (`MODULAR_TEST_PEBBLE_CA`) and fetch the issuing root from the management port.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

/// The ACME directory.
pub const DIRECTORY_URL: &str = "https://127.0.0.1:14000/dir";
/// The management endpoint (`/roots/0` is the issuing root).
pub const MANAGEMENT_URL: &str = "https://127.0.0.1:15000";
/// pebble-challtestsrv's management API.
pub const CHALLTESTSRV_URL: &str = "http://127.0.0.1:8055";
/// pebble-challtestsrv's DNS server, pebble's resolver.
pub const DNS_SERVER: &str = "127.0.0.1:8053";

/// Where the runtime config and the listener certificate live.
pub fn runtime_dir() -> PathBuf {
    env::temp_dir().join("modular-services").join("pebble")
}

/// The CA that signed pebble's listener certificate.
pub fn listener_ca() -> PathBuf {
    runtime_dir().join("listener-ca.pem")
}

/// Writes the listener CA and certificate (once) and the runtime config from the template;
/// returns the config's path.
pub fn prepare(workspace: &Path) -> Result<PathBuf> {
    let dir = runtime_dir();
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (cert, key) = (dir.join("listener.pem"), dir.join("listener.key"));
    if !cert.exists() || !key.exists() || !listener_ca().exists() {
        listener_certificate(&dir)?;
    }
    let template = workspace.join(".ci/pebble/pebble-config.json");
    let text = fs::read_to_string(&template)
        .with_context(|| format!("cannot read {}", template.display()))?;
    let text = text
        .replace("@CERT@", &cert.display().to_string())
        .replace("@KEY@", &key.display().to_string());
    let config = dir.join("pebble-config.json");
    fs::write(&config, text).with_context(|| format!("cannot write {}", config.display()))?;
    Ok(config)
}

/// A CA (pebble rejects a CA certificate used directly as its listener's) and a leaf for
/// 127.0.0.1 and localhost signed by it.
fn listener_certificate(dir: &Path) -> Result<()> {
    let path = |name: &str| dir.join(name).display().to_string();
    let ext = dir.join("leaf.ext");
    fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )?;
    let steps: [Vec<String>; 3] = [
        [
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=modular pebble listener CA",
            "-keyout",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([
            path("listener-ca.key"),
            "-out".to_owned(),
            path("listener-ca.pem"),
        ])
        .collect(),
        [
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([
            path("listener.key"),
            "-out".to_owned(),
            path("listener.csr"),
        ])
        .collect(),
        ["x509", "-req", "-days", "3650", "-in"]
            .iter()
            .map(|s| (*s).to_owned())
            .chain([
                path("listener.csr"),
                "-CA".to_owned(),
                path("listener-ca.pem"),
                "-CAkey".to_owned(),
                path("listener-ca.key"),
                "-CAcreateserial".to_owned(),
                "-extfile".to_owned(),
                ext.display().to_string(),
                "-out".to_owned(),
                path("listener.pem"),
            ])
            .collect(),
    ];
    for args in steps {
        let status = Command::new("openssl")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("cannot run openssl (apt-get install openssl)")?;
        if !status.success() {
            bail!("openssl {} failed with {status}", args.join(" "));
        }
    }
    Ok(())
}
