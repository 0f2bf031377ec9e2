//! The one reader of the driver's parameters outside the component: where they come
//! from, merged the way the CLI (and distribution) does it, remembering the source of
//! each value. The registry's configuration hands its `storage.ks3` section here.
//!
//! Lowest to highest: a YAML file (`-c`: a map of parameters, or a distribution
//! `config.yml` whose `storage.ks3` section is used), `REGISTRY_STORAGE_KS3_<KEY>`
//! environment variables, `-p KEY=VALUE` flags. When `accesskey` / `secretkey` end up
//! empty, `KS3_ACCESS_KEY_ID` / `KS3_SECRET_ACCESS_KEY` fill them.
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::params::{credential, env_param, param_spec, Params, CREDENTIAL_FALLBACKS};
use ks3_proto::Secret;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The `-c` file.
    File(PathBuf),
    /// A `REGISTRY_STORAGE_KS3_<KEY>` variable (its name).
    Env(String),
    /// A `-p KEY=VALUE` flag.
    Flag,
    /// The credential fallback variable (its name).
    CredentialEnv(String),
    /// `--secret-key-file` (its path; `-` for stdin).
    SecretKeyFile(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(v) => write!(f, "env {v}"),
            Source::Flag => f.write_str("-p flag"),
            Source::CredentialEnv(v) => write!(f, "env {v}"),
            Source::SecretKeyFile(p) => write!(f, "--secret-key-file {}", p.display()),
        }
    }
}

/// One parameter value and its source. A secret parameter's value is held as a
/// [`Secret`], so `Debug` masks it.
#[derive(Clone, PartialEq, Eq)]
pub struct Setting {
    value: Value,
    pub source: Source,
}

#[derive(Clone, PartialEq, Eq)]
enum Value {
    Plain(String),
    /// A parameter that holds a secret (`secretkey`, `accesskey`): never shown.
    Secret(Secret),
}

impl fmt::Debug for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Setting");
        match &self.value {
            Value::Plain(v) => d.field("value", v),
            Value::Secret(s) => d.field("value", s),
        };
        d.field("source", &self.source).finish()
    }
}

impl Setting {
    /// The value as given, secrets included: for the driver's configuration only.
    pub fn expose(&self) -> &str {
        match &self.value {
            Value::Plain(v) => v,
            Value::Secret(s) => s.expose(),
        }
    }

    /// The value for display: secrets are masked.
    pub fn display_value(&self) -> String {
        match &self.value {
            Value::Plain(v) => v.clone(),
            Value::Secret(s) => s.to_string(),
        }
    }
}

/// Whether a parameter holds a secret (never print it).
pub fn is_secret(key: &str) -> bool {
    param_spec(key).is_some_and(|p| p.secret)
}

/// A problem with a source of settings (not with a value: values are checked by
/// `Config::from_params`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    pub message: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SettingsError {}

impl SettingsError {
    fn new(message: impl Into<String>) -> Self {
        SettingsError {
            message: message.into(),
        }
    }
}

/// The merged parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    values: BTreeMap<String, Setting>,
}

impl Settings {
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything in the usual order: `file`, then the `REGISTRY_STORAGE_KS3_*` entries
    /// of `env_vars`, then `flags` (`KEY=VALUE`), then the credential fallback from
    /// `env_vars`.
    pub fn resolve(
        file: Option<&Path>,
        env_vars: &BTreeMap<String, String>,
        flags: &[String],
    ) -> Result<Settings, SettingsError> {
        let mut s = Settings::new();
        if let Some(f) = file {
            s.load_file(f)?;
        }
        s.apply_env(env_vars);
        s.apply_flags(flags)?;
        s.apply_credential_fallback(|k| env_vars.get(k).cloned());
        Ok(s)
    }

    /// The process environment as a map (non-UTF-8 entries skipped).
    pub fn process_env() -> BTreeMap<String, String> {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }

    /// Reads a YAML file (see the module docs).
    pub fn load_file(&mut self, path: &Path) -> Result<(), SettingsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SettingsError::new(format!("cannot read {}: {e}", path.display())))?;
        self.apply_yaml(&text, path)
    }

    /// Applies YAML text as if read from `origin`.
    pub fn apply_yaml(&mut self, text: &str, origin: &Path) -> Result<(), SettingsError> {
        let where_ = origin.display();
        let doc: serde_norway::Value = serde_norway::from_str(text)
            .map_err(|e| SettingsError::new(format!("{where_} is not valid YAML: {e}")))?;
        let map = match doc {
            serde_norway::Value::Mapping(m) => m,
            serde_norway::Value::Null => serde_norway::Mapping::new(),
            _ => {
                return Err(SettingsError::new(format!(
                "{where_}: expected a map of parameters or a distribution config with storage.ks3"
            )))
            }
        };
        let doc = serde_norway::Value::Mapping(map);
        let is_distribution_config = doc.as_mapping().is_some_and(|m| {
            m.keys()
                .any(|k| k.as_str().is_some_and(is_registry_section))
        });
        // A distribution config gives its `storage.ks3` section, or no parameters at all
        // (`storage` with only `delete`, `redirect`, `maintenance`: the registry then runs
        // on its embedded server); any other map is the parameters themselves.
        let section = if is_distribution_config {
            if let Some(other) = other_storage_driver(&doc) {
                return Err(SettingsError::new(format!(
                    "{where_}: the storage section has no ks3 driver (storage.{other} is another driver)"
                )));
            }
            ks3_section(&doc)
                .cloned()
                .unwrap_or(serde_norway::Value::Null)
        } else {
            doc
        };
        self.apply_section(&section, origin)
            .map_err(|e| SettingsError::new(format!("{where_}: {}", e.message)))
    }

    /// Applies a map of parameters: a whole `-c` file of them, or the value of a
    /// distribution config's `storage.ks3` (the registry's configuration hands its
    /// section here). Values are strings, numbers or booleans; `null` is empty.
    pub fn apply_section(
        &mut self,
        section: &serde_norway::Value,
        origin: &Path,
    ) -> Result<(), SettingsError> {
        let params = match section {
            serde_norway::Value::Mapping(m) => m.clone(),
            serde_norway::Value::Null => serde_norway::Mapping::new(),
            _ => {
                return Err(SettingsError::new(
                    "storage.ks3 must be a map of parameters",
                ))
            }
        };
        for (k, v) in params {
            let key = match k {
                serde_norway::Value::String(s) => s,
                other => scalar(&other)
                    .ok_or_else(|| SettingsError::new("a parameter name is not a string"))?,
            };
            let key = key.trim().to_ascii_lowercase();
            if key.is_empty() {
                return Err(SettingsError::new("a parameter name is empty"));
            }
            let value = scalar(&v).ok_or_else(|| {
                SettingsError::new(format!(
                    "parameter `{key}` must be a string, number or boolean"
                ))
            })?;
            self.set(&key, value, Source::File(origin.to_path_buf()));
        }
        Ok(())
    }

    /// Applies `REGISTRY_STORAGE_KS3_<KEY>` variables.
    pub fn apply_env(&mut self, vars: &BTreeMap<String, String>) {
        for (k, v) in vars {
            if let Some(name) = env_param(k) {
                self.set(&name, v.clone(), Source::Env(k.clone()));
            }
        }
    }

    /// Applies `KEY=VALUE` flags.
    pub fn apply_flags(&mut self, flags: &[String]) -> Result<(), SettingsError> {
        for f in flags {
            let Some((k, v)) = f.split_once('=') else {
                return Err(SettingsError::new(format!(
                    "-p expects KEY=VALUE, got `{}`",
                    f.chars().take(40).collect::<String>()
                )));
            };
            let key = k.trim().to_ascii_lowercase();
            if key.is_empty() {
                return Err(SettingsError::new("-p expects KEY=VALUE, the key is empty"));
            }
            self.set(&key, v.to_string(), Source::Flag);
        }
        Ok(())
    }

    /// Fills empty `accesskey` / `secretkey` from the fallback variables.
    pub fn apply_credential_fallback(&mut self, env: impl Fn(&str) -> Option<String>) {
        for (key, var) in CREDENTIAL_FALLBACKS {
            let own = self.values.get(key).map(|s| s.expose());
            if credential(own, var, |_| None).is_none() {
                if let Some(v) = credential(None, var, &env) {
                    self.set(key, v, Source::CredentialEnv(var.to_string()));
                }
            }
        }
    }

    pub fn set(&mut self, key: &str, value: String, source: Source) {
        self.values.insert(
            key.to_string(),
            Setting {
                value: if is_secret(key) {
                    Value::Secret(Secret::new(value))
                } else {
                    Value::Plain(value)
                },
                source,
            },
        );
    }

    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.values.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Setting)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The values, for `Driver::new`.
    pub fn params(&self) -> Params {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect()
    }
}

