//! The driver's parameters: one table, one parser, one place for validation.
//!
//! Sources are merged by the caller (the host reads files, `-p` flags and
//! `REGISTRY_STORAGE_KS3_*`; the component reads its environment); here a flat
//! `name → value` map becomes a validated [`Config`] or a [`ConfigError`] naming the
//! parameter and what is allowed.
use std::collections::BTreeMap;
use std::fmt;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

pub use ks3_proto::limits::{MAX_PARTS, MAX_PART_SIZE, MIN_PART_SIZE};
/// The largest `chunksize`: a part is buffered in the component's linear memory (a 32-bit
/// address space, and the host's memory limit is about twice the chunk), so 1 GiB rather
/// than KS3's 5 GB.
pub const MAX_CHUNK_SIZE: u64 = GIB;
/// Largest `uploadconcurrency`.
pub const MAX_UPLOAD_CONCURRENCY: u64 = 64;

/// Prefix of the environment variables distribution maps onto `storage.ks3.*`.
pub const ENV_PREFIX: &str = "REGISTRY_STORAGE_KS3_";
/// Credential fallbacks used when `accesskey` / `secretkey` are empty (spec page).
pub const ENV_ACCESS_KEY: &str = "KS3_ACCESS_KEY_ID";
pub const ENV_SECRET_KEY: &str = "KS3_SECRET_ACCESS_KEY";
/// The parameters that fall back to a variable of their own when empty.
pub const CREDENTIAL_FALLBACKS: [(&str, &str); 2] =
    [("accesskey", ENV_ACCESS_KEY), ("secretkey", ENV_SECRET_KEY)];

/// The parameter a `REGISTRY_STORAGE_KS3_<NAME>` variable sets (`<name>` lower-cased), or
/// `None` for any other variable. The one rule for the component's environment and the
/// host's settings alike.
pub fn env_param(var: &str) -> Option<String> {
    let name = var.strip_prefix(ENV_PREFIX)?;
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

/// A credential's value: its own when not blank, else its fallback variable's when that is
/// not blank (see [`CREDENTIAL_FALLBACKS`]).
pub fn credential(
    own: Option<&str>,
    fallback_var: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    match own.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => Some(v.to_string()),
        None => env(fallback_var).filter(|v| !v.trim().is_empty()),
    }
}

/// Regions KS3 documents (current and legacy). Any other region needs `regionendpoint`.
pub const KNOWN_REGIONS: &[&str] = &[
    "ks3-cn-beijing",
    "ks3-cn-shanghai",
    "ks3-cn-guangzhou",
    "ks3-cn-hk-1",
    "ks3-cn-qingyang",
    "ks3-rus",
    "ks3-sgp",
    "ks3-jr-beijing",
    "ks3-jr-shanghai",
    "ks3-gov-beijing",
    "ks3-cn-hangzhou",
    "ks3-cn-qingdao",
    "ks3-us-west-1",
    "kss",
];

pub use ks3_proto::names::{CANNED_ACLS as OBJECT_ACLS, STORAGE_CLASSES};
pub use ks3_proto::sign_v4::{SigningScheme, V4Namespace};

/// One documented parameter.
pub struct ParamSpec {
    pub name: &'static str,
    /// The default as a user would write it; `None` when there is none (required or omitted).
    pub default: Option<&'static str>,
    pub secret: bool,
    pub help: &'static str,
}

