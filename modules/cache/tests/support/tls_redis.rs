//! A `redis-server` of this test's own with only a TLS port, its certificate signed by a test
//! CA from rcgen, killed when the value drops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The password the TLS server requires (`--requirepass`), so tests can check it never leaks.
pub const PASSWORD: &str = "tls-s3cret-pw";

/// How many ports a start tries: a port found free may be taken before the server binds it.
const START_ATTEMPTS: usize = 5;
/// The longest a start may take to print "Ready to accept connections".
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A CA (certificate and key) and a server certificate it signed for `127.0.0.1` and
/// `localhost`, as PEM files in a temporary directory.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TestPki {
    /// A fresh CA named `name` and a server certificate signed by it.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)?;

        let mut server_params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        server_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "redis test server");
        let server_key = rcgen::KeyPair::generate()?;
        let server = server_params.signed_by(&server_key, &ca)?;

        let ca_file = dir.path().join("ca.pem");
        let cert_file = dir.path().join("server.pem");
        let key_file = dir.path().join("server.key");
        std::fs::write(&ca_file, ca.pem())?;
        std::fs::write(&cert_file, server.pem())?;
        std::fs::write(&key_file, server_key.serialize_pem())?;
        Ok(Self {
            dir,
            ca_file,
            cert_file,
            key_file,
        })
    }
}

/// A running `redis-server --port 0 --tls-port <port>`, killed on drop.
pub struct TlsRedis {
    pub pki: TestPki,
    pub port: u16,
    child: Option<Child>,
}

impl TlsRedis {
    /// Starts one, or `None` (skip) when `redis-server` is not installed; under `CI=true` a
    /// missing binary fails instead.
    pub fn start() -> anyhow::Result<Option<Self>> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                anyhow::bail!("redis-server is not installed, and CI=true forbids skipping");
            }
            eprintln!("skipped: redis-server is not installed");
            return Ok(None);
        }
        let mut server = Self {
            pki: TestPki::new("redis")?,
            port: 0,
            child: None,
        };
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            // redis-server cannot take port 0 for TLS (0 turns TLS off), cannot inherit a
            // bound socket, and TLS does not run on its unix socket; so a port free a moment
            // ago it must be. When another process takes it first, redis-server exits without
            // logging "Ready", and the next attempt takes another.
            server.port = modular_testkit::free_port();
            match server.spawn() {
                Ok(()) => return Ok(Some(server)),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("redis-server never started")))
    }

    /// `rediss://:<password>@127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("rediss://:{PASSWORD}@127.0.0.1:{}", self.port)
    }

    /// The CA file that verifies the server.
    pub fn ca_file(&self) -> &Path {
        &self.pki.ca_file
    }

    /// Kills the server (the port closes at once).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same certificates.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }

    /// Spawns the server with its log on stdout, read by a thread of its own, and waits (for
    /// at most [`READY_WITHIN`]) until the log says it is ready, or ends because it exited.
    fn spawn(&mut self) -> anyhow::Result<()> {
        use std::io::BufRead as _;

        let mut child = Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1"])
            .args(["--tls-port", &self.port.to_string()])
            .arg("--tls-cert-file")
            .arg(&self.pki.cert_file)
            .arg("--tls-key-file")
            .arg(&self.pki.key_file)
            .arg("--tls-ca-cert-file")
            .arg(&self.pki.ca_file)
            .args(["--tls-auth-clients", "no"])
            .args(["--requirepass", PASSWORD])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.pki.dir.path())
            // An empty log file name logs to stdout.
            .args(["--logfile", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        self.child = Some(child);
        let (ready, readiness) = std::sync::mpsc::channel::<Result<(), String>>();
        // The thread drains the log for the server's whole life, so it never blocks on a full
        // pipe; it ends when the server exits.
        std::thread::spawn(move || {
            let mut last = String::new();
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("Ready to accept connections") {
                    let _ = ready.send(Ok(()));
                }
                last = line;
            }
            let _ = ready.send(Err(last));
        });
        match readiness.recv_timeout(READY_WITHIN) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(last)) => {
                self.stop();
                anyhow::bail!("redis-server on tls port {} exited: {last}", self.port)
            }
            Err(_) => {
                self.stop();
                anyhow::bail!(
                    "redis-server on tls port {} never got ready within {READY_WITHIN:?}",
                    self.port
                )
            }
        }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
