//! One client of the chaos test: random pushes (images sharing layers, monolithic,
//! one-PUT and chunked uploads, cross-repository mounts), pulls, deletes of tags and of
//! manifests and re-tags, each against either registry instance, each outcome recorded
//! in the model.
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::client::{self, Http, Outcome, Upload};
use crate::model::{short, Blob, Image, Model};

/// Tags per repository: few, so pushes and deletes of one tag collide often.
pub const TAGS: usize = 5;

/// How a blob of a push got into its repository.
#[derive(Debug, Clone, Copy)]
enum Put {
    /// A HEAD found it: not uploaded.
    Found,
    /// `POST ?mount=&from=` answered 201.
    Mounted,
    /// An upload answered 201.
    Uploaded,
}

pub struct Client {
    pub id: usize,
    pub seed: u64,
    pub rng: StdRng,
    pub http: Http,
    pub bases: Vec<String>,
    pub model: Arc<Model>,
    pub pool: Arc<Vec<Arc<Blob>>>,
    pub pushes: u64,
    /// The collector's `--min-age`: a blob written more recently than this is never
    /// swept, so a manifest naming only such blobs must not be refused for a missing one.
    pub gc_min_age: Duration,
}

/// The layers every image draws from: a few bytes to 6 MiB (over the 5 MiB chunk size,
/// so the driver writes a multipart part and a tail).
pub fn layer_pool(seed: u64) -> Vec<Arc<Blob>> {
    let mut rng: StdRng = rand::SeedableRng::seed_from_u64(seed ^ 0x1a7e5);
    let mut sizes = Vec::new();
    sizes.extend((0..6).map(|_| rng.gen_range(1..200)));
    sizes.extend((0..6).map(|_| rng.gen_range(1 << 10..64 << 10)));
    sizes.extend((0..4).map(|_| rng.gen_range(256 << 10..2 << 20)));
    sizes.extend((0..3).map(|_| rng.gen_range(5 << 20..6 << 20)));
    sizes
        .into_iter()
        .enumerate()
        .map(|(i, n)| Arc::new(Blob::new(ks3_tests::data(n, seed ^ (i as u64 + 1)))))
        .collect()
}

fn oci_manifest(config: &Blob, layers: &[Arc<Blob>]) -> Vec<u8> {
    let desc = |media: &str, b: &Blob| serde_json::json!({"mediaType": media, "digest": b.digest, "size": b.data.len()});
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": client::OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": layers.iter().map(|l| desc("application/vnd.oci.image.layer.v1.tar", l)).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&m).expect("json")
}

fn error_code(r: &Result<client::Resp, String>) -> String {
    match r {
        Ok(resp) => serde_json::from_slice::<serde_json::Value>(&resp.body)
            .ok()
            .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_string))
            .unwrap_or_else(|| resp.status.to_string()),
        Err(e) => e.clone(),
    }
}

impl Client {
    pub async fn step(&mut self) {
        match self.rng.gen_range(0..100) {
            0..=39 => self.push().await,
            40..=64 => self.pull().await,
            65..=74 => self.delete_tag().await,
            75..=86 => self.delete_digest().await,
            _ => self.retag().await,
        }
    }

    fn base(&mut self) -> (usize, String) {
        let i = self.rng.gen_range(0..self.bases.len());
        (i, self.bases[i].clone())
    }

    fn repo(&mut self) -> String {
        self.model
            .repos
            .choose(&mut self.rng)
            .expect("repos")
            .clone()
    }

    fn tag(&mut self) -> String {
        format!("t{}", self.rng.gen_range(0..TAGS))
    }

    fn layers(&mut self) -> Vec<Arc<Blob>> {
        let n = self.rng.gen_range(1..=3);
        let mut out: Vec<Arc<Blob>> = Vec::new();
        while out.len() < n {
            // Tiny and small layers mostly; a medium one in four, a large one in eight.
            let i = match self.rng.gen_range(0..8) {
                0 => self.rng.gen_range(16..19),
                1 | 2 => self.rng.gen_range(12..16),
                _ => self.rng.gen_range(0..12),
            };
            let b = Arc::clone(&self.pool[i]);
            if !out.iter().any(|o| o.digest == b.digest) {
                out.push(b);
            }
        }
        out
    }

