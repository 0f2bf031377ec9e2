//! The oracle: a client-side model built only from acknowledged outcomes. A manifest PUT
//! answered 201 settles its tag; a DELETE answered 202 settles what it deleted; anything
//! else (a 5xx, no answer) may or may not have happened, so the model keeps every value
//! the tag may have. Mutations of one repository are serialized by the clients (one
//! manifest PUT or DELETE per repository at a time: blob uploads run freely), so the
//! model is exact up to those maybes.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::client::Outcome;

/// A blob the clients push, and its bytes.
pub struct Blob {
    pub digest: String,
    pub data: Arc<Vec<u8>>,
}

impl Blob {
    pub fn new(data: Vec<u8>) -> Blob {
        Blob {
            digest: crate::client::sha256(&data),
            data: Arc::new(data),
        }
    }
}

/// An image: its manifest's bytes and digest, its config and layers.
pub struct Image {
    pub digest: String,
    pub manifest: Vec<u8>,
    pub blobs: Vec<Arc<Blob>>,
}

/// What a tag may be: `None` absent, `Some(digest)` that manifest.
pub type Values = BTreeSet<Option<String>>;

#[derive(Default)]
struct Repo {
    tags: BTreeMap<String, Values>,
    /// Manifests deleted by digest (acknowledged) and not pushed again since.
    deleted: BTreeSet<String>,
    /// Every manifest a push was attempted with, in order.
    pushed: Vec<String>,
    /// Even when no mutation is in progress; bumped at each start and end.
    generation: u64,
}

#[derive(Default)]
struct State {
    repos: BTreeMap<String, Repo>,
    images: HashMap<String, Arc<Image>>,
    /// Where a blob upload (or mount) was answered 201: mount sources.
    homes: BTreeMap<String, BTreeSet<String>>,
    counts: BTreeMap<(String, Outcome), u64>,
    violations: Vec<String>,
}

pub struct Model {
    state: Mutex<State>,
    locks: BTreeMap<String, tokio::sync::Mutex<()>>,
    pub repos: Vec<String>,
}

/// The lock of one repository's mutation, held from before the request to after the
/// model has recorded its outcome.
pub struct Mutation<'a> {
    model: &'a Model,
    repo: String,
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

impl Drop for Mutation<'_> {
    fn drop(&mut self) {
        self.model.with_repo(&self.repo, |r| r.generation += 1);
    }
}

