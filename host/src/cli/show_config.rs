//! `ks3-driver config`: the effective parameters, secrets masked, each with its source.
use ks3_driver::settings::is_secret;
use ks3_driver::{Config, PARAMETERS};

use super::{out_line, CliError, Context};

pub fn run(ctx: &Context) -> Result<(), CliError> {
    let settings = ctx.settings()?;
    let width = PARAMETERS.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let mut lines = Vec::new();
    for spec in PARAMETERS {
        let (value, source) = match settings.get(spec.name) {
            Some(s) => (s.display_value(spec.name), s.source.to_string()),
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
        lines.push(format!("{:width$}  {shown}  ({source})", spec.name));
    }
    for (key, s) in settings.iter() {
        if PARAMETERS.iter().all(|p| p.name != key) {
            lines.push(format!(
                "{key:width$}  {}  ({}; unknown parameter: the driver will refuse it)",
                s.display_value(key),
                s.source
            ));
        }
    }
    for l in &lines {
        out_line(l)?;
    }
    // The same check the driver makes, so a problem shows here too.
    let status = match Config::from_params(&settings.params(), |k| std::env::var(k).ok()) {
        Ok(c) => format!(
            "# valid: endpoint {}, bucket {}",
            c.endpoint.base_url(),
            c.bucket
        ),
        Err(e) if settings.iter().next().is_none() => format!(
            "# not configured ({e}): set parameters with -c FILE, -p KEY=VALUE or \
             REGISTRY_STORAGE_KS3_<KEY>; or try `ks3-driver demo`"
        ),
        Err(e) => format!("# invalid: {e}"),
    };
    out_line(&status)
}
