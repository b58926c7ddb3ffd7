//! A test certificate authority (rcgen) that writes its certificate and the leaves it signs
//! as PEM files into a temporary directory (feature `test-ca`). A test cannot go on without its
//! certificates, so a failure to make them panics, naming the step.
#![allow(clippy::expect_used)]

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// A self-signed CA and the files it signed, in a temporary directory removed on drop.
pub struct TestCa {
    /// Where `ca.pem` and the leaves' `<stem>.crt` / `<stem>.key` are.
    pub dir: tempfile::TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
    name: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("name", &self.name)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new CA whose common name is `name`; its certificate is written to [`Self::ca_file`].
    ///
    /// # Panics
    /// When rcgen cannot make the key or certificate, or the directory cannot be written.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("ca.pem"), issuer.pem()).expect("ca.pem written");
        TestCa {
            dir,
            issuer,
            name: name.to_owned(),
        }
    }

    /// The CA certificate's PEM file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes `<stem>.crt` and `<stem>.key`: a leaf for `names`, usable for server and client
    /// authentication, and answers their paths.
    ///
    /// # Panics
    /// When rcgen cannot sign the leaf or the files cannot be written.
    pub fn leaf(&self, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("leaf parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{stem} of {}", self.name));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf signed");
        let cert_path = self.dir.path().join(format!("{stem}.crt"));
        let key_path = self.dir.path().join(format!("{stem}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("certificate written");
        std::fs::write(&key_path, key.serialize_pem()).expect("key written");
        (cert_path, key_path)
    }
}
