//! Test helpers for modular: the shared backends, loopback ports, tracing, TLS set-up and a
//! fault-injecting TCP proxy.
//!
//! This crate is for tests only (`[dev-dependencies]`); nothing in it is meant for production.
//!
//! # A guided tour
//!
//! **Service-backed tests.** PostgreSQL, MariaDB, Redis, NATS, RabbitMQ and Mosquitto run on
//! loopback; `cargo xtask services` starts the installed ones and `cargo xtask test` exports one
//! `MODULAR_TEST_*_URL` per backend (see [`Service::env_var`]). A test asks for its backend with
//! [`service`]: without the variable it prints one `skipped: ...` line and gets `None`, so it
//! returns early; under `CI=true` a missing variable fails the test instead, so CI cannot go green
//! by skipping. [`require_service!`] is the same as a macro, and [`service_url`] only reads the
//! variable.
//!
//! ```
//! use modular_testkit::Service;
//!
//! // In a `#[tokio::test]`:
//! async fn cache_round_trips_through_redis() {
//!     let Some(url) = modular_testkit::service(Service::Redis) else { return };
//!     // connect to `url` ...
//! #   let _ = url;
//! }
//! ```
//!
//! **Ports and readiness.** [`free_port`] (and [`free_addr`]) find an unused loopback port for a
//! server under test; [`wait_for_tcp`] waits, with a deadline, until something accepts on it.
//!
//! **Set-up.** [`init_tracing`] installs a test-friendly subscriber filtered by `RUST_LOG`, and
//! [`install_crypto_provider`] picks aws-lc-rs for rustls; both are idempotent, so every test can
//! call them first.
//!
//! **Faults.** [`FaultProxy`] sits between a client and a real server and lets a test take the
//! server away ([`FaultProxy::cut`]), bring it back ([`FaultProxy::restore`]) or slow it down
//! ([`FaultProxy::set_latency`]) without stopping the server other tests share:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use std::time::Duration;
//!
//! use modular_testkit::FaultProxy;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! // A stand-in for PostgreSQL or Redis: it answers every connection with "hi".
//! let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let upstream = server.local_addr()?;
//! tokio::spawn(async move {
//!     while let Ok((mut socket, _)) = server.accept().await {
//!         let _ = socket.write_all(b"hi").await;
//!     }
//! });
//!
//! let proxy = FaultProxy::start(upstream).await?;
//! modular_testkit::wait_for_tcp(proxy.addr(), Duration::from_secs(5)).await?;
//!
//! let mut client = tokio::net::TcpStream::connect(proxy.addr()).await?;
//! let mut greeting = [0; 2];
//! client.read_exact(&mut greeting).await?;
//! assert_eq!(&greeting, b"hi");
//!
//! proxy.cut();
//! // The open connection is reset: the next read reports the end of the stream or an error.
//! assert!(matches!(client.read(&mut greeting).await, Ok(0) | Err(_)));
//!
//! proxy.restore();
//! let mut client = tokio::net::TcpStream::connect(proxy.addr()).await?;
//! client.read_exact(&mut greeting).await?;
//! assert_eq!(&greeting, b"hi");
//! # Ok(())
//! # }
//! ```
//!
//! **Conformance.** [`conformance::Conformance`] runs the module contract checks every module
//! runs the same way: invalid config rejected with its path, each dynamic change observed live
//! after commit and untouched after an abort, health failing under a fault and recovering, and
//! no secret in anything the run observes.
//!
//! # Feature flags
//!
//! This crate has none.

// Tests may unwrap: a panic there is the test failing. Non-test builds still deny it.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod app;
pub mod conformance;
mod crypto;
mod fault_proxy;
mod logging;
mod net;
mod services;
#[cfg(feature = "test-ca")]
mod test_ca;

pub use crate::app::test_builder;
pub use crate::crypto::install_crypto_provider;
pub use crate::fault_proxy::FaultProxy;
pub use crate::logging::init_tracing;
pub use crate::net::{RefusedPort, free_addr, free_port, wait_for_tcp};
pub use crate::services::{Service, service, service_url};
#[cfg(feature = "test-ca")]
pub use crate::test_ca::TestCa;
