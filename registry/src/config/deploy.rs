//! The sections an operator needs to deploy the registry (issue 27): `http.tls` and
//! `auth.token`, with distribution's keys.
use std::path::PathBuf;

use serde_norway::Value;

use super::values::{key_str, section, string};
use super::{err, ConfigError};
use crate::tls::{MinimumTls, TlsConfig};
use crate::token_auth::TokenConfig;

/// `http.tls`; `warnings` gets what was accepted but is not done as written.
pub(super) fn read_tls(v: &Value, warnings: &mut Vec<String>) -> Result<TlsConfig, ConfigError> {
    let mut c = TlsConfig::default();
    let (mut cert, mut key) = (None, None);
    for (k, v) in section(v, "http.tls")? {
        let name = key_str(k);
        let full = format!("http.tls.{name}");
        match name.as_str() {
            "certificate" => cert = Some(PathBuf::from(string(v, &full)?)),
            "key" => key = Some(PathBuf::from(string(v, &full)?)),
            "clientcas" => {
                c.clientcas = match v {
                    Value::Sequence(s) => s
                        .iter()
                        .map(|x| string(x, &full).map(PathBuf::from))
                        .collect::<Result<_, _>>()?,
                    Value::Null => Vec::new(),
                    other => vec![PathBuf::from(string(other, &full)?)],
                }
            }
            "minimumtls" => {
                let (m, warning) =
                    MinimumTls::parse(&string(v, &full)?).map_err(|m| err(&full, m))?;
                c.minimum = m;
                warnings.extend(warning);
            }
            // Certificates from Let's Encrypt need the ACME protocol and a public name.
            "letsencrypt" => {
                return Err(err(
                    &full,
                    "not supported: give http.tls.certificate and http.tls.key (e.g. from certbot)",
                ))
            }
            other => warnings.push(format!("http.tls.{other}: unknown key, ignored")),
        }
    }
    c.certificate = cert.ok_or_else(|| err("http.tls.certificate", "required with http.tls"))?;
    c.key = key.ok_or_else(|| err("http.tls.key", "required with http.tls"))?;
    Ok(c)
}

/// `auth.token`. The files are read when the registry starts.
pub(super) fn read_token(
    v: &Value,
    warnings: &mut Vec<String>,
) -> Result<TokenConfig, ConfigError> {
    let mut c = TokenConfig::default();
    for (k, v) in section(v, "auth.token")? {
        let name = key_str(k);
        let full = format!("auth.token.{name}");
        match name.as_str() {
            "realm" => c.realm = string(v, &full)?,
            "service" => c.service = string(v, &full)?,
            "issuer" => c.issuer = string(v, &full)?,
            "rootcertbundle" => c.rootcertbundle = Some(PathBuf::from(string(v, &full)?)),
            "jwks" => c.jwks = Some(PathBuf::from(string(v, &full)?)),
            // distribution v3's: send browsers to the realm; no API client needs it.
            "autoredirect" => warnings.push(format!("{full}: not supported, ignored")),
            other => warnings.push(format!("auth.token.{other}: unknown key, ignored")),
        }
    }
    for (key, value) in [
        ("realm", &c.realm),
        ("service", &c.service),
        ("issuer", &c.issuer),
    ] {
        if value.is_empty() {
            return Err(err(&format!("auth.token.{key}"), "required"));
        }
        if value.contains('"') || value.chars().any(char::is_control) {
            return Err(err(
                &format!("auth.token.{key}"),
                "must not contain `\"` or control characters",
            ));
        }
    }
    if c.rootcertbundle.is_none() && c.jwks.is_none() {
        return Err(err(
            "auth.token.rootcertbundle",
            "required (or auth.token.jwks)",
        ));
    }
    Ok(c)
}
