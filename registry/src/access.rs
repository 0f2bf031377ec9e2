//! What access a request needs, by endpoint and method, as distribution 2.8.2 asks its
//! access controller (`registry/handlers/app.go`, `appendAccessRecords`): reads need
//! `pull`; uploads and manifest pushes `pull` and `push`; deletes `delete`; a
//! cross-repository mount also `pull` on the repository it mounts from; the catalog
//! `registry:catalog:*`; `/v2/` only a valid login.
use http::Method;

use crate::http_io::query_get;
use crate::route::Route;
use crate::token_auth::Need;

pub fn need(method: &Method, route: &Route, query: &[(String, String)]) -> Need {
    let (name, actions): (&str, &[&'static str]) = match route {
        Route::Base => return Need::Login,
        Route::Catalog => return Need::Catalog,
        Route::Tags { name }
        | Route::Manifest { name, .. }
        | Route::Blob { name, .. }
        | Route::UploadStart { name }
        | Route::Upload { name, .. }
        | Route::Referrers { name, .. } => (name, actions_of(method)),
    };
    let mut repos = Vec::new();
    if let Route::UploadStart { .. } = route {
        if let (Some(_), Some(from)) = (query_get(query, "mount"), query_get(query, "from")) {
            if from != name {
                // First, as distribution's challenge names it.
                repos.push((from.to_string(), vec!["pull"]));
            }
        }
    }
    repos.push((name.to_string(), actions.to_vec()));
    Need::Repositories(repos)
}

fn actions_of(method: &Method) -> &'static [&'static str] {
    match *method {
        Method::GET | Method::HEAD => &["pull"],
        Method::DELETE => &["delete"],
        _ => &["pull", "push"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn distributions_access_records() {
        let name = || "lib/app".to_string();
        let scope = |m: Method, r: Route, query: &[(&str, &str)]| need(&m, &r, &q(query)).scope();
        assert_eq!(need(&Method::GET, &Route::Base, &[]), Need::Login);
        assert_eq!(
            scope(Method::GET, Route::Catalog, &[]).as_deref(),
            Some("registry:catalog:*")
        );
        let manifest = || Route::Manifest {
            name: name(),
            reference: "v1".into(),
        };
        assert_eq!(
            scope(Method::HEAD, manifest(), &[]).as_deref(),
            Some("repository:lib/app:pull")
        );
        assert_eq!(
            scope(Method::PUT, manifest(), &[]).as_deref(),
            Some("repository:lib/app:pull,push")
        );
        assert_eq!(
            scope(Method::DELETE, manifest(), &[]).as_deref(),
            Some("repository:lib/app:delete")
        );
        assert_eq!(
            scope(
                Method::PATCH,
                Route::Upload {
                    name: name(),
                    id: "u".into()
                },
                &[]
            )
            .as_deref(),
            Some("repository:lib/app:pull,push")
        );
        assert_eq!(
            scope(
                Method::POST,
                Route::UploadStart { name: name() },
                &[("mount", "sha256:ab"), ("from", "other/repo")]
            )
            .as_deref(),
            Some("repository:other/repo:pull repository:lib/app:pull,push")
        );
        assert_eq!(
            scope(
                Method::POST,
                Route::UploadStart { name: name() },
                &[("from", "other/repo")]
            )
            .as_deref(),
            Some("repository:lib/app:pull,push"),
            "no mount without `mount`"
        );
    }
}
