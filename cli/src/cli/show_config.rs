//! `ks3-driver config`: the effective parameters, secrets masked, each with its source.
use ks3_driver_host::settings::is_secret;
use ks3_driver_host::{Config, PARAMETERS};

use ks3_driver_host::SigningScheme;

use super::{out_line, CliError, Context};

/// How requests will be signed: the scheme and, for V4, the region name in the credential
/// scope (derived from `region` unless `v4region` overrides it).
fn signing(c: &Config) -> String {
    match c.signing {
        SigningScheme::V2 => "v2".to_string(),
        SigningScheme::V4(_) => format!(
            "{} (V4 region {})",
            c.signing.name(),
            c.v4_region.as_deref().unwrap_or("?")
        ),
    }
}

pub fn run(ctx: &Context) -> Result<(), CliError> {
    let settings = ctx.settings()?;
    let width = PARAMETERS.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for spec in PARAMETERS {
        let (value, source) = match settings.get(spec.name) {
            Some(s) => (s.display_value(), s.source.to_string()),
            None => match spec.default {
                Some(d) => (d.to_string(), "default".to_string()),
                None => (String::new(), "not set".to_string()),
            },
        };
        let shown = if value.is_empty() && !is_secret(spec.name) {
            "\"\"".to_string()
        } else if value.is_empty() {
            "(empty)".to_string()
        } else {
            value
        };
        rows.push((spec.name.to_string(), shown, source));
    }
    for (key, s) in settings.iter() {
        if PARAMETERS.iter().all(|p| p.name != key) {
            // Masked: it may be a misspelt secret.
            rows.push((
                key.to_string(),
                "****".to_string(),
                format!("{}; unknown parameter: the driver will refuse it", s.source),
            ));
        }
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(width);
    let vwidth = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .min(40);
    for (k, v, src) in &rows {
        out_line(&format!("{k:width$}  {v:vwidth$}  ({src})"))?;
    }
    // The same check the driver makes, so a problem shows here too.
    let status = match Config::from_params(&settings.params(), |k| std::env::var(k).ok()) {
        Ok(c) => format!(
            "# valid: endpoint {}, bucket {}, signed {}",
            c.endpoint.base_url(),
            c.bucket,
            signing(&c)
        ),
        Err(e) if settings.iter().next().is_none() => format!(
            "# not configured ({e}): set parameters with -c FILE, -p KEY=VALUE or \
             REGISTRY_STORAGE_KS3_<KEY>; or try `ks3-driver demo`"
        ),
        Err(e) => format!("# invalid: {e}"),
    };
    out_line(&status)
}