/// Every parameter the driver accepts. Anything else is an error ("unknown parameter").
pub const PARAMETERS: &[ParamSpec] = &[
    ParamSpec {
        name: "accesskey",
        default: None,
        secret: true,
        help: "KS3 access key (falls back to KS3_ACCESS_KEY_ID when empty)",
    },
    ParamSpec {
        name: "secretkey",
        default: None,
        secret: true,
        help: "KS3 secret key (falls back to KS3_SECRET_ACCESS_KEY when empty)",
    },
    ParamSpec {
        name: "region",
        default: None,
        secret: false,
        help: "KS3 region, e.g. ks3-cn-beijing",
    },
    ParamSpec {
        name: "bucket",
        default: None,
        secret: false,
        help: "bucket holding the registry's data; must exist",
    },
    ParamSpec {
        name: "regionendpoint",
        default: None,
        secret: false,
        help: "endpoint override: host[:port] or http(s)://host[:port]",
    },
    ParamSpec {
        name: "internal",
        default: Some("false"),
        secret: false,
        help: "use the region's internal (VPC) endpoint",
    },
    ParamSpec {
        name: "secure",
        default: Some("true"),
        secret: false,
        help: "HTTPS (true) or HTTP (false); a scheme in regionendpoint wins",
    },
    ParamSpec {
        name: "forcepathstyle",
        default: Some("false"),
        secret: false,
        help: "path-style addressing (/bucket/key) instead of bucket.host",
    },
    ParamSpec {
        name: "encrypt",
        default: Some("false"),
        secret: false,
        help: "server-side encryption (x-kss-server-side-encryption: AES256)",
    },
    ParamSpec {
        name: "chunksize",
        default: Some("10485760"),
        secret: false,
        help: "multipart part size in bytes, 5 MiB to 1 GiB (a part is held in the component's memory)",
    },
    ParamSpec {
        name: "uploadconcurrency",
        default: Some("4"),
        secret: false,
        help: "parts of a writer's upload in flight at once, 1 to 64 (each holds a chunk in the component's memory)",
    },
    ParamSpec {
        name: "rootdirectory",
        default: Some(""),
        secret: false,
        help: "key prefix for all the registry's data",
    },
    ParamSpec {
        name: "multipartcopythresholdsize",
        default: Some("33554432"),
        secret: false,
        help: "objects larger than this move by multipart copy (0 to 5 GB, KS3's copy limit)",
    },
    ParamSpec {
        name: "multipartcopychunksize",
        default: Some("33554432"),
        secret: false,
        help: "part size of a multipart copy, 5 MiB to 5 GB (KS3's part limit)",
    },
    ParamSpec {
        name: "multipartcopymaxconcurrency",
        default: Some("16"),
        secret: false,
        help: "parts of a multipart copy in flight at once, 1 to 1000",
    },
    ParamSpec {
        name: "objectacl",
        default: Some("private"),
        secret: false,
        help: "canned ACL of new objects: private, public-read, public-read-write",
    },
    ParamSpec {
        name: "storageclass",
        default: None,
        secret: false,
        help: "x-kss-storage-class of new objects (omitted by default)",
    },
    ParamSpec {
        name: "maxretries",
        default: Some("5"),
        secret: false,
        help: "retries of a failed idempotent request, 0 to 20",
    },
    ParamSpec {
        name: "requesttimeout",
        default: Some("60"),
        secret: false,
        help: "seconds to wait for a response or between body bytes, 1 to 3600",
    },
    ParamSpec {
        name: "cafile",
        default: None,
        secret: false,
        help: "extra CA certificate (PEM) trusted for HTTPS (host only)",
    },
    ParamSpec {
        name: "signatureversion",
        default: Some("v2"),
        secret: false,
        help: "request signing: v2 (KSS HMAC-SHA1), v4 (KSS4-HMAC-SHA256, x-kss-* headers) or aws4 (AWS4-HMAC-SHA256, x-amz-* headers)",
    },
    ParamSpec {
        name: "v4region",
        default: None,
        secret: false,
        help: "region name of V4 signatures (default: derived from region, ks3-cn-beijing -> BEIJING); needed for regions outside KS3's table",
    },
];

/// Looks up a parameter's spec.
pub fn param_spec(name: &str) -> Option<&'static ParamSpec> {
    PARAMETERS.iter().find(|p| p.name == name)
}

/// A parameter with a bad value, or a missing required one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub parameter: String,
    pub message: String,
}

