//! Issue 25's findings on authentication and on what a failure tells a client, each
//! reproduced over real HTTP against a registry on the real component and ks3-local:
//! a htpasswd user removed while their login is being checked stays logged in; an
//! unknown user is refused faster than a known one (a user-name oracle); storage errors
//! expose KS3 key paths, request ids and retry counts in response bodies; responses go
//! without `X-Content-Type-Options: nosniff` unless it is configured.
mod common;

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use common::distribution::{Distribution, Options, S3Target};
use common::*;
use http::{Method, StatusCode};
use ks3_local::{FaultAction, FaultRule};

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn htpasswd_yaml(path: &Path) -> String {
    format!(
        "auth:\n  htpasswd:\n    realm: attack\n    path: {}\n",
        path.display()
    )
}

/// Replaces the htpasswd file at once (a rename, as editors and `htpasswd` tools do) and
/// gives it a modification time `seconds` after the epoch of the test, so every version
/// has its own time however coarse the file system's clock is.
fn replace_htpasswd(path: &Path, content: &str, seconds: u64) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, content).expect("write htpasswd");
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000 + seconds);
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .and_then(|f| f.set_modified(mtime))
        .expect("set mtime");
    std::fs::rename(&tmp, path).expect("rename htpasswd");
}

/// A `GET /v2/` with these credentials: its status and how long the answer took.
async fn login(base: &str, user: &str, password: &str) -> (StatusCode, Duration) {
    let started = Instant::now();
    let r = request(
        Method::GET,
        &format!("{base}/v2/"),
        &[("authorization", &basic(user, password))],
        "",
    )
    .await;
    (r.status, started.elapsed())
}

// ---------------------------------------------------------------------------------------
// 5. A revoked user stays logged in.

/// The race of the finding, made deterministic by a slow bcrypt: login A of `alice` starts
/// its bcrypt against the file that lists her; the file is replaced by one without her;
/// request B (an unknown user) makes the registry read the new file, which clears the
/// cache of verified passwords; then A's bcrypt ends. Before the fix A wrote alice's
/// password into the freshly cleared cache, and she stayed logged in until the file
/// changed again. Now A's success is cached only for the file version it was checked
/// against, and re-checked against the file when it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_removed_while_their_login_is_checked_stays_out() {
    const COST: u32 = 13;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("htpasswd");
    // bob keeps the file non-empty; his cheap hash keeps request B fast.
    let bob = bcrypt::hash("bob-pw", 4).expect("bcrypt");
    replace_htpasswd(&file, &format!("bob:{bob}\n"), 0);
    let r = serve_yaml(&htpasswd_yaml(&file)).await;

    // How long one check of COST takes here, at the least: A's bcrypt cannot end sooner
    // than half of the fastest of two measured checks (a measurement slowed down by load
    // only makes this bound more cautious, never wrong by more than that factor).
    let probe = bcrypt::hash("x", COST).expect("bcrypt");
    let fastest = (0..2)
        .map(|_| {
            let t = Instant::now();
            assert!(bcrypt::verify("x", &probe).expect("verify"));
            t.elapsed()
        })
        .min()
        .expect("two runs");
    let bcrypt_floor = fastest / 2;

    // The race is set up from timings on a shared machine: an attempt whose timings do not
    // prove the order of events is repeated (never counted as a pass).
    let mut proven = 0;
    for attempt in 0..6u64 {
        let user = format!("alice{attempt}");
        let hash = bcrypt::hash("alice-pw", COST).expect("bcrypt");
        replace_htpasswd(
            &file,
            &format!("bob:{bob}\n{user}:{hash}\n"),
            10 * attempt + 1,
        );

        let a_started = Instant::now();
        let a = {
            let (base, user) = (r.base.clone(), user.clone());
            tokio::spawn(async move { login(&base, &user, "alice-pw").await })
        };
        // Let A read the file and start its bcrypt, then revoke alice.
        tokio::time::sleep(bcrypt_floor / 4).await;
        replace_htpasswd(&file, &format!("bob:{bob}\n"), 10 * attempt + 2);
        let (b_status, _) = login(&r.base, "carol", "whatever").await;
        let b_done = a_started.elapsed();
        assert_eq!(b_status, StatusCode::UNAUTHORIZED, "carol is no user");
        let (a_status, a_took) = a.await.expect("login A");

        // A ran the slow bcrypt, so it read the file that still listed alice (without her
        // it is refused after a check of the new file's cost, 4); and B was answered, so
        // it had read the new file, before A's bcrypt could have ended.
        let a_read_old_file = a_took >= bcrypt_floor;
        let b_reloaded_during_a = b_done < bcrypt_floor;
        if !(a_read_old_file && b_reloaded_during_a) {
            eprintln!(
                "attempt {attempt}: timings prove no race (A took {a_took:?}, B done after \
                 {b_done:?}, bcrypt floor {bcrypt_floor:?}); again"
            );
            continue;
        }
        proven += 1;
        // The finding: the removed user is accepted from the cache.
        let (after, _) = login(&r.base, &user, "alice-pw").await;
        assert_eq!(
            after,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {user}, removed from the htpasswd file, still logs in"
        );
        // And A itself: the file it was checked against was replaced (and read by B)
        // before its answer was ready, so it is refused as well.
        assert_eq!(
            a_status,
            StatusCode::UNAUTHORIZED,
            "login A answered after its user was removed"
        );
        if proven == 2 {
            break;
        }
    }
    assert!(
        proven >= 1,
        "no attempt could prove the race happened (machine too loaded?)"
    );

    // The cache still serves users that stay: bob logs in, and again from the cache.
    assert_eq!(login(&r.base, "bob", "bob-pw").await.0, StatusCode::OK);
    assert_eq!(login(&r.base, "bob", "bob-pw").await.0, StatusCode::OK);
}

