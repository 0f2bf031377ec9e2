//! What to do about a driver error, when there is something obvious: the line the
//! command line adds after the error (`hint`), by backend code, I/O kind or parameter.
use ks3_driver_host::{CertificateProblem, IoKind};
use ks3_driver_host::{Config, DriverError, Error};
use ks3_driver_host::{SigningScheme, V4Namespace};

/// What to do about an error, when there is something obvious. `config` is the
/// configuration in use, when it is valid.
pub fn hint(error: &Error, config: Option<&Config>) -> Option<String> {
    let h = match error {
        Error::Driver(DriverError::Backend(b)) => match b.code.as_str() {
            "SignatureDoesNotMatch" => return Some(signature_hint(config)),
            "RequestTimeTooSkewed" | "RequestExpired" => {
                "this machine's clock is off: synchronise it (NTP)"
            }
            "InvalidAccessKeyId" => "check the access key (accesskey / KS3_ACCESS_KEY_ID)",
            "NoSuchBucket" => "check the bucket parameter: the bucket must exist in this region",
            "AccessDenied" => {
                "check the access key and secret key (and this machine's clock), and the key's \
                 permission on this bucket"
            }
            _ => return None,
        },
        Error::Driver(DriverError::Io(e)) => match e.kind {
            IoKind::TlsCertificate(problem) => match problem {
                Some(CertificateProblem::UnknownIssuer) => {
                    "the endpoint's TLS certificate is not signed by a trusted CA: give the \
                     private CA's certificate (PEM) with -p cafile=FILE"
                }
                Some(CertificateProblem::Expired | CertificateProblem::NotValidYet) => {
                    "the endpoint's TLS certificate is outside its validity period: renew the \
                     server's certificate (and check this machine's clock)"
                }
                Some(CertificateProblem::HostnameMismatch) => {
                    "the endpoint's TLS certificate names another host: use regionendpoint \
                     with a host name the certificate was issued for"
                }
                _ => {
                    "the endpoint's TLS certificate was refused: check the server's \
                     certificate and the cafile parameter"
                }
            },
            IoKind::Connect => {
                "cannot reach the endpoint: check regionendpoint / region, and that the server \
                 runs (`ks3-driver serve-local` starts a local one)"
            }
            IoKind::Timeout => {
                "the endpoint did not answer in time: check regionendpoint and the network, or \
                 raise requesttimeout"
            }
            _ => return None,
        },
        Error::Driver(DriverError::Config { parameter, .. }) => {
            return Some(config_hint(parameter))
        }
        _ => return None,
    };
    Some(h.to_string())
}

/// A signature KS3 refused: the secret, the clock, and (named, since a server may expect
/// another) the scheme in use and its V4 region.
fn signature_hint(config: Option<&Config>) -> String {
    let scheme = match config {
        None => {
            return "check the secret key (secretkey / KS3_SECRET_ACCESS_KEY) and that this \
                        machine's clock is right"
                .to_string()
        }
        Some(c) => c,
    };
    let (name, how) = match scheme.signing {
        SigningScheme::V2 => ("v2", "KSS V2, HMAC-SHA1".to_string()),
        SigningScheme::V4(ns) => (
            scheme.signing.name(),
            format!(
                "{}, V4 region {}",
                match ns {
                    V4Namespace::Kss4 => "KSS4-HMAC-SHA256",
                    V4Namespace::Aws4 => "AWS4-HMAC-SHA256",
                },
                scheme.v4_region.as_deref().unwrap_or("?")
            ),
        ),
    };
    let region = if matches!(scheme.signing, SigningScheme::V4(_)) {
        ", that v4region is the endpoint's region name"
    } else {
        ""
    };
    format!(
        "requests are signed with signatureversion={name} ({how}): check the secret key \
         (secretkey / KS3_SECRET_ACCESS_KEY), that this machine's clock is right{region}, and \
         that the endpoint accepts this scheme"
    )
}

