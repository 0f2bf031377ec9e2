//! The egress client's TLS (trusted roots: the system's, webpki's, `cafile`'s) and how
//! its failures read: to the guest as wasi:http error codes, to the host as what was wrong
//! with a refused certificate.
use std::io;
use std::sync::Arc;

use wasmtime_wasi_http::Error as HttpError;

use crate::error::{CertificateProblem, DriverError, Error, SandboxKind};

pub(super) fn hyper_error(e: &hyper::Error) -> HttpError {
    if e.is_timeout() {
        HttpError::ConnectionReadTimeout
    } else if e.is_parse() || e.is_parse_status() || e.is_user() {
        HttpError::HttpProtocolError
    } else if e.is_incomplete_message() {
        HttpError::HttpResponseIncomplete
    } else {
        // closed, canceled, io: the connection broke, a retry may work.
        HttpError::ConnectionTerminated
    }
}

/// What is wrong with the server's certificate, in words, when `e` is a certificate
/// refusal.
pub(super) fn certificate_problem(
    e: &hyper_util::client::legacy::Error,
) -> Option<(CertificateProblem, String)> {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(rustls::Error::InvalidCertificate(c)) = rustls_error(s) {
            return Some(describe_certificate_error(c));
        }
        source = s.source();
    }
    None
}

/// A certificate refusal: its kind, and words that say what to fix.
fn describe_certificate_error(c: &rustls::CertificateError) -> (CertificateProblem, String) {
    use rustls::CertificateError as C;
    use CertificateProblem as P;
    match c {
        C::UnknownIssuer => (
            P::UnknownIssuer,
            "the server's certificate is signed by an unknown certificate authority (a \
             private CA must be given with the `cafile` parameter)"
                .to_string(),
        ),
        C::Expired | C::ExpiredContext { .. } => (
            P::Expired,
            "the server's certificate has expired".to_string(),
        ),
        C::NotValidYet | C::NotValidYetContext { .. } => (
            P::NotValidYet,
            "the server's certificate is not valid yet (check this machine's clock)".to_string(),
        ),
        C::NotValidForName | C::NotValidForNameContext { .. } => (
            P::HostnameMismatch,
            format!(
                "the server's certificate was not issued for this host name (hostname \
                 mismatch: {c})"
            ),
        ),
        C::Revoked => (
            P::Revoked,
            "the server's certificate has been revoked".to_string(),
        ),
        other => (
            P::Other,
            format!("the server's certificate was refused: {other}"),
        ),
    }
}

/// The rustls error in `e`: `e` itself, or inside `io::Error`s however deeply wrapped.
/// hyper-rustls wraps tokio-rustls's `io::Error` (which wraps the rustls error) in another
/// `io::Error`, and `io::Error::source` skips the error it wraps, so following `source()`
/// alone never reaches it.
pub(super) fn rustls_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut current = e;
    // A bound, not a loop on trust: wrapping is a few levels deep in practice.
    for _ in 0..8 {
        if let Some(t) = current.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        current = current.downcast_ref::<io::Error>()?.get_ref()?;
    }
    None
}

pub(super) fn client_error(e: hyper_util::client::legacy::Error) -> HttpError {
    use std::error::Error as _;
    let mut source = e.source();
    let mut io_err: Option<&io::Error> = None;
    let mut hyper_err: Option<&hyper::Error> = None;
    let mut tls_err: Option<&rustls::Error> = None;
    let mut text = e.to_string();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        if let Some(x) = s.downcast_ref::<io::Error>() {
            io_err = io_err.or(Some(x));
        }
        if let Some(x) = s.downcast_ref::<hyper::Error>() {
            hyper_err = hyper_err.or(Some(x));
        }
        if let Some(x) = rustls_error(s) {
            tls_err = Some(x);
        }
        source = s.source();
    }
    if let Some(t) = tls_err {
        return match t {
            rustls::Error::InvalidCertificate(_) => HttpError::TlsCertificateError,
            rustls::Error::AlertReceived(a) => HttpError::TlsAlertReceived {
                alert_id: Some(u8::from(*a)),
                alert_message: Some(format!("{a:?}")),
            },
            _ => HttpError::TlsProtocolError,
        };
    }
    if e.is_connect() {
        if let Some(io) = io_err {
            return match io.kind() {
                io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
                io::ErrorKind::TimedOut => HttpError::ConnectionTimeout,
                _ if text.contains("dns error") => HttpError::DnsError {
                    rcode: Some(text),
                    info_code: None,
                },
                kind => HttpError::Connect(io::Error::new(kind, text)),
            };
        }
        if text.contains("dns error") {
            return HttpError::DnsError {
                rcode: Some(text),
                info_code: None,
            };
        }
        return HttpError::Connect(io::Error::other(text));
    }
    if let Some(h) = hyper_err {
        return hyper_error(h);
    }
    if io_err.is_some() {
        return HttpError::ConnectionTerminated;
    }
    HttpError::InternalError(Some(text))
}

/// The TLS client configuration; the system's certificate store is read only when
/// `system_roots` (an https destination).
pub(super) fn tls_config(
    ca_file: Option<&str>,
    system_roots: bool,
) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    // The system's store too (a corporate CA installed there is trusted as curl trusts it).
    // An unreadable store is not an error: webpki's roots and `cafile` remain. Reading and
    // parsing it (hundreds of files) costs every process start milliseconds, and a
    // plain-http destination never uses it: egress refuses every other destination.
    if system_roots {
        let system = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(system.certs);
    }
    if let Some(path) = ca_file {
        use rustls_pki_types::pem::PemObject;
        let bad = |m: String| {
            Error::Driver(DriverError::Config {
                parameter: "cafile".into(),
                message: m,
            })
        };
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("cannot read `{path}`: {e}")))?;
        let mut n = 0;
        for cert in certs {
            let cert = cert.map_err(|e| bad(format!("`{path}` is not valid PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("`{path}`: unusable certificate: {e}")))?;
            n += 1;
        }
        if n == 0 {
            return Err(bad(format!("`{path}` holds no PEM certificate")));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::sandbox(SandboxKind::Setup, format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // No ALPN here: the connector offers h2 and http/1.1 itself.
    Ok(cfg)
}
