//! `cargo xtask api-test`: property-based tests of the quickstart's HTTP API from the checked-in
//! spec (`docs/openapi.json`), by schemathesis.
//!
//! 1. schemathesis 4.x is installed from PyPI into a venv under the target dir
//!    (`<target>/api-test/venv`), once;
//! 2. the quickstart is built and started on port 0 with a fresh data directory and an admin
//!    token, its address read back from its log;
//! 3. `st run` without the token: no 5xx, every status code and body as the spec says (the
//!    admin operations answer their documented `401`);
//! 4. every operation the spec secures is asked once without the token here, and must answer
//!    `401`;
//! 5. `st run` with the token: the same checks, plus `ignored_auth` (schemathesis drops or
//!    breaks the credentials and expects a refusal);
//! 6. the quickstart is stopped (SIGTERM, then killed after a deadline).
//!
//! Each run is bounded by `--max-examples` per operation (about a minute on two cores).

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use xshell::Shell;

use crate::workspace;

/// The admin token the quickstart is started with (long enough for `admin.token`).
const TOKEN: &str = "api-test-admin-token-0123456789";
/// Test cases per operation and run.
const MAX_EXAMPLES: &str = "25";
/// A fixed seed: a failure in CI reproduces with the same command.
const SEED: &str = "1";
/// The checks of both runs.
const CHECKS: &str = "not_a_server_error,status_code_conformance,response_schema_conformance";
/// Start-up of a debug build on a loaded 2-core machine.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// The quickstart's shutdown deadline (30 s) plus margin.
const EXIT_DEADLINE: Duration = Duration::from_secs(45);

/// Runs the steps above; fails on the first failing one, after stopping the quickstart.
pub fn run(sh: &Shell) -> Result<()> {
    let root = workspace::root();
    let work = workspace::target_dir(&root).join("api-test");
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let st = ensure_schemathesis(sh, &work)?;
    workspace::cargo(sh)
        .args(["build", "-p", "quickstart"])
        .run()?;
    let binary = workspace::target_dir(&root)
        .join("debug")
        .join("quickstart");
    let spec_path = root.join("docs").join("openapi.json");
    let spec: Value = serde_json::from_str(
        &fs::read_to_string(&spec_path)
            .with_context(|| format!("cannot read {}", spec_path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", spec_path.display()))?;

    let app = Quickstart::start(&binary, &root, &work)?;
    let base = app.wait_ready()?;
    eprintln!("api-test: quickstart at {base}");
    // schemathesis keeps its example database (`.hypothesis`) in the working directory.
    let _dir = sh.push_dir(&work);
    let schemathesis = |authorized: bool| -> Result<()> {
        let mut cmd = sh
            .cmd(&st)
            .arg("run")
            .arg(&spec_path)
            .args(["--url", &base])
            .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--workers", "2", "--request-timeout", "30"]);
        if authorized {
            cmd = cmd
                .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
                .args(["--checks", &format!("{CHECKS},ignored_auth")]);
        } else {
            cmd = cmd.args(["--checks", CHECKS]);
        }
        cmd.quiet().run()?;
        Ok(())
    };

    eprintln!("api-test: without the admin token");
    schemathesis(false).context("schemathesis without the admin token")?;
    eprintln!("api-test: every secured operation refuses a request without the token");
    let answers = secured_operations(&spec)
        .into_iter()
        .map(|(method, path)| {
            let status = status_of(&base, &method, &fill_path(&path))?;
            Ok((format!("{} {path}", method.to_uppercase()), status))
        })
        .collect::<Result<Vec<_>>>()?;
    if answers.is_empty() {
        bail!("the spec secures no operation: the admin endpoints lost their security scheme");
    }
    let open = unguarded(&answers);
    if !open.is_empty() {
        bail!("secured operations answered without the admin token: {open:?}");
    }
    eprintln!("api-test: with the admin token");
    schemathesis(true).context("schemathesis with the admin token")?;
    drop(_dir);
    app.stop()
}

/// The `st` executable of a venv under `work` holding schemathesis 4.x, created when missing.
fn ensure_schemathesis(sh: &Shell, work: &Path) -> Result<PathBuf> {
    let venv = work.join("venv");
    let st = venv.join("bin").join("st");
    let installed = || {
        sh.cmd(&st)
            .arg("--version")
            .quiet()
            .ignore_stderr()
            .read()
            .is_ok_and(|version| is_schemathesis_4(&version))
    };
    if installed() {
        return Ok(st);
    }
    eprintln!(
        "api-test: installing schemathesis 4.x into {}",
        venv.display()
    );
    sh.cmd("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .run()
        .context("python3 -m venv (Debian: apt-get install python3-venv)")?;
    sh.cmd(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "schemathesis>=4,<5"])
        .run()
        .context("pip install schemathesis")?;
    if !installed() {
        bail!(
            "{} is not schemathesis 4.x after installing it",
            st.display()
        );
    }
    Ok(st)
}

/// `st, version 4.32.5`.
fn is_schemathesis_4(version: &str) -> bool {
    version
        .trim()
        .rsplit(' ')
        .next()
        .is_some_and(|v| v.starts_with("4."))
}

/// Every `(method, path)` whose operation declares a security requirement.
fn secured_operations(spec: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let Some(paths) = spec["paths"].as_object() else {
        return found;
    };
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method, operation) in item {
            let secured = operation["security"]
                .as_array()
                .is_some_and(|requirements| {
                    !requirements.is_empty()
                        && requirements
                            .iter()
                            .all(|r| r.as_object().is_some_and(|r| !r.is_empty()))
                });
            if secured {
                found.push((method.clone(), path.clone()));
            }
        }
    }
    found
}

/// The operations that did not answer `401` without credentials.
fn unguarded(answers: &[(String, u16)]) -> Vec<String> {
    answers
        .iter()
        .filter(|(_, status)| *status != 401)
        .map(|(operation, status)| format!("{operation}: {status}"))
        .collect()
}

/// `path` with each `{parameter}` replaced by `1`.
fn fill_path(path: &str) -> String {
    let mut filled = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        filled.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                filled.push('1');
                rest = &rest[open + close + 1..];
            }
            None => {
                rest = &rest[open..];
                break;
            }
        }
    }
    filled.push_str(rest);
    filled
}

