//! The process-wide rustls crypto provider.

/// Installs aws-lc-rs as the process-wide rustls crypto provider; later calls do nothing.
///
/// With both aws-lc-rs and ring in the dependency graph rustls cannot choose a provider by itself
/// and panics at first use, so every test that opens a TLS connection calls this first.
pub fn install_crypto_provider() {
    // `install_default` fails only when a provider is already installed; that provider is the
    // one every part of modular installs, so the error carries nothing to act on.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_crypto_provider_is_idempotent() {
        install_crypto_provider();
        install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