impl ConfigError {
    fn new(parameter: &str, message: impl Into<String>) -> Self {
        ConfigError {
            parameter: parameter.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parameter `{}`: {}", self.parameter, self.message)
    }
}

/// Credentials are held as [`Secret`]s (`Debug` masks them).
pub use ks3_proto::Secret;

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

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub access_key: Secret,
    pub secret_key: Secret,
    pub region: String,
    pub bucket: String,
    pub endpoint: Endpoint,
    pub encrypt: bool,
    pub chunk_size: u64,
    /// `uploadconcurrency`: a writer's parts in flight at once, as configured (see
    /// [`Config::parts_in_flight`] for what the address space allows).
    pub upload_concurrency: u32,
    /// Normalised key prefix: no leading or trailing `/`; empty for the bucket root.
    pub root_directory: String,
    pub multipart_copy_threshold: u64,
    pub multipart_copy_chunk_size: u64,
    pub multipart_copy_max_concurrency: u32,
    pub object_acl: String,
    pub storage_class: Option<String>,
    pub max_retries: u32,
    pub request_timeout_secs: u64,
    pub ca_file: Option<String>,
    /// `signatureversion`: how every request and presigned URL is signed.
    pub signing: SigningScheme,
    /// The region name of V4 scopes: `v4region`, else the one KS3's table gives `region`.
    /// `None` only when neither exists, which V2 does not need (V4 configurations without
    /// one are refused).
    pub v4_region: Option<String>,
}

/// Parameters as strings, by lower-case name.
pub type Params = BTreeMap<String, String>;

impl Config {
    /// Parts a writer keeps in flight at once: `uploadconcurrency`, lowered as needed so
    /// that the parts in flight, the part being filled and a copy of it (the saved tail)
    /// fit the component's 4 GiB address space with room to spare
    /// (`(n + 2) × chunksize ≤ 4 GiB − 64 MiB`); at least one.
    pub fn parts_in_flight(&self) -> usize {
        let room = (4 * GIB - 64 * MIB) / self.chunk_size.max(1);
        let fits = room.saturating_sub(2).max(1);
        usize::try_from(u64::from(self.upload_concurrency).min(fits)).unwrap_or(1)
    }

    /// The V4 namespace requests are signed in; `None` for V2.
    pub fn signing_namespace(&self) -> Option<V4Namespace> {
        match self.signing {
            SigningScheme::V2 => None,
            SigningScheme::V4(ns) => Some(ns),
        }
    }

