//! `http.tls`: the registry's TLS listener settings, as distribution's keys name them
//! (`certificate`, `key`, `clientcas`, `minimumtls`). HTTP/2 is offered by ALPN with
//! HTTP/1.1 as the fallback, as distribution (Go's `net/http`) does.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The `http.tls` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// `certificate`: the PEM chain, leaf first.
    pub certificate: PathBuf,
    /// `key`: its PEM private key.
    pub key: PathBuf,
    /// `clientcas`: PEM files of the CAs whose client certificates are accepted; when
    /// any is given, every client must present one.
    pub clientcas: Vec<PathBuf>,
    /// `minimumtls`: `tls1.0` … `tls1.3` (default `tls1.2`).
    pub minimum: MinimumTls,
}

/// The lowest protocol version offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinimumTls {
    /// `tls1.0`, `tls1.1` or `tls1.2`: TLS 1.2 and 1.3 (the TLS library speaks nothing
    /// older, so a distribution config asking for 1.0 or 1.1 gets 1.2 — stricter, and
    /// said at start).
    #[default]
    Tls12,
    /// `tls1.3`: TLS 1.3 only.
    Tls13,
}

impl MinimumTls {
    /// `minimumtls`'s value, and a warning when it asks for less than is offered.
    pub fn parse(v: &str) -> Result<(MinimumTls, Option<String>), String> {
        match v {
            "tls1.0" | "tls1.1" => Ok((
                MinimumTls::Tls12,
                Some(format!(
                    "http.tls.minimumtls: {v} is not offered (TLS 1.2 is the lowest version this registry speaks)"
                )),
            )),
            "tls1.2" | "" => Ok((MinimumTls::Tls12, None)),
            "tls1.3" => Ok((MinimumTls::Tls13, None)),
            other => Err(format!(
                "`{other}` is not tls1.0, tls1.1, tls1.2 or tls1.3"
            )),
        }
    }
}

/// The acceptor for these settings; every file is read now, so a bad one stops the start
/// with an error naming its key.
pub fn acceptor(c: &TlsConfig) -> Result<tokio_rustls::TlsAcceptor, String> {
    let chain = read_certs(&c.certificate, "http.tls.certificate")?;
    let key = PrivateKeyDer::from_pem_file(&c.key)
        .map_err(|e| format!("http.tls.key {}: {e}", c.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match c.minimum {
        MinimumTls::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinimumTls::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| format!("http.tls: {e}"))?;
    let builder = if c.clientcas.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for path in &c.clientcas {
            for cert in read_certs(path, "http.tls.clientcas")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("http.tls.clientcas {}: {e}", path.display()))?;
            }
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("http.tls.clientcas: {e}"))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("http.tls.certificate / http.tls.key: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{key} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{key} {}: no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// What a TLS port answers a client that speaks plain HTTP to it (distribution's words).
pub const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Whether a connection's first byte opens a TLS handshake (a record of type 22).
pub fn is_tls_handshake(first: u8) -> bool {
    first == 0x16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_versions() {
        assert_eq!(
            MinimumTls::parse("tls1.3").unwrap(),
            (MinimumTls::Tls13, None)
        );
        assert_eq!(
            MinimumTls::parse("tls1.2").unwrap(),
            (MinimumTls::Tls12, None)
        );
        let (v, warning) = MinimumTls::parse("tls1.0").unwrap();
        assert_eq!(v, MinimumTls::Tls12);
        assert!(warning.unwrap().contains("tls1.0"));
        assert!(MinimumTls::parse("ssl3").unwrap_err().contains("ssl3"));
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsConfig {
            certificate: dir.path().join("nope.pem"),
            key: dir.path().join("nope.key"),
            ..TlsConfig::default()
        };
        let e = acceptor(&missing).err().expect("refused");
        assert!(e.starts_with("http.tls.certificate"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = acceptor(&TlsConfig {
            certificate: empty,
            ..missing
        })
        .err()
        .expect("refused");
        assert!(e.contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn a_certificate_and_key_make_an_acceptor_with_client_cas() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let mut cfg = TlsConfig {
            certificate: c.clone(),
            key: k,
            ..TlsConfig::default()
        };
        assert!(acceptor(&cfg).is_ok());
        cfg.clientcas = vec![c];
        cfg.minimum = MinimumTls::Tls13;
        assert!(acceptor(&cfg).is_ok());
        assert!(is_tls_handshake(0x16) && !is_tls_handshake(b'G'));
    }
}