/// A user whose hash changes is checked against the new hash, not served from the cache
/// of the old one; a user added back is let in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_replaces_the_cached_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("htpasswd");
    let old = bcrypt::hash("old-pw", 4).expect("bcrypt");
    replace_htpasswd(&file, &format!("dave:{old}\n"), 100);
    let r = serve_yaml(&htpasswd_yaml(&file)).await;
    assert_eq!(login(&r.base, "dave", "old-pw").await.0, StatusCode::OK);
    assert_eq!(login(&r.base, "dave", "old-pw").await.0, StatusCode::OK);
    let new = bcrypt::hash("new-pw", 4).expect("bcrypt");
    replace_htpasswd(&file, &format!("dave:{new}\n"), 101);
    assert_eq!(
        login(&r.base, "dave", "old-pw").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(login(&r.base, "dave", "new-pw").await.0, StatusCode::OK);
    assert_eq!(login(&r.base, "dave", "new-pw").await.0, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// 6. A user-name oracle in the time of a refusal.

/// An unknown user is refused after as much work as a known user with a wrong password:
/// before the fix the first took well under a millisecond and the second a full bcrypt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_is_refused_as_slowly_as_a_wrong_password() {
    // About 0.25 s per check on a 2020s core: differences in milliseconds, far above noise.
    const COST: u32 = 12;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("htpasswd");
    let hash = bcrypt::hash("erin-pw", COST).expect("bcrypt");
    // A user whose entry is no bcrypt hash must not answer faster either.
    replace_htpasswd(&file, &format!("erin:{hash}\nfrank:plaintext\n"), 200);
    let r = serve_yaml(&htpasswd_yaml(&file)).await;

    // Interleaved, so load on the machine slows all three kinds alike; medians of five.
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    let mut not_bcrypt = Vec::new();
    for i in 0..5 {
        let (s, t) = login(&r.base, "erin", &format!("wrong{i}")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        known.push(t);
        let (s, t) = login(&r.base, &format!("nobody{i}"), "wrong").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        unknown.push(t);
        let (s, t) = login(&r.base, "frank", "plaintext").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        not_bcrypt.push(t);
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (k, u, n) = (
        median(&mut known),
        median(&mut unknown),
        median(&mut not_bcrypt),
    );
    eprintln!("refused in (medians): known user {k:?}, unknown {u:?}, no bcrypt entry {n:?}");
    assert!(
        k >= Duration::from_millis(20),
        "a known user's wrong password took only {k:?}: the cost is too low to tell"
    );
    assert!(
        u.as_secs_f64() >= 0.3 * k.as_secs_f64(),
        "an unknown user is refused in {u:?}, a known one's wrong password in {k:?}"
    );
    assert!(
        n.as_secs_f64() >= 0.3 * k.as_secs_f64(),
        "a user without a bcrypt hash is refused in {n:?}, a known one in {k:?}"
    );
    // The right password still works.
    assert_eq!(login(&r.base, "erin", "erin-pw").await.0, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// 6. Storage errors in response bodies.

/// Events of the `ks3_registry` targets, each with the fields of the spans it was emitted
/// in (`request{request_id=…} message=…`), captured by the subscriber of this test binary.
fn captured() -> &'static Mutex<Vec<String>> {
    static LINES: OnceLock<Arc<Mutex<Vec<String>>>> = OnceLock::new();
    LINES.get_or_init(|| {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sub = capture::Capture::new(Arc::clone(&lines));
        tracing::subscriber::set_global_default(sub).expect("the only subscriber");
        lines
    })
}

/// A minimal `tracing` subscriber (the registry's dev-dependencies have no
/// tracing-subscriber): spans' fields by id, a per-thread stack of entered spans.
mod capture {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::fmt::Write as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    thread_local! {
        static STACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    }

    pub struct Capture {
        next: AtomicU64,
        spans: Mutex<HashMap<u64, String>>,
        lines: Arc<Mutex<Vec<String>>>,
    }

    impl Capture {
        pub fn new(lines: Arc<Mutex<Vec<String>>>) -> Capture {
            Capture {
                next: AtomicU64::new(1),
                spans: Mutex::new(HashMap::new()),
                lines,
            }
        }
    }

    struct Fields<'a>(&'a mut String);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let _ = write!(self.0, " {}={:?}", field.name(), value);
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            let _ = write!(self.0, " {}={}", field.name(), value);
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, meta: &Metadata<'_>) -> bool {
            meta.target().starts_with("ks3_registry")
        }
        fn new_span(&self, attrs: &Attributes<'_>) -> Id {
            let id = self.next.fetch_add(1, Ordering::Relaxed);
            let mut s = format!("{}{{", attrs.metadata().name());
            attrs.record(&mut Fields(&mut s));
            self.spans.lock().unwrap().insert(id, s);
            Id::from_u64(id)
        }
        fn record(&self, span: &Id, values: &Record<'_>) {
            if let Some(s) = self.spans.lock().unwrap().get_mut(&span.into_u64()) {
                values.record(&mut Fields(s));
            }
        }
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut line = String::new();
            let spans = self.spans.lock().unwrap();
            STACK.with(|st| {
                for id in st.borrow().iter() {
                    if let Some(s) = spans.get(id) {
                        let _ = write!(line, "{s} }} ");
                    }
                }
            });
            drop(spans);
            let _ = write!(
                line,
                "{} {}:",
                event.metadata().level(),
                event.metadata().target()
            );
            event.record(&mut Fields(&mut line));
            self.lines.lock().unwrap().push(line);
        }
        fn enter(&self, span: &Id) {
            STACK.with(|st| st.borrow_mut().push(span.into_u64()));
        }
        fn exit(&self, span: &Id) {
            STACK.with(|st| {
                let mut st = st.borrow_mut();
                if let Some(pos) = st.iter().rposition(|&x| x == span.into_u64()) {
                    st.remove(pos);
                }
            });
        }
    }
}

