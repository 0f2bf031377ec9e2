//! Configuration: the one merge of YAML, `REGISTRY_STORAGE_KS3_*` variables and `-p`
//! flags (`driver/src/config/settings.rs`), then the driver's parameter validation
//! (`driver/src/config.rs`).
use std::collections::BTreeMap;
use std::path::Path;

use ks3_driver_component::config::settings::Settings;
use ks3_driver_component::config::{
    params_from_env, params_to_env, Config, MAX_CHUNK_SIZE, MIN_PART_SIZE,
};

use crate::input::Fields;

/// A secret key no parameter or error text contains by chance.
const CANARY: &str = "Canary-S3cret-5f1d0e2c";

/// Input: `yaml NUL env-lines (NAME=VALUE) NUL flag-lines (KEY=VALUE)`.
///
/// * no panic in YAML parsing, merging or validation;
/// * a valid configuration has its numbers within their documented bounds, at least one
///   part in flight, and an endpoint URL that parses back to its scheme;
/// * neither the `Debug` of the settings nor of the configuration shows the secret key;
/// * `params_from_env(params_to_env(p)) == p` for lower-case names;
/// * no error shows the secret key (a canary's, and the fuzzed one's unless it is a piece
///   of the error's own text).
pub fn config(data: &[u8]) {
    let mut f = Fields::new(data);
    let yaml = f.text();
    let env_text = f.text();
    let flag_text = f.text();

    let env: BTreeMap<String, String> = env_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let flags: Vec<String> = flag_text.lines().map(str::to_string).collect();

    let mut s = Settings::new();
    if s.apply_yaml(&yaml, Path::new("fuzz.yml")).is_err() {
        s = Settings::new();
    }
    s.apply_env(&env);
    let _ = s.apply_flags(&flags);
    s.apply_credential_fallback(|k| env.get(k).cloned());
    let params = s.params();

    let secret = s
        .get("secretkey")
        .map(|v| v.expose().to_string())
        .unwrap_or_default();
    // A secret that could appear in the output for another reason proves nothing.
    let distinctive = secret.trim().len() >= 12
        && !secret.contains('*')
        && !params.iter().any(|(k, v)| {
            k != "secretkey" && (v.contains(secret.trim()) || k.contains(secret.trim()))
        });
    if distinctive {
        let d = format!("{s:?}");
        assert!(
            !d.contains(secret.trim()),
            "settings Debug shows the secret: {d}"
        );
    }

    let lower: BTreeMap<String, String> = params
        .iter()
        .filter(|(k, _)| **k == k.to_ascii_lowercase())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let back = params_from_env(&params_to_env(&lower).into_iter().collect());
    assert_eq!(back, lower);

    match Config::from_params(&params, |k| env.get(k).cloned()) {
        Ok(c) => {
            assert!((MIN_PART_SIZE..=MAX_CHUNK_SIZE).contains(&c.chunk_size));
            assert!(c.parts_in_flight() >= 1);
            assert!(c.upload_concurrency >= 1);
            assert!(!c.bucket.is_empty());
            assert!(!c.root_directory.starts_with('/') && !c.root_directory.ends_with('/'));
            let url = c.endpoint.base_url();
            assert!(url.starts_with(c.endpoint.scheme.as_str()));
            if distinctive {
                let d = format!("{c:?}");
                assert!(
                    !d.contains(secret.trim()),
                    "Config Debug shows the secret: {d}"
                );
            }
        }
        Err(e) => {
            assert!(!e.parameter.is_empty());
            // The same parameters with a canary for the secret: no error may show it. The
            // fuzzed secret is checked too, unless it is a piece of the error's own text
            // (the fuzzer found `required, e` as a secret, which `region`'s error says).
            let mut canary = params.clone();
            canary.insert("secretkey".into(), CANARY.into());
            let canary_error = match Config::from_params(&canary, |k| env.get(k).cloned()) {
                Ok(_) => String::new(),
                Err(e) => e.to_string(),
            };
            assert!(
                !canary_error.contains(CANARY),
                "error shows the secret: {canary_error}"
            );
            if distinctive && !canary_error.contains(secret.trim()) {
                assert!(
                    !e.to_string().contains(secret.trim()),
                    "error shows the secret: {e}"
                );
            }
        }
    }
    let _ = Config::from_env_vars(env.clone());
}
