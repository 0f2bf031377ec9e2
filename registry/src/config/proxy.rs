//! `proxy`: the pull-through cache of an upstream registry (distribution's keys:
//! `remoteurl`, `username`, `password`, `ttl`).
use std::time::Duration;

use serde_norway::Value;

use super::values::{go_duration, key_str, section, string};
use super::{err, ConfigError};

/// distribution's documented default cache lifetime (`proxy.ttl`, 168h).
pub const DEFAULT_TTL: Duration = Duration::from_secs(168 * 3600);

/// `proxy`: this registry is a pull-through cache of `remote_url`.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `remoteurl`: the upstream's base URL, `http(s)://host[:port]`, without a path.
    pub remote_url: String,
    /// `username`/`password`: the upstream's credentials (Basic, or sent to the token
    /// realm of a Bearer challenge).
    pub username: Option<String>,
    pub password: Option<String>,
    /// `ttl` (default 168h): cached content older than this is expired; `None` (`ttl: 0`)
    /// keeps it for ever, as distribution's documentation says.
    pub ttl: Option<Duration>,
}

impl std::fmt::Debug for ProxyConfig {
    // The password is never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("remote_url", &self.remote_url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("ttl", &self.ttl)
            .finish()
    }
}

pub(super) fn read(v: &Value, warnings: &mut Vec<String>) -> Result<ProxyConfig, ConfigError> {
    let mut remote = None;
    let mut c = ProxyConfig {
        remote_url: String::new(),
        username: None,
        password: None,
        ttl: Some(DEFAULT_TTL),
    };
    for (k, v) in section(v, "proxy")? {
        let key = key_str(k);
        let full = format!("proxy.{key}");
        match key.as_str() {
            "remoteurl" => remote = Some(string(v, &full)?),
            "username" => c.username = Some(string(v, &full)?).filter(|s| !s.is_empty()),
            "password" => c.password = Some(string(v, &full)?).filter(|s| !s.is_empty()),
            "ttl" => {
                let d = go_duration(v, &full)?;
                c.ttl = (!d.is_zero()).then_some(d);
            }
            other => warnings.push(format!("proxy.{other}: unknown key, ignored")),
        }
    }
    let remote = remote.ok_or_else(|| err("proxy.remoteurl", "required in proxy mode"))?;
    c.remote_url = check_url(&remote)?;
    if c.password.is_some() && c.username.is_none() {
        return Err(err("proxy.username", "required with proxy.password"));
    }
    Ok(c)
}

/// `http(s)://host[:port]` (a trailing `/` dropped); a path or query is refused, since
/// the upstream's API is at `/v2/` of the host.
fn check_url(url: &str) -> Result<String, ConfigError> {
    let bad = |m: &str| err("proxy.remoteurl", format!("`{url}`: {m}"));
    let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("must not have a path (the upstream's API is at /v2/)"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn proxy_keys() {
        let c = Config::from_yaml(
            "proxy:\n  remoteurl: https://registry-1.docker.io/\n  username: u\n  password: p\n  ttl: 1h30m\n",
        )
        .unwrap();
        let p = c.proxy.unwrap();
        assert_eq!(p.remote_url, "https://registry-1.docker.io");
        assert_eq!(p.username.as_deref(), Some("u"));
        assert_eq!(p.ttl, Some(Duration::from_secs(5400)));
        assert!(!format!("{p:?}").contains("\"p\""));
        let c = Config::from_yaml("proxy:\n  remoteurl: http://h:5000\n  ttl: 0\n").unwrap();
        assert_eq!(c.proxy.unwrap().ttl, None);
        let c = Config::from_yaml("proxy:\n  remoteurl: http://h:5000\n").unwrap();
        assert_eq!(c.proxy.unwrap().ttl, Some(DEFAULT_TTL));
        for bad in [
            "proxy:\n  username: u\n",
            "proxy:\n  remoteurl: ftp://h\n",
            "proxy:\n  remoteurl: http://h/v2/\n",
            "proxy:\n  remoteurl: http://h\n  password: p\n",
        ] {
            assert!(Config::from_yaml(bad).is_err(), "{bad}");
        }
    }

    /// Every key of distribution's `proxy` section — 2.8.2's `remoteurl`, `username`,
    /// `password`, and `ttl`, which 2.8.2 ignores but its (v3) documentation promises —
    /// is read from `config.yml` and from its `REGISTRY_PROXY_*` override; any other key
    /// is warned about, never silently dropped.
    #[test]
    fn every_key_is_honoured_and_unknown_ones_are_warned_about() {
        const KEYS: [&str; 4] = ["remoteurl", "username", "password", "ttl"];
        let values = ["http://up:5000", "u", "p", "2h"];
        let yaml: String = std::iter::once("proxy:\n".to_string())
            .chain(
                KEYS.iter()
                    .zip(values)
                    .map(|(k, v)| format!("  {k}: {v}\n")),
            )
            .collect();
        let env: std::collections::BTreeMap<String, String> = KEYS
            .iter()
            .zip(values)
            .map(|(k, v)| {
                (
                    format!("REGISTRY_PROXY_{}", k.to_uppercase()),
                    v.to_string(),
                )
            })
            .collect();
        for c in [
            Config::from_yaml(&yaml).unwrap(),
            Config::from_yaml_and_env("", &env).unwrap(),
        ] {
            assert!(c.warnings.is_empty(), "{:?}", c.warnings);
            let p = c.proxy.unwrap();
            assert_eq!(p.remote_url, "http://up:5000");
            assert_eq!(p.username.as_deref(), Some("u"));
            assert_eq!(p.password.as_deref(), Some("p"));
            assert_eq!(p.ttl, Some(Duration::from_secs(7200)));
        }
        let c = Config::from_yaml("proxy:\n  remoteurl: http://up\n  cachesize: 10\n").unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].starts_with("proxy.cachesize"),
            "{:?}",
            c.warnings
        );
    }
}