fn fail_everything_under(ks3: &SharedKs3, method: &str, pattern: &str) {
    ks3.server.faults().inject(FaultRule {
        method: Some(method.into()),
        path_pattern: pattern.into(),
        count: 1000,
        action: FaultAction::Error {
            status: 500,
            code: "InternalError".into(),
        },
    });
}

/// What a client may see of a storage failure: distribution's generic error, nothing of
/// the KS3 request behind it.
fn assert_generic_500(r: &Resp, what: &str, secrets: &[&str]) {
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(
        r.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{what}: {body}"
    );
    assert_eq!(
        r.json(),
        serde_json::json!({"errors": [{"code": "UNKNOWN", "message": "unknown error", "detail": null}]}),
        "{what}"
    );
    let lower = body.to_ascii_lowercase();
    for s in secrets {
        assert!(
            !lower.contains(&s.to_ascii_lowercase()),
            "{what}: {s:?} in {body}"
        );
    }
    for word in [
        "retr",
        "request",
        "memory",
        "limit",
        "ks3",
        "internalerror",
        "docker/",
    ] {
        assert!(!lower.contains(word), "{what}: {word:?} in {body}");
    }
}

/// Storage failures on a read, a write and a listing: the body is the generic error, and
/// the detail (the KS3 key and request) is logged with the registry's request id. The
/// same failure under distribution 2.8.2 (its `s3` driver on the same ks3-local) answers
/// the same status and code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_errors_answer_the_generic_error_and_are_logged() {
    let lines = captured();
    let ks3 = shared_ks3();
    let r = serve_shared(&ks3, "").await;
    let repo = "leaky/repo";

    // A manifest read: the tag's link GET fails on every retry.
    fail_everything_under(&ks3, "GET", "leaky/repo/_manifests");
    let get = request(
        Method::GET,
        &format!("{}/v2/{repo}/manifests/latest", r.base),
        // A proxy's request id is the log's, and is not sent back.
        &[("x-request-id", "proxy-id-42")],
        "",
    )
    .await;
    assert_generic_500(
        &get,
        "manifest GET",
        &[repo, "_manifests", "link", "proxy-id-42"],
    );

    // A write: starting an upload writes `startedat`.
    fail_everything_under(&ks3, "PUT", "leaky/repo/_uploads");
    let post = request(
        Method::POST,
        &format!("{}/v2/{repo}/blobs/uploads/", r.base),
        // Not a plain token: the registry makes its own id instead.
        &[("x-request-id", "forged id\" level=info")],
        "",
    )
    .await;
    assert_generic_500(&post, "upload POST", &[repo, "_uploads", "startedat"]);

    // A listing: the catalog's walk of `repositories/`.
    let c = serve_shared(&ks3, "").await;
    fail_everything_under(&ks3, "GET", "repositories");
    let catalog = request(Method::GET, &format!("{}/v2/_catalog", c.base), &[], "").await;
    ks3.server.faults().clear();
    assert_generic_500(&catalog, "catalog", &["repositories"]);

    // The detail went to the log, inside the request's span with its id.
    let logged = lines.lock().unwrap().clone();
    let failures: Vec<&String> = logged
        .iter()
        .filter(|l| l.contains("leaky/repo/_manifests"))
        .collect();
    assert!(
        !failures.is_empty(),
        "the storage error of the manifest GET is not logged; captured:\n{}",
        logged.join("\n")
    );
    for l in &failures {
        assert!(
            l.contains("request_id=proxy-id-42 ") && l.contains("ERROR"),
            "logged without the request id or below error level: {l}"
        );
    }
    let upload: Vec<&String> = logged
        .iter()
        .filter(|l| l.contains("leaky/repo/_uploads") && l.contains("ERROR"))
        .collect();
    assert!(
        !upload.is_empty(),
        "the upload's storage error is not logged"
    );
    for l in &upload {
        let id = l
            .split("request_id=")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_default();
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "a made-up id replaces the forged one: {l}"
        );
    }
    assert!(!logged.iter().any(|l| l.contains("forged")));

    // distribution 2.8.2, same store, same fault: 500 UNKNOWN too.
    let dist = Distribution::start(&S3Target::of(&ks3, ""), &Options::default());
    fail_everything_under(&ks3, "GET", "leaky/repo/_manifests");
    let theirs = request(
        Method::GET,
        &format!("{}/v2/{repo}/manifests/latest", dist.base),
        &[],
        "",
    )
    .await;
    ks3.server.faults().clear();
    eprintln!(
        "distribution 2.8.2 on a failing GET of a tag link: {} {}",
        theirs.status,
        String::from_utf8_lossy(&theirs.body)
    );
    // (Its `detail` is the Go error value as JSON, `{"DriverName":"s3aws","Enclosed":…}`:
    // opaque here; this registry sends `null`.)
    assert_eq!(theirs.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(theirs.error_code(), "UNKNOWN");
    assert_eq!(theirs.json()["errors"][0]["message"], "unknown error");
}