impl Model {
    pub fn new(repos: &[String]) -> Model {
        let mut state = State::default();
        for r in repos {
            state.repos.insert(r.clone(), Repo::default());
        }
        Model {
            state: Mutex::new(state),
            locks: repos
                .iter()
                .map(|r| (r.clone(), tokio::sync::Mutex::new(())))
                .collect(),
            repos: repos.to_vec(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_repo<T>(&self, repo: &str, f: impl FnOnce(&mut Repo) -> T) -> T {
        f(self.lock().repos.get_mut(repo).expect("a known repository"))
    }

    pub async fn mutate(&self, repo: &str) -> Mutation<'_> {
        let guard = self.locks[repo].lock().await;
        self.with_repo(repo, |r| r.generation += 1);
        Mutation {
            model: self,
            repo: repo.to_string(),
            _guard: guard,
        }
    }

    pub fn count(&self, kind: &str, outcome: Outcome) {
        *self
            .lock()
            .counts
            .entry((kind.to_string(), outcome))
            .or_default() += 1;
    }

    pub fn violation(&self, what: String) {
        eprintln!("chaos: VIOLATION: {what}");
        self.lock().violations.push(what);
    }

    pub fn counts(&self) -> BTreeMap<(String, Outcome), u64> {
        self.lock().counts.clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    pub fn add_image(&self, image: Arc<Image>) {
        self.lock().images.insert(image.digest.clone(), image);
    }

    pub fn image(&self, digest: &str) -> Option<Arc<Image>> {
        self.lock().images.get(digest).cloned()
    }

    pub fn blob_home(&self, digest: &str, repo: &str) {
        self.lock()
            .homes
            .entry(digest.to_string())
            .or_default()
            .insert(repo.to_string());
    }

    /// Repositories other than `repo` where `digest` was uploaded.
    pub fn other_homes(&self, digest: &str, repo: &str) -> Vec<String> {
        self.lock()
            .homes
            .get(digest)
            .map(|h| h.iter().filter(|r| *r != repo).cloned().collect())
            .unwrap_or_default()
    }

    /// Manifests ever pushed (or tried) to `repo`.
    pub fn pushed(&self, repo: &str) -> Vec<String> {
        self.with_repo(repo, |r| r.pushed.clone())
    }

    /// The tag's possible values and the generation they hold for; `None` while a
    /// mutation of the repository is in progress.
    pub fn snapshot(&self, repo: &str, tag: &str) -> Option<(u64, Values)> {
        self.with_repo(repo, |r| {
            (r.generation % 2 == 0).then(|| (r.generation, values(r, tag)))
        })
    }

    pub fn generation(&self, repo: &str) -> u64 {
        self.with_repo(repo, |r| r.generation)
    }

    /// Every tag ever touched, with its possible values.
    pub fn all_tags(&self) -> Vec<(String, String, Values)> {
        let s = self.lock();
        let mut out = Vec::new();
        for (name, r) in &s.repos {
            for (tag, v) in &r.tags {
                out.push((name.clone(), tag.clone(), v.clone()));
            }
        }
        out
    }

    /// Every manifest deleted (acknowledged) and not pushed again since.
    pub fn all_deleted(&self) -> Vec<(String, String)> {
        let s = self.lock();
        s.repos
            .iter()
            .flat_map(|(n, r)| r.deleted.iter().map(move |d| (n.clone(), d.clone())))
            .collect()
    }

    /// Before a manifest PUT of `digest` (under the repository's mutation): whatever its
    /// answer, the manifest may now be in the repository.
    pub fn push_started(&self, repo: &str, digest: &str) {
        self.with_repo(repo, |r| {
            r.deleted.remove(digest);
            r.pushed.push(digest.to_string());
        });
    }

    /// A manifest PUT of `digest` by `tag` ended: 201 settles the tag, a 4xx leaves it
    /// as it was, anything else adds the possibility.
    pub fn push_ended(&self, repo: &str, tag: &str, digest: &str, outcome: Outcome) {
        self.with_repo(repo, |r| {
            let v = r.tags.entry(tag.to_string()).or_insert_with(absent);
            match outcome {
                Outcome::Ok => *v = [Some(digest.to_string())].into(),
                Outcome::Refused => {}
                Outcome::Failed | Outcome::NoAnswer => {
                    v.insert(Some(digest.to_string()));
                }
            }
        });
    }

    /// A DELETE of a tag ended (`outcome` Ok = 202; Refused with `status` 404 = the
    /// registry says there was no such tag).
    pub fn delete_tag_ended(&self, repo: &str, tag: &str, outcome: Outcome, status: Option<u16>) {
        let lost = self.with_repo(repo, |r| {
            let v = r.tags.entry(tag.to_string()).or_insert_with(absent);
            let before = v.clone();
            match (outcome, status) {
                (Outcome::Ok, _) => *v = absent(),
                (Outcome::Refused, Some(404)) => {
                    *v = absent();
                    return !before.contains(&None);
                }
                (Outcome::Refused, _) => {}
                (Outcome::Failed | Outcome::NoAnswer, _) => {
                    v.insert(None);
                }
            }
            false
        });
        if lost {
            self.violation(format!(
                "DELETE {repo}:{tag} answered 404, but the tag was acknowledged"
            ));
        }
    }

    /// A DELETE of a manifest by digest ended: the tags that may point at it may now be
    /// absent (202: those that did are).
    pub fn delete_digest_ended(
        &self,
        repo: &str,
        digest: &str,
        outcome: Outcome,
        status: Option<u16>,
    ) {
        let some = Some(digest.to_string());
        let lost = self.with_repo(repo, |r| {
            let acknowledged = r
                .tags
                .iter()
                .filter(|(_, v)| v.len() == 1 && v.contains(&some))
                .map(|(t, _)| t.clone())
                .collect::<Vec<_>>();
            match (outcome, status) {
                (Outcome::Ok, _) | (Outcome::Refused, Some(404)) => {
                    for v in r.tags.values_mut() {
                        if v.remove(&some) {
                            v.insert(None);
                        }
                    }
                    if outcome == Outcome::Ok {
                        r.deleted.insert(digest.to_string());
                    }
                }
                (Outcome::Refused, _) => {}
                (Outcome::Failed | Outcome::NoAnswer, _) => {
                    for v in r.tags.values_mut() {
                        if v.contains(&some) {
                            v.insert(None);
                        }
                    }
                }
            }
            if outcome == Outcome::Refused && status == Some(404) {
                acknowledged
            } else {
                Vec::new()
            }
        });
        if !lost.is_empty() {
            self.violation(format!(
                "DELETE {repo}@{digest} answered 404, but tags {lost:?} were acknowledged on it"
            ));
        }
    }
}

fn absent() -> Values {
    [None].into()
}

fn values(r: &Repo, tag: &str) -> Values {
    r.tags.get(tag).cloned().unwrap_or_else(absent)
}

/// One line for a set of possible values.
pub fn show(v: &Values) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|x| match x {
            None => "absent".to_string(),
            Some(d) => short(d).to_string(),
        })
        .collect();
    items.join(" | ")
}

pub fn short(d: &str) -> &str {
    &d[..d.len().min(19)]
}
