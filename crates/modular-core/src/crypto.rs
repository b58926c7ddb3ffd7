//! The process-wide rustls crypto provider.

/// Installs aws-lc-rs as the process-level rustls `CryptoProvider`, once.
///
/// Some dependencies enable ring and others aws-lc-rs; with both in the graph rustls cannot
/// pick one and panics at first use. `Application::build` calls this; tests that use TLS
/// without an application call it too. Calling it again is harmless.
pub fn install_default_crypto_provider() {
    // `Err` means a provider is already installed, which is the state we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
