//! Model-based test of the writer semantics (issue 10): random sequences of
//! writer / write / close / commit / cancel / put_content / delete / mv on a few paths,
//! with random injected faults, each step checked against a small in-memory model of
//! distribution's semantics:
//!
//! * per path, the committed object `C(p)` and the closed upload `U(p)`;
//! * `writer(p, false)` discards `U(p)` (an older writer still open on `p` loses its
//!   upload: its commit fails); `writer(p, true)` continues `U(p)`, else an empty `C(p)`,
//!   else is path-not-found; `close` sets `U(p)`, `commit` sets `C(p)` and clears `U(p)`,
//!   `cancel` clears `U(p)`; `put_content` sets `C(p)` and clears `U(p)`; `delete` clears
//!   both at and under the path (path-not-found when nothing committed was there); `mv`
//!   moves `C` and clears both `U`s;
//! * uploads are invisible to list, stat and walk; the bucket holds only committed objects
//!   and the hidden tails and uploads of paths that have an upload or an open writer.
//!
//! A fault (usually absorbed by the retries) is injected before some steps. An operation
//! that fails may have taken effect or not: the real state is observed (faults off) and
//! must be one of the allowed outcomes, and the model follows it. A writer whose operation
//! failed is abandoned (dropped) — except a failed commit, which the semantics say can be
//! retried (on the same writer, or by `writer(p, true)` from a new driver).
//!
//! `KS3_MODEL_STEPS` (default 5000) and `KS3_MODEL_SEED` (decimal or 0x-hex; a fixed
//! default) choose the run; on failure the seed, the step and the whole history are
//! printed so the run can be replayed.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use ks3_driver_host::{Driver, DriverError, Error, FileWriter, WalkControl};
use ks3_local::{FaultAction, FaultRule, RunningServer};
use ks3_tests::*;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

const PATHS: &[&str] = &["/a", "/b", "/d/c", "/d/e"];
/// Delete targets: the paths, and the directory two of them share.
const DELETE_TARGETS: &[&str] = &["/a", "/b", "/d/c", "/d/e", "/d"];
const DEFAULT_STEPS: usize = 5000;
const DEFAULT_SEED: u64 = 0x6b73_3310_0000_0001;
/// Retries per request; a fault rule with at most this count is always absorbed.
const MAX_RETRIES: u32 = 2;
/// Past the 1 s `requesttimeout`: the client gives up, the server performs it anyway.
const DELAY: Duration = Duration::from_millis(1200);
/// Steps between checks of the whole tree (list, stat and walk) and of the raw bucket.
const TREE_EVERY: usize = 10;
const BUCKET_EVERY: usize = 50;

type Outcome = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format!($($fmt)*));
        }
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultKind {
    Err500,
    SlowDown,
    Drop,
    Lost,
    Delay,
}

/// One injected fault: which requests it matches and how many it takes.
#[derive(Clone, Debug)]
struct Fault {
    kind: FaultKind,
    what: &'static str,
    method: Option<&'static str>,
    pattern: &'static str,
    count: u32,
}

/// The requests a fault can be aimed at (substrings of the raw target `PATH?QUERY`; the
/// test has its own server, so nothing else takes them).
const TARGETS: &[(&str, Option<&str>, &str)] = &[
    ("initiate", Some("POST"), "?uploads"),
    ("part", Some("PUT"), "partNumber="),
    ("complete", Some("POST"), "?uploadId="),
    ("abort", Some("DELETE"), "?uploadId="),
    ("list-uploads", Some("GET"), "?uploads"),
    ("list-parts", Some("GET"), "uploadId="),
    ("tail", None, "/~tails/"),
    ("any-put", Some("PUT"), ""),
    ("any-get", Some("GET"), ""),
    ("head", Some("HEAD"), ""),
    ("any-delete", Some("DELETE"), ""),
    ("multi-delete", Some("POST"), "?delete"),
    ("list", Some("GET"), "prefix="),
    ("any", None, ""),
];

impl Fault {
    fn random(rng: &mut StdRng) -> Fault {
        let (what, method, pattern) = TARGETS[rng.gen_range(0..TARGETS.len())];
        // Delays cost a second of waiting each: keep them rare.
        let kind = match rng.gen_range(0..100) {
            0..=29 => FaultKind::Err500,
            30..=54 => FaultKind::SlowDown,
            55..=77 => FaultKind::Drop,
            78..=97 => FaultKind::Lost,
            _ => FaultKind::Delay,
        };
        // Usually absorbed; sometimes one more than the retries, so the operation can fail.
        let count = if rng.gen_range(0..5) == 0 {
            MAX_RETRIES + 1
        } else {
            rng.gen_range(1..=MAX_RETRIES)
        };
        Fault {
            kind,
            what,
            method,
            pattern,
            count,
        }
    }

    fn rule(&self) -> FaultRule {
        FaultRule {
            method: self.method.map(str::to_string),
            path_pattern: self.pattern.to_string(),
            count: self.count,
            action: match self.kind {
                FaultKind::Err500 => FaultAction::Error {
                    status: 500,
                    code: "InternalError".into(),
                },
                FaultKind::SlowDown => FaultAction::Error {
                    status: 503,
                    code: "SlowDown".into(),
                },
                FaultKind::Drop => FaultAction::DropMidBody,
                FaultKind::Lost => FaultAction::LoseResponse,
                FaultKind::Delay => FaultAction::Delay(DELAY),
            },
        }
    }

