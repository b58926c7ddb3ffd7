//! The loopback services that service-backed tests talk to: check each port, start what is
//! installed but stopped, report what is missing, and hand out the `MODULAR_TEST_*` URLs.

use std::env;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::pebble;

/// How long a started service may take to listen; RabbitMQ is the slow one.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a start command itself may run before it is killed.
const START_COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// `cargo xtask services`: ensure the services, print the table (stderr) and the `export` lines
/// (stdout); fail when a service the tests need is down.
pub fn command() -> Result<()> {
    let report = ensure();
    for (name, url) in report.exports() {
        println!("export {name}='{url}'");
    }
    let down = report.down();
    if !down.is_empty() {
        bail!("services needed by the tests are down: {}", down.join(", "));
    }
    Ok(())
}

/// Checks every service, starts the installed ones that are down, waits for them and prints the
/// status table to stderr.
pub fn ensure() -> Report {
    install_missing_in_ci();
    let mut rows: Vec<(Backend, State)> = Vec::new();
    let launched_at = Instant::now();
    for backend in Backend::ALL {
        let state = if is_listening(backend.port()) {
            State::Running
        } else {
            match backend.launch() {
                None => State::Missing,
                Some(launch) => match launch.run(&backend.log_file()) {
                    Ok(()) => State::Starting,
                    Err(reason) => State::Down { reason },
                },
            }
        };
        rows.push((backend, state));
    }
    wait_for_started(&mut rows, launched_at);
    let report = Report { rows };
    eprint!("{}", report.table());
    report
}

/// The outcome of [`ensure`].
#[derive(Debug)]
pub struct Report {
    rows: Vec<(Backend, State)>,
}