    /// Parses `params`; `env` supplies the credential fallbacks.
    pub fn from_params(
        params: &Params,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        for name in params.keys() {
            // An error names its parameter; a nameless one is named by what is wrong.
            if name.trim().is_empty() {
                return Err(ConfigError::new(
                    "(empty name)",
                    "a parameter has an empty name",
                ));
            }
            if param_spec(name).is_none() {
                let known: Vec<_> = PARAMETERS.iter().map(|p| p.name).collect();
                return Err(ConfigError::new(
                    name,
                    format!(
                        "unknown parameter; known parameters are {}",
                        known.join(", ")
                    ),
                ));
            }
        }
        let get = |name: &str| -> Option<&str> {
            params
                .get(name)
                .map(|v| v.as_str())
                .or_else(|| param_spec(name).and_then(|p| p.default))
        };
        let non_empty = |name: &str| get(name).map(str::trim).filter(|v| !v.is_empty());

        let access_key = credential(get("accesskey"), ENV_ACCESS_KEY, &env);
        let secret_key = credential(get("secretkey"), ENV_SECRET_KEY, &env);
        let access_key = access_key.ok_or_else(|| {
            ConfigError::new(
                "accesskey",
                format!("required: set it, or set {ENV_ACCESS_KEY}"),
            )
        })?;
        let secret_key = secret_key.ok_or_else(|| {
            ConfigError::new(
                "secretkey",
                format!("required: set it, or set {ENV_SECRET_KEY}"),
            )
        })?;

        let bucket = non_empty("bucket").ok_or_else(|| {
            ConfigError::new("bucket", "required: the name of an existing KS3 bucket")
        })?;
        validate_bucket(bucket)?;

        let region_endpoint = non_empty("regionendpoint");
        let region = non_empty("region")
            .ok_or_else(|| ConfigError::new("region", "required, e.g. ks3-cn-beijing"))?;
        validate_region(region, region_endpoint.is_some())?;

        let internal = parse_bool("internal", get("internal"))?;
        let secure = parse_bool("secure", get("secure"))?;
        let force_path_style = parse_bool("forcepathstyle", get("forcepathstyle"))?;
        let endpoint = endpoint(
            bucket,
            region,
            region_endpoint,
            internal,
            secure,
            force_path_style,
        )?;

        let chunk_size = parse_u64("chunksize", get("chunksize"), MIN_PART_SIZE, MAX_CHUNK_SIZE)?;
        let upload_concurrency = parse_u64(
            "uploadconcurrency",
            get("uploadconcurrency"),
            1,
            MAX_UPLOAD_CONCURRENCY,
        )? as u32;
        let multipart_copy_threshold = parse_u64(
            "multipartcopythresholdsize",
            get("multipartcopythresholdsize"),
            0,
            MAX_PART_SIZE,
        )?;
        let multipart_copy_chunk_size = parse_u64(
            "multipartcopychunksize",
            get("multipartcopychunksize"),
            MIN_PART_SIZE,
            MAX_PART_SIZE,
        )?;
        let multipart_copy_max_concurrency = parse_u64(
            "multipartcopymaxconcurrency",
            get("multipartcopymaxconcurrency"),
            1,
            1000,
        )? as u32;
        let max_retries = parse_u64("maxretries", get("maxretries"), 0, 20)? as u32;
        let request_timeout_secs = parse_u64("requesttimeout", get("requesttimeout"), 1, 3600)?;

        let object_acl = get("objectacl")
            .unwrap_or("private")
            .trim()
            .to_ascii_lowercase();
        if !OBJECT_ACLS.contains(&object_acl.as_str()) {
            return Err(ConfigError::new(
                "objectacl",
                format!("`{object_acl}` is not one of {}", OBJECT_ACLS.join(", ")),
            ));
        }
        let storage_class = match non_empty("storageclass").map(|s| s.to_ascii_uppercase()) {
            None => None,
            Some(s) if s == "NONE" => None,
            Some(s) if STORAGE_CLASSES.contains(&s.as_str()) => Some(s),
            Some(s) => {
                return Err(ConfigError::new(
                    "storageclass",
                    format!("`{s}` is not one of NONE, {}", STORAGE_CLASSES.join(", ")),
                ))
            }
        };
        let root_directory = normalize_root(get("rootdirectory").unwrap_or(""))?;
        let encrypt = parse_bool("encrypt", get("encrypt"))?;
        let (signing, v4_region) = signing(region, get("signatureversion"), non_empty("v4region"))?;

        Ok(Config {
            access_key: Secret::new(access_key),
            secret_key: Secret::new(secret_key),
            region: region.to_string(),
            bucket: bucket.to_string(),
            endpoint,
            encrypt,
            chunk_size,
            upload_concurrency,
            root_directory,
            multipart_copy_threshold,
            multipart_copy_chunk_size,
            multipart_copy_max_concurrency,
            object_acl,
            storage_class,
            max_retries,
            request_timeout_secs,
            ca_file: non_empty("cafile").map(str::to_string),
            signing,
            v4_region,
        })
    }

    /// Reads `REGISTRY_STORAGE_KS3_*` (and the credential fallbacks) from `vars`, the way
    /// the component reads its environment.
    pub fn from_env_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        Config::from_params(&params_from_env(&vars), |k| vars.get(k).cloned())
    }
}

/// The `REGISTRY_STORAGE_KS3_<NAME>` variables of `vars` as parameters (`<name>` lower-cased).
pub fn params_from_env(vars: &BTreeMap<String, String>) -> Params {
    vars.iter()
        .filter_map(|(k, v)| env_param(k).map(|n| (n, v.clone())))
        .collect()
}

/// The environment that carries `params` into the component.
pub fn params_to_env(params: &Params) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| (format!("{ENV_PREFIX}{}", k.to_ascii_uppercase()), v.clone()))
        .collect()
}