    /// May the operation fail under this fault? Never when the retries absorb it — except
    /// that a request performed but unanswered (lost, cut after the headers, or answered
    /// after the timeout) can make a stateless operation's retry see its own effect (a
    /// retried DELETE answered 404). The writer's requests must absorb even those.
    fn may_fail(&self, writer_op: bool) -> bool {
        self.count > MAX_RETRIES
            || (!writer_op
                && matches!(
                    self.kind,
                    FaultKind::Lost | FaultKind::Drop | FaultKind::Delay
                ))
    }
}

/// What `U(p)` may resume with after a failed operation.
#[derive(Debug)]
enum Allowed {
    /// Exactly one of these (`None`: no upload).
    Sizes(Vec<Option<u64>>),
    /// An abandoned writer's upload: between what it resumed with and what it was given
    /// (and no upload at all, when `none` says so).
    Range { min: u64, max: u64, none: bool },
}

impl Allowed {
    fn contains(&self, seen: Option<u64>) -> bool {
        match (self, seen) {
            (Allowed::Sizes(v), s) => v.contains(&s),
            (Allowed::Range { none, .. }, None) => *none,
            (Allowed::Range { min, max, .. }, Some(n)) => (*min..=*max).contains(&n),
        }
    }
}

/// The semantics, per path.
#[derive(Default, Clone)]
struct Model {
    committed: BTreeMap<&'static str, Vec<u8>>,
    uploads: BTreeMap<&'static str, Vec<u8>>,
}

