//! The typed readers of `config.yml` values (strings, booleans, integers, Go durations),
//! distribution's `REGISTRY_*` overrides of the tree, and the hand-off of `storage.ks3`
//! to the driver's reader of parameters.
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ks3_driver_host::settings::Settings;
use ks3_driver_host::Params;
use serde_norway::{Mapping, Value};

use super::{err, ConfigError};

pub(super) fn process_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("REGISTRY_"))
        .collect()
}

/// `storage.ks3` and the `REGISTRY_STORAGE_KS3_*` variables: the driver's parameters,
/// read by the driver's one reader of them ([`Settings`], as the command line's are);
/// `None` when neither is there.
pub(super) fn ks3_params(
    tree: &Value,
    env: &BTreeMap<String, String>,
) -> Result<Option<Params>, ConfigError> {
    let section = ks3_driver_host::settings::ks3_section(tree);
    let mut settings = Settings::new();
    if let Some(section) = section {
        settings
            .apply_section(section, Path::new("storage.ks3"))
            .map_err(|e| err("storage.ks3", e.message))?;
    }
    settings.apply_env(env);
    let any = section.is_some() || settings.iter().next().is_some();
    Ok(any.then(|| settings.params()))
}

/// Applies `REGISTRY_A_B_C=value` as `a.b.c: value`, in the lexical order of the names
/// (as distribution does). `REGISTRY_STORAGE_KS3_<NAME>`, a driver parameter, is left to
/// the driver's reader (`ks3_params`). Values stay strings; the typed readers accept
/// `true`, `100`, `30s` as text.
pub(super) fn apply_env(tree: &mut Value, env: &BTreeMap<String, String>) {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("REGISTRY_") else {
            continue;
        };
        if ks3_driver_host::settings::env_param(name).is_some() {
            continue;
        }
        let path: Vec<String> = rest.split('_').map(|s| s.to_ascii_lowercase()).collect();
        if path.iter().any(|p| p.is_empty()) {
            continue;
        }
        set_path(tree, &path, Value::String(value.clone()));
    }
}

fn set_path(node: &mut Value, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *node = value;
        return;
    };
    if !node.is_mapping() {
        *node = Value::Mapping(Mapping::new());
    }
    if let Value::Mapping(m) = node {
        let key = Value::String(first.clone());
        if !m.contains_key(&key) {
            m.insert(key.clone(), Value::Null);
        }
        if let Some(child) = m.get_mut(&key) {
            set_path(child, rest, value);
        }
    }
}

pub(super) fn lowercase_keys(v: Value) -> Value {
    match v {
        Value::Mapping(m) => Value::Mapping(
            m.into_iter()
                .map(|(k, v)| {
                    let k = match k {
                        Value::String(s) => Value::String(s.to_ascii_lowercase()),
                        other => other,
                    };
                    (k, lowercase_keys(v))
                })
                .collect(),
        ),
        other => other,
    }
}

pub(super) fn key_str(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "?".into(),
    }
}

/// A section's entries; an empty (`null`) section has none.
pub(super) fn section<'a>(
    v: &'a Value,
    key: &str,
) -> Result<Vec<(&'a Value, &'a Value)>, ConfigError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Mapping(m) => Ok(m.iter().collect()),
        _ => Err(err(key, "must be a map")),
    }
}

pub(super) fn string(v: &Value, key: &str) -> Result<String, ConfigError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(err(key, "must be a string")),
    }
}

pub(super) fn boolean(v: &Value, key: &str) -> Result<bool, ConfigError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(err(key, format!("`{s}` is not true or false"))),
        },
        _ => Err(err(key, "must be true or false")),
    }
}

pub(super) fn uint(v: &Value, key: &str) -> Result<u64, ConfigError> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| err(key, format!("`{n}` is not a non-negative integer"))),
        Value::String(s) => s
            .trim()
            .parse::<u64>()
            .map_err(|_| err(key, format!("`{s}` is not a non-negative integer"))),
        _ => Err(err(key, "must be a non-negative integer")),
    }
}

/// Seconds as a number, or a Go-style duration with one unit: `90s`, `5m`, `1h`, `500ms`.
pub(super) fn duration(v: &Value, key: &str) -> Result<Duration, ConfigError> {
    let text = match v {
        Value::Number(_) => return uint(v, key).map(Duration::from_secs),
        Value::String(s) => s.trim().to_string(),
        _ => return Err(err(key, "must be a duration such as 60s")),
    };
    let bad = || {
        err(
            key,
            format!("`{text}` is not a duration such as 60s, 5m or 1h"),
        )
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "ms" => return Ok(Duration::from_millis(n)),
        _ => None,
    };
    secs.map(Duration::from_secs).ok_or_else(bad)
}

/// A Go duration (`time.ParseDuration`): `168h`, `1h30m`, `1.5h`, `90s`, `500ms`, `0`;
/// a bare number is seconds.
pub fn go_duration(v: &Value, key: &str) -> Result<Duration, ConfigError> {
    let text = match v {
        Value::Number(_) => return uint(v, key).map(Duration::from_secs),
        Value::String(s) => s.trim().to_string(),
        _ => return Err(err(key, "must be a duration such as 168h")),
    };
    parse_go_duration(&text).ok_or_else(|| {
        err(
            key,
            format!("`{text}` is not a duration such as 168h, 1h30m or 90s"),
        )
    })
}

/// [`go_duration`] of text; `None` when it is not one (negative durations included).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return None;
        }
        let n: f64 = num.parse().ok()?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = after;
    }
    Duration::try_from_secs_f64(total).ok()
}