/// The status code of one request without a body or credentials (HTTP/1.1 over TCP).
fn status_of(base: &str, method: &str, path: &str) -> Result<u16> {
    let authority = base
        .strip_prefix("http://")
        .context("the quickstart serves plain HTTP")?;
    let mut stream =
        TcpStream::connect(authority).with_context(|| format!("cannot connect to {authority}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "{} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        method.to_uppercase()
    )?;
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    parse_status(&String::from_utf8_lossy(&head))
        .with_context(|| format!("{method} {path}: no HTTP status line"))
}

/// `HTTP/1.1 401 Unauthorized` -> 401.
fn parse_status(head: &str) -> Option<u16> {
    let line = head.lines().next()?;
    let mut words = line.split(' ');
    words.next().filter(|v| v.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

/// The base URL the quickstart announced (`notes:        http://127.0.0.1:<port>/notes`).
fn announced_base(log: &str) -> Option<String> {
    log.lines().find_map(|line| {
        let url = line.split("notes:        ").nth(1)?.trim();
        url.strip_suffix("/notes").map(str::to_owned)
    })
}

/// The running quickstart; stopped (or killed) when dropped.
struct Quickstart {
    child: Option<Child>,
    log: PathBuf,
    dir: PathBuf,
}

impl Quickstart {
    /// Starts `binary` on the shipped config, on port 0 with a fresh data directory in `work`.
    fn start(binary: &Path, root: &Path, work: &Path) -> Result<Self> {
        let dir = work.join(format!("run-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let shipped = fs::read_to_string(root.join("examples/quickstart/config.yaml"))?;
        // `notes.data_dir` is relative to the config file: `dir/data`, fresh each run.
        let config = shipped.replace("port: 8080 ", "port: 0 ");
        if !config.contains("port: 0 ") {
            bail!("examples/quickstart/config.yaml no longer sets `port: 8080 `");
        }
        let config_path = dir.join("config.yaml");
        fs::write(&config_path, config)?;
        let log = dir.join("quickstart.log");
        let log_file = fs::File::create(&log)?;
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .env("MODULAR_ADMIN__TOKEN", TOKEN)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(Self {
            child: Some(child),
            log,
            dir,
        })
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The announced base URL, once `/readyz` answers 200.
    fn wait_ready(&self) -> Result<String> {
        let until = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(base) = announced_base(&self.log())
                && status_of(&base, "get", "/readyz").ok() == Some(200)
            {
                return Ok(base);
            }
            if Instant::now() > until {
                bail!(
                    "the quickstart was not ready within {READY_DEADLINE:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then waits for a clean exit within [`EXIT_DEADLINE`].
    fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let until = Instant::now() + EXIT_DEADLINE;
        loop {
            if let Some(status) = child.try_wait()? {
                let _ = fs::remove_dir_all(&self.dir);
                if !status.success() {
                    bail!("the quickstart exited with {status}; log:\n{}", self.log());
                }
                return Ok(());
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the quickstart did not stop within {EXIT_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("api-test: quickstart log:\n{}", self.log());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secured_operations_are_those_with_a_security_requirement() {
        let spec = json!({ "paths": {
            "/health": { "get": {} },
            "/admin/reload": { "post": { "security": [{ "admin_token": [] }] } },
            "/optional": { "get": { "security": [{}, { "admin_token": [] }] } },
        }});
        assert_eq!(
            secured_operations(&spec),
            [("post".to_owned(), "/admin/reload".to_owned())]
        );
    }

    /// The deliberate break: an admin endpoint that answers without the token is reported.
    #[test]
    fn an_operation_that_answers_without_the_token_is_reported() {
        let answers = [
            ("POST /admin/reload".to_owned(), 401),
            ("GET /admin/config".to_owned(), 200),
        ];
        assert_eq!(unguarded(&answers), ["GET /admin/config: 200"]);
        assert!(unguarded(&answers[..1]).is_empty());
    }

    #[test]
    fn path_parameters_are_filled_and_status_lines_parsed() {
        assert_eq!(
            fill_path("/admin/config/rollback/{version}"),
            "/admin/config/rollback/1"
        );
        assert_eq!(fill_path("/a/{x}/b/{y}"), "/a/1/b/1");
        assert_eq!(fill_path("/plain"), "/plain");
        assert_eq!(parse_status("HTTP/1.1 401 Unauthorized\r\n"), Some(401));
        assert_eq!(parse_status("garbage"), None);
        assert!(is_schemathesis_4("st, version 4.32.5\n"));
        assert!(!is_schemathesis_4("st, version 3.39.0"));
        assert_eq!(
            announced_base("x notes:        http://127.0.0.1:4100/notes\n").as_deref(),
            Some("http://127.0.0.1:4100")
        );
    }
}
