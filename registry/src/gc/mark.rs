//! The mark's one traversal: from root manifests through the children of indexes, each
//! manifest's references read once (by the first mark and by the re-scan alike).
use std::collections::{HashMap, HashSet};

use ks3_driver_host::Driver;

use super::scan::references;
use super::{storage, GcError};
use crate::digest::Digest;
use crate::layout;
use crate::manifest::MAX_MANIFEST;
use crate::store::{fan_out, read_document, Document};

/// How a manifest whose bytes cannot be had is taken.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Missing {
    /// The first mark: it was listed a moment ago, so its absence (or a body that is no
    /// manifest) stops the run before anything is deleted.
    Fails,
    /// The re-scan: a link written meanwhile may name a manifest whose push failed; it
    /// has nothing to spare.
    Skipped,
}

/// Each manifest's references and whether it is an index, read once.
pub(super) struct Marker<'a> {
    driver: &'a Driver,
    concurrency: usize,
    pub bodies: HashMap<String, (Vec<String>, bool)>,
}

impl<'a> Marker<'a> {
    pub fn new(driver: &'a Driver, concurrency: usize) -> Marker<'a> {
        Marker {
            driver,
            concurrency: concurrency.max(1),
            bodies: HashMap::new(),
        }
    }

    /// The manifests of repository `name` reachable from `roots` through the children of
    /// indexes that `follow` admits, roots included; their references are then in
    /// [`Marker::bodies`] (but for manifests skipped as missing).
    pub async fn closure(
        &mut self,
        name: &str,
        roots: Vec<String>,
        follow: impl Fn(&str) -> bool,
        missing: Missing,
    ) -> Result<HashSet<String>, GcError> {
        let mut kept: HashSet<String> = roots.iter().cloned().collect();
        let mut frontier = roots;
        while !frontier.is_empty() {
            self.load(name, &frontier, missing).await?;
            let mut next = Vec::new();
            for d in &frontier {
                if let Some((refs, true)) = self.bodies.get(d) {
                    for child in refs {
                        if follow(child) && kept.insert(child.clone()) {
                            next.push(child.clone());
                        }
                    }
                }
            }
            frontier = next;
        }
        Ok(kept)
    }

    /// Reads the references of the manifests of `digests` whose bytes exist (a missing
    /// one is skipped; one that is no manifest stops the run, as in the mark).
    pub async fn read_if_present(&mut self, name: &str, digests: &[String]) -> Result<(), GcError> {
        self.load(name, digests, Missing::Skipped).await
    }

    /// Reads the references of every manifest of `digests` not read yet.
    async fn load(
        &mut self,
        name: &str,
        digests: &[String],
        missing: Missing,
    ) -> Result<(), GcError> {
        let todo: Vec<String> = digests
            .iter()
            .filter(|d| !self.bodies.contains_key(*d))
            .cloned()
            .collect();
        let driver = self.driver;
        let fetched = fan_out(todo, self.concurrency, |d| async move {
            let invalid = |why: String| {
                GcError::Invalid(format!(
                    "failed to retrieve manifest for digest {d} of {name}: {why}; \
                     nothing was deleted"
                ))
            };
            let Some(parsed) = Digest::parse(&d) else {
                return match missing {
                    Missing::Fails => Err(invalid("not a digest".into())),
                    Missing::Skipped => Ok(None),
                };
            };
            let body = match read_document(driver, &layout::blob_data(&parsed), MAX_MANIFEST).await
            {
                Ok(Document::Found(b)) => b,
                Ok(Document::Missing) if missing == Missing::Skipped => return Ok(None),
                Ok(Document::Missing) => return Err(invalid("its blob is gone".to_string())),
                Ok(Document::TooLarge(size)) => {
                    return Err(invalid(format!(
                        "{size} bytes, over the {} MiB manifest limit",
                        MAX_MANIFEST >> 20
                    )))
                }
                Err(e) => return Err(storage(format!("reading manifest {d}"))(e)),
            };
            match references(&body) {
                Ok(refs) => Ok(Some((d, refs))),
                // A link written meanwhile to something that is no manifest: a push the
                // registry refused leaves none, so this is someone else's; stop.
                Err(why) => Err(invalid(why)),
            }
        })
        .await;
        for r in fetched {
            if let Some((d, refs)) = r? {
                self.bodies.insert(d, refs);
            }
        }
        Ok(())
    }
}