// ---------------------------------------------------------------------------------------
// 3 and 6. nosniff on every response.

/// `X-Content-Type-Options: nosniff` on a 200, a 404 and a 401, without configuration;
/// exactly once when it is configured too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nosniff_on_every_response_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("htpasswd");
    let hash = bcrypt::hash("pw", 4).expect("bcrypt");
    replace_htpasswd(&file, &format!("gina:{hash}\n"), 300);
    let configured = format!(
        "{}http:\n  headers:\n    X-Content-Type-Options: [nosniff]\n",
        htpasswd_yaml(&file)
    );
    for yaml in [htpasswd_yaml(&file), configured] {
        let r = serve_yaml(&yaml).await;
        let auth = basic("gina", "pw");
        let cases = [
            ("/v2/", Some(auth.as_str()), StatusCode::OK),
            ("/v2/", None, StatusCode::UNAUTHORIZED),
            (
                "/v2/no/such/manifests/latest",
                Some(&auth),
                StatusCode::NOT_FOUND,
            ),
            ("/nowhere", Some(&auth), StatusCode::NOT_FOUND),
        ];
        for (path, auth, status) in cases {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("authorization", a)).into_iter().collect();
            let resp = request(Method::GET, &format!("{}{path}", r.base), &headers, "").await;
            assert_eq!(resp.status, status, "{path}");
            let values: Vec<_> = resp
                .headers
                .get_all("x-content-type-options")
                .iter()
                .collect();
            assert_eq!(
                values,
                ["nosniff"],
                "{path} ({status}) with config:\n{yaml}"
            );
        }
    }
}
