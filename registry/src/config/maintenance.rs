//! `storage.maintenance`: upload purging (distribution's keys), read-only mode, and
//! garbage collection while serving (`gc`, this registry's addition).
use std::time::Duration;

use serde_norway::Value;

use super::values::{boolean, go_duration, key_str, section};
use super::{err, Config, ConfigError};

/// `storage.maintenance.uploadpurging`: removing uploads that were started long ago and
/// never finished (distribution's keys and defaults; `initialdelay` is this registry's
/// addition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPurging {
    /// `enabled` (default true).
    pub enabled: bool,
    /// `age` (default 168h): uploads whose `startedat` is older are removed.
    pub age: Duration,
    /// `interval` (default 24h): time between two runs.
    pub interval: Duration,
    /// `dryrun` (default false): report what would be removed, remove nothing.
    pub dry_run: bool,
    /// `initialdelay`: time before the first run. `None` (the default) is distribution's
    /// random delay of 0–59 minutes, so instances started together do not purge at once.
    pub initial_delay: Option<Duration>,
}

impl Default for UploadPurging {
    fn default() -> Self {
        UploadPurging {
            enabled: true,
            age: Duration::from_secs(168 * 3600),
            interval: Duration::from_secs(24 * 3600),
            dry_run: false,
            initial_delay: None,
        }
    }
}

/// `storage.maintenance.gc`: garbage collection while the registry serves (distribution
/// has none; its `registry garbage-collect` needs the registry stopped). Off by default;
/// the same collection as `ks3-driver gc`, safe beside pushes (see `ks3_registry::fence`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcSchedule {
    /// `enabled` (default false).
    pub enabled: bool,
    /// `interval` (default 24h): time between two runs.
    pub interval: Duration,
    /// `deleteuntagged` (default false): also delete manifests no tag points at.
    pub delete_untagged: bool,
    /// `minage` (default 1h): unreferenced blobs and untagged manifests written more
    /// recently are kept: the time a client has between uploading a blob and pushing the
    /// manifest that names it.
    pub min_age: Duration,
    /// `settle` (default 10s): how long a collection waits between announcing what it
    /// would delete and re-scanning for what was pushed meanwhile; also how long a request
    /// of this registry may take before it must look for collections again. Every
    /// instance and `ks3-driver gc` on one store must use the same value (or a collector
    /// a larger one).
    pub settle: Duration,
    /// `dryrun` (default false): report, delete nothing.
    pub dry_run: bool,
    /// `initialdelay`: time before the first run; `None` is a random 0–59 minutes.
    pub initial_delay: Option<Duration>,
}

impl Default for GcSchedule {
    fn default() -> Self {
        GcSchedule {
            enabled: false,
            interval: Duration::from_secs(24 * 3600),
            delete_untagged: false,
            min_age: Duration::from_secs(3600),
            settle: crate::fence::DEFAULT_SETTLE,
            dry_run: false,
            initial_delay: None,
        }
    }
}

pub(super) fn read(c: &mut Config, v: &Value) -> Result<(), ConfigError> {
    for (k, v) in section(v, "storage.maintenance")? {
        let key = key_str(k);
        match key.as_str() {
            "uploadpurging" => read_upload_purging(c, v)?,
            "gc" => read_gc(c, v)?,
            "readonly" => {
                for (k, v) in section(v, "storage.maintenance.readonly")? {
                    match key_str(k).as_str() {
                        "enabled" => {
                            c.read_only = boolean(v, "storage.maintenance.readonly.enabled")?
                        }
                        other => c.warnings.push(format!(
                            "storage.maintenance.readonly.{other}: unknown key, ignored"
                        )),
                    }
                }
            }
            other => c
                .warnings
                .push(format!("storage.maintenance.{other}: unknown key, ignored")),
        }
    }
    Ok(())
}

fn positive(d: Duration, full: &str) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        return Err(err(full, "must be positive"));
    }
    Ok(d)
}

/// distribution requires `age`, `interval` and `dryrun` once the section is there
/// (and panics without them); here a missing key keeps its default.
fn read_upload_purging(c: &mut Config, v: &Value) -> Result<(), ConfigError> {
    let p = &mut c.upload_purging;
    let mut unknown = Vec::new();
    for (k, v) in section(v, "storage.maintenance.uploadpurging")? {
        let key = key_str(k);
        let full = format!("storage.maintenance.uploadpurging.{key}");
        match key.as_str() {
            "enabled" => p.enabled = boolean(v, &full)?,
            "age" => p.age = go_duration(v, &full)?,
            "interval" => p.interval = positive(go_duration(v, &full)?, &full)?,
            "dryrun" => p.dry_run = boolean(v, &full)?,
            "initialdelay" => p.initial_delay = Some(go_duration(v, &full)?),
            other => unknown.push(format!(
                "storage.maintenance.uploadpurging.{other}: unknown key, ignored"
            )),
        }
    }
    c.warnings.extend(unknown);
    Ok(())
}

fn read_gc(c: &mut Config, v: &Value) -> Result<(), ConfigError> {
    let g = &mut c.gc;
    let mut unknown = Vec::new();
    for (k, v) in section(v, "storage.maintenance.gc")? {
        let key = key_str(k);
        let full = format!("storage.maintenance.gc.{key}");
        match key.as_str() {
            "enabled" => g.enabled = boolean(v, &full)?,
            "interval" => g.interval = positive(go_duration(v, &full)?, &full)?,
            "deleteuntagged" => g.delete_untagged = boolean(v, &full)?,
            "minage" => g.min_age = go_duration(v, &full)?,
            "settle" => g.settle = go_duration(v, &full)?,
            "dryrun" => g.dry_run = boolean(v, &full)?,
            "initialdelay" => g.initial_delay = Some(go_duration(v, &full)?),
            other => unknown.push(format!(
                "storage.maintenance.gc.{other}: unknown key, ignored"
            )),
        }
    }
    c.warnings.extend(unknown);
    Ok(())
}
