//! The registry's configuration: distribution's `config.yml` (the keys this registry
//! honours) and its `REGISTRY_*` environment overrides, applied the way distribution
//! applies them (the name after `REGISTRY_`, split on `_`, is a path of lower-case keys).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ks3_driver_host::Params;
use serde_norway::{Mapping, Value};

mod deploy;
mod maintenance;
mod notifications;
pub use deploy::{DebugConfig, LogConfig, StorageHealth};
pub use maintenance::{GcSchedule, UploadPurging};
pub use notifications::{Endpoint as NotificationEndpoint, Notifications};
mod values;

use values::{
    apply_env, boolean, duration, key_str, ks3_params, lowercase_keys, process_env, section,
    string, uint,
};
pub use values::{go_duration, parse_go_duration};

/// Where blobs and manifests live.
#[derive(Clone, PartialEq, Eq)]
pub enum Storage {
    /// No storage configured. The registry itself needs a driver then
    /// ([`crate::Registry::with_driver`]): the `ks3-driver` command line starts an
    /// in-memory `ks3-local` for it.
    Embedded,
    /// The KS3 driver with these parameters (`storage.ks3`).
    Ks3(Params),
    /// `storage.filesystem.rootdirectory` (distribution's key and default,
    /// `/var/lib/registry`): a directory on local disk, for a filesystem driver component
    /// (`fs-driver/`) that the caller loads and gives this directory to (`ks3-driver
    /// registry --component`); [`crate::Registry::new`] refuses it.
    Filesystem(std::path::PathBuf),
}

impl std::fmt::Debug for Storage {
    // Parameters include the secret key: only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Embedded => f.write_str("Embedded"),
            Storage::Ks3(p) => f
                .debug_tuple("Ks3")
                .field(&p.keys().collect::<Vec<_>>())
                .finish(),
            Storage::Filesystem(root) => f.debug_tuple("Filesystem").field(root).finish(),
        }
    }
}

/// `auth.htpasswd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtpasswdConfig {
    pub realm: String,
    pub path: PathBuf,
}

/// Limits that protect the registry from its clients (the `limits` section, an addition
/// to distribution's configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body of a blob upload request, in bytes (`None`: no limit).
    /// Manifests are limited to 4 MiB regardless.
    pub max_body_size: Option<u64>,
    /// How long a request body may stay silent before the request fails and its writer
    /// is closed (so a stalled client cannot hold a writer).
    pub body_timeout: Duration,
    /// Requests carrying blob data at once; more get `429 TOOMANYREQUESTS`.
    pub max_uploads: usize,
    /// Of those, requests from one client address at once (`maxuploadsperclient`; by
    /// default a quarter of `maxuploads`, at least 1), so that one client cannot take
    /// every slot.
    pub max_uploads_per_client: Option<usize>,
    /// The least average rate of an upload body, bytes per second after a 10 s grace
    /// (`minbodyrate`, default 1024; 0 turns it off): a client trickling bytes is cut
    /// and its slot freed.
    pub min_body_rate: u64,
}

