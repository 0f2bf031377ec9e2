//! The end of the run, faults cleared and everything up: every tag answers as the model
//! allows from both instances (an acknowledged one pulls byte for byte, manifest, config
//! and layers), and no manifest a client deleted is served.
use http::StatusCode;

use crate::client::{self, Http};
use crate::model::{short, show, Model};

#[derive(Default, Debug)]
pub struct Figures {
    /// Tags whose last acknowledged operation was a push, no maybe since.
    pub acknowledged_tags: usize,
    /// Tags acknowledged absent (deleted, never pushed, or a 404 settled them).
    pub absent_tags: usize,
    /// Tags with more than one possible value (an unknown outcome since).
    pub maybe_tags: usize,
    /// Pulls of whole images that matched byte for byte (each instance counts).
    pub images_pulled: usize,
    pub blobs_pulled: usize,
    /// Manifests deleted by digest (acknowledged, not pushed again) checked for 404.
    pub deleted_checked: usize,
}

pub async fn verify(http: &Http, bases: &[String], model: &Model) -> Figures {
    let mut f = Figures::default();
    for (repo, tag, values) in model.all_tags() {
        match (values.len(), values.first()) {
            (1, Some(Some(_))) => f.acknowledged_tags += 1,
            (1, Some(None)) => f.absent_tags += 1,
            _ => f.maybe_tags += 1,
        }
        for (i, base) in bases.iter().enumerate() {
            let r = client::get_manifest(http, base, &repo, &tag).await;
            let resp = match r {
                Ok(resp) if resp.status == StatusCode::OK => resp,
                Ok(resp) if resp.status == StatusCode::NOT_FOUND => {
                    if !values.contains(&None) {
                        model.violation(format!(
                            "end: {repo}:{tag} answers 404 on instance {i}; acknowledged: {}",
                            show(&values)
                        ));
                    }
                    continue;
                }
                Ok(resp) => {
                    model.violation(format!(
                        "end: {repo}:{tag} answers {} on instance {i}: {}",
                        resp.status,
                        String::from_utf8_lossy(&resp.body)
                    ));
                    continue;
                }
                Err(e) => {
                    model.violation(format!("end: {repo}:{tag} on instance {i}: {e}"));
                    continue;
                }
            };
            let d = client::sha256(&resp.body);
            if !values.contains(&Some(d.clone())) {
                model.violation(format!(
                    "end: {repo}:{tag} serves {} on instance {i}; the model allows {}",
                    short(&d),
                    show(&values)
                ));
                continue;
            }
            let image = model.image(&d).expect("the model's image");
            let mut whole = true;
            for b in &image.blobs {
                match client::get_blob(http, base, &repo, &b.digest).await {
                    Ok(r) if r.status == StatusCode::OK && r.body == *b.data => {
                        f.blobs_pulled += 1;
                    }
                    Ok(r) => {
                        whole = false;
                        model.violation(format!(
                            "end: {repo}:{tag} = {}: blob {} ({} bytes) answers {} with {} \
                             bytes on instance {i}",
                            short(&d),
                            short(&b.digest),
                            b.data.len(),
                            r.status,
                            r.body.len()
                        ));
                    }
                    Err(e) => {
                        whole = false;
                        model.violation(format!(
                            "end: {repo}:{tag}: blob {} on instance {i}: {e}",
                            short(&b.digest)
                        ));
                    }
                }
            }
            if whole {
                f.images_pulled += 1;
            }
        }
    }
    for (repo, d) in model.all_deleted() {
        f.deleted_checked += 1;
        for (i, base) in bases.iter().enumerate() {
            match client::get_manifest(http, base, &repo, &d).await {
                Ok(r) if r.status == StatusCode::NOT_FOUND => {}
                Ok(r) => model.violation(format!(
                    "end: {repo}@{} was deleted (202) and answers {} on instance {i}",
                    short(&d),
                    r.status
                )),
                Err(e) => {
                    model.violation(format!("end: {repo}@{} on instance {i}: {e}", short(&d)))
                }
            }
        }
    }
    f
}