pub(super) fn config_hint(parameter: &str) -> String {
    format!(
        "set it with -p {parameter}=…, {}{} or in the -c file; `ks3-driver config` shows what is set",
        ks3_driver_host::ENV_PREFIX,
        parameter.to_ascii_uppercase()
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use ks3_driver_host::{BackendError, IoError};

    pub(in crate::cli) fn backend(code: &str) -> Error {
        Error::Driver(DriverError::Backend(BackendError {
            code: code.into(),
            status: 403,
            message: "m".into(),
            request_id: "r".into(),
            path: "/x".into(),
        }))
    }

    #[test]
    fn certificate_refusals_get_a_certificate_hint() {
        // The hint follows the kind; the message is the same for all four.
        let h = |p: Option<CertificateProblem>| {
            let e = IoError::new(IoKind::TlsCertificate(p), "ks3: GET / failed");
            hint(&Error::Driver(DriverError::Io(e)), None).unwrap_or_default()
        };
        let unknown = h(Some(CertificateProblem::UnknownIssuer));
        assert!(unknown.contains("cafile"), "{unknown}");
        let expired = h(Some(CertificateProblem::Expired));
        assert!(expired.contains("validity"), "{expired}");
        let name = h(Some(CertificateProblem::HostnameMismatch));
        assert!(name.contains("host name"), "{name}");
        let unknown_why = h(None);
        assert!(unknown_why.contains("certificate"), "{unknown_why}");
        for hint in [&unknown, &expired, &name, &unknown_why] {
            assert!(!hint.contains("cannot reach"), "{hint}");
        }
    }

    #[test]
    fn hints_say_what_to_do() {
        let h = |e: &Error| hint(e, None).unwrap_or_default();
        let sig = h(&backend("SignatureDoesNotMatch"));
        assert!(sig.contains("secret key") && sig.contains("clock"), "{sig}");
        assert!(h(&backend("RequestTimeTooSkewed")).contains("clock"));
        assert!(h(&backend("InvalidAccessKeyId")).contains("access key"));
        assert!(h(&backend("NoSuchBucket")).contains("bucket"));
        assert_eq!(hint(&backend("InternalError"), None), None);
        let refused = Error::Driver(DriverError::Io(IoError::new(
            IoKind::Connect,
            "ks3: connection refused",
        )));
        assert!(h(&refused).contains("regionendpoint"), "{}", h(&refused));
        let slow = Error::Driver(DriverError::Io(IoError::new(
            IoKind::Timeout,
            "ks3: GET / failed",
        )));
        assert!(h(&slow).contains("requesttimeout"), "{}", h(&slow));
        // An integrity failure has no obvious fix to suggest.
        let crc = Error::Driver(DriverError::Io(IoError::new(
            IoKind::Integrity,
            "connection failed",
        )));
        assert_eq!(hint(&crc, None), None);
        let missing = Error::Driver(DriverError::Config {
            parameter: "bucket".into(),
            message: "required".into(),
        });
        let m = h(&missing);
        assert!(
            m.contains("-p bucket=") && m.contains("REGISTRY_STORAGE_KS3_BUCKET"),
            "{m}"
        );
        assert_eq!(
            hint(&Error::Driver(DriverError::PathNotFound("/x".into())), None),
            None
        );
    }

    #[test]
    fn signature_hint_names_the_scheme() {
        let config = |extra: &[(&str, &str)]| {
            let mut p = ks3_driver_host::Params::new();
            for (k, v) in [
                ("accesskey", "AK"),
                ("secretkey", "SK"),
                ("region", "ks3-cn-beijing"),
                ("bucket", "registry"),
            ]
            .iter()
            .chain(extra)
            {
                p.insert((*k).into(), (*v).into());
            }
            Config::from_params(&p, |_| None).unwrap()
        };
        let sig = backend("SignatureDoesNotMatch");
        for (extra, says) in [
            (vec![], "signatureversion=v2 (KSS V2, HMAC-SHA1)"),
            (
                vec![("signatureversion", "v4")],
                "signatureversion=v4 (KSS4-HMAC-SHA256, V4 region BEIJING)",
            ),
            (
                vec![("signatureversion", "aws4"), ("v4region", "MARS")],
                "signatureversion=aws4 (AWS4-HMAC-SHA256, V4 region MARS)",
            ),
        ] {
            let c = config(&extra);
            let h = hint(&sig, Some(&c)).unwrap();
            assert!(h.contains(says) && h.contains("secret key"), "{h}");
            assert!(!h.contains("SK\""), "{h}");
        }
    }
}
