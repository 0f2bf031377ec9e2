//! Who may do what: `auth.htpasswd` (Basic, any authenticated user may do anything, as
//! distribution) or `auth.token` (Bearer tokens of an authorization server, checked per
//! repository and action). A refusal is answered here, in distribution's words.
use std::time::{SystemTime, UNIX_EPOCH};

use http::{Request, Response, StatusCode};

use crate::access;
use crate::app::{respond, App};
use crate::http_io::{percent_decode, query_pairs, Body, RequestBody};
use crate::route;
use crate::token_auth::{Need, TokenVerifier};

/// Who a request was authenticated as (the htpasswd user or the token's `sub`), put in
/// its extensions for the access log. Only the name: never a password or token.
#[derive(Debug, Clone)]
pub struct User(pub String);

impl User {
    /// At most 128 characters, control characters dropped: it goes into log lines.
    fn new(name: &str) -> Option<User> {
        let n: String = name.chars().filter(|c| !c.is_control()).take(128).collect();
        (!n.is_empty()).then_some(User(n))
    }
}

/// The user name of a `Basic` header (the password is dropped here).
fn basic_user(authorization: &str) -> Option<User> {
    use base64::Engine as _;
    let (scheme, rest) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    User::new(text.split_once(':')?.0)
}

/// `Ok` when the request may go on (with the [`User`] in its extensions when it was
/// authenticated); otherwise the 401 to answer.
pub async fn authorize(app: &App, req: &mut Request<RequestBody>) -> Result<(), Response<Body>> {
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Some(h) = &app.htpasswd {
        return if h.check(authorization).await {
            if let Some(user) = authorization.and_then(basic_user) {
                req.extensions_mut().insert(user);
            }
            Ok(())
        } else {
            Err(unauthorized(
                format!("Basic realm=\"{}\"", h.realm()),
                serde_json::Value::Null,
            ))
        };
    }
    let Some(verifier) = &app.token else {
        return Ok(());
    };
    let need = need_of(req);
    let token = authorization
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        return Err(bearer_denied(verifier, &need, None));
    };
    match verifier.verify(token, now()) {
        Err(e) => {
            tracing::info!(target: "ks3_registry::auth", "{e}");
            Err(bearer_denied(verifier, &need, Some("invalid_token")))
        }
        Ok(grants) => {
            if need.missing(&grants).is_empty() {
                tracing::debug!(target: "ks3_registry::auth", subject = %grants.subject, "token accepted");
                if let Some(user) = User::new(&grants.subject) {
                    req.extensions_mut().insert(user);
                }
                Ok(())
            } else {
                Err(bearer_denied(verifier, &need, Some("insufficient_scope")))
            }
        }
    }
}

/// The access the request needs; a path that is no API endpoint needs only a login (it
/// is answered 404 afterwards).
fn need_of(req: &Request<RequestBody>) -> Need {
    let path = percent_decode(req.uri().path());
    let query = query_pairs(req.uri().query());
    match route::parse(&path) {
        Ok(Some(r)) => access::need(req.method(), &r, &query),
        _ => Need::Login,
    }
}

/// distribution's Bearer 401: the challenge names the scope the request needs (and the
/// error when a token came), the body's detail lists every access item the request needs
/// (`null` for a login).
fn bearer_denied(v: &TokenVerifier, need: &Need, error: Option<&str>) -> Response<Body> {
    let detail = match need {
        Need::Login => serde_json::Value::Null,
        Need::Catalog => serde_json::json!([
            {"Type": "registry", "Class": "", "Name": "catalog", "Action": "*"}
        ]),
        Need::Repositories(repos) => serde_json::Value::Array(
            repos
                .iter()
                .flat_map(|(name, actions)| {
                    actions.iter().map(move |a| {
                        serde_json::json!({"Type": "repository", "Class": "", "Name": name, "Action": a})
                    })
                })
                .collect(),
        ),
    };
    unauthorized(v.challenge(need, error), detail)
}

fn unauthorized(challenge: String, detail: serde_json::Value) -> Response<Body> {
    let body = serde_json::json!({"errors": [{
        "code": "UNAUTHORIZED", "message": "authentication required", "detail": detail
    }]});
    respond(
        StatusCode::UNAUTHORIZED,
        &[
            ("content-type", "application/json; charset=utf-8".into()),
            ("www-authenticate", challenge),
        ],
        Body::full(serde_json::to_vec(&body).unwrap_or_default()),
    )
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