impl Limits {
    /// The per-client share of the upload slots.
    pub fn per_client_uploads(&self) -> usize {
        self.max_uploads_per_client
            .unwrap_or(self.max_uploads / 4)
            .clamp(1, self.max_uploads.max(1))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_size: None,
            body_timeout: Duration::from_secs(60),
            max_uploads: 64,
            max_uploads_per_client: None,
            min_body_rate: 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `http.addr`, e.g. `:5000` or `127.0.0.1:5000`.
    pub addr: String,
    pub storage: Storage,
    /// `storage.delete.enabled` (default false).
    pub delete_enabled: bool,
    /// `storage.redirect.disable` (default false: blob GETs answer 307 to a presigned URL).
    pub redirect_disabled: bool,
    pub htpasswd: Option<HtpasswdConfig>,
    /// `auth.token`: distribution's token authentication.
    pub token: Option<crate::token_auth::TokenConfig>,
    /// `proxy`: a pull-through cache of an upstream registry.
    pub proxy: Option<ProxyConfig>,
    /// `http.tls`: serve HTTPS.
    pub tls: Option<crate::tls::TlsConfig>,
    /// `storage.maintenance.readonly.enabled`: pulls only; every write is refused.
    pub read_only: bool,
    /// `http.debug`: the debug server (health, metrics).
    pub debug: Option<DebugConfig>,
    /// `health.storagedriver`, when enabled.
    pub storage_health: Option<StorageHealth>,
    /// `log`.
    pub log: LogConfig,
    /// `http.draintimeout`: how long requests in flight may finish after SIGTERM (`None`:
    /// stop at once, as distribution without the key).
    pub drain_timeout: Option<Duration>,
    /// `http.headers`: added to every response.
    pub headers: Vec<(String, String)>,
    /// `catalog.maxentries` (default 1000): the largest `n` of a catalog page.
    pub catalog_max_entries: usize,
    pub limits: Limits,
    /// `storage.maintenance.uploadpurging`.
    pub upload_purging: UploadPurging,
    /// `storage.maintenance.gc`: garbage collection while serving.
    pub gc: GcSchedule,
    /// `notifications`: webhook endpoints.
    pub notifications: Notifications,
    /// What was ignored: logged as warnings when the registry starts.
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: ":5000".into(),
            storage: Storage::Embedded,
            delete_enabled: false,
            redirect_disabled: false,
            htpasswd: None,
            token: None,
            proxy: None,
            tls: None,
            read_only: false,
            debug: None,
            storage_health: None,
            log: LogConfig::default(),
            drain_timeout: None,
            headers: Vec::new(),
            catalog_max_entries: 1000,
            limits: Limits::default(),
            upload_purging: UploadPurging::default(),
            gc: GcSchedule::default(),
            notifications: Notifications::default(),
            warnings: Vec::new(),
        }
    }
}

/// A bad value, naming its key (`storage.delete.enabled`): the shape of the driver's
/// `ConfigError`, whose `parameter` is a driver parameter's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {message}")]
pub struct ConfigError {
    pub parameter: String,
    pub message: String,
}

fn err(parameter: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        parameter: parameter.to_string(),
        message: message.into(),
    }
}

/// Sections distribution knows and this registry does not act on.
const IGNORED_TOP: &[&str] = &[
    "loglevel",
    "redis",
    "validation",
    "compatibility",
    "reporting",
    "middleware",
];
/// distribution's other storage drivers: configuring one here is a mistake, not a detail.
const OTHER_DRIVERS: &[&str] = &["inmemory", "s3", "s3aws", "azure", "gcs", "swift", "oss"];

