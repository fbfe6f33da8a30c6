//! rustls configurations for the server and the client transports: PEM loading (certificate chains, PKCS#1, PKCS#8 and SEC1 private keys,
//! root stores), server configurations with optional or required client certificates, and
//! client configurations with an optional client identity for mutual TLS.
//!
//! The crypto provider is chosen by feature: `aws-lc-rs` (preferred when both are on) or
//! `ring`; with neither, the process-wide default
//! ([`CryptoProvider::install_default`]) is used, and building a configuration without one
//! fails with [`Error::NoCryptoProvider`].
//!
//! Configurations built here advertise both HTTP versions with ALPN ([`ALPN_H2`] first,
//! then [`ALPN_HTTP1`]). To force one HTTP version over TLS, clone the configuration and
//! set `alpn_protocols` to just that one.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

pub use rustls;
pub use rustls_pki_types;

/// The ALPN protocol id of HTTP/2 over TLS.
pub const ALPN_H2: &[u8] = b"h2";

/// The ALPN protocol id of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The crypto provider every configuration of this module uses: aws-lc-rs with the
/// `aws-lc-rs` feature, else ring with `ring`, else the process-wide default.
pub fn provider() -> Result<Arc<CryptoProvider>> {
    #[cfg(feature = "aws-lc-rs")]
    {
        Ok(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
    }
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    {
        Ok(Arc::new(rustls::crypto::ring::default_provider()))
    }
    #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
    {
        CryptoProvider::get_default()
            .cloned()
            .ok_or(Error::NoCryptoProvider)
    }
}

/// Parses every certificate of a PEM document (a chain, leaf first; or a set of roots).
///
/// Fails if the document holds no certificate.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(Error::Pem(rustls_pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}

/// Parses the first private key of a PEM document: PKCS#1 (`RSA PRIVATE KEY`), PKCS#8
/// (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
pub fn private_key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    Ok(PrivateKeyDer::from_pem_slice(pem)?)
}

/// A root store holding every certificate of a PEM document.
pub fn root_store_from_pem(pem: &[u8]) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(pem)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// A certificate chain (leaf first) with its private key: a server's identity, or a client's
/// for mutual TLS.
#[derive(Debug)]
pub struct Identity {
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// An identity from DER values.
    pub fn new(cert_chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Identity { cert_chain, key }
    }

    /// An identity from a PEM certificate chain and a PEM private key (see
    /// [`private_key_from_pem`] for the key formats).
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        Ok(Identity {
            cert_chain: certs_from_pem(cert_chain_pem)?,
            key: private_key_from_pem(key_pem)?,
        })
    }

    /// The certificate chain, leaf first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.cert_chain
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// Whether and how a server asks for client certificates.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// No client certificates are requested.
    #[default]
    None,
    /// Client certificates are requested and, when sent, verified against the roots; clients
    /// without one are admitted too.
    Optional(Arc<RootCertStore>),
    /// Every client must present a certificate that verifies against the roots.
    Required(Arc<RootCertStore>),
}

/// A server configuration: `identity` as the server's certificate, client certificates as
/// `client_auth` says, ALPN `h2` and `http/1.1`.
///
/// The verified client chain of each connection reaches handlers as
/// [`PeerInfo::tls_client_certs`](connect_tower::PeerInfo::tls_client_certs).
pub fn server_config(identity: Identity, client_auth: ClientAuth) -> Result<Arc<ServerConfig>> {
    let provider = provider()?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional(roots) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots, provider)
                .allow_unauthenticated()
                .build()?,
        ),
        ClientAuth::Required(roots) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots, provider).build()?,
        ),
    };
    let mut config = builder.with_single_cert(identity.cert_chain, identity.key)?;
    config.alpn_protocols = both_alpn();
    Ok(Arc::new(config))
}

/// A client configuration trusting `roots`, presenting `identity` when the server asks for a
/// client certificate, offering ALPN `h2` and `http/1.1`.
pub fn client_config(
    roots: Arc<RootCertStore>,
    identity: Option<Identity>,
) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider()?)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(identity) => builder.with_client_auth_cert(identity.cert_chain, identity.key)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = both_alpn();
    Ok(Arc::new(config))
}

/// The operating system's trusted root certificates (feature `native-roots`), for TLS
/// clients of public services: `client_config(native_roots()?, None)`. Certificates the
/// platform store holds but rustls cannot parse are skipped; finding none at all is an error.
#[cfg(feature = "native-roots")]
pub fn native_roots() -> Result<Arc<RootCertStore>> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found.errors.first().map_or_else(
            || "the platform store is empty".to_owned(),
            |e| e.to_string(),
        );
        return Err(crate::Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no usable root certificates: {why}"),
        )));
    }
    Ok(Arc::new(roots))
}

