//! The ACME test CA: Debian's `pebble` and `pebble-challtestsrv` (its DNS, answering every
//! name with 127.0.0.1), started with the config in `.ci/pebble/`. Pebble ships no
//! certificate for its own HTTPS listener, so a throwaway CA and a leaf for 127.0.0.1 are
//! made with `openssl` next to the runtime config; tests trust that CA for the directory
//! (`MODULAR_TEST_PEBBLE_CA`) and fetch the issuing root from the management port.
//!
//! A second pebble (`pebble-dns-config.json`: ports 14001/15001, validation ports 5012/5011)
//! resolves through bind9 (`.ci/bind9/`) instead of challtestsrv, for the DNS-01 tests: the
//! module publishes the `_acme-challenge` TXT records there by RFC 2136, and pebble must see
//! them. Two instances keep the HTTP-01 and TLS-ALPN-01 tests on challtestsrv (which answers
//! every name) while DNS-01 is validated for real, with no `PEBBLE_VA_ALWAYS_VALID` anywhere.

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
/// The DNS-01 pebble's ACME directory.
pub const DNS_DIRECTORY_URL: &str = "https://127.0.0.1:14001/dir";
/// The DNS-01 pebble's management endpoint.
pub const DNS_MANAGEMENT_URL: &str = "https://127.0.0.1:15001";
/// bind9's DNS server (UDP and TCP), the DNS-01 pebble's resolver.
pub const BIND9_SERVER: &str = "127.0.0.1:8054";
/// bind9's port.
pub const BIND9_PORT: u16 = 8054;

/// Where bind9's runtime config, zone, journal and key live (writable by the current user).
pub fn bind9_dir() -> PathBuf {
    env::temp_dir().join("modular-services").join("bind9")
}

/// The TSIG key file (`key "modular-acme" { algorithm hmac-sha256; secret "…"; };`).
pub fn bind9_key() -> PathBuf {
    bind9_dir().join("tsig.key")
}

/// Writes bind9's runtime config from `.ci/bind9/`, a fresh copy of the zone (no records left
/// from an earlier run) and, once, a TSIG key made by `tsig-keygen`; returns the config's path.
pub fn prepare_bind9(workspace: &Path) -> Result<PathBuf> {
    let dir = bind9_dir();
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let source = workspace.join(".ci/bind9");
    let zone = fs::read_to_string(source.join("example.test.zone"))
        .with_context(|| format!("cannot read {}", source.display()))?;
    fs::write(dir.join("example.test.zone"), zone)?;
    let _ = fs::remove_file(dir.join("example.test.zone.jnl"));
    if !bind9_key().exists() {
        let output = Command::new("tsig-keygen")
            .args(["-a", "hmac-sha256", "modular-acme"])
            .stdin(Stdio::null())
            .output()
            .context("cannot run tsig-keygen (apt-get install bind9)")?;
        if !output.status.success() {
            bail!("tsig-keygen failed with {}", output.status);
        }
        write_private(&bind9_key(), &output.stdout)?;
    }
    let text = fs::read_to_string(source.join("named.conf"))?
        .replace("@DIR@", &dir.display().to_string())
        .replace("@PORT@", &BIND9_PORT.to_string());
    let config = dir.join("named.conf");
    fs::write(&config, text).with_context(|| format!("cannot write {}", config.display()))?;
    Ok(config)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

/// Where the runtime config and the listener certificate live.
pub fn runtime_dir() -> PathBuf {
    env::temp_dir().join("modular-services").join("pebble")
}

/// The CA that signed pebble's listener certificate.
pub fn listener_ca() -> PathBuf {
    runtime_dir().join("listener-ca.pem")
}

/// Writes the listener CA and certificate (once) and the runtime config from the template
/// `.ci/pebble/<template>`; returns the config's path.
pub fn prepare(workspace: &Path, template: &str) -> Result<PathBuf> {
    let dir = runtime_dir();
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (cert, key) = (dir.join("listener.pem"), dir.join("listener.key"));
    if !cert.exists() || !key.exists() || !listener_ca().exists() {
        listener_certificate(&dir)?;
    }
    let name = template;
    let template = workspace.join(".ci/pebble").join(name);
    let text = fs::read_to_string(&template)
        .with_context(|| format!("cannot read {}", template.display()))?;
    let text = text
        .replace("@CERT@", &cert.display().to_string())
        .replace("@KEY@", &key.display().to_string());
    let config = dir.join(name);
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