fn parse_bool(name: &str, v: Option<&str>) -> Result<bool, ConfigError> {
    // strconv.ParseBool's spellings, as distribution accepts them.
    match v.map(str::trim).unwrap_or("false") {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Ok(false),
        other => Err(ConfigError::new(
            name,
            format!("`{other}` is not a boolean (true or false)"),
        )),
    }
}

fn parse_u64(name: &str, v: Option<&str>, min: u64, max: u64) -> Result<u64, ConfigError> {
    let raw = v.map(str::trim).unwrap_or("");
    let n: u64 = raw.parse().map_err(|_| {
        ConfigError::new(
            name,
            format!("`{raw}` is not a whole number (allowed: {min} to {max})"),
        )
    })?;
    if n < min || n > max {
        return Err(ConfigError::new(
            name,
            format!("{n} is out of range (allowed: {min} to {max})"),
        ));
    }
    Ok(n)
}

fn validate_bucket(b: &str) -> Result<(), ConfigError> {
    ks3_proto::names::check_bucket_name(b).map_err(|why| {
        ConfigError::new(
            "bucket",
            format!("`{b}` is not a valid KS3 bucket name: {why}"),
        )
    })
}

fn validate_region(r: &str, has_endpoint: bool) -> Result<(), ConfigError> {
    if KNOWN_REGIONS.contains(&r) {
        return Ok(());
    }
    let well_formed = r
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !r.starts_with('-')
        && !r.ends_with('-');
    if has_endpoint && well_formed {
        return Ok(());
    }
    Err(ConfigError::new(
        "region",
        format!(
            "`{r}` is not a KS3 region; known regions are {} (set regionendpoint to use another)",
            KNOWN_REGIONS.join(", ")
        ),
    ))
}