    async fn push(&mut self) {
        let repo = self.repo();
        let tag = self.tag();
        self.pushes += 1;
        let config = Blob::new(
            format!(
                "{{\"chaos\":{{\"seed\":{},\"client\":{},\"push\":{}}}}}",
                self.seed, self.id, self.pushes
            )
            .into_bytes(),
        );
        let layers = self.layers();
        let manifest = oci_manifest(&config, &layers);
        let mut blobs = vec![Arc::new(config)];
        blobs.extend(layers);
        let image = Arc::new(Image {
            digest: client::sha256(&manifest),
            manifest,
            blobs,
        });
        self.model.add_image(Arc::clone(&image));
        // When the first blob was written, if every blob was (`None` when one was only
        // found by a HEAD).
        let started = Instant::now();
        let mut first_written = Some(started);
        let mut steps = Vec::new();
        for b in &image.blobs {
            let put = self.put_blob(&repo, b).await;
            steps.push(format!(
                "{} ({} B) {put:?} at +{:.1} s",
                short(&b.digest),
                b.data.len(),
                started.elapsed().as_secs_f64()
            ));
            match put {
                Some(Put::Uploaded | Put::Mounted) => {}
                Some(Put::Found) => first_written = None,
                None => {
                    self.model
                        .count("push abandoned (a blob failed)", Outcome::Ok);
                    return;
                }
            }
        }
        let written = first_written.map(|t| (t, steps.join(", ")));
        self.put_manifest(&repo, &tag, &image, "manifest push", written)
            .await;
    }

    /// Puts one blob in `repo` (`None`: it failed).
    async fn put_blob(&mut self, repo: &str, b: &Blob) -> Option<Put> {
        let (_, base) = self.base();
        let http = self.http.clone();
        if self.rng.gen_bool(0.4) {
            match client::blob_exists(&http, &base, repo, &b.digest).await {
                Ok(true) => {
                    self.model.count("blob HEAD found", Outcome::Ok);
                    return Some(Put::Found);
                }
                Ok(false) => {}
                Err(o) => {
                    self.model.count("blob HEAD", o);
                    return None;
                }
            }
        }
        let how = *[Upload::Monolithic, Upload::PostPut, Upload::Chunked]
            .choose(&mut self.rng)
            .expect("kinds");
        // One to four PATCHes of a large blob, of sizes that are no multiple of a part.
        let chunk = (b.data.len() / self.rng.gen_range(1..=4)).max(64 << 10);
        let homes = self.model.other_homes(&b.digest, repo);
        let outcome = match homes.choose(&mut self.rng).cloned() {
            Some(from) if self.rng.gen_bool(0.5) => {
                match client::mount(&http, &base, repo, &b.digest, &from).await {
                    Ok(None) => {
                        self.model.count("blob mount", Outcome::Ok);
                        self.model.blob_home(&b.digest, repo);
                        return Some(Put::Mounted);
                    }
                    Ok(Some(location)) => {
                        self.model
                            .count("blob mount fell back to upload", Outcome::Ok);
                        let how = if how == Upload::Monolithic {
                            Upload::PostPut
                        } else {
                            how
                        };
                        client::upload_to(&http, &base, &location, &b.data, &b.digest, how, chunk)
                            .await
                    }
                    Err(o) => {
                        self.model.count("blob mount", o);
                        return None;
                    }
                }
            }
            _ => client::upload_blob(&http, &base, repo, &b.data, how, chunk).await,
        };
        let kind = match how {
            Upload::Monolithic => "blob upload monolithic",
            Upload::PostPut => "blob upload POST+PUT",
            Upload::Chunked => "blob upload chunked",
        };
        self.model.count(kind, outcome);
        if outcome == Outcome::Ok {
            self.model.blob_home(&b.digest, repo);
            Some(Put::Uploaded)
        } else {
            None
        }
    }

    async fn put_manifest(
        &mut self,
        repo: &str,
        tag: &str,
        image: &Image,
        kind: &str,
        written: Option<(Instant, String)>,
    ) {
        let (_, base) = self.base();
        let _m = self.model.mutate(repo).await;
        let started_put = written.as_ref().map_or_else(Instant::now, |(t, _)| *t);
        // A second of slack for KS3's modification times and the collector's clock.
        let young = written
            .as_ref()
            .is_some_and(|(t, _)| t.elapsed() + Duration::from_secs(1) < self.gc_min_age);
        self.model.push_started(repo, &image.digest);
        let r = client::put_manifest(&self.http, &base, repo, tag, &image.manifest).await;
        let outcome = Outcome::of(&r, StatusCode::CREATED);
        if let Ok(resp) = &r {
            if outcome == Outcome::Ok
                && resp.header("docker-content-digest") != Some(image.digest.as_str())
            {
                self.model.violation(format!(
                    "PUT {repo}:{tag} answered digest {:?}, not {}",
                    resp.header("docker-content-digest"),
                    image.digest
                ));
            }
        }
        self.model.push_ended(repo, tag, &image.digest, outcome);
        self.model.count(kind, outcome);
        if outcome == Outcome::Refused {
            let code = error_code(&r);
            let why = match written {
                None => "a blob only found by HEAD, or a re-tag",
                Some(_) if young => "every blob written within --min-age",
                Some(_) => "a blob written longer than --min-age before",
            };
            self.model
                .count(&format!("{kind} refused: {code} ({why})"), Outcome::Refused);
            if young && code == "MANIFEST_BLOB_UNKNOWN" {
                let steps = written.map(|(_, s)| s).unwrap_or_default();
                self.model.violation(format!(
                    "PUT {repo}:{tag} ({}) refused MANIFEST_BLOB_UNKNOWN although every blob \
                     of it was written (201) in this push less than gc --min-age ({:?}) \
                     before ({steps}; PUT at +{:.1} s): a blob of a push in progress was swept",
                    short(&image.digest),
                    self.gc_min_age,
                    started_put.elapsed().as_secs_f64()
                ));
            }
        }
    }

