//! What fsck reports: the problem kinds (stable names: scripts and the chaos test match
//! on them), one problem or repair per line, as text or as JSON objects.
use serde_json::json;

/// One kind of inconsistency. The names (`as_str`) are part of the command's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A tag's `current/link` names a manifest the repository does not have (no revision
    /// link, or its bytes are gone): pulling the tag fails.
    TagDangling,
    /// A tag's `index/<alg>/<hex>/link` (its history) names a missing manifest.
    TagIndexDangling,
    /// A referrers-index link names a missing manifest.
    ReferrerDangling,
    /// A link file whose content is no digest, or another digest than its path.
    LinkInvalid,
    /// A manifest revision whose bytes are not under `blobs/`.
    RevisionMissingBlob,
    /// A manifest revision whose bytes are no manifest this registry serves.
    RevisionNotManifest,
    /// A manifest's config or layer is not under `blobs/`.
    ManifestMissingBlob,
    /// An index's child manifest is not a revision of the repository, or its bytes are gone.
    ManifestMissingChild,
    /// A descriptor's size is not its blob's size.
    ManifestSizeMismatch,
    /// A `_layers` link to a blob that is gone.
    LayerLinkDangling,
    /// An object under `blobs/` whose path is not a digest of distribution's layout.
    BlobBadPath,
    /// A blob whose content does not hash to its path (`--verify-digests`).
    BlobDigestMismatch,
    /// An upload started before the purge age.
    UploadStale,
    /// A driver tail (`~tails/…`) that belongs to no upload in progress.
    TailOrphan,
    /// The sweep record of a garbage collector that died mid-sweep (registries ignore it
    /// once it is 10 minutes old; see `crate::fence`).
    GcRecordAbandoned,
}

