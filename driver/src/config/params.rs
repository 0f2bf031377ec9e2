//! The parameters themselves: their table ([`PARAMETERS`]), the rule for
//! `REGISTRY_STORAGE_KS3_<NAME>` variables ([`env_param`]), the credential fallback
//! ([`credential`]) and the one error shape of a bad parameter ([`ConfigError`]).
use std::collections::BTreeMap;
use std::fmt;

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
    pub(crate) fn new(parameter: &str, message: impl Into<String>) -> Self {
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

/// Parameters as strings, by lower-case name.
pub type Params = BTreeMap<String, String>;

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