    /// A manifest already pushed to `repo`, under another tag.
    async fn retag(&mut self) {
        let repo = self.repo();
        let tag = self.tag();
        let pushed = self.model.pushed(&repo);
        let Some(d) = pushed
            .iter()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .choose(&mut self.rng)
            .map(|d| d.to_string())
        else {
            return;
        };
        let image = self.model.image(&d).expect("an image of the model");
        self.put_manifest(&repo, &tag, &image, "manifest re-tag", None)
            .await;
    }

    async fn delete_tag(&mut self) {
        let repo = self.repo();
        let tag = self.tag();
        let (_, base) = self.base();
        let _m = self.model.mutate(&repo).await;
        let r = client::delete_manifest(&self.http, &base, &repo, &tag).await;
        let outcome = Outcome::of(&r, StatusCode::ACCEPTED);
        let status = r.as_ref().ok().map(|r| r.status.as_u16());
        self.model.delete_tag_ended(&repo, &tag, outcome, status);
        self.model.count("delete tag", outcome);
    }

    async fn delete_digest(&mut self) {
        let repo = self.repo();
        let pushed = self.model.pushed(&repo);
        let Some(d) = pushed
            .iter()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .choose(&mut self.rng)
            .map(|d| d.to_string())
        else {
            return;
        };
        let (_, base) = self.base();
        let _m = self.model.mutate(&repo).await;
        let r = client::delete_manifest(&self.http, &base, &repo, &d).await;
        let outcome = Outcome::of(&r, StatusCode::ACCEPTED);
        let status = r.as_ref().ok().map(|r| r.status.as_u16());
        self.model.delete_digest_ended(&repo, &d, outcome, status);
        self.model.count("delete manifest", outcome);
    }

    /// A pull by tag. Served bytes must match their digests always; when no mutation of
    /// the repository overlapped the pull, the answer must be one the model allows and a
    /// served manifest's blobs must all be there.
    async fn pull(&mut self) {
        let repo = self.repo();
        let tag = self.tag();
        let (i, base) = self.base();
        let snapshot = self.model.snapshot(&repo, &tag);
        let r = client::get_manifest(&self.http, &base, &repo, &tag).await;
        let quiet = |m: &Model| {
            snapshot
                .as_ref()
                .filter(|(g, _)| m.generation(&repo) == *g)
                .map(|(_, v)| v.clone())
        };
        let resp = match r {
            Ok(resp) if resp.status == StatusCode::OK => resp,
            Ok(resp) if resp.status == StatusCode::NOT_FOUND => {
                self.model.count("pull", Outcome::Refused);
                if let Some(v) = quiet(&self.model) {
                    if !v.contains(&None) {
                        self.model.violation(format!(
                            "pull {repo}:{tag} from instance {i} answered 404 while the model \
                             says {} and nothing was changing it",
                            crate::model::show(&v)
                        ));
                    }
                }
                return;
            }
            other => {
                self.model
                    .count("pull", Outcome::of(&other, StatusCode::OK));
                return;
            }
        };
        let d = client::sha256(&resp.body);
        if resp.header("docker-content-digest") != Some(d.as_str()) {
            self.model.violation(format!(
                "pull {repo}:{tag}: body hashes to {d}, header says {:?}",
                resp.header("docker-content-digest")
            ));
        }
        let Some(image) = self.model.image(&d) else {
            self.model.violation(format!(
                "pull {repo}:{tag} served {d}, which no client pushed"
            ));
            return;
        };
        let mut missing = Vec::new();
        for b in &image.blobs {
            match client::get_blob(&self.http, &base, &repo, &b.digest).await {
                Ok(r) if r.status == StatusCode::OK => {
                    if r.body != *b.data {
                        self.model.violation(format!(
                            "blob {} of {repo} served {} bytes that are not its content",
                            b.digest,
                            r.body.len()
                        ));
                    }
                }
                Ok(r) if r.status == StatusCode::NOT_FOUND => missing.push(short(&b.digest)),
                other => {
                    self.model
                        .count("pull blob", Outcome::of(&other, StatusCode::OK));
                    return;
                }
            }
        }
        self.model.count("pull", Outcome::Ok);
        if let Some(v) = quiet(&self.model) {
            if !v.contains(&Some(d.clone())) {
                self.model.violation(format!(
                    "pull {repo}:{tag} from instance {i} served {} while the model says {}",
                    short(&d),
                    crate::model::show(&v)
                ));
            } else if !missing.is_empty() {
                self.model.violation(format!(
                    "pull {repo}:{tag} from instance {i}: manifest {} served, its blobs \
                     {missing:?} answer 404",
                    short(&d)
                ));
            }
        }
    }
}
