//! The unauthenticated admin endpoint, for tests running in another process. Only paths
//! under `/_ks3local/` on a non-virtual-host request (`_` cannot start a bucket name):
//!
//! * `POST /_ks3local/faults` — body: one `METHOD:PATTERN:COUNT:ACTION` rule per line
//!   (blank lines and `#` comments ignored; see [`crate::faults`]). All or nothing:
//!   `200 ok N` or `400` with the reason.
//! * `GET /_ks3local/faults` — the pending rules, one per line.
//! * `DELETE /_ks3local/faults` — clears all rules (`204`).
//! * `GET /_ks3local/stats[?method=GET&contains=prefix%3D]` — JSON
//!   `{"requests":N,"matching":M}` (`matching` counts requests with that method whose raw
//!   `PATH?QUERY` contains the string).
//!
//! Admin requests are neither counted nor subject to faults.
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::{full, set, RespBody};
use crate::faults::FaultRule;
use crate::query::Query;
use crate::state::State;

pub const PREFIX: &str = "/_ks3local/";

fn text(status: StatusCode, body: String) -> Response<RespBody> {
    let len = body.len();
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    set(&mut r, "content-type", "text/plain; charset=utf-8");
    set(&mut r, "content-length", &len.to_string());
    r
}

pub async fn handle(state: &State, req: Request<Incoming>) -> Response<RespBody> {
    let path = req.uri().path().to_string();
    let query = Query::parse(req.uri().query().unwrap_or("")).unwrap_or_default();
    match (req.method().clone(), path.as_str()) {
        (Method::POST, "/_ks3local/faults") => {
            let body = match http_body_util::Limited::new(req.into_body(), 1 << 20)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad body: {e}\n")),
            };
            let Ok(body) = std::str::from_utf8(&body) else {
                return text(StatusCode::BAD_REQUEST, "body is not UTF-8\n".into());
            };
            let mut rules = Vec::new();
            for line in body.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                match FaultRule::parse(line) {
                    Ok(r) => rules.push(r),
                    Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
                }
            }
            let n = rules.len();
            for r in rules {
                state.faults.inject(r);
            }
            text(StatusCode::OK, format!("ok {n}\n"))
        }
        (Method::GET, "/_ks3local/faults") => {
            let mut out = String::new();
            for r in state.faults.rules() {
                out.push_str(&r.to_spec());
                out.push('\n');
            }
            text(StatusCode::OK, out)
        }
        (Method::DELETE, "/_ks3local/faults") => {
            state.faults.clear();
            let mut r = text(StatusCode::NO_CONTENT, String::new());
            r.headers_mut().remove(http::header::CONTENT_LENGTH);
            r
        }
        (Method::GET, "/_ks3local/stats") => {
            let method = query.get("method").unwrap_or("");
            let contains = query.get("contains").unwrap_or("");
            let mut r = text(
                StatusCode::OK,
                format!(
                    "{{\"requests\":{},\"matching\":{}}}\n",
                    state.stats.total(),
                    state.stats.matching(method, contains)
                ),
            );
            set(&mut r, "content-type", "application/json");
            r
        }
        _ => text(StatusCode::NOT_FOUND, format!("no admin endpoint {path}\n")),
    }
}