impl Config {
    /// The configuration of a `config.yml` (no environment applied).
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        Self::from_yaml_and_env(text, &BTreeMap::new())
    }

    /// The configuration of `config.yml` text with `REGISTRY_*` overrides from `env`.
    pub fn from_yaml_and_env(
        text: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut tree = if text.trim().is_empty() {
            Value::Mapping(Mapping::new())
        } else {
            serde_norway::from_str::<Value>(text)
                .map_err(|e| err("config", format!("not valid YAML: {e}")))?
        };
        if tree.is_null() {
            tree = Value::Mapping(Mapping::new());
        }
        let mut tree = lowercase_keys(tree);
        if !tree.is_mapping() {
            return Err(err("config", "not a YAML map"));
        }
        apply_env(&mut tree, env);
        let mut c = Self::from_tree(&tree)?;
        if let Some(params) = ks3_params(&tree, env)? {
            if matches!(c.storage, Storage::Filesystem(_)) {
                return Err(err(
                    "storage",
                    "storage.ks3 and storage.filesystem are both set: configure one driver",
                ));
            }
            c.storage = Storage::Ks3(params);
        }
        Ok(c)
    }

    /// The configuration from the `REGISTRY_*` variables of this process alone.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_yaml_and_env("", &process_env())
    }

    /// `config.yml` at `path` (when given) with the process's `REGISTRY_*` overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| err("config", format!("cannot read {}: {e}", p.display())))?,
            None => String::new(),
        };
        Self::from_yaml_and_env(&text, &process_env())
    }

    /// `http.addr` as a socket address to bind (`:5000` binds every interface).
    pub fn bind_addr(&self) -> String {
        if self.addr.starts_with(':') {
            format!("0.0.0.0{}", self.addr)
        } else {
            self.addr.clone()
        }
    }

    fn from_tree(tree: &Value) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let Some(top) = tree.as_mapping() else {
            return Ok(c);
        };
        for (k, v) in top {
            let key = key_str(k);
            match key.as_str() {
                "version" => {}
                "http" => c.read_http(v)?,
                "storage" => c.read_storage(v)?,
                "auth" => c.read_auth(v)?,
                "proxy" => c.proxy = Some(proxy::read(v, &mut c.warnings)?),
                "catalog" => {
                    for (k, v) in section(v, "catalog")? {
                        match key_str(k).as_str() {
                            "maxentries" => {
                                let n = uint(v, "catalog.maxentries")?;
                                // distribution: a value <= 0 means the default.
                                if n > 0 {
                                    c.catalog_max_entries = usize::try_from(n)
                                        .map_err(|_| err("catalog.maxentries", "too large"))?;
                                }
                            }
                            other => c.warn(format!("catalog.{other}: unknown key, ignored")),
                        }
                    }
                }
                "limits" => c.read_limits(v)?,
                "health" => c.storage_health = deploy::read_health(v, &mut c.warnings)?,
                "log" => c.log = deploy::read_log(v, &mut c.warnings)?,
                "notifications" => c.notifications = notifications::read(v, &mut c.warnings)?,
                k if IGNORED_TOP.contains(&k) => {
                    c.warn(format!("{k}: not supported by this registry, ignored"))
                }
                other => c.warn(format!("{other}: unknown section, ignored")),
            }
        }
        Ok(c)
    }

    fn warn(&mut self, w: String) {
        self.warnings.push(w);
    }

    fn read_http(&mut self, v: &Value) -> Result<(), ConfigError> {
        for (k, v) in section(v, "http")? {
            let key = key_str(k);
            let full = format!("http.{key}");
            match key.as_str() {
                "addr" => {
                    let a = string(v, &full)?;
                    let port_ok = a
                        .rsplit_once(':')
                        .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
                    if !port_ok {
                        return Err(err(&full, format!("`{a}` is not HOST:PORT or :PORT")));
                    }
                    self.addr = a;
                }
                // Upload state lives in KS3, not in a signed token: no secret is needed.
                "secret" | "relativeurls" | "host" | "http2" => {}
                "draintimeout" => {
                    let d = go_duration(v, &full)?;
                    self.drain_timeout = (!d.is_zero()).then_some(d);
                }
                "debug" => self.debug = Some(deploy::read_debug(v, &mut self.warnings)?),
                "headers" => {
                    for (name, values) in section(v, &full)? {
                        let name = key_str(name);
                        let hk = format!("http.headers.{name}");
                        let list: Vec<String> = match values {
                            Value::Sequence(s) => {
                                s.iter().map(|x| string(x, &hk)).collect::<Result<_, _>>()?
                            }
                            other => vec![string(other, &hk)?],
                        };
                        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                            return Err(err(&hk, "not a valid header name"));
                        }
                        for value in list {
                            if http::HeaderValue::from_str(&value).is_err() {
                                return Err(err(&hk, "not a valid header value"));
                            }
                            self.headers.push((name.clone(), value));
                        }
                    }
                }
                "tls" => self.tls = Some(deploy::read_tls(v, &mut self.warnings)?),
                "prefix" | "net" => {
                    return Err(err(
                        &full,
                        "not supported (the registry serves TCP at /v2/)",
                    ))
                }
                other => self.warn(format!("http.{other}: unknown key, ignored")),
            }
        }
        Ok(())
    }

    fn read_storage(&mut self, v: &Value) -> Result<(), ConfigError> {
        for (k, v) in section(v, "storage")? {
            let key = key_str(k);
            match key.as_str() {
                // The driver's parameters: see `ks3_params`.
                "ks3" => {}
                "delete" => {
                    for (k, v) in section(v, "storage.delete")? {
                        match key_str(k).as_str() {
                            "enabled" => {
                                self.delete_enabled = boolean(v, "storage.delete.enabled")?
                            }
                            other => {
                                self.warn(format!("storage.delete.{other}: unknown key, ignored"))
                            }
                        }
                    }
                }
                "redirect" => {
                    for (k, v) in section(v, "storage.redirect")? {
                        match key_str(k).as_str() {
                            "disable" => {
                                self.redirect_disabled = boolean(v, "storage.redirect.disable")?
                            }
                            other => {
                                self.warn(format!("storage.redirect.{other}: unknown key, ignored"))
                            }
                        }
                    }
                }
                // No cache: every instance reads KS3, so instances never disagree.
                "filesystem" => self.read_filesystem(v)?,
                "cache" => self.warn("storage.cache: no cache is used, ignored".into()),
                "maintenance" => self.read_maintenance(v)?,
                d if OTHER_DRIVERS.contains(&d) => {
                    return Err(err(
                        &format!("storage.{d}"),
                        "only the ks3 storage driver is available in this registry",
                    ))
                }
                other => self.warn(format!("storage.{other}: unknown key, ignored")),
            }
        }
        Ok(())
    }

    fn read_filesystem(&mut self, v: &Value) -> Result<(), ConfigError> {
        const KEY: &str = "storage.filesystem.rootdirectory";
        let mut root = "/var/lib/registry".to_string();
        // `storage: {filesystem: }` (no parameters) is distribution's defaults too.
        if !v.is_null() {
            for (k, v) in section(v, "storage.filesystem")? {
                match key_str(k).as_str() {
                    "rootdirectory" => root = string(v, KEY)?,
                    "maxthreads" => self.warn(
                        "storage.filesystem.maxthreads: the driver runs in its own instances, ignored"
                            .into(),
                    ),
                    other => self.warn(format!("storage.filesystem.{other}: unknown key, ignored")),
                }
            }
        }
        if !root.starts_with('/') {
            return Err(err(KEY, "must be an absolute path"));
        }
        self.storage = Storage::Filesystem(root.into());
        Ok(())
    }

    fn read_maintenance(&mut self, v: &Value) -> Result<(), ConfigError> {
        maintenance::read(self, v)
    }

    fn read_auth(&mut self, v: &Value) -> Result<(), ConfigError> {
        for (k, v) in section(v, "auth")? {
            let key = key_str(k);
            match key.as_str() {
                "htpasswd" => {
                    let mut realm = None;
                    let mut path = None;
                    for (k, v) in section(v, "auth.htpasswd")? {
                        match key_str(k).as_str() {
                            "realm" => realm = Some(string(v, "auth.htpasswd.realm")?),
                            "path" => path = Some(string(v, "auth.htpasswd.path")?),
                            other => {
                                self.warn(format!("auth.htpasswd.{other}: unknown key, ignored"))
                            }
                        }
                    }
                    let realm = realm.ok_or_else(|| err("auth.htpasswd.realm", "required"))?;
                    let path = path.ok_or_else(|| err("auth.htpasswd.path", "required"))?;
                    if realm.contains('"') || http::HeaderValue::from_str(&realm).is_err() {
                        return Err(err(
                            "auth.htpasswd.realm",
                            "must be printable, without `\"`",
                        ));
                    }
                    self.htpasswd = Some(HtpasswdConfig {
                        realm,
                        path: PathBuf::from(path),
                    });
                }
                "token" => self.token = Some(deploy::read_token(v, &mut self.warnings)?),
                // Serving without the access control the operator asked for is worse
                // than not starting.
                other => {
                    return Err(err(
                        &format!("auth.{other}"),
                        "not supported (auth.htpasswd and auth.token are)",
                    ))
                }
            }
        }
        // As distribution: one access controller.
        if self.htpasswd.is_some() && self.token.is_some() {
            return Err(err(
                "auth",
                "give one of auth.htpasswd and auth.token, not both",
            ));
        }
        Ok(())
    }

    fn read_limits(&mut self, v: &Value) -> Result<(), ConfigError> {
        for (k, v) in section(v, "limits")? {
            let key = key_str(k);
            let full = format!("limits.{key}");
            match key.as_str() {
                "maxbodysize" => {
                    let n = uint(v, &full)?;
                    self.limits.max_body_size = (n > 0).then_some(n);
                }
                "bodytimeout" => {
                    let d = duration(v, &full)?;
                    if d.is_zero() {
                        return Err(err(&full, "must be positive"));
                    }
                    self.limits.body_timeout = d;
                }
                "maxuploads" => {
                    let n = uint(v, &full)?;
                    if n == 0 {
                        return Err(err(&full, "must be at least 1"));
                    }
                    self.limits.max_uploads =
                        usize::try_from(n).map_err(|_| err(&full, "too large"))?;
                }
                "maxuploadsperclient" => {
                    let n = uint(v, &full)?;
                    if n == 0 {
                        return Err(err(&full, "must be at least 1"));
                    }
                    self.limits.max_uploads_per_client =
                        Some(usize::try_from(n).map_err(|_| err(&full, "too large"))?);
                }
                "minbodyrate" => self.limits.min_body_rate = uint(v, &full)?,
                other => self.warn(format!("limits.{other}: unknown key, ignored")),
            }
        }
        Ok(())
    }
}

mod proxy;
pub use proxy::ProxyConfig;

#[cfg(test)]
mod tests;
