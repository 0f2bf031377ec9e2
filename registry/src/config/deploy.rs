//! The sections an operator needs to deploy the registry (issue 27), with distribution's
//! keys: `http.tls`, `auth.token`, `http.debug`, `health`, `log`.
use std::path::PathBuf;
use std::time::Duration;

use serde_norway::Value;

use super::values::{boolean, go_duration, key_str, section, string, uint};
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

/// `http.debug`: the debug server (health and metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugConfig {
    /// `addr`, e.g. `:5001`.
    pub addr: String,
    /// `prometheus.enabled`.
    pub prometheus: bool,
    /// `prometheus.path` (default `/metrics`).
    pub prometheus_path: String,
}

pub(super) fn read_debug(
    v: &Value,
    warnings: &mut Vec<String>,
) -> Result<DebugConfig, ConfigError> {
    let mut c = DebugConfig {
        addr: String::new(),
        prometheus: false,
        prometheus_path: "/metrics".into(),
    };
    for (k, v) in section(v, "http.debug")? {
        let name = key_str(k);
        let full = format!("http.debug.{name}");
        match name.as_str() {
            "addr" => c.addr = string(v, &full)?,
            "prometheus" => {
                for (k, v) in section(v, &full)? {
                    let pk = key_str(k);
                    let pfull = format!("{full}.{pk}");
                    match pk.as_str() {
                        "enabled" => c.prometheus = boolean(v, &pfull)?,
                        "path" => {
                            let p = string(v, &pfull)?;
                            if !p.starts_with('/') {
                                return Err(err(&pfull, "must start with /"));
                            }
                            c.prometheus_path = p;
                        }
                        other => warnings.push(format!("{full}.{other}: unknown key, ignored")),
                    }
                }
            }
            other => warnings.push(format!("http.debug.{other}: unknown key, ignored")),
        }
    }
    if c.addr.is_empty() {
        return Err(err("http.debug.addr", "required with http.debug"));
    }
    Ok(c)
}

/// `health.storagedriver`: a periodic probe of storage through the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageHealth {
    /// `interval` (default 10s).
    pub interval: Duration,
    /// `threshold`: failures in a row before the registry is unhealthy (default 1).
    pub threshold: u32,
}

/// `health`; `None` when the storage driver check is off.
pub(super) fn read_health(
    v: &Value,
    warnings: &mut Vec<String>,
) -> Result<Option<StorageHealth>, ConfigError> {
    let mut out = None;
    for (k, v) in section(v, "health")? {
        let name = key_str(k);
        match name.as_str() {
            "storagedriver" => {
                let mut enabled = false;
                let mut h = StorageHealth {
                    interval: Duration::from_secs(10),
                    threshold: 1,
                };
                for (k, v) in section(v, "health.storagedriver")? {
                    let key = key_str(k);
                    let full = format!("health.storagedriver.{key}");
                    match key.as_str() {
                        "enabled" => enabled = boolean(v, &full)?,
                        "interval" => {
                            h.interval = go_duration(v, &full)?;
                            if h.interval.is_zero() {
                                return Err(err(&full, "must be positive"));
                            }
                        }
                        "threshold" => {
                            // distribution: 0 means 1.
                            h.threshold = u32::try_from(uint(v, &full)?)
                                .map_err(|_| err(&full, "too large"))?
                                .max(1);
                        }
                        _ => warnings.push(format!("{full}: unknown key, ignored")),
                    }
                }
                out = enabled.then_some(h);
            }
            other => warnings.push(format!("health.{other}: not supported, ignored")),
        }
    }
    Ok(out)
}

/// `log`: the level, the line format, and fields added to every line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// `level`: `error`, `warn`, `info` (distribution's default), `debug`.
    pub level: Option<String>,
    /// `formatter`: `text` (default) or `json`.
    pub json: bool,
    /// `fields`: added to every line.
    pub fields: Vec<(String, String)>,
    /// `accesslog.disabled`.
    pub access_log_disabled: bool,
}

pub(super) fn read_log(v: &Value, warnings: &mut Vec<String>) -> Result<LogConfig, ConfigError> {
    let mut c = LogConfig::default();
    for (k, v) in section(v, "log")? {
        let name = key_str(k);
        let full = format!("log.{name}");
        match name.as_str() {
            "level" => {
                let l = string(v, &full)?.to_ascii_lowercase();
                if !["error", "warn", "info", "debug"].contains(&l.as_str()) {
                    return Err(err(
                        &full,
                        format!("`{l}` is not error, warn, info or debug"),
                    ));
                }
                c.level = Some(l);
            }
            "formatter" => {
                c.json = match string(v, &full)?.as_str() {
                    "text" => false,
                    "json" => true,
                    // logstash is JSON with other field names; JSON is the nearest.
                    "logstash" => {
                        warnings.push("log.formatter: logstash is written as json".into());
                        true
                    }
                    other => return Err(err(&full, format!("`{other}` is not text or json"))),
                }
            }
            "fields" => {
                for (k, v) in section(v, &full)? {
                    let field = key_str(k);
                    let value = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => return Err(err(&format!("{full}.{field}"), "must be a scalar")),
                    };
                    c.fields.push((field, value));
                }
            }
            "accesslog" => {
                for (k, v) in section(v, &full)? {
                    match key_str(k).as_str() {
                        "disabled" => c.access_log_disabled = boolean(v, "log.accesslog.disabled")?,
                        other => {
                            warnings.push(format!("log.accesslog.{other}: unknown key, ignored"))
                        }
                    }
                }
            }
            other => warnings.push(format!("log.{other}: unknown key, ignored")),
        }
    }
    Ok(c)
}
