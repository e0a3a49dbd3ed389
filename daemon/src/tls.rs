//! TLS for the API's TCP listeners: rustls with the ring provider (as the
//! registry client uses), client certificates checked against the CA.

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

pub use tokio_rustls::server::TlsStream;
pub use tokio_rustls::TlsAcceptor;

use crate::config::TlsSettings;

/// A client that has not finished its handshake by then is dropped, so a
/// silent connection cannot hold a slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The acceptor for `settings`: the server certificate and key, and with
/// `verify` a client certificate signed by the CA is required.
pub fn acceptor(settings: &TlsSettings) -> Result<TlsAcceptor> {
    // ring, as the registry client (reqwest) uses: aws-lc-rs would add a
    // C/cmake build for post-quantum key exchange the docker CLI does not
    // offer to a daemon anyway.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&settings.cert)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key)
        .with_context(|| format!("reading the TLS key {}", settings.key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &settings.ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .with_context(|| format!("CA certificate in {}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if settings.verify {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .with_context(|| format!("CA certificates in {}", ca.display()))?,
            )
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "TLS certificate {} with key {}",
            settings.cert.display(),
            settings.key.display()
        )
    })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading certificates from {}", path.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", path.display());
    }
    Ok(certs)
}

/// The server side of the handshake on `stream`, bounded in time. A client
/// without an acceptable certificate, or speaking plain HTTP, fails here,
/// before any request is read.
pub async fn handshake(acceptor: &TlsAcceptor, stream: TcpStream) -> Result<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(result) => Ok(result?),
        Err(_) => bail!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}"),
    }
}