struct Open {
    id: usize,
    path: &'static str,
    w: FileWriter,
    /// Everything the writer holds, resumed bytes included.
    content: Vec<u8>,
    /// Bytes it resumed with.
    start: usize,
    append: bool,
    /// A newer `writer(path, false)` took the path: whatever upload it held is gone, so
    /// its writes and commit may fail (never corrupt); if it had no upload yet, they may
    /// also succeed, and then its content is the path's (last commit wins).
    doomed: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Open(&'static str, bool),
    /// `writer_append_or_create`: `writer(p, true)`, or `writer(p, false)` where that is
    /// path-not-found.
    OpenOrCreate(&'static str),
    Write(usize, usize),
    Close(usize),
    Commit(usize),
    Cancel(usize),
    Put(&'static str, usize),
    Delete(&'static str),
    Move(&'static str, &'static str),
    CheckAppend(&'static str),
}

struct World {
    server: RunningServer,
    root: String,
    d: Driver,
    rng: StdRng,
    model: Model,
    open: Vec<Open>,
    next_id: usize,
    history: Vec<String>,
    stats: BTreeMap<&'static str, usize>,
}

fn is_under(p: &str, dir: &str) -> bool {
    p == dir || (p.starts_with(dir) && p.as_bytes().get(dir.len()) == Some(&b'/'))
}

fn show(e: &Error) -> String {
    format!("{}: {e}", e.kind())
}

impl World {
    async fn new(seed: u64) -> World {
        let server = start_server(|_| {});
        let root = unique_root("writer_model");
        let d = Self::driver(&server, &root).await;
        World {
            server,
            root,
            d,
            rng: StdRng::seed_from_u64(seed),
            model: Model::default(),
            open: Vec::new(),
            next_id: 0,
            history: Vec::new(),
            stats: BTreeMap::new(),
        }
    }

    async fn driver(server: &RunningServer, root: &str) -> Driver {
        let mut p = params_on(&server.endpoint(), root);
        p.insert("maxretries".into(), MAX_RETRIES.to_string());
        p.insert("requesttimeout".into(), "1".into());
        Driver::new(p).await.expect("driver")
    }

    fn log(&mut self, line: String) {
        self.history.push(line);
    }

    fn count(&mut self, what: &'static str) {
        *self.stats.entry(what).or_default() += 1;
    }

    fn data(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill_bytes(&mut v);
        v
    }

    /// Mostly small; now and then 6–12 MiB, so parts and multipart commits happen.
    fn size(&mut self) -> usize {
        match self.rng.gen_range(0..100) {
            0..=2 => self.rng.gen_range(6 * MIB..=12 * MIB),
            3..=9 => 0,
            _ => self.rng.gen_range(1..64 * 1024),
        }
    }

    fn has_open_under(&self, dir: &str) -> bool {
        self.open.iter().any(|o| is_under(o.path, dir))
    }

    fn free_paths(&self) -> Vec<&'static str> {
        PATHS
            .iter()
            .copied()
            .filter(|p| !self.has_open_under(p))
            .collect()
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.rng.gen_range(0..v.len())])
    }

    /// A random operation that the current state allows.
    fn choose(&mut self) -> Op {
        loop {
            let n_open = self.open.len();
            let roll = self.rng.gen_range(0..100);
            let op = match roll {
                0..=14 if n_open < 2 => {
                    let append = self.rng.gen_bool(0.5);
                    let p = if append {
                        let free = self.free_paths();
                        self.pick(&free)
                    } else {
                        self.pick(PATHS)
                    };
                    p.map(|p| {
                        if append && self.rng.gen_bool(0.3) {
                            Op::OpenOrCreate(p)
                        } else {
                            Op::Open(p, append)
                        }
                    })
                }
                15..=39 if n_open > 0 => {
                    let i = self.rng.gen_range(0..n_open);
                    let n = self.size();
                    Some(Op::Write(i, n))
                }
                40..=46 if n_open > 0 => {
                    let i = self.rng.gen_range(0..n_open);
                    (!self.open[i].doomed).then_some(Op::Close(i))
                }
                47..=57 if n_open > 0 => Some(Op::Commit(self.rng.gen_range(0..n_open))),
                58..=61 if n_open > 0 => {
                    let i = self.rng.gen_range(0..n_open);
                    (!self.open[i].doomed).then_some(Op::Cancel(i))
                }
                62..=73 => {
                    let free = self.free_paths();
                    let n = if self.rng.gen_range(0..50) == 0 {
                        6 * MIB
                    } else {
                        self.rng.gen_range(0..4096)
                    };
                    self.pick(&free).map(|p| Op::Put(p, n))
                }
                74..=81 => {
                    let targets: Vec<&'static str> = DELETE_TARGETS
                        .iter()
                        .copied()
                        .filter(|t| !self.has_open_under(t))
                        .collect();
                    self.pick(&targets).map(Op::Delete)
                }
                82..=89 => {
                    let free = self.free_paths();
                    match (self.pick(&free), self.pick(&free)) {
                        (Some(a), Some(b)) if a != b => Some(Op::Move(a, b)),
                        _ => None,
                    }
                }
                90..=99 => {
                    let free = self.free_paths();
                    self.pick(&free).map(Op::CheckAppend)
                }
                _ => None,
            };
            if let Some(op) = op {
                return op;
            }
        }
    }

    // --- observation, always with faults off -------------------------------------------

    async fn observe_committed(&self, p: &str) -> Result<Option<Vec<u8>>, String> {
        match self.d.get_content(p).await {
            Ok(b) => Ok(Some(b)),
            Err(Error::Driver(DriverError::PathNotFound(_))) => Ok(None),
            Err(e) => Err(format!("get_content({p}) with faults off: {}", show(&e))),
        }
    }

    /// What `writer(p, true)` resumes with (its size; `None` for path-not-found); the
    /// probe writer is cancelled, and the path then reset with `writer(p, false)` +
    /// `cancel`, so afterwards `U(p)` is none whatever it was.
    async fn probe_and_reset_upload(&mut self, p: &'static str) -> Result<Option<u64>, String> {
        let seen = match self.d.writer(p, true).await {
            Ok(mut w) => {
                let n = w.size();
                w.cancel()
                    .await
                    .map_err(|e| format!("cancel of the probe of {p}: {}", show(&e)))?;
                Some(n)
            }
            Err(Error::Driver(DriverError::PathNotFound(_))) => None,
            Err(e) => return Err(format!("writer({p}, true) probe: {}", show(&e))),
        };
        let mut w = self
            .d
            .writer(p, false)
            .await
            .map_err(|e| format!("writer({p}, false) reset: {}", show(&e)))?;
        w.cancel()
            .await
            .map_err(|e| format!("cancel of the reset of {p}: {}", show(&e)))?;
        self.model.uploads.remove(p);
        self.log(format!(
            "    observed U({p}) resumes with {seen:?} bytes; reset to none"
        ));
        Ok(seen)
    }

    /// After a failure: `U(p)` must resume with an allowed size (`None` = no upload). An
    /// empty committed object also resumes, with 0 bytes, when there is no upload, so
    /// that counts as `None` there.
    async fn settle_upload(&mut self, p: &'static str, allowed: &Allowed) -> Outcome {
        let seen = self.probe_and_reset_upload(p).await?;
        let empty_committed = self.model.committed.get(p).is_some_and(|c| c.is_empty());
        let ok = allowed.contains(seen)
            || (seen == Some(0) && empty_committed && allowed.contains(None));
        ensure!(
            ok,
            "after a failed operation U({p}) resumes with {seen:?} bytes; allowed: {allowed:?}"
        );
        Ok(())
    }

    /// `C(p)` must be one of `allowed`; the model takes what is there.
    async fn settle_committed(&mut self, p: &'static str, allowed: &[Option<&[u8]>]) -> Outcome {
        let seen = self.observe_committed(p).await?;
        ensure!(
            allowed.contains(&seen.as_deref()),
            "after a failed operation C({p}) is {} — none of the allowed outcomes {}",
            describe(seen.as_deref()),
            allowed
                .iter()
                .map(|a| describe(*a))
                .collect::<Vec<_>>()
                .join(" or ")
        );
        self.log(format!(
            "    observed C({p}) = {}",
            describe(seen.as_deref())
        ));
        match seen {
            Some(b) => self.model.committed.insert(p, b),
            None => self.model.committed.remove(p),
        };
        Ok(())
    }

    fn u_len(&self, p: &str) -> Option<u64> {
        self.model.uploads.get(p).map(|u| u.len() as u64)
    }

    /// Abandons (drops) every open writer on `p`; their uploads are unknown from now on.
    fn abandon_writers_on(&mut self, p: &str) -> bool {
        let before = self.open.len();
        self.open.retain(|o| o.path != p);
        before != self.open.len()
    }

    // --- the checks after a step -------------------------------------------------------

    async fn check_path(&self, p: &'static str) -> Outcome {
        let want = self.model.committed.get(p);
        let got = self.observe_committed(p).await?;
        ensure!(
            got.as_ref() == want,
            "C({p}): get_content gives {}, the model {}",
            describe(got.as_deref()),
            describe(want.map(Vec::as_slice))
        );
        match (self.d.stat(p).await, want) {
            (Ok(fi), Some(w)) => ensure!(
                !fi.is_dir && fi.size == w.len() as u64 && fi.path == p,
                "stat({p}) = {fi:?}, the model has {} bytes",
                w.len()
            ),
            (Err(Error::Driver(DriverError::PathNotFound(_))), None) => {}
            (r, _) => {
                return Err(format!(
                    "stat({p}) = {:?}, the model has {}",
                    r.map_err(|e| show(&e)),
                    describe(want.map(Vec::as_slice))
                ))
            }
        }
        Ok(())
    }

    /// list, stat and walk show exactly the committed objects and their directories.
    async fn check_tree(&self) -> Outcome {
        let committed: Vec<&str> = self.model.committed.keys().copied().collect();
        let mut top: Vec<String> = committed
            .iter()
            .map(|p| first_part(p))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        top.sort();
        let mut listed = self.d.list("/").await.map_err(|e| show(&e))?;
        listed.sort();
        ensure!(listed == top, "list(/) = {listed:?}, the model {top:?}");
        let under_d: Vec<String> = committed
            .iter()
            .filter(|p| p.starts_with("/d/"))
            .map(|p| p.to_string())
            .collect();
        match (self.d.list("/d").await, under_d.is_empty()) {
            (Ok(mut l), false) => {
                l.sort();
                ensure!(l == under_d, "list(/d) = {l:?}, the model {under_d:?}");
            }
            (Err(Error::Driver(DriverError::PathNotFound(_))), true) => {}
            (r, _) => {
                return Err(format!(
                    "list(/d) = {:?}, the model {under_d:?}",
                    r.map_err(|e| show(&e))
                ))
            }
        }
        match (self.d.stat("/d").await, under_d.is_empty()) {
            (Ok(fi), false) => ensure!(fi.is_dir, "stat(/d) = {fi:?}: a directory"),
            (Err(Error::Driver(DriverError::PathNotFound(_))), true) => {}
            (r, _) => {
                return Err(format!(
                    "stat(/d) = {:?}, the model {under_d:?}",
                    r.map_err(|e| show(&e))
                ))
            }
        }
        let mut walked = Vec::new();
        self.d
            .walk("/", None, |fi| {
                walked.push((fi.path.clone(), fi.is_dir, fi.size));
                Ok(WalkControl::Continue)
            })
            .await
            .map_err(|e| show(&e))?;
        // In key order; `/d` comes before what is under it.
        let mut want = Vec::new();
        for p in &committed {
            if p.starts_with("/d/") && !want.iter().any(|(q, _, _)| q == "/d") {
                want.push(("/d".to_string(), true, 0));
            }
            want.push((p.to_string(), false, self.model.committed[p].len() as u64));
        }
        ensure!(walked == want, "walk(/) = {walked:?}, the model {want:?}");
        Ok(())
    }

    /// The raw bucket: the visible keys are exactly the committed objects; hidden keys and
    /// uploads in progress belong only to paths with a closed upload or an open writer.
    async fn check_bucket(&self) -> Outcome {
        let prefix = key_prefix(&self.root);
        let endpoint = self.server.endpoint();
        let keys = list_keys_on(&endpoint, &prefix).await;
        let key_of = |p: &str| format!("{prefix}{}", &p[1..]);
        let busy: Vec<&str> = PATHS
            .iter()
            .copied()
            .filter(|p| {
                self.model.uploads.contains_key(p) || self.open.iter().any(|o| o.path == *p)
            })
            .collect();
        let visible: Vec<&String> = keys.iter().filter(|k| !k.contains("/~")).collect();
        let want: Vec<String> = self.model.committed.keys().map(|p| key_of(p)).collect();
        ensure!(
            visible
                .iter()
                .map(|k| k.as_str())
                .eq(want.iter().map(String::as_str)),
            "bucket keys {visible:?}, the model's committed objects {want:?}"
        );
        for hidden in keys.iter().filter(|k| k.contains("/~")) {
            ensure!(
                busy.iter().any(|p| hidden.ends_with(&p[1..])),
                "hidden key {hidden} left, but no path has an upload or an open writer \
                 there (uploads/open: {busy:?})"
            );
        }
        for u in list_uploads_on(&endpoint, &prefix).await {
            let owner = PATHS.iter().find(|p| u.key == key_of(p));
            ensure!(
                owner.is_some_and(|p| busy.contains(p))
                    || (u.key.contains("/~") && !busy.is_empty()),
                "multipart upload {u:?} left in progress, but its path has no closed upload \
                 and no open writer (uploads/open: {busy:?})"
            );
        }
        Ok(())
    }

    // --- the operations ----------------------------------------------------------------

    async fn step(&mut self, op: &Op, fault: Option<&Fault>) -> Result<Vec<&'static str>, String> {
        let may_fail = |writer_op: bool| fault.is_some_and(|f| f.may_fail(writer_op));
        match *op {
            Op::Open(..) | Op::OpenOrCreate(_) => {
                let (p, append, or_create) = match *op {
                    Op::Open(p, append) => (p, append, false),
                    Op::OpenOrCreate(p) => (p, true, true),
                    _ => unreachable!("matched above"),
                };
                // Half the writers send each chunk's CRC-64 along (the host's default),
                // half leave the hashing to the guest: the model holds for both.
                let r = if or_create {
                    self.d.writer_append_or_create(p).await
                } else if self.rng.gen_bool(0.5) {
                    self.d.writer(p, append).await
                } else {
                    self.d.writer_through_guest(p, append).await
                };
                let mut expect_resume: Option<Vec<u8>> = if append {
                    match (self.model.uploads.get(p), self.model.committed.get(p)) {
                        (Some(u), _) => Some(u.clone()),
                        (None, Some(c)) if c.is_empty() => Some(Vec::new()),
                        _ => None,
                    }
                } else {
                    Some(Vec::new())
                };
                // Where the append is path-not-found, or-create is `writer(p, false)`.
                let created = or_create && expect_resume.is_none();
                let append = append && !created;
                if created {
                    expect_resume = Some(Vec::new());
                }
                match (r, expect_resume) {
                    (Ok(w), Some(content)) => {
                        ensure!(
                            w.size() == content.len() as u64,
                            "writer({p}, {append}).size() = {}, the model {}",
                            w.size(),
                            content.len()
                        );
                        if !append {
                            self.model.uploads.remove(p);
                            for o in self.open.iter_mut().filter(|o| o.path == p) {
                                o.doomed = true;
                            }
                        }
                        let id = self.next_id;
                        self.next_id += 1;
                        self.log(format!("    -> writer #{id}, size {}", content.len()));
                        self.open.push(Open {
                            id,
                            path: p,
                            w,
                            start: content.len(),
                            content,
                            append,
                            doomed: false,
                        });
                    }
                    (Ok(w), None) => {
                        return Err(format!(
                            "writer({p}, true) resumed {} bytes, the model says path-not-found \
                             (U none, C {})",
                            w.size(),
                            describe(self.model.committed.get(p).map(Vec::as_slice))
                        ))
                    }
                    (Err(Error::Driver(DriverError::PathNotFound(_))), None) => {}
                    (Err(e), _) if may_fail(true) => {
                        self.log(format!("    failed: {}", show(&e)));
                        self.count("failed writer()");
                        // writer(p, false) may have discarded U(p) or not; an append
                        // changes nothing. Older writers on p may have lost their upload:
                        // they are abandoned, and then nothing is known of U(p).
                        let abandoned = !append && self.abandon_writers_on(p);
                        let before = self.u_len(p);
                        if abandoned {
                            self.probe_and_reset_upload(p).await?;
                        } else if append {
                            self.settle_upload(p, &Allowed::Sizes(vec![before])).await?;
                        } else {
                            self.settle_upload(p, &Allowed::Sizes(vec![before, None]))
                                .await?;
                        }
                    }
                    (Err(e), want) => {
                        return Err(format!(
                            "writer({p}, {append}) failed: {}; the model expected {}",
                            show(&e),
                            match want {
                                Some(c) => format!("a writer of {} bytes", c.len()),
                                None => "path-not-found".into(),
                            }
                        ))
                    }
                }
                Ok(vec![p])
            }
            Op::Write(i, n) => {
                let data = self.data(n);
                let (p, doomed) = (self.open[i].path, self.open[i].doomed);
                let r = self.open[i].w.write(&data).await;
                match r {
                    Ok(()) => {
                        let o = &mut self.open[i];
                        o.content.extend_from_slice(&data);
                        ensure!(
                            o.w.size() == o.content.len() as u64,
                            "writer #{} size {} after a write, the model {}",
                            o.id,
                            o.w.size(),
                            o.content.len()
                        );
                    }
                    Err(e) if doomed => {
                        self.log(format!("    failed (doomed writer): {}", show(&e)));
                        self.open.remove(i);
                    }
                    Err(e) if may_fail(true) => {
                        self.log(format!("    failed: {}", show(&e)));
                        self.count("failed write");
                        let o = self.open.remove(i);
                        let total = o.content.len() + n;
                        self.settle_abandoned(&o, total).await?;
                    }
                    Err(e) => {
                        return Err(format!("write of {n} bytes failed: {}", show(&e)));
                    }
                }
                Ok(vec![p])
            }
            Op::Close(i) => {
                let p = self.open[i].path;
                let r = self.open[i].w.close().await;
                match r {
                    Ok(()) => {
                        let o = self.open.remove(i);
                        ensure!(
                            o.w.size() == o.content.len() as u64,
                            "size after close {} != {}",
                            o.w.size(),
                            o.content.len()
                        );
                        self.model.uploads.insert(p, o.content);
                    }
                    Err(e) if may_fail(true) => {
                        self.log(format!("    failed: {}", show(&e)));
                        self.count("failed close");
                        let o = self.open.remove(i);
                        let total = o.content.len();
                        self.settle_abandoned(&o, total).await?;
                    }
                    Err(e) => return Err(format!("close failed: {}", show(&e))),
                }
                Ok(vec![p])
            }
            Op::Commit(i) => {
                let (p, doomed, id) = (self.open[i].path, self.open[i].doomed, self.open[i].id);
                let r = self.open[i].w.commit().await;
                if doomed {
                    let o = self.open.remove(i);
                    match r {
                        Ok(()) => {
                            // Only a writer that held no upload when the path was taken
                            // can get here; its content is now the path's.
                            self.log(format!("    superseded writer #{id} committed"));
                            self.model.committed.insert(p, o.content);
                            self.model.uploads.remove(p);
                        }
                        Err(e) => {
                            self.log(format!("    failed (superseded): {}", show(&e)));
                            // A lost answer may hide a commit that happened: either the
                            // old content or this writer's, nothing else.
                            let old = self.model.committed.get(p).cloned();
                            self.settle_committed(p, &[old.as_deref(), Some(o.content.as_slice())])
                                .await?;
                        }
                    }
                    return Ok(vec![p]);
                }
                match r {
                    Ok(()) => {
                        let o = self.open.remove(i);
                        ensure!(
                            o.w.size() == o.content.len() as u64,
                            "size after commit {} != {}",
                            o.w.size(),
                            o.content.len()
                        );
                        self.model.committed.insert(p, o.content);
                        self.model.uploads.remove(p);
                    }
                    Err(e) if may_fail(true) => {
                        self.log(format!("    failed: {}", show(&e)));
                        self.count("failed commit");
                        self.recover_commit(i, fault.map(|f| f.what) == Some("complete"))
                            .await?;
                    }
                    Err(e) => return Err(format!("commit failed: {}", show(&e))),
                }
                Ok(vec![p])
            }
            Op::Cancel(i) => {
                let p = self.open[i].path;
                let r = self.open[i].w.cancel().await;
                match r {
                    Ok(()) => {
                        self.open.remove(i);
                        self.model.uploads.remove(p);
                    }
                    Err(e) if may_fail(true) => {
                        self.log(format!("    failed: {}", show(&e)));
                        self.count("failed cancel");
                        let o = self.open.remove(i);
                        // A failed cancel may have removed the upload, or not.
                        let allowed = match Self::abandoned(&o, o.content.len()) {
                            Allowed::Range { min, max, .. } => Allowed::Range {
                                min,
                                max,
                                none: true,
                            },
                            a => a,
                        };
                        if self.abandon_writers_on(p) {
                            self.probe_and_reset_upload(p).await?;
                        } else {
                            self.settle_upload(p, &allowed).await?;
                        }
                    }
                    Err(e) => return Err(format!("cancel failed: {}", show(&e))),
                }
                Ok(vec![p])
            }
            Op::Put(p, n) => {
                let data = self.data(n);
                match self.d.put_content(p, &data).await {
                    Ok(()) => {
                        self.model.committed.insert(p, data);
                        self.model.uploads.remove(p);
                    }
                    Err(e) if may_fail(false) => {
                        self.log(format!("    failed: {}", show(&e)));
                        self.count("failed put_content");
                        let old = self.model.committed.get(p).cloned();
                        let before = self.u_len(p);
                        self.settle_committed(p, &[old.as_deref(), Some(data.as_slice())])
                            .await?;
                        self.settle_upload(p, &Allowed::Sizes(vec![before, None]))
                            .await?;
                    }
                    Err(e) => return Err(format!("put_content failed: {}", show(&e))),
                }
                Ok(vec![p])
            }
            Op::Delete(target) => {
                let affected: Vec<&'static str> = PATHS
                    .iter()
                    .copied()
                    .filter(|p| is_under(p, target))
                    .collect();
                let any = affected
                    .iter()
                    .any(|p| self.model.committed.contains_key(p));
                let r = self.d.delete(target).await;
                match (&r, any) {
                    (Ok(()), true) | (Err(Error::Driver(DriverError::PathNotFound(_))), false) => {
                        for p in &affected {
                            self.model.committed.remove(p);
                            self.model.uploads.remove(p);
                        }
                    }
                    (Err(e), _) if may_fail(false) => {
                        self.log(format!("    failed: {}", show(e)));
                        self.count("failed delete");
                        for p in affected.iter().copied() {
                            let old = self.model.committed.get(p).cloned();
                            let before = self.u_len(p);
                            self.settle_committed(p, &[old.as_deref(), None]).await?;
                            self.settle_upload(p, &Allowed::Sizes(vec![before, None]))
                                .await?;
                        }
                    }
                    _ => {
                        return Err(format!(
                            "delete({target}) = {:?}; the model has {} committed there",
                            r.as_ref().map_err(show),
                            if any { "something" } else { "nothing" }
                        ))
                    }
                }
                Ok(affected)
            }
            Op::Move(src, dst) => {
                let moved = self.model.committed.get(src).cloned();
                let r = self.d.mv(src, dst).await;
                match (&r, &moved) {
                    (Ok(()), Some(x)) => {
                        self.model.committed.insert(dst, x.clone());
                        self.model.committed.remove(src);
                        self.model.uploads.remove(src);
                        self.model.uploads.remove(dst);
                    }
                    (Err(Error::Driver(DriverError::PathNotFound(_))), None) => {}
                    (Err(e), _) if may_fail(false) => {
                        self.log(format!("    failed: {}", show(e)));
                        self.count("failed mv");
                        let old_dst = self.model.committed.get(dst).cloned();
                        let (ub, ud) = (self.u_len(src), self.u_len(dst));
                        // The destination first: the source may be gone only if the
                        // destination has its bytes.
                        let mut allowed_dst = vec![old_dst.as_deref()];
                        if moved.is_some() {
                            allowed_dst.push(moved.as_deref());
                        }
                        self.settle_committed(dst, &allowed_dst).await?;
                        let arrived = moved.is_some()
                            && self.model.committed.get(dst).map(Vec::as_slice) == moved.as_deref();
                        let mut allowed_src = vec![moved.as_deref()];
                        if arrived {
                            allowed_src.push(None);
                        }
                        self.settle_committed(src, &allowed_src).await?;
                        self.settle_upload(src, &Allowed::Sizes(vec![ub, None]))
                            .await?;
                        self.settle_upload(dst, &Allowed::Sizes(vec![ud, None]))
                            .await?;
                    }
                    _ => {
                        return Err(format!(
                            "mv({src}, {dst}) = {:?}; the model has {} at the source",
                            r.as_ref().map_err(show),
                            describe(moved.as_deref())
                        ))
                    }
                }
                Ok(vec![src, dst])
            }
            Op::CheckAppend(p) => {
                // What the model says an append resumes with, checked: the upload is kept
                // (closed again) so the state stays the same.
                let want = match (self.model.uploads.get(p), self.model.committed.get(p)) {
                    (Some(u), _) => Some(u.len() as u64),
                    (None, Some(c)) if c.is_empty() => Some(0),
                    _ => None,
                };
                match (self.d.writer(p, true).await, want) {
                    (Ok(mut w), Some(n)) => {
                        ensure!(
                            w.size() == n,
                            "writer({p}, true) resumes {} bytes, the model {n}",
                            w.size()
                        );
                        if self.model.uploads.contains_key(p) {
                            w.close()
                                .await
                                .map_err(|e| format!("close: {}", show(&e)))?;
                        } else {
                            w.cancel()
                                .await
                                .map_err(|e| format!("cancel: {}", show(&e)))?;
                        }
                    }
                    (Err(Error::Driver(DriverError::PathNotFound(_))), None) => {}
                    (Err(e), _) if may_fail(true) => {
                        // An append that fails changes nothing.
                        self.log(format!("    failed: {}", show(&e)));
                        self.count("failed append check");
                        let before = self.u_len(p);
                        self.settle_upload(p, &Allowed::Sizes(vec![before])).await?;
                    }
                    (r, want) => {
                        return Err(format!(
                            "writer({p}, true) = {:?}; the model: {}",
                            r.map(|w| w.size()).map_err(|e| show(&e)),
                            match want {
                                Some(n) => format!("resume {n} bytes"),
                                None => "path-not-found".into(),
                            }
                        ))
                    }
                }
                Ok(vec![p])
            }
        }
    }

    /// What `U(p)` may resume with after writer `o` was abandoned mid-way, having been
    /// given `total` bytes: never less than what it resumed with (nothing is lost), never
    /// more than it was given, never anything older (nothing comes back). Sizes only: the
    /// probe cannot read an upload's bytes without committing it.
    fn abandoned(o: &Open, total: usize) -> Allowed {
        Allowed::Range {
            min: o.start as u64,
            max: total as u64,
            none: !o.append || o.start == 0,
        }
    }

    async fn settle_abandoned(&mut self, o: &Open, total: usize) -> Outcome {
        // Another (older, doomed) writer on the path leaves nothing knowable either.
        if self.abandon_writers_on(o.path) {
            self.probe_and_reset_upload(o.path).await?;
            return Ok(());
        }
        self.settle_upload(o.path, &Self::abandoned(o, total)).await
    }

    /// A commit failed: the object is the old one or the new one; then the commit is
    /// retried on the same writer, or — when the fault was at Complete, half the time —
    /// the upload is resumed by `writer(p, true)` in a new driver and committed there.
    /// Either way it must succeed, with exactly the bytes written.
    async fn recover_commit(&mut self, i: usize, at_complete: bool) -> Outcome {
        let p = self.open[i].path;
        let content = self.open[i].content.clone();
        let old = self.model.committed.get(p).cloned();
        self.settle_committed(p, &[old.as_deref(), Some(content.as_slice())])
            .await?;
        let published = self.model.committed.get(p) == Some(&content);
        if !published && at_complete && self.rng.gen_bool(0.5) {
            self.open.remove(i);
            let d2 = Self::driver(&self.server, &self.root).await;
            let mut w = d2
                .writer(p, true)
                .await
                .map_err(|e| format!("resume after a failed commit: {}", show(&e)))?;
            ensure!(
                w.size() == content.len() as u64,
                "resume after a failed commit: {} bytes, {} were written",
                w.size(),
                content.len()
            );
            w.commit()
                .await
                .map_err(|e| format!("commit of the resumed upload: {}", show(&e)))?;
            self.log("    resumed in a new driver and committed".into());
        } else {
            let o = &mut self.open[i];
            o.w.commit()
                .await
                .map_err(|e| format!("commit retried on the same writer: {}", show(&e)))?;
            ensure!(
                o.w.size() == content.len() as u64,
                "size after the retried commit {} != {}",
                o.w.size(),
                content.len()
            );
            self.open.remove(i);
            self.log("    commit retried on the same writer".into());
        }
        self.model.committed.insert(p, content);
        self.model.uploads.remove(p);
        Ok(())
    }

    /// Commits or cancels what is still open, then deletes everything: the bucket must
    /// end empty (no key, no upload).
    async fn finish(&mut self) -> Outcome {
        while let Some(mut o) = self.open.pop() {
            if o.doomed {
                if o.w.commit().await.is_ok() {
                    self.model.committed.insert(o.path, o.content);
                    self.model.uploads.remove(o.path);
                } else {
                    let old = self.model.committed.get(o.path).cloned();
                    self.settle_committed(o.path, &[old.as_deref(), Some(o.content.as_slice())])
                        .await?;
                }
            } else {
                o.w.commit()
                    .await
                    .map_err(|e| format!("final commit: {}", show(&e)))?;
                self.model.committed.insert(o.path, o.content);
                self.model.uploads.remove(o.path);
            }
        }
        for p in PATHS {
            self.check_path(p).await?;
        }
        self.check_tree().await?;
        self.check_bucket().await?;
        for t in ["/a", "/b", "/d"] {
            match self.d.delete(t).await {
                Ok(()) | Err(Error::Driver(DriverError::PathNotFound(_))) => {}
                Err(e) => return Err(format!("final delete({t}): {}", show(&e))),
            }
        }
        let prefix = key_prefix(&self.root);
        let keys = list_keys_on(&self.server.endpoint(), &prefix).await;
        ensure!(keys.is_empty(), "left after deleting everything: {keys:?}");
        let uploads = list_uploads_on(&self.server.endpoint(), &prefix).await;
        ensure!(
            uploads.is_empty(),
            "uploads left after deleting everything: {uploads:?}"
        );
        Ok(())
    }
}

fn describe(b: Option<&[u8]>) -> String {
    match b {
        None => "none".into(),
        Some(b) => format!("{} bytes (sha256 {})", b.len(), &sha256_hex(b)[..12]),
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    Some(
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        }
        .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
    )
}

async fn run(world: &mut World, steps: usize) -> Result<(), (usize, String)> {
    for step in 0..steps {
        let op = world.choose();
        let fault = (world.rng.gen_range(0..100) < 30).then(|| Fault::random(&mut world.rng));
        let mut line = format!("step {step}: {op:?}");
        if let Some(f) = &fault {
            let _ = write!(line, "  [fault {:?} x{} on {}]", f.kind, f.count, f.what);
        }
        // Which writer an index names, for the replay.
        if let Op::Write(i, _) | Op::Close(i) | Op::Commit(i) | Op::Cancel(i) = op {
            let o = &world.open[i];
            let _ = write!(line, "  (writer #{} on {})", o.id, o.path);
        }
        world.log(line);
        let faults = world.server.faults();
        if let Some(f) = &fault {
            faults.inject(f.rule());
        }
        let result = world.step(&op, fault.as_ref()).await;
        let taken = fault.as_ref().map_or(0, |f| {
            f.count as usize - faults.remaining().min(f.count as usize)
        });
        faults.clear();
        if let Some(f) = &fault {
            if taken > 0 {
                world.count("faults taken");
                if f.kind == FaultKind::Delay {
                    // A request the client gave up on lands late; let it, before anything
                    // is checked (a late PUT would otherwise overwrite a newer object —
                    // no client can prevent that).
                    tokio::time::sleep(DELAY + Duration::from_millis(300)).await;
                }
            }
        }
        let touched = result.map_err(|e| (step, e))?;
        let check = async {
            for p in &touched {
                world.check_path(p).await?;
            }
            if step % TREE_EVERY == 0 || touched.iter().any(|p| p.starts_with("/d")) {
                world.check_tree().await?;
            }
            if step % BUCKET_EVERY == 0 {
                world.check_bucket().await?;
            }
            Ok::<(), String>(())
        };
        check.await.map_err(|e| (step, e))?;
    }
    world.finish().await.map_err(|e| (steps, e))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_semantics_hold_under_random_operations_and_faults() {
    let steps = env_u64("KS3_MODEL_STEPS").map_or(DEFAULT_STEPS, |n| n as usize);
    let seed = env_u64("KS3_MODEL_SEED").unwrap_or(DEFAULT_SEED);
    let mut world = World::new(seed).await;
    let started = Instant::now();
    let result = run(&mut world, steps).await;
    let elapsed = started.elapsed();
    if let Err((step, msg)) = result {
        let mut out = String::new();
        for line in &world.history {
            let _ = writeln!(out, "{line}");
        }
        panic!(
            "writer model: step {step} of {steps} failed: {msg}\n\
             replay: KS3_MODEL_SEED={seed:#x} KS3_MODEL_STEPS={steps} cargo test -p ks3-tests \
             --test writer_model\nhistory:\n{out}"
        );
    }
    eprintln!(
        "writer model: {steps} steps, seed {seed:#x}, {:.1} s; {:?}",
        elapsed.as_secs_f64(),
        world.stats
    );
}
