//! `--repair`: deletes what a repairable problem names (a directory of links, a stale
//! upload, the upload a tail belongs to), after checking again that the problem still
//! holds: the registry may be serving, and a tag re-pushed or a blob uploaded again
//! since the scan must not lose its new link. Blob data and manifest revisions are never
//! targets (no [`Fix`] is ever made for them).
use ks3_driver_host::Driver;

use super::report::{Fix, Guard, Outcome, Problem, Repair};
use crate::digest::Digest;
use crate::layout;
use crate::store::{delete_if_present, fan_out};

/// Why the guard no longer holds (`Ok(None)`: it holds).
async fn recheck(driver: &Driver, guard: &Guard) -> Result<Option<String>, ks3_driver_host::Error> {
    let exists = |p: String| async move {
        match driver.stat(&p).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    };
    match guard {
        Guard::None => Ok(None),
        Guard::BlobMissing(d) => {
            let Some(d) = Digest::parse(d) else {
                return Ok(None);
            };
            Ok(exists(layout::blob_data(&d))
                .await?
                .then(|| format!("blob {d} exists now")))
        }
        Guard::Absent(p) => Ok(exists(p.clone()).await?.then(|| format!("{p} exists now"))),
        Guard::StillDangling { repo, link, digest } => {
            let named = match driver.get_content(link).await {
                Ok(c) => layout::parse_link(&c),
                Err(e) if e.is_not_found() => return Ok(Some("the link is gone".into())),
                Err(e) => return Err(e),
            };
            let Some(d) = named.filter(|n| n.to_string() == *digest) else {
                return Ok(Some("the link names another manifest now".into()));
            };
            let revision = match driver.get_content(&layout::revision_link(repo, &d)).await {
                Ok(c) => layout::parse_link(&c),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e),
            };
            if revision.as_ref() == Some(&d) && exists(layout::blob_data(&d)).await? {
                return Ok(Some(format!("manifest {d} is in {repo} now")));
            }
            Ok(None)
        }
    }
}

async fn repair_one(driver: &Driver, p: &Problem, fix: &Fix) -> Repair {
    let outcome = match recheck(driver, &fix.guard).await {
        Ok(Some(why)) => Outcome::Skipped(why),
        Err(e) => Outcome::Failed(format!("checking again: {e}")),
        Ok(None) => match delete_if_present(driver, &fix.target).await {
            Ok(()) => Outcome::Deleted,
            Err(e) => Outcome::Failed(e.to_string()),
        },
    };
    Repair {
        kind: p.kind,
        path: p.path.clone(),
        target: fix.target.clone(),
        outcome,
    }
}

/// Repairs every repairable problem, `conc` at a time, in the problems' order. A fix
/// whose target lies inside another's (a tag index entry of a tag whose whole directory
/// goes) is not run on its own: its directory goes with the other, and it reports that
/// outcome (run separately, after the other, it would find its link gone and skip).
pub(super) async fn repair(driver: &Driver, problems: &[Problem], conc: usize) -> Vec<Repair> {
    let fixable: Vec<(&Problem, &Fix)> = problems
        .iter()
        .filter_map(|p| p.fix.as_ref().map(|f| (p, f)))
        .collect();
    let cover = |f: &Fix| {
        fixable
            .iter()
            .map(|(_, o)| o.target.as_str())
            .find(|t| f.target.starts_with(&format!("{t}/")))
            .map(str::to_string)
    };
    let own: Vec<(&Problem, &Fix)> = fixable
        .iter()
        .copied()
        .filter(|(_, f)| cover(f).is_none())
        .collect();
    let done = fan_out(own, conc, |(p, f)| repair_one(driver, p, f)).await;
    fixable
        .iter()
        .map(|(p, f)| match cover(f) {
            None => done
                .iter()
                .find(|r| r.path == p.path && r.kind == p.kind)
                .cloned()
                .unwrap_or_else(|| Repair {
                    kind: p.kind,
                    path: p.path.clone(),
                    target: f.target.clone(),
                    outcome: Outcome::Failed("not run".into()),
                }),
            Some(t) => {
                let by = done
                    .iter()
                    .find(|r| r.target == t)
                    .map(|r| r.outcome.clone());
                Repair {
                    kind: p.kind,
                    path: p.path.clone(),
                    target: t,
                    outcome: by
                        .unwrap_or(Outcome::Skipped("its covering repair did not run".into())),
                }
            }
        })
        .collect()
}