/// A top-level section of distribution's `config.yml` (no driver parameter has these names).
fn is_registry_section(key: &str) -> bool {
    matches!(
        key.to_ascii_lowercase().as_str(),
        "version"
            | "log"
            | "loglevel"
            | "storage"
            | "auth"
            | "http"
            | "notifications"
            | "redis"
            | "health"
            | "proxy"
            | "validation"
            | "compatibility"
            | "reporting"
            | "middleware"
            | "catalog"
            | "limits"
    )
}

/// A key of `storage` that names a driver other than ks3 (distribution's storage section
/// holds one driver beside `delete`, `redirect`, `maintenance` and `cache`).
fn other_storage_driver(doc: &serde_norway::Value) -> Option<String> {
    doc.get("storage")?
        .as_mapping()?
        .keys()
        .filter_map(|k| k.as_str())
        .map(str::to_ascii_lowercase)
        .find(|k| {
            !matches!(
                k.as_str(),
                "ks3" | "delete" | "redirect" | "maintenance" | "cache"
            )
        })
}

/// A distribution config's `storage.ks3` section (its driver parameters), when it has one:
/// where `-c` files and the registry's configuration find them.
pub fn ks3_section(doc: &serde_norway::Value) -> Option<&serde_norway::Value> {
    doc.get("storage")?.get("ks3")
}