impl Report {
    /// `(variable, url)` for every service that is up.
    pub fn exports(&self) -> Vec<(&'static str, String)> {
        let mut exports: Vec<(&'static str, String)> = self
            .rows
            .iter()
            .filter(|(_, state)| state.is_up())
            .map(|(backend, _)| (backend.env_var(), backend.url()))
            .collect();
        if self
            .rows
            .iter()
            .any(|(backend, state)| *backend == Backend::Pebble && state.is_up())
        {
            // The CA of pebble's own HTTPS listener, and where its issuing root is served.
            exports.push((
                "MODULAR_TEST_PEBBLE_CA",
                pebble::listener_ca().display().to_string(),
            ));
            exports.push((
                "MODULAR_TEST_PEBBLE_MANAGEMENT_URL",
                pebble::MANAGEMENT_URL.to_owned(),
            ));
        }
        exports
    }

    /// The names of the services that are not up.
    pub fn down(&self) -> Vec<&'static str> {
        self.rows
            .iter()
            .filter(|(_, state)| !state.is_up())
            .map(|(backend, _)| backend.name())
            .collect()
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<12} {:>5}  {:<8} detail",
            "service", "port", "state"
        );
        for (backend, state) in &self.rows {
            let (word, detail) = match state {
                State::Running => ("running", String::new()),
                State::Started { after } => ("started", format!("listening after {after:.1?}")),
                State::Starting => ("starting", String::new()),
                State::Missing => (
                    "missing",
                    format!("not installed: apt-get install {}", backend.package()),
                ),
                State::Down { reason } => ("down", reason.clone()),
            };
            let line = format!(
                "{:<12} {:>5}  {:<8} {detail}",
                backend.name(),
                backend.port(),
                word
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Postgres,
    MariaDb,
    Redis,
    RabbitMq,
    Mosquitto,
    Nats,
    /// pebble's DNS (and management API); pebble resolves every name through it.
    ChallTestSrv,
    /// The ACME test CA.
    Pebble,
}

#[derive(Debug)]
enum State {
    /// Was listening before we looked.
    Running,
    /// Start command succeeded; waiting for the port.
    Starting,
    /// Started by us and listening.
    Started { after: Duration },
    /// Not installed.
    Missing,
    /// Installed but not listening.
    Down { reason: String },
}

impl State {
    fn is_up(&self) -> bool {
        matches!(self, State::Running | State::Started { .. })
    }
}

/// A start command: a program and its arguments.
#[derive(Debug)]
struct Launch {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
}

impl Backend {
    const ALL: [Backend; 8] = [
        Backend::Postgres,
        Backend::MariaDb,
        Backend::Redis,
        Backend::RabbitMq,
        Backend::Mosquitto,
        Backend::Nats,
        Backend::ChallTestSrv,
        Backend::Pebble,
    ];

    fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "PostgreSQL",
            Backend::MariaDb => "MariaDB",
            Backend::Redis => "Redis",
            Backend::RabbitMq => "RabbitMQ",
            Backend::Mosquitto => "Mosquitto",
            Backend::Nats => "NATS",
            Backend::ChallTestSrv => "challtestsrv",
            Backend::Pebble => "pebble",
        }
    }

    fn port(self) -> u16 {
        match self {
            Backend::Postgres => 5432,
            Backend::MariaDb => 3306,
            Backend::Redis => 6379,
            Backend::RabbitMq => 5672,
            Backend::Mosquitto => 1883,
            Backend::Nats => 4222,
            Backend::ChallTestSrv => 8055,
            Backend::Pebble => 14000,
        }
    }

    /// The Debian package that installs it.
    fn package(self) -> &'static str {
        match self {
            Backend::Postgres => "postgresql",
            Backend::MariaDb => "mariadb-server",
            Backend::Redis => "redis-server",
            Backend::RabbitMq => "rabbitmq-server",
            Backend::Mosquitto => "mosquitto",
            Backend::Nats => "nats-server",
            Backend::ChallTestSrv | Backend::Pebble => "pebble",
        }
    }

    /// The variable modular-testkit reads the URL from.
    fn env_var(self) -> &'static str {
        match self {
            Backend::Postgres => "MODULAR_TEST_POSTGRES_URL",
            Backend::MariaDb => "MODULAR_TEST_MYSQL_URL",
            Backend::Redis => "MODULAR_TEST_REDIS_URL",
            Backend::RabbitMq => "MODULAR_TEST_AMQP_URL",
            Backend::Mosquitto => "MODULAR_TEST_MQTT_URL",
            Backend::Nats => "MODULAR_TEST_NATS_URL",
            Backend::ChallTestSrv => "MODULAR_TEST_CHALLTESTSRV_URL",
            Backend::Pebble => "MODULAR_TEST_PEBBLE_URL",
        }
    }

    fn url(self) -> String {
        match self {
            Backend::Postgres => format!("postgres://{}@127.0.0.1:5432/test", postgres_user()),
            Backend::MariaDb => "mysql://root@127.0.0.1:3306/test".to_owned(),
            Backend::Redis => "redis://127.0.0.1:6379".to_owned(),
            Backend::RabbitMq => "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            Backend::Mosquitto => "mqtt://127.0.0.1:1883".to_owned(),
            Backend::Nats => "nats://127.0.0.1:4222".to_owned(),
            Backend::ChallTestSrv => pebble::CHALLTESTSRV_URL.to_owned(),
            Backend::Pebble => pebble::DIRECTORY_URL.to_owned(),
        }
    }

    /// Where the start command's output goes. A file rather than our stdout: a daemon that
    /// inherited a pipe would keep whoever reads our output waiting for its end.
    fn log_file(self) -> PathBuf {
        let file = format!("{}.log", self.name().to_ascii_lowercase());
        env::temp_dir().join("modular-services").join(file)
    }

    /// The command that starts it, or `None` when it is not installed.
    fn launch(self) -> Option<Launch> {
        let launch = |program: PathBuf, args: &[&str]| Launch {
            program,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            env: Vec::new(),
        };
        match self {
            Backend::Postgres => {
                let version = postgres_version()?;
                let program = find_program("pg_ctlcluster")?;
                Some(launch(
                    program,
                    &["--skip-systemctl-redirect", &version, "main", "start"],
                ))
            }
            Backend::MariaDb => {
                let daemon = "/usr/sbin/mariadbd";
                is_executable(Path::new(daemon)).then_some(())?;
                let program = find_program("start-stop-daemon")?;
                Some(launch(
                    program,
                    &["--start", "--oknodo", "--background", "--exec", daemon],
                ))
            }
            Backend::Redis => Some(launch(
                find_program("redis-server")?,
                &[
                    "--daemonize",
                    "yes",
                    "--bind",
                    "127.0.0.1",
                    "-::1",
                    "--port",
                    "6379",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    "/var/lib/redis",
                    "--logfile",
                    "/var/log/redis/ci.log",
                ],
            )),
            Backend::RabbitMq => Some(launch(find_program("rabbitmq-server")?, &["-detached"])),
            Backend::Mosquitto => Some(launch(
                find_program("mosquitto")?,
                &["-d", "-c", "/etc/mosquitto/mosquitto.conf"],
            )),
            Backend::Nats => {
                let daemon = "/usr/sbin/nats-server";
                is_executable(Path::new(daemon)).then_some(())?;
                let program = find_program("start-stop-daemon")?;
                Some(launch(
                    program,
                    &[
                        "--start",
                        "--oknodo",
                        "--background",
                        "--exec",
                        daemon,
                        "--",
                        "-a",
                        "127.0.0.1",
                        "-p",
                        "4222",
                        "-js",
                        "-sd",
                        "/var/lib/nats-server",
                        "-l",
                        "/var/log/nats-server.log",
                    ],
                ))
            }
            // Only DNS (every name is 127.0.0.1, no AAAA) and the management API: the module
            // under test answers the challenges itself on pebble's ports 5001 and 5002.
            Backend::ChallTestSrv => {
                let daemon = find_program("pebble-challtestsrv")?;
                let program = find_program("start-stop-daemon")?;
                let daemon = daemon.display().to_string();
                Some(launch(
                    program,
                    &[
                        "--start",
                        "--oknodo",
                        "--background",
                        "--exec",
                        &daemon,
                        "--",
                        "-http01",
                        "",
                        "-https01",
                        "",
                        "-tlsalpn01",
                        "",
                        "-defaultIPv6",
                        "",
                        "-defaultIPv4",
                        "127.0.0.1",
                        "-dns01",
                        pebble::DNS_SERVER,
                        "-management",
                        "127.0.0.1:8055",
                    ],
                ))
            }
            Backend::Pebble => {
                let daemon = find_program("pebble")?.display().to_string();
                let program = find_program("start-stop-daemon")?;
                let config = match pebble::prepare(&workspace_root()) {
                    Ok(config) => config.display().to_string(),
                    Err(error) => {
                        eprintln!("pebble: {error:#}");
                        return None;
                    }
                };
                let mut launch = launch(
                    program,
                    &[
                        "--start",
                        "--oknodo",
                        "--background",
                        "--exec",
                        &daemon,
                        "--",
                        "-config",
                        &config,
                        "-dnsserver",
                        pebble::DNS_SERVER,
                    ],
                );
                // No sleeps before validation, no nonce rejections, a fresh authorization in
                // every order (so every test exercises its challenge).
                launch.env = vec![
                    ("PEBBLE_VA_NOSLEEP", "1"),
                    ("PEBBLE_WFE_NONCEREJECT", "0"),
                    ("PEBBLE_AUTHZREUSE", "0"),
                ];
                Some(launch)
            }
        }
    }
}

