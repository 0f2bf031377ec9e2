//! `regionendpoint`, `region`, `internal`, `secure` and `forcepathstyle` made into the
//! one place requests go ([`Endpoint`]).
use super::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Where requests go and how the bucket is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// The host requests are sent to (with the bucket label in virtual-hosted style).
    pub host: String,
    /// An explicit port; `None` means the scheme's default.
    pub port: Option<u16>,
    /// `/bucket/key` paths instead of `bucket.host/key`.
    pub path_style: bool,
}

impl Endpoint {
    /// `host[:port]`, the port omitted when it is the scheme's default.
    pub fn authority(&self) -> String {
        match self.port {
            Some(p) if p != self.scheme.default_port() => format!("{}:{p}", self.host),
            _ => self.host.clone(),
        }
    }
    /// The port connections go to.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }
    /// `scheme://authority`
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme.as_str(), self.authority())
    }
}

fn is_ip_or_localhost(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::Ipv4Addr>().is_ok() || host.starts_with('[')
}

/// `raw` with anything before an `@` (after a scheme) replaced by `***`.
fn hide_userinfo(raw: &str) -> String {
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), raw),
    };
    match rest.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}***@{host}"),
        None => raw.to_string(),
    }
}

pub(super) fn endpoint(
    bucket: &str,
    region: &str,
    region_endpoint: Option<&str>,
    internal: bool,
    secure: bool,
    force_path_style: bool,
) -> Result<Endpoint, ConfigError> {
    let mut scheme = if secure { Scheme::Https } else { Scheme::Http };
    let (host, port) = match region_endpoint {
        None => {
            let suffix = if internal { "-internal" } else { "" };
            (format!("{region}{suffix}.ksyuncs.com"), None)
        }
        Some(raw) => {
            // `user:password@host`: refused without echoing the credentials.
            if raw.contains('@') {
                return Err(ConfigError::new(
                    "regionendpoint",
                    format!(
                        "`{}`: credentials (user:password@) are not allowed in the endpoint; \
                         use accesskey and secretkey",
                        hide_userinfo(raw)
                    ),
                ));
            }
            let mut rest = raw;
            if let Some((s, r)) = raw.split_once("://") {
                scheme = match s.to_ascii_lowercase().as_str() {
                    "http" => Scheme::Http,
                    "https" => Scheme::Https,
                    _ => {
                        return Err(ConfigError::new(
                            "regionendpoint",
                            format!("`{raw}`: the scheme must be http or https"),
                        ))
                    }
                };
                rest = r;
            }
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            if rest.contains('/') || rest.contains('?') || rest.contains('@') || rest.contains('#')
            {
                return Err(ConfigError::new(
                    "regionendpoint",
                    format!("`{raw}`: give host[:port] or scheme://host[:port], without a path"),
                ));
            }
            parse_host_port(rest).ok_or_else(|| {
                ConfigError::new(
                    "regionendpoint",
                    format!("`{raw}` is not a valid host[:port]"),
                )
            })?
        }
    };
    let host = host.to_ascii_lowercase();
    let path_style = force_path_style || is_ip_or_localhost(&host);
    // An endpoint that already names the bucket (bucket.ks3-….com) is used as it is.
    let host = if path_style || host.starts_with(&format!("{bucket}.")) {
        host
    } else {
        format!("{bucket}.{host}")
    };
    Ok(Endpoint {
        scheme,
        host,
        port,
        path_style,
    })
}

fn parse_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (format!("[{h}]"), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse::<u16>().ok()?)),
            None => (s.to_string(), None),
        }
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ok = !bare.is_empty()
        && bare.len() <= 253
        && bare
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b':');
    (ok && port != Some(0)).then_some((host, port))
}