/// `signatureversion` and the V4 region name it needs: `v4region` when set (checked to be
/// placeable in a credential scope), else KS3's name for `region`. A V4 scheme without
/// either is an error naming both parameters, since either one fixes it.
fn signing(
    region: &str,
    version: Option<&str>,
    v4region: Option<&str>,
) -> Result<(SigningScheme, Option<String>), ConfigError> {
    let raw = version.map(str::trim).unwrap_or("v2");
    let scheme = SigningScheme::parse(raw).ok_or_else(|| {
        ConfigError::new(
            "signatureversion",
            format!("`{raw}` is not one of {}", SigningScheme::NAMES.join(", ")),
        )
    })?;
    let v4_region = match v4region {
        Some(r) => {
            // The name goes into `Credential=AK/date/REGION/…`: no separators, no spaces.
            let ok = r.len() <= 64
                && r.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
            if !ok {
                return Err(ConfigError::new(
                    "v4region",
                    format!("`{r}` is not a V4 region name (letters, digits, `_`, `-`, `.`; at most 64)"),
                ));
            }
            Some(r.to_string())
        }
        None => ks3_proto::sign_v4::v4_region(region).map(str::to_string),
    };
    if matches!(scheme, SigningScheme::V4(_)) && v4_region.is_none() {
        return Err(ConfigError::new(
            "v4region",
            format!(
                "signatureversion `{}` needs the V4 region name, and region `{region}` is not in \
                 KS3's table of V4 names: set v4region (e.g. BEIJING) or use a known region",
                scheme.name()
            ),
        ));
    }
    Ok((scheme, v4_region))
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

fn endpoint(
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

fn normalize_root(root: &str) -> Result<String, ConfigError> {
    let trimmed = root.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for comp in trimmed.split('/') {
        if comp.is_empty()
            || !comp
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        {
            return Err(ConfigError::new(
                "rootdirectory",
                format!("`{root}`: components must be non-empty and use only A-Z a-z 0-9 . _ -"),
            ));
        }
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> Params {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("accesskey", "AK"),
            ("secretkey", "SK"),
            ("region", "ks3-cn-beijing"),
            ("bucket", "registry-bucket"),
        ]
    }

    fn parse(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut kv = base();
        kv.extend_from_slice(extra);
        Config::from_params(&params(&kv), |_| None)
    }

    #[test]
    fn a_nameless_parameter_is_refused_by_name() {
        let mut p = params(&base());
        p.insert(" ".into(), "x".into());
        let e = Config::from_params(&p, |_| None).unwrap_err();
        assert_eq!(e.parameter, "(empty name)");
        assert!(e.to_string().contains("empty name"), "{e}");
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(
            c.endpoint.base_url(),
            "https://registry-bucket.ks3-cn-beijing.ksyuncs.com"
        );
        assert!(!c.endpoint.path_style);
        assert_eq!(c.chunk_size, 10 * MIB);
        assert_eq!(c.multipart_copy_threshold, 32 * MIB);
        assert_eq!(c.object_acl, "private");
        assert_eq!(c.storage_class, None);
        assert!(!c.encrypt);
        assert_eq!(c.root_directory, "");
        assert_eq!((c.upload_concurrency, c.parts_in_flight()), (4, 4));
    }

    #[test]
    fn parts_in_flight_fit_the_address_space() {
        let c = parse(&[("uploadconcurrency", "64")]).unwrap();
        assert_eq!(c.parts_in_flight(), 64);
        // 512 MiB parts: (n + 2) × 512 MiB ≤ 4 GiB − 64 MiB leaves 5 in flight.
        let c = parse(&[("uploadconcurrency", "64"), ("chunksize", "536870912")]).unwrap();
        assert_eq!(c.parts_in_flight(), 5);
        let c = parse(&[("chunksize", "1073741824")]).unwrap();
        assert_eq!(c.parts_in_flight(), 1);
        let c = parse(&[("uploadconcurrency", "1")]).unwrap();
        assert_eq!(c.parts_in_flight(), 1);
    }

    #[test]
    fn endpoints() {
        let c = parse(&[("internal", "true"), ("secure", "false")]).unwrap();
        assert_eq!(
            c.endpoint.base_url(),
            "http://registry-bucket.ks3-cn-beijing-internal.ksyuncs.com"
        );
        let c = parse(&[("regionendpoint", "127.0.0.1:9000"), ("secure", "false")]).unwrap();
        assert_eq!(c.endpoint.base_url(), "http://127.0.0.1:9000");
        assert!(c.endpoint.path_style);
        let c = parse(&[("regionendpoint", "http://localhost:9000")]).unwrap();
        assert_eq!(c.endpoint.base_url(), "http://localhost:9000");
        assert!(c.endpoint.path_style);
        let c = parse(&[("regionendpoint", "ks3-cn-beijing.ksyun.com")]).unwrap();
        assert_eq!(
            c.endpoint.base_url(),
            "https://registry-bucket.ks3-cn-beijing.ksyun.com"
        );
        let c = parse(&[
            ("regionendpoint", "https://s3.example.com:8443/"),
            ("forcepathstyle", "true"),
        ])
        .unwrap();
        assert_eq!(c.endpoint.base_url(), "https://s3.example.com:8443");
        assert!(c.endpoint.path_style);
        let c = parse(&[("regionendpoint", "https://ks3.example.com:443")]).unwrap();
        assert_eq!(c.endpoint.authority(), "registry-bucket.ks3.example.com");
        for bad in ["ftp://x", "http://x/path", "x:99999", "x:0", "", "http://"] {
            if bad.is_empty() {
                continue;
            }
            let e = parse(&[("regionendpoint", bad)]).unwrap_err();
            assert_eq!(e.parameter, "regionendpoint", "{bad}");
        }
    }

    #[test]
    fn userinfo_in_the_endpoint_is_refused_without_echo() {
        for bad in [
            "https://AKLTuser:hunter2secret@ks3.example.com",
            "hunter2secret@ks3.example.com:443",
            "ftp://u:hunter2secret@x",
            "http://a:hunter2secret@b@ks3.example.com/",
        ] {
            let e = parse(&[("regionendpoint", bad)]).unwrap_err();
            assert_eq!(e.parameter, "regionendpoint", "{bad}");
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("hunter2secret"), "{shown}");
            assert!(shown.contains("credentials"), "{shown}");
        }
    }

    #[test]
    fn rejects_bad_values_naming_the_parameter() {
        for (k, v) in [
            ("chunksize", "5242879"),
            ("chunksize", "1073741825"),
            ("chunksize", "5368709120"),
            ("chunksize", "18446744073709551616"),
            ("multipartcopychunksize", "5000000001"),
            ("multipartcopythresholdsize", "5000000001"),
            ("chunksize", "ten"),
            ("chunksize", "-1"),
            ("secure", "maybe"),
            ("bucket", "Bad_Bucket"),
            ("bucket", "ab"),
            ("bucket", "kss-bucket"),
            ("bucket", "192.168.1.1"),
            ("region", "mars-1"),
            ("objectacl", "everyone"),
            ("storageclass", "GOLD"),
            ("rootdirectory", "a//b"),
            ("rootdirectory", "a b"),
            ("multipartcopymaxconcurrency", "0"),
            ("uploadconcurrency", "0"),
            ("uploadconcurrency", "65"),
            ("uploadconcurrency", "four"),
            ("signatureversion", "v3"),
            ("v4region", "BEI JING"),
            ("v4region", "a/b"),
            ("nonsense", "1"),
        ] {
            let e = parse(&[(k, v)]).unwrap_err();
            assert_eq!(e.parameter, k, "{k}={v}: {e}");
            assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn credentials_fall_back_to_env() {
        let p = params(&[
            ("accesskey", ""),
            ("secretkey", ""),
            ("region", "ks3-cn-beijing"),
            ("bucket", "abc"),
        ]);
        let c = Config::from_params(&p, |k| match k {
            ENV_ACCESS_KEY => Some("envak".into()),
            ENV_SECRET_KEY => Some("envsk".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.access_key.expose(), "envak");
        assert_eq!(c.secret_key.expose(), "envsk");
        let e = Config::from_params(&p, |_| None).unwrap_err();
        assert_eq!(e.parameter, "accesskey");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = parse(&[]).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("\"SK\"") && !dbg.contains("\"AK\""), "{dbg}");
    }

    #[test]
    fn env_round_trip() {
        let p = params(&base());
        let env = params_to_env(&p);
        assert!(env.iter().any(|(k, _)| k == "REGISTRY_STORAGE_KS3_BUCKET"));
        let c = Config::from_env_vars(env).unwrap();
        assert_eq!(c.bucket, "registry-bucket");
    }

    #[test]
    fn signature_version_and_v4_region() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.signing, SigningScheme::V2);
        assert_eq!(c.v4_region.as_deref(), Some("BEIJING"));
        let c = parse(&[("signatureversion", "AWS4")]).unwrap();
        assert_eq!(c.signing, SigningScheme::V4(V4Namespace::Aws4));
        let c = parse(&[("signatureversion", "v4"), ("v4region", "MARS")]).unwrap();
        assert_eq!(c.signing, SigningScheme::V4(V4Namespace::Kss4));
        assert_eq!(c.v4_region.as_deref(), Some("MARS"));
        // A region outside the table: fine for V2, an error naming both fixes for V4.
        let other = [
            ("region", "ks3-cn-mars"),
            ("regionendpoint", "127.0.0.1:9000"),
        ];
        assert_eq!(parse(&other).unwrap().v4_region, None);
        for v in ["v4", "aws4"] {
            let mut kv = other.to_vec();
            kv.push(("signatureversion", v));
            let e = parse(&kv).unwrap_err();
            assert_eq!(e.parameter, "v4region");
            assert!(e.message.contains("region `ks3-cn-mars`"), "{e}");
            kv.push(("v4region", "MARS"));
            assert_eq!(parse(&kv).unwrap().v4_region.as_deref(), Some("MARS"));
        }
    }

    #[test]
    fn root_directory_is_normalised() {
        assert_eq!(
            parse(&[("rootdirectory", "/a/b/")]).unwrap().root_directory,
            "a/b"
        );
        assert_eq!(parse(&[("rootdirectory", "/")]).unwrap().root_directory, "");
    }
}