fn scalar(v: &serde_norway::Value) -> Option<String> {
    match v {
        serde_norway::Value::Null => Some(String::new()),
        serde_norway::Value::Bool(b) => Some(b.to_string()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        serde_norway::Value::String(s) => Some(s.clone()),
        serde_norway::Value::Tagged(t) => scalar(&t.value),
        serde_norway::Value::Sequence(_) | serde_norway::Value::Mapping(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ENV_ACCESS_KEY, ENV_SECRET_KEY};

    fn env(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn order_file_env_flags() {
        let mut s = Settings::new();
        s.apply_yaml(
            "bucket: from-file\nregion: ks3-cn-beijing\nchunksize: 5242880\nsecure: false\n",
            Path::new("c.yml"),
        )
        .unwrap();
        s.apply_env(&env(&[
            ("REGISTRY_STORAGE_KS3_BUCKET", "from-env"),
            ("REGISTRY_STORAGE_KS3_ROOTDIRECTORY", "/r"),
            ("OTHER", "x"),
        ]));
        s.apply_flags(&[
            "rootdirectory=/flag".into(),
            "Region=ks3-cn-shanghai".into(),
        ])
        .unwrap();
        let p = s.params();
        assert_eq!(p["bucket"], "from-env");
        assert_eq!(p["rootdirectory"], "/flag");
        assert_eq!(p["region"], "ks3-cn-shanghai");
        assert_eq!(p["chunksize"], "5242880");
        assert_eq!(p["secure"], "false");
        assert_eq!(
            s.get("bucket").unwrap().source,
            Source::Env("REGISTRY_STORAGE_KS3_BUCKET".into())
        );
        assert_eq!(s.get("rootdirectory").unwrap().source, Source::Flag);
        assert_eq!(
            s.get("chunksize").unwrap().source,
            Source::File("c.yml".into())
        );
        assert_eq!(p.len(), 5);
    }

    #[test]
    fn distribution_config_section() {
        let mut s = Settings::new();
        s.apply_yaml(
            "version: 0.1\nstorage:\n  ks3:\n    bucket: b1\n    encrypt: true\n  cache:\n    blobdescriptor: inmemory\nhttp:\n  addr: :5000\n",
            Path::new("config.yml"),
        )
        .unwrap();
        let p = s.params();
        assert_eq!(p.len(), 2);
        assert_eq!(p["encrypt"], "true");
        let e = Settings::new()
            .apply_yaml("storage:\n  s3:\n    bucket: x\n", Path::new("c"))
            .unwrap_err();
        assert!(e.message.contains("no ks3"), "{e}");
        // A registry config without a driver (the registry's embedded store) has no
        // parameters, and no error.
        let mut none = Settings::new();
        none.apply_yaml(
            "http:\n  draintimeout: 5s\nstorage:\n  delete:\n    enabled: true\n",
            Path::new("c"),
        )
        .unwrap();
        assert!(none.params().is_empty());
    }

    #[test]
    fn bad_inputs() {
        let mut s = Settings::new();
        assert!(s.apply_flags(&["novalue".into()]).is_err());
        assert!(s.apply_flags(&["=v".into()]).is_err());
        assert!(s.apply_yaml("- a\n- b\n", Path::new("c")).is_err());
        assert!(s.apply_yaml("bucket: [1, 2]\n", Path::new("c")).is_err());
        // A nameless parameter (found by the config fuzz target) is refused, not passed on.
        let e = s.apply_yaml("\"\": x\n", Path::new("c")).unwrap_err();
        assert!(e.to_string().contains("name is empty"), "{e}");
        assert!(s
            .apply_yaml("bucket: \"unterminated\n", Path::new("c"))
            .is_err());
        // A flag value may contain '='.
        s.apply_flags(&["secretkey=a=b".into()]).unwrap();
        assert_eq!(s.params()["secretkey"], "a=b");
    }

    #[test]
    fn credential_fallback_only_when_empty() {
        let vars = env(&[(ENV_ACCESS_KEY, "envak"), (ENV_SECRET_KEY, "envsk")]);
        let s = Settings::resolve(None, &vars, &["accesskey=flagak".into()]).unwrap();
        assert_eq!(s.params()["accesskey"], "flagak");
        assert_eq!(s.params()["secretkey"], "envsk");
        assert_eq!(
            s.get("secretkey").unwrap().source,
            Source::CredentialEnv(ENV_SECRET_KEY.into())
        );
        assert_eq!(s.get("secretkey").unwrap().display_value(), "****");
        assert_eq!(s.get("accesskey").unwrap().display_value(), "****");
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let vars = env(&[(ENV_SECRET_KEY, "envSECRETvalue")]);
        let s = Settings::resolve(
            None,
            &vars,
            &[
                "accesskey=flagAKvalue".into(),
                "bucket=visible-bucket".into(),
            ],
        )
        .unwrap();
        let shown = format!("{s:?} {:?} {:#?}", s.get("secretkey").unwrap(), s);
        assert!(!shown.contains("envSECRETvalue"), "{shown}");
        assert!(shown.contains("visible-bucket"), "{shown}");
        let mut s = Settings::new();
        s.apply_flags(&["secretkey=flagSECRET".into()]).unwrap();
        assert!(!format!("{s:?}").contains("flagSECRET"));
    }
}