impl Kind {
    pub const ALL: [Kind; 15] = [
        Kind::TagDangling,
        Kind::TagIndexDangling,
        Kind::ReferrerDangling,
        Kind::LinkInvalid,
        Kind::RevisionMissingBlob,
        Kind::RevisionNotManifest,
        Kind::ManifestMissingBlob,
        Kind::ManifestMissingChild,
        Kind::ManifestSizeMismatch,
        Kind::LayerLinkDangling,
        Kind::BlobBadPath,
        Kind::BlobDigestMismatch,
        Kind::UploadStale,
        Kind::TailOrphan,
        Kind::GcRecordAbandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::TagDangling => "tag-dangling",
            Kind::TagIndexDangling => "tag-index-dangling",
            Kind::ReferrerDangling => "referrer-dangling",
            Kind::LinkInvalid => "link-invalid",
            Kind::RevisionMissingBlob => "revision-missing-blob",
            Kind::RevisionNotManifest => "revision-not-manifest",
            Kind::ManifestMissingBlob => "manifest-missing-blob",
            Kind::ManifestMissingChild => "manifest-missing-child",
            Kind::ManifestSizeMismatch => "manifest-size-mismatch",
            Kind::LayerLinkDangling => "layer-link-dangling",
            Kind::BlobBadPath => "blob-bad-path",
            Kind::BlobDigestMismatch => "blob-digest-mismatch",
            Kind::UploadStale => "upload-stale",
            Kind::TailOrphan => "tail-orphan",
            Kind::GcRecordAbandoned => "gc-record-abandoned",
        }
    }

    /// How serious: a [`Severity::Leftover`] is harmless to clients and left by design:
    /// distribution's own GC sweeps a blob and keeps every `_layers` link to it (a blob is
    /// served only when its data exists; this registry's GC deletes the links with the
    /// blob, but a store shared with distribution has them); deleting a manifest by digest
    /// removes the tags that name it now but not the history entries of tags that named it
    /// once (`tags/<t>/index/…`, which nothing serves; distribution 2.8.2 and this
    /// registry alike); and a collector that died leaves its sweep record, which
    /// registries ignore once stale. Reported and
    /// repaired, but it does not make a store unclean unless asked
    /// ([`FsckReport::is_clean_strict`]).
    pub fn severity(self) -> Severity {
        match self {
            Kind::LayerLinkDangling | Kind::TagIndexDangling | Kind::GcRecordAbandoned => {
                Severity::Leftover
            }
            _ => Severity::Error,
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether `--repair` may remove what the problem names: links and tags that point
    /// at nothing, stale uploads, orphan tails. Never blob data nor a manifest revision:
    /// those problems mean lost or damaged data, which only a person (or a push of the
    /// same content) can put right.
    pub fn repairable(self) -> bool {
        matches!(
            self,
            Kind::TagDangling
                | Kind::TagIndexDangling
                | Kind::ReferrerDangling
                | Kind::LayerLinkDangling
                | Kind::UploadStale
                | Kind::TailOrphan
                | Kind::GcRecordAbandoned
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Leftover,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Leftover => "leftover",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `--repair` deletes for a problem, and what must still hold just before it does
/// (the store may have changed since the scan: a tag re-pushed, a blob uploaded again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// The directory deleted (with everything under it).
    pub target: String,
    pub guard: Guard,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// Nothing to re-check (an upload does not get younger).
    None,
    /// The blob's data is still absent.
    BlobMissing(String),
    /// `link` still names `digest`, and that manifest is still not in the repository.
    StillDangling {
        repo: String,
        link: String,
        digest: String,
    },
    /// Nothing exists at or under this path (the driver path a tail belongs to).
    Absent(String),
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: Kind,
    /// The store path (driver path) of the object at fault.
    pub path: String,
    pub message: String,
    /// Set for repairable kinds.
    pub fix: Option<Fix>,
}

impl Problem {
    /// `<kind> <path>: <message>`.
    pub fn line(&self) -> String {
        format!("{} {}: {}", self.kind, self.path, self.message)
    }

    /// `{"kind":…,"severity":…,"path":…,"message":…,"repairable":…}`.
    pub fn json(&self) -> String {
        json!({
            "kind": self.kind.as_str(),
            "severity": self.kind.severity().as_str(),
            "path": self.path,
            "message": self.message,
            "repairable": self.fix.is_some(),
        })
        .to_string()
    }
}

/// What `--repair` did about one problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub kind: Kind,
    pub path: String,
    /// The directory deleted (or that would have been).
    pub target: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Deleted,
    /// The guard no longer held (the store changed): nothing deleted.
    Skipped(String),
    Failed(String),
}

impl Repair {
    pub fn line(&self) -> String {
        match &self.outcome {
            Outcome::Deleted => format!(
                "repaired {} {}: deleted {}",
                self.kind, self.path, self.target
            ),
            Outcome::Skipped(why) => {
                format!(
                    "skipped {} {}: {why}; nothing deleted",
                    self.kind, self.path
                )
            }
            Outcome::Failed(e) => format!(
                "failed {} {}: deleting {}: {e}",
                self.kind, self.path, self.target
            ),
        }
    }

    /// `{"repair":"deleted"|"skipped"|"failed","kind":…,"path":…,"target":…,"message":…}`.
    pub fn json(&self) -> String {
        let (what, message) = match &self.outcome {
            Outcome::Deleted => ("deleted", String::new()),
            Outcome::Skipped(m) => ("skipped", m.clone()),
            Outcome::Failed(m) => ("failed", m.clone()),
        };
        json!({
            "repair": what,
            "kind": self.kind.as_str(),
            "path": self.path,
            "target": self.target,
            "message": message,
        })
        .to_string()
    }
}

/// What a run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    pub problems: Vec<Problem>,
    pub repairs: Vec<Repair>,
    pub repositories: usize,
    pub manifests: usize,
    pub blobs: usize,
    /// Blobs re-hashed (`verify_digests`).
    pub blobs_verified: usize,
    pub uploads: usize,
    pub tails: usize,
}

impl FsckReport {
    /// Problems of one kind.
    pub fn of(&self, kind: Kind) -> Vec<&Problem> {
        self.problems.iter().filter(|p| p.kind == kind).collect()
    }

    /// No problem but leftovers (see [`Kind::severity`]).
    pub fn is_clean(&self) -> bool {
        self.errors() == 0
    }

    /// No problem at all, leftovers included.
    pub fn is_clean_strict(&self) -> bool {
        self.problems.is_empty()
    }

    /// Problems of [`Severity::Error`].
    pub fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.kind.severity() == Severity::Error)
            .count()
    }

    /// Problems per kind, in [`Kind::ALL`]'s order, kinds with none left out.
    pub fn counts(&self) -> Vec<(Kind, usize)> {
        Kind::ALL
            .into_iter()
            .map(|k| (k, self.problems.iter().filter(|p| p.kind == k).count()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    fn repaired(&self) -> usize {
        self.repairs
            .iter()
            .filter(|r| r.outcome == Outcome::Deleted)
            .count()
    }

    /// One line: `fsck: N problems (kind: n, …) in R repositories, M manifests, B blobs…`.
    pub fn summary_line(&self) -> String {
        let kinds = self
            .counts()
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut s = format!(
            "fsck: {} problems ({} errors, {} leftovers){} in {} repositories, {} manifests, {} blobs ({} re-hashed), {} uploads, {} tails",
            self.problems.len(),
            self.errors(),
            self.problems.len() - self.errors(),
            if kinds.is_empty() { String::new() } else { format!(": {kinds};") },
            self.repositories,
            self.manifests,
            self.blobs,
            self.blobs_verified,
            self.uploads,
            self.tails
        );
        if !self.repairs.is_empty() {
            s.push_str(&format!(
                "; repaired {} of {}",
                self.repaired(),
                self.repairs.len()
            ));
        }
        s
    }

    /// The summary object: `{"summary":{"problems":N,"kinds":{…},"repositories":…,…}}`.
    pub fn summary_json(&self) -> String {
        let kinds: serde_json::Map<String, serde_json::Value> = self
            .counts()
            .into_iter()
            .map(|(k, n)| (k.as_str().to_string(), n.into()))
            .collect();
        json!({
            "summary": {
                "problems": self.problems.len(),
                "errors": self.errors(),
                "leftovers": self.problems.len() - self.errors(),
                "kinds": kinds,
                "repositories": self.repositories,
                "manifests": self.manifests,
                "blobs": self.blobs,
                "blobs_verified": self.blobs_verified,
                "uploads": self.uploads,
                "tails": self.tails,
                "repaired": self.repaired(),
                "repair_failed": self.repairs.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))).count(),
            }
        })
        .to_string()
    }
}