impl Launch {
    /// Runs the start command to completion, its output going to `log`; `Err` says why the
    /// service will not come up.
    fn run(&self, log: &Path) -> Result<(), String> {
        eprintln!("$ {}", self.display());
        let (stdout, stderr) = open_log(log)
            .map_err(|error| format!("cannot create start log {}: {error}", log.display()))?;
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|error| format!("cannot run {}: {error}", self.program.display()))?;
        let deadline = Instant::now() + START_COMMAND_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    print_log_tail(log);
                    return Err(format!(
                        "start command exited with {status} (log: {})",
                        log.display()
                    ));
                }
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "start command did not return within {START_COMMAND_TIMEOUT:?} (log: {})",
                        log.display()
                    ));
                }
                Ok(None) => thread::sleep(Duration::from_millis(100)),
                Err(error) => return Err(format!("cannot wait for the start command: {error}")),
            }
        }
    }

    fn display(&self) -> String {
        let mut line = self.program.display().to_string();
        for arg in &self.args {
            if arg.is_empty() {
                line.push_str(" \"\"");
            } else {
                line.push(' ');
                line.push_str(arg);
            }
        }
        line
    }
}

/// Under CI (`CI=true`), the packages that are not installed by the machine image but that
/// the tests need (pebble, openssl for its listener certificate, chromium and chromedriver
/// for the console's browser test, which starts chromedriver itself) are installed with
/// apt-get.
fn install_missing_in_ci() {
    let in_ci = env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    if !in_ci {
        return;
    }
    let wanted: Vec<&str> = [
        ("pebble", "pebble"),
        ("openssl", "openssl"),
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
    ]
    .into_iter()
    .filter(|(program, _)| find_program(program).is_none())
    .map(|(_, package)| package)
    .collect();
    if wanted.is_empty() {
        return;
    }
    let Some(apt) = find_program("apt-get") else {
        eprintln!("CI: {} missing and no apt-get", wanted.join(", "));
        return;
    };
    eprintln!("$ apt-get install -y {}", wanted.join(" "));
    let quiet = |command: &mut Command| {
        command
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let _ = quiet(Command::new(&apt).arg("update"));
    if !quiet(Command::new(&apt).args(["install", "-y"]).args(&wanted)) {
        eprintln!("CI: apt-get install {} failed", wanted.join(" "));
    }
}

/// The workspace root (xtask lives one directory below it).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Waits, all together, for the services whose start command succeeded.
fn wait_for_started(rows: &mut [(Backend, State)], launched_at: Instant) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let mut pending = false;
        for (backend, state) in rows.iter_mut() {
            if !matches!(state, State::Starting) {
                continue;
            }
            if is_listening(backend.port()) {
                *state = State::Started {
                    after: launched_at.elapsed(),
                };
            } else if Instant::now() >= deadline {
                *state = State::Down {
                    reason: format!(
                        "started, but port {} is not listening after {START_TIMEOUT:?} (log: {})",
                        backend.port(),
                        backend.log_file().display()
                    ),
                };
            } else {
                pending = true;
            }
        }
        if !pending {
            return;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

fn is_listening(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// The PostgreSQL version directory under /etc/postgresql that has a `main` cluster (the highest
/// when there are several), as `$(ls /etc/postgresql)` would give on a single-version machine.
fn postgres_version() -> Option<String> {
    let entries = fs::read_dir("/etc/postgresql").ok()?;
    entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("main").is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter_map(|name| version_key(&name).map(|key| (key, name)))
        .max()
        .map(|(_, name)| name)
}

/// `"15"` → `[15]`, `"9.6"` → `[9, 6]`; `None` for names that are not versions.
fn version_key(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// The user that PostgreSQL's trust authentication lets into database `test` over TCP.
fn postgres_user() -> &'static str {
    const CANDIDATES: [&str; 2] = ["postgres", "root"];
    let Some(psql) = find_program("psql") else {
        return CANDIDATES[0];
    };
    let accepted = CANDIDATES.into_iter().find(|user| {
        Command::new(&psql)
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                user,
                "-w",
                "test",
                "-c",
                "select 1",
            ])
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    accepted.unwrap_or_else(|| {
        eprintln!(
            "warning: neither `postgres` nor `root` can log in to database test on 127.0.0.1:5432 \
             without a password; using `postgres`"
        );
        CANDIDATES[0]
    })
}

/// `name` on PATH, or in the sbin directories a non-root PATH may lack.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn open_log(log: &Path) -> std::io::Result<(File, File)> {
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir)?;
    }
    let stdout = File::create(log)?;
    let stderr = stdout.try_clone()?;
    Ok((stdout, stderr))
}

fn print_log_tail(log: &Path) {
    let Ok(text) = fs::read_to_string(log) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines[lines.len().saturating_sub(10)..] {
        eprintln!("  | {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_key_orders_postgres_versions_numerically() {
        assert!(version_key("15") > version_key("9.6"));
        assert_eq!(version_key("9.6"), Some(vec![9, 6]));
        assert_eq!(version_key("README"), None);
    }

    #[test]
    fn every_backend_exports_a_distinct_testkit_variable() {
        let mut vars: Vec<_> = Backend::ALL.iter().map(|b| b.env_var()).collect();
        vars.sort_unstable();
        vars.dedup();
        assert_eq!(vars.len(), Backend::ALL.len());
    }

    #[test]
    fn table_names_the_package_of_a_missing_service() {
        let report = Report {
            rows: vec![
                (Backend::Redis, State::Running),
                (Backend::Mosquitto, State::Missing),
            ],
        };
        let table = report.table();
        assert!(table.contains("apt-get install mosquitto"), "{table}");
        assert_eq!(report.down(), ["Mosquitto"]);
    }
}