fn both_alpn() -> Vec<Vec<u8>> {
    vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()]
}

/// `config`, with both ALPN ids added if it offers none.
#[cfg(feature = "server")]
pub(crate) fn server_with_default_alpn(config: Arc<ServerConfig>) -> Arc<ServerConfig> {
    if !config.alpn_protocols.is_empty() {
        return config;
    }
    let mut config = (*config).clone();
    config.alpn_protocols = both_alpn();
    Arc::new(config)
}

/// `config`, with both ALPN ids added if it offers none.
#[cfg(feature = "client")]
pub(crate) fn client_with_default_alpn(config: Arc<ClientConfig>) -> Arc<ClientConfig> {
    if !config.alpn_protocols.is_empty() {
        return config;
    }
    let mut config = (*config).clone();
    config.alpn_protocols = both_alpn();
    Arc::new(config)
}

/// `config`, offering exactly HTTP/2.
#[cfg(feature = "client")]
pub(crate) fn client_h2_only(config: Arc<ClientConfig>) -> Arc<ClientConfig> {
    if matches!(config.alpn_protocols.as_slice(), [only] if only == ALPN_H2) {
        return config;
    }
    let mut config = (*config).clone();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Arc::new(config)
}

/// The TLS server name for a URI's host (a DNS name or an IP address).
#[cfg(feature = "client")]
pub(crate) fn server_name(uri: &http::Uri) -> Result<rustls_pki_types::ServerName<'static>> {
    let host = uri
        .host()
        .ok_or_else(|| Error::InvalidUri(format!("{uri} has no host")))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| Error::InvalidUri(format!("{host} is not a valid TLS server name: {e}")))
}

#[cfg(test)]
mod tests {
    /// Without a provider feature and with no process default, building a configuration
    /// says what to do instead of panicking (rustls' own builders would).
    #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
    #[test]
    fn without_a_provider_configurations_fail_with_a_clear_error() {
        let roots = std::sync::Arc::new(super::RootCertStore::empty());
        let error = super::client_config(roots, None).expect_err("no provider");
        assert!(matches!(error, crate::Error::NoCryptoProvider), "{error}");
        assert!(
            error.to_string().contains("`aws-lc-rs` or `ring` feature"),
            "{error}"
        );
    }
    #[cfg(feature = "native-roots")]
    #[test]
    fn native_roots_are_loaded_when_the_platform_has_them() {
        let platform_has_roots = std::fs::read_dir("/etc/ssl/certs")
            .map(|mut dir| dir.next().is_some())
            .unwrap_or(false);
        match native_roots() {
            Ok(roots) => assert!(!roots.is_empty()),
            Err(error) => assert!(!platform_has_roots, "{error}"),
        }
        if platform_has_roots {
            let config = client_config(native_roots().unwrap(), None).unwrap();
            assert_eq!(config.alpn_protocols, both_alpn());
        }
    }

    use super::*;

    #[test]
    fn loads_every_key_format() {
        let key = rcgen::KeyPair::generate().unwrap();
        let pkcs8 = key.serialize_pem();
        assert!(matches!(
            private_key_from_pem(pkcs8.as_bytes()).unwrap(),
            PrivateKeyDer::Pkcs8(_)
        ));
        // SEC1 and PKCS#1 documents are recognised by their labels.
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nAAEC\n-----END EC PRIVATE KEY-----\n";
        assert!(matches!(
            private_key_from_pem(sec1.as_bytes()).unwrap(),
            PrivateKeyDer::Sec1(_)
        ));
        let pkcs1 = "-----BEGIN RSA PRIVATE KEY-----\nAAEC\n-----END RSA PRIVATE KEY-----\n";
        assert!(matches!(
            private_key_from_pem(pkcs1.as_bytes()).unwrap(),
            PrivateKeyDer::Pkcs1(_)
        ));
        assert!(private_key_from_pem(b"no key here").is_err());
        assert!(certs_from_pem(b"").is_err());
    }

    #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
    #[test]
    fn builds_configurations_with_alpn() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let identity =
            Identity::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
        let roots = Arc::new(root_store_from_pem(cert.pem().as_bytes()).unwrap());
        let server = server_config(identity.clone(), ClientAuth::Required(roots.clone())).unwrap();
        assert_eq!(server.alpn_protocols, both_alpn());
        let client = client_config(roots, Some(identity)).unwrap();
        assert_eq!(client.alpn_protocols, both_alpn());
        assert!(matches!(
            server_config(
                Identity::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap(),
                ClientAuth::Optional(Arc::new(RootCertStore::empty()))
            ),
            Err(Error::Verifier(_))
        ));
    }
}
