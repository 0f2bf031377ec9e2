//! The cold starts: fresh `ks3-driver` processes, each one stat, timed whole.
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use ks3_driver_host::Params;

use super::{err, ms, Sizes};

/// Median wall times of fresh `stat` processes, ms (see [`ColdStarts::measure`]).
#[derive(Default, Clone, Copy)]
pub(crate) struct ColdFigures {
    /// The first start after install: an empty compiled-code cache directory (the
    /// component comes from the build's precompiled artifact).
    pub(crate) first: f64,
    /// A later start: the same with a warmed cache directory.
    pub(crate) cached: f64,
    /// A first start with the precompiled artifact switched off
    /// (`KS3_DRIVER_EMBEDDED_ARTIFACT=off`, as on a CPU that refuses it): a compile.
    pub(crate) compile: f64,
    /// A later start with the artifact switched off: the on-disk cache's hit.
    pub(crate) disk_cached: f64,
}

/// Runs fresh `ks3-driver` processes against the benchmark's configuration.
#[derive(Clone)]
pub(crate) struct ColdStarts {
    exe: PathBuf,
    /// The global options, and with the local server its parameters (its port is new).
    base_args: Vec<String>,
    runs: usize,
}

impl ColdStarts {
    pub(crate) fn new(
        child_args: Vec<String>,
        local: bool,
        params: &Params,
        sizes: Sizes,
    ) -> Result<Self, String> {
        let mut base_args = child_args;
        if local {
            for (k, v) in params {
                base_args.push("-p".into());
                base_args.push(format!("{k}={v}"));
            }
        }
        Ok(ColdStarts {
            exe: std::env::current_exe().map_err(err)?,
            base_args,
            runs: sizes.cold_runs,
        })
    }

    /// Median wall times of `runs` processes with `args`, ms. With `caches`, for each of
    /// [`ColdFigures`]' rows: each uncached run gets an empty cache directory, the cached
    /// runs share one warmed first; with the precompiled artifact on, then off. Without,
    /// all figures are the same runs'.
    pub(crate) fn measure(&self, args: &[String], caches: bool) -> Result<ColdFigures, String> {
        let scratch = std::env::temp_dir().join(format!("ks3-driver-bench-{}", std::process::id()));
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let result = (|| {
            if !caches {
                let off = scratch.join("unused");
                let times = (0..self.runs)
                    .map(|_| self.run(args, &off, true))
                    .collect::<Result<Vec<_>, _>>()?;
                let m = median(times);
                return Ok(ColdFigures {
                    first: m,
                    cached: m,
                    compile: m,
                    disk_cached: m,
                });
            }
            // (first start, later start) with the artifact on or off.
            let pair = |artifact: bool, tag: &str| -> Result<(f64, f64), String> {
                let fresh = (0..self.runs)
                    .map(|i| self.run(args, &scratch.join(format!("{tag}-fresh-{i}")), artifact))
                    .collect::<Result<Vec<_>, _>>()?;
                let warm = scratch.join(format!("{tag}-warm"));
                self.run(args, &warm, artifact)?;
                let cached = (0..self.runs)
                    .map(|_| self.run(args, &warm, artifact))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((median(fresh), median(cached)))
            };
            let (first, cached) = pair(true, "artifact")?;
            let (compile, disk_cached) = pair(false, "no-artifact")?;
            Ok(ColdFigures {
                first,
                cached,
                compile,
                disk_cached,
            })
        })();
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }

    /// One process's wall time, ms, with the precompiled artifact on or off.
    fn run(&self, args: &[String], cache: &PathBuf, artifact: bool) -> Result<f64, String> {
        let mut cmd = Command::new(&self.exe);
        if artifact {
            cmd.env_remove("KS3_DRIVER_EMBEDDED_ARTIFACT");
        } else {
            cmd.env("KS3_DRIVER_EMBEDDED_ARTIFACT", "off");
        }
        let t = Instant::now();
        let out = cmd
            .args(&self.base_args)
            .args(args)
            .env("KS3_DRIVER_CACHE_DIR", cache)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(err)?;
        let took = ms(t.elapsed());
        if !out.status.success() {
            return Err(format!(
                "cold-start child failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(took)
    }
}
