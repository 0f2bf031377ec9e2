//! Issue 10: the writer loses nothing and resurrects nothing.
//!
//! * The fault matrix: every fault kind on every request of a writer's life, one fault per
//!   test, with `maxretries` set so that exactly one retry absorbs it; the final bytes must
//!   be exactly right and nothing (no multipart upload, no hidden tail object) may be left
//!   after commit, cancel and delete. Each matrix test runs its own ks3-local, so its
//!   fault can only be taken by its own requests.
//! * Faults that outlast the retries at Complete: the commit fails, loses nothing, and can
//!   be retried on the same writer or resumed by a new driver.
//! * A Complete whose response is lost is a success, whichever way the server answers the
//!   retry (`NoSuchUpload` by default, the first answer replayed otherwise).
//! * A reused path: a stale closed upload never comes back after `writer(p, false)`,
//!   `put_content`, `delete` or `mv`, and uncommitted uploads are invisible. `put_content`
//!   looks for the path's tail while its content goes up, and retries each on its own.
//! * `FileWriter::size()` after close, commit and resume is the number of bytes written.
use std::time::Duration;

use ks3_driver_host::{Driver, DriverError, Error, WalkControl};
use ks3_local::{FaultAction, FaultRule, RunningServer};
use ks3_tests::*;

/// The minimum part size: every size below is chosen against it.
const CHUNK: usize = 5 * MIB;
/// Past the 1 s `requesttimeout` of the delay tests: the client gives up, the server
/// still performs the request.
const DELAY: Duration = Duration::from_millis(1500);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Err500,
    SlowDown,
    /// The connection is cut mid-request (or, without a body, after the headers).
    Drop,
    /// Performed in full, then the connection closes without a response.
    Lost,
    /// Performed after [`DELAY`], when the client has already timed out.
    Delay,
}

impl Kind {
    fn action(self) -> FaultAction {
        match self {
            Kind::Err500 => FaultAction::Error {
                status: 500,
                code: "InternalError".into(),
            },
            Kind::SlowDown => FaultAction::Error {
                status: 503,
                code: "SlowDown".into(),
            },
            Kind::Drop => FaultAction::DropMidBody,
            Kind::Lost => FaultAction::LoseResponse,
            Kind::Delay => FaultAction::Delay(DELAY),
        }
    }

    /// Driver parameters: one retry absorbs one fault. The delay tests get a 1 s timeout,
    /// and one more retry so that a merely slow request on a loaded machine does not fail
    /// a test about something else.
    fn params(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Kind::Delay => vec![("maxretries", "2"), ("requesttimeout", "1")],
            _ => vec![("maxretries", "1")],
        }
    }
}

/// The requests of a writer's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Req {
    /// `POST ?uploads`
    Initiate,
    /// `PUT ?partNumber=` while writing
    PartWrite,
    /// `PUT ?partNumber=` of the last part, during commit
    PartCommit,
    /// `PUT …/~tails/…`
    TailPut,
    /// `GET …/~tails/…` on resume
    TailGet,
    /// `POST ?uploadId=`
    Complete,
    /// `DELETE ?uploadId=`
    Abort,
    /// `DELETE …/~tails/…` (or the multi-object delete that removes the tails under a
    /// deleted directory)
    TailDelete,
}

/// The scenarios the matrix runs. Sizes cross part boundaries so multipart paths run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    /// writer(p, false), 12 MiB, close; writer(p, true), 4 MiB more, commit; delete.
    Commit,
    /// put_content(p, old); writer(p, false), 12 MiB, close; writer(p, true), 1 MiB,
    /// cancel: the old object stays, nothing else.
    Cancel,
    /// writer(p, false), 12 MiB, close; writer(p, false) again (discards it), 7 MiB, commit.
    Overwrite,
    /// writer(/d/f, false), 12 MiB, close; put_content(/d/g); delete(/d).
    DeleteDir,
}

/// The fault rule for `req` during the phase of `life` it is injected before. Patterns
/// are substrings of the raw request target `PATH?QUERY`; each test has its own server,
/// so they need not name the test's root.
fn rule(kind: Kind, req: Req, life: Life) -> FaultRule {
    let (method, pattern) = match (req, life) {
        (Req::Initiate, _) => ("POST", "?uploads"),
        (Req::PartWrite, _) => ("PUT", "partNumber=2"),
        (Req::PartCommit, _) => ("PUT", "partNumber=4"),
        (Req::TailPut, _) => ("PUT", "/~tails/"),
        (Req::TailGet, _) => ("GET", "/~tails/"),
        (Req::Complete, _) => ("POST", "?uploadId="),
        (Req::Abort, _) => ("DELETE", "?uploadId="),
        // A deleted directory's tails go in a multi-object delete (its body names them).
        (Req::TailDelete, Life::DeleteDir) => ("POST", "?delete"),
        (Req::TailDelete, _) => ("DELETE", "/~tails/"),
    };
    FaultRule {
        method: Some(method.into()),
        path_pattern: pattern.into(),
        count: 1,
        action: kind.action(),
    }
}

/// One matrix test's world: its own server, its fault, where the fault goes in.
struct Matrix {
    server: RunningServer,
    kind: Kind,
    req: Req,
    injected: bool,
}

impl Matrix {
    fn new(kind: Kind, req: Req) -> Matrix {
        Matrix {
            server: start_server(|_| {}),
            kind,
            req,
            injected: false,
        }
    }

    async fn driver(&self, root: &str) -> Driver {
        let mut p = params_on(&self.server.endpoint(), root);
        for (k, v) in self.kind.params() {
            p.insert(k.into(), v.into());
        }
        Driver::new(p).await.expect("driver")
    }

    /// Called before each phase: injects the fault before the phase `at` belongs to.
    fn before(&mut self, life: Life, at: &[Req]) {
        if at.contains(&self.req) {
            assert!(!self.injected, "one fault per life");
            self.server.faults().inject(rule(self.kind, self.req, life));
            self.injected = true;
        }
    }

    /// Called after each phase. Once the fault was taken, a delayed request is let land
    /// before the next phase: a request the client gave up on that lands *later* is a
    /// race no client can prevent (it would recreate a deleted tail, say), not what this
    /// matrix is about.
    async fn after(&self) {
        if self.injected && self.kind == Kind::Delay {
            tokio::time::sleep(DELAY + Duration::from_millis(300)).await;
        }
    }

    /// The fault must have been taken: a rule that matched nothing proves nothing.
    fn assert_taken(&self, life: Life) {
        assert!(self.injected, "{life:?} has no phase for {:?}", self.req);
        assert_eq!(
            self.server.faults().remaining(),
            0,
            "the {:?} fault on {:?} was never taken during {life:?}: {:?}",
            self.kind,
            self.req,
            self.server.faults().rules()
        );
    }

    /// The bucket holds exactly `committed` under `root` (no hidden tail, no temporary
    /// key), with exactly those bytes, and no multipart upload is in progress there.
    async fn assert_state(&self, d: &Driver, root: &str, committed: &[(&str, &[u8])]) {
        assert_bucket(&self.server.endpoint(), d, root, committed).await;
    }

    async fn run(mut self, lives: &[Life]) {
        for &life in lives {
            self.injected = false;
            let root = unique_root(&format!("matrix-{:?}-{:?}", self.kind, self.req));
            let d = self.driver(&root).await;
            match life {
                Life::Commit => self.life_commit(&d, &root).await,
                Life::Cancel => self.life_cancel(&d, &root).await,
                Life::Overwrite => self.life_overwrite(&d, &root).await,
                Life::DeleteDir => self.life_delete_dir(&d, &root).await,
            }
            self.assert_taken(life);
        }
    }

    async fn life_commit(&mut self, d: &Driver, root: &str) {
        let life = Life::Commit;
        let data = &random_bytes()[..16 * MIB];
        let (first, second) = data.split_at(12 * MIB);
        let mut w = d.writer("/f", false).await.expect("writer");
        self.before(life, &[Req::Initiate, Req::PartWrite]);
        w.write(first).await.expect("write 12 MiB");
        self.after().await;
        self.before(life, &[Req::TailPut]);
        w.close().await.expect("close");
        assert_eq!(w.size(), first.len() as u64);
        self.after().await;
        self.before(life, &[Req::TailGet]);
        let mut w = d.writer("/f", true).await.expect("resume");
        assert_eq!(w.size(), first.len() as u64, "resumed size");
        self.after().await;
        w.write(second).await.expect("write 4 MiB more");
        self.before(life, &[Req::PartCommit, Req::Complete, Req::TailDelete]);
        w.commit().await.expect("commit");
        assert_eq!(w.size(), data.len() as u64);
        self.after().await;
        self.assert_state(d, root, &[("/f", data)]).await;
        d.delete("/f").await.expect("delete");
        self.assert_state(d, root, &[]).await;
    }

    async fn life_cancel(&mut self, d: &Driver, root: &str) {
        let life = Life::Cancel;
        let old = &random_bytes()[20 * MIB..20 * MIB + 1000];
        d.put_content("/f", old).await.expect("put old");
        let data = &random_bytes()[..13 * MIB];
        let mut w = d.writer("/f", false).await.expect("writer");
        w.write(&data[..12 * MIB]).await.expect("write");
        w.close().await.expect("close");
        let mut w = d.writer("/f", true).await.expect("resume");
        w.write(&data[12 * MIB..]).await.expect("write more");
        self.before(life, &[Req::Abort, Req::TailDelete]);
        w.cancel().await.expect("cancel");
        self.after().await;
        self.assert_state(d, root, &[("/f", old)]).await;
        assert_path_not_found(d.writer("/f", true).await, "append after cancel");
        d.delete("/f").await.expect("delete");
        self.assert_state(d, root, &[]).await;
    }

    async fn life_overwrite(&mut self, d: &Driver, root: &str) {
        let life = Life::Overwrite;
        let stale = &random_bytes()[..12 * MIB];
        let mut w = d.writer("/f", false).await.expect("writer");
        w.write(stale).await.expect("write");
        w.close().await.expect("close");
        self.before(life, &[Req::Abort, Req::TailDelete]);
        let mut w = d
            .writer("/f", false)
            .await
            .expect("a new writer discards the upload");
        assert_eq!(w.size(), 0);
        self.after().await;
        let data = &random_bytes()[30 * MIB..37 * MIB];
        w.write(data).await.expect("write");
        w.commit().await.expect("commit");
        self.assert_state(d, root, &[("/f", data)]).await;
        d.delete("/f").await.expect("delete");
        self.assert_state(d, root, &[]).await;
    }

    async fn life_delete_dir(&mut self, d: &Driver, root: &str) {
        let life = Life::DeleteDir;
        let mut w = d.writer("/d/f", false).await.expect("writer");
        w.write(&random_bytes()[..12 * MIB]).await.expect("write");
        w.close().await.expect("close");
        d.put_content("/d/g", &b"committed"[..]).await.expect("put");
        self.before(life, &[Req::Abort, Req::TailDelete]);
        d.delete("/d").await.expect("delete the directory");
        self.after().await;
        self.assert_state(d, root, &[]).await;
        assert_path_not_found(d.writer("/d/f", true).await, "append after delete");
    }
}

/// `r` is exactly distribution's path-not-found.
fn assert_path_not_found<T>(r: Result<T, Error>, what: &str) {
    match r {
        Err(Error::Driver(DriverError::PathNotFound(_))) => {}
        Err(e) => panic!("{what}: expected path-not-found, got {e:?}"),
        Ok(_) => panic!("{what}: expected path-not-found, got success"),
    }
}

/// The bucket holds exactly `committed` under `root`: those keys and no other (no hidden
/// tail or temporary key), those bytes (SHA-256 compared, sizes by `stat`), and no
/// multipart upload in progress anywhere under the root.
async fn assert_bucket(endpoint: &str, d: &Driver, root: &str, committed: &[(&str, &[u8])]) {
    let prefix = key_prefix(root);
    let mut want: Vec<String> = committed
        .iter()
        .map(|(p, _)| format!("{}{}", prefix, p.trim_start_matches('/')))
        .collect();
    want.sort();
    assert_eq!(
        list_keys_on(endpoint, &prefix).await,
        want,
        "keys under the root: only the committed objects"
    );
    let uploads = list_uploads_on(endpoint, &prefix).await;
    assert!(
        uploads.is_empty(),
        "multipart uploads left in progress: {uploads:?}"
    );
    for (p, bytes) in committed {
        let got = d.get_content(p).await.expect("get the committed object");
        assert_eq!(got.len(), bytes.len(), "{p}: size");
        assert_eq!(sha256_hex(&got), sha256_hex(bytes), "{p}: bytes");
        assert_eq!(d.stat(p).await.expect("stat").size, bytes.len() as u64);
    }
}

macro_rules! matrix {
    ($($name:ident: $kind:ident, $req:ident, [$($life:ident),+];)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            Matrix::new(Kind::$kind, Req::$req).run(&[$(Life::$life),+]).await;
        }
    )*};
}

matrix! {
    err500_on_initiate: Err500, Initiate, [Commit];
    err500_on_part: Err500, PartWrite, [Commit];
    err500_on_last_part_at_commit: Err500, PartCommit, [Commit];
    err500_on_tail_put: Err500, TailPut, [Commit];
    err500_on_tail_get: Err500, TailGet, [Commit];
    err500_on_complete: Err500, Complete, [Commit];
    err500_on_abort: Err500, Abort, [Cancel, Overwrite, DeleteDir];
    err500_on_tail_delete: Err500, TailDelete, [Commit, Cancel, Overwrite, DeleteDir];

    slowdown_on_initiate: SlowDown, Initiate, [Commit];
    slowdown_on_part: SlowDown, PartWrite, [Commit];
    slowdown_on_last_part_at_commit: SlowDown, PartCommit, [Commit];
    slowdown_on_tail_put: SlowDown, TailPut, [Commit];
    slowdown_on_tail_get: SlowDown, TailGet, [Commit];
    slowdown_on_complete: SlowDown, Complete, [Commit];
    slowdown_on_abort: SlowDown, Abort, [Cancel, Overwrite, DeleteDir];
    slowdown_on_tail_delete: SlowDown, TailDelete, [Commit, Cancel, Overwrite, DeleteDir];

    drop_on_initiate: Drop, Initiate, [Commit];
    drop_on_part: Drop, PartWrite, [Commit];
    drop_on_last_part_at_commit: Drop, PartCommit, [Commit];
    drop_on_tail_put: Drop, TailPut, [Commit];
    drop_on_tail_get: Drop, TailGet, [Commit];
    drop_on_complete: Drop, Complete, [Commit];
    drop_on_abort: Drop, Abort, [Cancel, Overwrite, DeleteDir];
    drop_on_tail_delete: Drop, TailDelete, [Commit, Cancel, Overwrite, DeleteDir];

    lost_response_on_initiate: Lost, Initiate, [Commit];
    lost_response_on_part: Lost, PartWrite, [Commit];
    lost_response_on_last_part_at_commit: Lost, PartCommit, [Commit];
    lost_response_on_tail_put: Lost, TailPut, [Commit];
    lost_response_on_tail_get: Lost, TailGet, [Commit];
    lost_response_on_complete: Lost, Complete, [Commit];
    lost_response_on_abort: Lost, Abort, [Cancel, Overwrite, DeleteDir];
    lost_response_on_tail_delete: Lost, TailDelete, [Commit, Cancel, Overwrite, DeleteDir];

    delay_on_initiate: Delay, Initiate, [Commit];
    delay_on_part: Delay, PartWrite, [Commit];
    delay_on_last_part_at_commit: Delay, PartCommit, [Commit];
    delay_on_tail_put: Delay, TailPut, [Commit];
    delay_on_tail_get: Delay, TailGet, [Commit];
    delay_on_complete: Delay, Complete, [Commit];
    delay_on_abort: Delay, Abort, [Cancel, Overwrite, DeleteDir];
    delay_on_tail_delete: Delay, TailDelete, [Commit, Cancel, Overwrite, DeleteDir];
}

// ---------------------------------------------------------------------------------------
// Faults that outlast the retries at Complete.

fn complete_fault(kind: Kind, count: u32) -> FaultRule {
    FaultRule {
        method: Some("POST".into()),
        path_pattern: "?uploadId=".into(),
        count,
        action: kind.action(),
    }
}

async fn driver_on(server: &RunningServer, root: &str, extra: &[(&str, &str)]) -> Driver {
    let mut p = params_on(&server.endpoint(), root);
    for (k, v) in extra {
        p.insert((*k).into(), (*v).into());
    }
    Driver::new(p).await.expect("driver")
}

/// 12 MiB + 5 bytes: two full parts and a short last one.
fn upload_data() -> &'static [u8] {
    &random_bytes()[..12 * MIB + 5]
}

/// Every attempt at Complete fails (maxretries=1, two faults): commit reports an error and
/// publishes nothing; the same writer's commit, retried once the fault is gone, succeeds
/// with exactly the bytes written.
async fn commit_retried_on_the_same_writer(kind: Kind) {
    let server = start_server(|_| {});
    let root = unique_root("commit_retry_same_writer");
    let d = driver_on(&server, &root, &kind.params()).await;
    let data = upload_data();
    let mut w = d.writer("/f", false).await.unwrap();
    w.write(data).await.unwrap();
    let attempts = if kind == Kind::Delay { 3 } else { 2 };
    server.faults().inject(complete_fault(kind, attempts));
    let first = w.commit().await;
    assert_eq!(server.faults().remaining(), 0, "every attempt was faulted");
    if kind == Kind::Delay {
        // The delayed Completes are performed after the client gave up: the upload may
        // well be complete by now, and commit may have found that out. Either way the
        // retry below must end with the right bytes.
        tokio::time::sleep(DELAY + Duration::from_millis(300)).await;
    } else {
        let e = first
            .as_ref()
            .expect_err("no Complete was performed: commit cannot succeed");
        assert!(
            !matches!(
                e,
                Error::Driver(DriverError::InvalidState(_))
                    | Error::Driver(DriverError::PathNotFound(_))
            ),
            "the error says what failed: {e:?}"
        );
        assert_path_not_found(d.stat("/f").await, "nothing published by a failed commit");
        assert!(
            !list_uploads_on(&server.endpoint(), &key_prefix(&root))
                .await
                .is_empty(),
            "the upload is kept for the retry"
        );
    }
    if first.is_err() {
        w.commit()
            .await
            .expect("commit retried on the same writer once the fault is gone");
    }
    assert_eq!(w.size(), data.len() as u64);
    assert_bucket(&server.endpoint(), &d, &root, &[("/f", data)]).await;
    d.delete("/f").await.unwrap();
    assert_bucket(&server.endpoint(), &d, &root, &[]).await;
}

/// As above, but the failed writer is dropped: a new driver resumes the upload with
/// `writer(p, true)`, sees every byte, adds more and commits.
async fn commit_resumed_by_a_new_driver(kind: Kind) {
    let server = start_server(|_| {});
    let root = unique_root("commit_resume_new_driver");
    let data = upload_data();
    let more = &random_bytes()[40 * MIB..43 * MIB];
    {
        let d = driver_on(&server, &root, &kind.params()).await;
        let mut w = d.writer("/f", false).await.unwrap();
        w.write(data).await.unwrap();
        server.faults().inject(complete_fault(kind, 2));
        w.commit()
            .await
            .expect_err("both attempts at Complete fail, nothing was completed");
        assert_path_not_found(d.stat("/f").await, "nothing published by a failed commit");
    }
    let d = driver_on(&server, &root, &[]).await;
    let mut w = d
        .writer("/f", true)
        .await
        .expect("a failed commit leaves a resumable upload");
    assert_eq!(w.size(), data.len() as u64, "every byte was kept");
    w.write(more).await.unwrap();
    w.commit().await.expect("commit of the resumed upload");
    assert_eq!(w.size(), (data.len() + more.len()) as u64);
    let all = [data, more].concat();
    assert_bucket(&server.endpoint(), &d, &root, &[("/f", &all[..])]).await;
    d.delete("/f").await.unwrap();
    assert_bucket(&server.endpoint(), &d, &root, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_err500_past_retries_then_commit_again() {
    commit_retried_on_the_same_writer(Kind::Err500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_slowdown_past_retries_then_commit_again() {
    commit_retried_on_the_same_writer(Kind::SlowDown).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_drop_past_retries_then_commit_again() {
    commit_retried_on_the_same_writer(Kind::Drop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_delay_past_retries_then_commit_again() {
    commit_retried_on_the_same_writer(Kind::Delay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_err500_past_retries_then_new_driver_resumes() {
    commit_resumed_by_a_new_driver(Kind::Err500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_slowdown_past_retries_then_new_driver_resumes() {
    commit_resumed_by_a_new_driver(Kind::SlowDown).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_drop_past_retries_then_new_driver_resumes() {
    commit_resumed_by_a_new_driver(Kind::Drop).await;
}

/// A failed Complete over an older object of the *same size* must not be taken for a
/// completed one: the check after a failed Complete has to look at more than the size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_complete_over_a_same_size_object_is_not_a_success() {
    let server = start_server(|_| {});
    let root = unique_root("failed_complete_same_size");
    let d = driver_on(&server, &root, &[("maxretries", "1")]).await;
    let old = &random_bytes()[50 * MIB..62 * MIB];
    let new = &random_bytes()[..12 * MIB];
    d.put_content("/f", old).await.unwrap();
    let mut w = d.writer("/f", false).await.unwrap();
    w.write(new).await.unwrap();
    server.faults().inject(complete_fault(Kind::Err500, 2));
    w.commit()
        .await
        .expect_err("no Complete was performed: commit cannot succeed");
    assert_eq!(
        sha256_hex(&d.get_content("/f").await.unwrap()),
        sha256_hex(old),
        "the old object is untouched"
    );
    w.commit().await.expect("the retried commit");
    assert_bucket(&server.endpoint(), &d, &root, &[("/f", new)]).await;
    d.delete("/f").await.unwrap();
    assert_bucket(&server.endpoint(), &d, &root, &[]).await;
}

/// Complete performed, its response lost (once, or on every attempt): commit reports
/// success and the object is exactly the upload — with the server answering the retried
/// Complete `NoSuchUpload` (ks3-local's default) or replaying the first answer.
async fn lost_complete_response(replay: bool, losses: u32, over_same_size: bool) {
    let server = start_server(|c| c.replay_completed_uploads = replay);
    let root = unique_root("lost_complete");
    let d = driver_on(&server, &root, &[("maxretries", "1")]).await;
    if over_same_size {
        d.put_content("/f", &random_bytes()[70 * MIB..82 * MIB])
            .await
            .unwrap();
    }
    let data = &random_bytes()[..12 * MIB];
    let mut w = d.writer("/f", false).await.unwrap();
    w.write(data).await.unwrap();
    server.faults().inject(complete_fault(Kind::Lost, losses));
    w.commit()
        .await
        .expect("the upload was completed: commit must say so");
    // At least the first response was lost. (A driver that checks the object before
    // retrying does not send the second Complete at all.)
    assert!(
        server.faults().remaining() < losses as usize,
        "no Complete response was lost"
    );
    assert_bucket(&server.endpoint(), &d, &root, &[("/f", data)]).await;
    d.delete("/f").await.unwrap();
    assert_bucket(&server.endpoint(), &d, &root, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_complete_response_is_success_when_retry_says_no_such_upload() {
    lost_complete_response(false, 1, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_complete_response_is_success_when_retry_is_replayed() {
    lost_complete_response(true, 1, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_complete_responses_on_every_attempt_are_success() {
    lost_complete_response(false, 2, false).await;
    lost_complete_response(true, 2, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_complete_response_over_a_same_size_object_is_success() {
    lost_complete_response(false, 1, true).await;
    lost_complete_response(true, 1, true).await;
}

// ---------------------------------------------------------------------------------------
// A reused path: nothing stale comes back. No faults here; the shared server is fine, as
// every test looks only under its own root.

/// A stale closed upload of each size class: short (no part) and multipart.
fn stale_sizes() -> [&'static [u8]; 2] {
    [b"AAA", &random_bytes()[..12 * MIB + 3]]
}

async fn close_upload(d: &Driver, p: &str, data: &[u8]) {
    let mut w = d.writer(p, false).await.expect("writer");
    w.write(data).await.expect("write");
    w.close().await.expect("close");
    assert_eq!(w.size(), data.len() as u64);
}

async fn shared_bucket(d: &Driver, root: &str, committed: &[(&str, &[u8])]) {
    assert_bucket(&server().endpoint(), d, root, committed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_upload_does_not_come_back_after_a_new_writer_commits() {
    for stale in stale_sizes() {
        let root = unique_root("stale_after_writer");
        let d = Driver::new(params(&root)).await.unwrap();
        close_upload(&d, "/f", stale).await;
        let mut w = d.writer("/f", false).await.unwrap();
        assert_eq!(w.size(), 0, "a new writer starts empty");
        w.write(b"BBB").await.unwrap();
        w.commit().await.unwrap();
        assert_path_not_found(
            d.writer("/f", true).await,
            "append to committed non-empty content (never the stale upload)",
        );
        shared_bucket(&d, &root, &[("/f", &b"BBB"[..])]).await;
        d.delete("/f").await.unwrap();
        shared_bucket(&d, &root, &[]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_upload_does_not_come_back_after_put_content() {
    for stale in stale_sizes() {
        let root = unique_root("stale_after_put");
        let d = Driver::new(params(&root)).await.unwrap();
        close_upload(&d, "/f", stale).await;
        d.put_content("/f", &b"BBB"[..]).await.unwrap();
        assert_path_not_found(d.writer("/f", true).await, "append after put_content");
        shared_bucket(&d, &root, &[("/f", &b"BBB"[..])]).await;

        // An empty object may be appended to: the append must start from it, empty,
        // not from the stale upload put_content replaced.
        close_upload(&d, "/f", stale).await;
        d.put_content("/f", &b""[..]).await.unwrap();
        let mut w = d
            .writer("/f", true)
            .await
            .expect("append to an empty object");
        assert_eq!(w.size(), 0, "the stale upload came back");
        w.write(b"C").await.unwrap();
        w.commit().await.unwrap();
        shared_bucket(&d, &root, &[("/f", &b"C"[..])]).await;
        d.delete("/f").await.unwrap();
        shared_bucket(&d, &root, &[]).await;
    }
}

/// `action` on the next PUT of `/f`'s content and the next GET of a tail: the two
/// requests of a `put_content` of `/f`.
fn on_both_put_content_requests(server: &RunningServer, action: FaultAction) {
    for (method, pattern) in [("PUT", "/f"), ("GET", "/~tails/")] {
        server.faults().inject(FaultRule {
            method: Some(method.into()),
            path_pattern: pattern.into(),
            count: 1,
            action: action.clone(),
        });
    }
}

/// `put_content` sends the content and looks for the path's tail at once: with each of
/// the two requests held back by the server for 1.5 s, the call takes about 1.5 s, not 3.
/// The tail it finds (a closed upload's) is released all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_content_looks_for_the_tail_while_the_content_goes_up() {
    let server = start_server(|_| {});
    let root = unique_root("put_pair");
    let d = driver_on(&server, &root, &[]).await;
    close_upload(&d, "/f", b"AAA").await;
    on_both_put_content_requests(&server, FaultAction::Delay(DELAY));
    let t = std::time::Instant::now();
    d.put_content("/f", &b"BBB"[..]).await.unwrap();
    let took = t.elapsed();
    assert_eq!(
        server.faults().remaining(),
        0,
        "both requests were held back"
    );
    assert!(
        took < DELAY * 2 - Duration::from_millis(300),
        "put_content took {took:?}: its two requests went one after the other"
    );
    assert_bucket(&server.endpoint(), &d, &root, &[("/f", &b"BBB"[..])]).await;
}

/// Both requests of `put_content` fail at once (each fault kind): each is retried on its
/// own, the content is stored and the closed upload's tail released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_content_retries_each_of_its_two_requests() {
    for kind in [
        Kind::Err500,
        Kind::SlowDown,
        Kind::Drop,
        Kind::Lost,
        Kind::Delay,
    ] {
        let server = start_server(|_| {});
        let root = unique_root("put_pair_faults");
        let d = driver_on(&server, &root, &kind.params()).await;
        close_upload(&d, "/f", b"AAA").await;
        on_both_put_content_requests(&server, kind.action());
        d.put_content("/f", &b"BBB"[..])
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(server.faults().remaining(), 0, "{kind:?}: both faults met");
        assert_path_not_found(d.writer("/f", true).await, "append after put_content");
        assert_bucket(&server.endpoint(), &d, &root, &[("/f", &b"BBB"[..])]).await;
    }
}

/// `put_content_writerless` (`fast-path`, for paths no writer is ever opened at) is the
/// content's PUT alone: one request where `put_content` sends two (the content and the
/// probe for a closed writer's tail). It stores what `put_content` stores, and a failure
/// of its one request is retried like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_content_writerless_is_the_content_alone() {
    let server = start_server(|_| {});
    let root = unique_root("writerless");
    let d = driver_on(&server, &root, &Kind::Err500.params()).await;
    // A warm instance first: the counts below are the operations' own.
    d.put_content("/warm", &b"w"[..]).await.unwrap();

    let before = server.request_count();
    d.put_content("/a", &b"AAA"[..]).await.unwrap();
    assert_eq!(
        server.request_count() - before,
        2,
        "put_content: the content and the tail probe"
    );
    let (before, tail_reads) = (
        server.request_count(),
        server.requests_matching("GET", "~tails"),
    );
    d.put_content_writerless("/b", &b"BBB"[..]).await.unwrap();
    assert_eq!(server.request_count() - before, 1, "the content alone");
    assert_eq!(
        server.requests_matching("GET", "~tails"),
        tail_reads,
        "no tail was looked for"
    );

    server.faults().inject(FaultRule {
        method: Some("PUT".into()),
        path_pattern: "/c".into(),
        count: 1,
        action: Kind::Err500.action(),
    });
    d.put_content_writerless("/c", &b"CCC"[..]).await.unwrap();
    assert_eq!(
        server.faults().remaining(),
        0,
        "the failure was met and retried"
    );
    assert_bucket(
        &server.endpoint(),
        &d,
        &root,
        &[
            ("/a", &b"AAA"[..]),
            ("/b", &b"BBB"[..]),
            ("/c", &b"CCC"[..]),
            ("/warm", &b"w"[..]),
        ],
    )
    .await;
}

/// `delete` takes the path's own closed upload and those under it (their tails are found
/// by one listing by the path's tail key), and leaves a sibling's (`/d-2`, whose tail that
/// listing also returns): it resumes whole afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_takes_the_closed_uploads_at_and_under_the_path_not_a_siblings() {
    let server = start_server(|_| {});
    let root = unique_root("delete_tails");
    let d = driver_on(&server, &root, &[]).await;
    d.put_content("/d", &b"file"[..]).await.unwrap();
    close_upload(&d, "/d", b"at").await;
    close_upload(&d, "/d/e", upload_data()).await;
    close_upload(&d, "/d-2", b"sibling").await;
    d.put_content("/d/f", &b"under"[..]).await.unwrap();
    d.delete("/d").await.unwrap();
    let mut w = d.writer("/d-2", true).await.expect("the sibling's upload");
    assert_eq!(w.size(), 7);
    w.commit().await.unwrap();
    assert_path_not_found(d.writer("/d", true).await, "append at the deleted path");
    assert_path_not_found(
        d.writer("/d/e", true).await,
        "append under the deleted path",
    );
    assert_bucket(&server.endpoint(), &d, &root, &[("/d-2", &b"sibling"[..])]).await;
}

/// A recursive delete is three listings in one round trip (the uploads, the tails, the
/// keys at and under the path), then at most one request: the multi-object delete of
/// what was found, a lone object's own DELETE, or nothing for a path that does not exist
/// (the listing, not a DELETE's answer, tells whether it did).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_is_three_listings_and_one_delete() {
    let server = start_server(|_| {});
    let root = unique_root("delete_count");
    let d = driver_on(&server, &root, &[]).await;
    for p in ["/d", "/d/a", "/d/b", "/f"] {
        d.put_content(p, &b"x"[..]).await.unwrap();
    }
    for (p, exists) in [("/d", true), ("/f", true), ("/nope", false)] {
        let (before, deletes, batches) = (
            server.request_count(),
            server.requests_matching("DELETE", ""),
            server.requests_matching("POST", "?delete"),
        );
        let r = d.delete(p).await;
        if exists {
            r.unwrap_or_else(|e| panic!("delete({p}): {e}"));
        } else {
            assert_path_not_found(r, "delete of nothing");
        }
        let batched = server.requests_matching("POST", "?delete") - batches;
        let deleted = server.requests_matching("DELETE", "") - deletes;
        let (want_batched, want_deleted) = match p {
            "/d" => (1, 0),
            "/f" => (0, 1),
            _ => (0, 0),
        };
        assert_eq!(
            server.request_count() - before,
            3 + want_batched + want_deleted,
            "delete({p})"
        );
        assert_eq!(
            (batched, deleted),
            (want_batched, want_deleted),
            "delete({p})"
        );
    }
    assert_bucket(&server.endpoint(), &d, &root, &[]).await;
}

/// A multipart copy (a large `mv`) whose Complete answer carries the whole object's
/// CRC-64, equal to the source's, is proven by it: no HEAD of the copy follows (the one
/// HEAD is the source's). When that answer is lost and the completion is recognised
/// afterwards, nothing vouches for the copy but a HEAD, which is then made, and the
/// content is the source's either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_copy_confirmed_by_its_complete_needs_no_head() {
    let server = start_server(|_| {});
    let root = unique_root("copy_confirmed");
    let d = driver_on(
        &server,
        &root,
        &[
            ("maxretries", "2"),
            ("multipartcopythresholdsize", "5242880"),
            ("multipartcopychunksize", "5242880"),
        ],
    )
    .await;
    let data = upload_data();
    for (src, dst, lose_complete) in [("/a", "/b", false), ("/b", "/c", true)] {
        if src == "/a" {
            let mut w = d.writer(src, false).await.unwrap();
            w.write(data).await.unwrap();
            w.commit().await.unwrap();
        }
        if lose_complete {
            server.faults().inject(FaultRule {
                method: Some("POST".into()),
                path_pattern: format!("{dst}?uploadId="),
                count: 1,
                action: FaultAction::LoseResponse,
            });
        }
        let heads = server.requests_matching("HEAD", "");
        d.mv(src, dst).await.unwrap();
        assert_eq!(server.faults().remaining(), 0);
        let made = server.requests_matching("HEAD", "") - heads;
        if lose_complete {
            assert!(
                made >= 2,
                "{made} HEADs: the copy is checked after a lost answer"
            );
        } else {
            assert_eq!(made, 1, "only the source's HEAD");
        }
    }
    assert_bucket(&server.endpoint(), &d, &root, &[("/c", data)]).await;
}

/// KS3 starts an upload for every initiate that reaches it, also when the answer is lost
/// and the driver tries again. Nothing names those uploads, so the writer aborts them as
/// soon as an initiate needed a retry: a writer that is only closed (no commit to clean
/// up after it) and then replaced by `put_content` leaves no upload in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_started_by_lost_initiate_answers_are_not_left_behind() {
    let server = start_server(|_| {});
    let root = unique_root("lost_initiates");
    let d = driver_on(&server, &root, &[("maxretries", "2")]).await;
    server.faults().inject(FaultRule {
        method: Some("POST".into()),
        path_pattern: "?uploads".into(),
        count: 2,
        action: FaultAction::LoseResponse,
    });
    close_upload(&d, "/f", upload_data()).await;
    assert_eq!(server.faults().remaining(), 0, "both answers were lost");
    d.put_content("/f", &b"BBB"[..]).await.unwrap();
    assert_bucket(&server.endpoint(), &d, &root, &[("/f", &b"BBB"[..])]).await;
}

/// The clean-up after a retried initiate is best effort: when its upload listing fails
/// too (every attempt), the stray upload stays until the commit, whose own clean-up
/// removes it. The bytes are exactly those written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_clean_up_after_a_lost_initiate_answer_is_finished_by_the_commit() {
    let server = start_server(|_| {});
    let root = unique_root("lost_initiate_listing");
    let d = driver_on(&server, &root, &[("maxretries", "2")]).await;
    // Opened first: `writer(p, false)` lists the uploads itself.
    let mut w = d.writer("/f", false).await.unwrap();
    server.faults().inject(FaultRule {
        method: Some("POST".into()),
        path_pattern: "?uploads".into(),
        count: 1,
        action: FaultAction::LoseResponse,
    });
    server.faults().inject(FaultRule {
        method: Some("GET".into()),
        path_pattern: "?uploads".into(),
        count: 3,
        action: Kind::Err500.action(),
    });
    w.write(upload_data()).await.unwrap();
    assert_eq!(
        server.faults().remaining(),
        0,
        "the answer was lost and every listing attempt failed"
    );
    w.commit().await.unwrap();
    w.close().await.unwrap();
    assert_bucket(&server.endpoint(), &d, &root, &[("/f", upload_data())]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_upload_does_not_come_back_after_delete() {
    for stale in stale_sizes() {
        let root = unique_root("stale_after_delete");
        let d = Driver::new(params(&root)).await.unwrap();
        d.put_content("/f", &b"committed"[..]).await.unwrap();
        close_upload(&d, "/f", stale).await;
        d.delete("/f").await.unwrap();
        assert_path_not_found(d.writer("/f", true).await, "append after delete");
        assert_path_not_found(d.stat("/f").await, "stat after delete");
        shared_bucket(&d, &root, &[]).await;

        // Deleting a parent directory takes the uploads under it too.
        close_upload(&d, "/d/e/f", stale).await;
        d.put_content("/d/g", &b"committed"[..]).await.unwrap();
        d.delete("/d").await.unwrap();
        assert_path_not_found(d.writer("/d/e/f", true).await, "append after delete");
        shared_bucket(&d, &root, &[]).await;
    }
}

/// Uploads are invisible, so a path (or directory) that holds only one does not exist for
/// delete: path-not-found — and the upload is discarded all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_of_only_an_upload_is_not_found_and_discards_it() {
    for stale in stale_sizes() {
        let root = unique_root("delete_only_upload");
        let d = Driver::new(params(&root)).await.unwrap();
        close_upload(&d, "/f", stale).await;
        assert_path_not_found(d.delete("/f").await, "delete of an uncommitted path");
        assert_path_not_found(d.writer("/f", true).await, "append after delete");
        close_upload(&d, "/d/f", stale).await;
        assert_path_not_found(d.delete("/d").await, "delete of a directory of uploads");
        assert_path_not_found(d.writer("/d/f", true).await, "append after delete");
        shared_bucket(&d, &root, &[]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_upload_does_not_come_back_after_move() {
    for stale in stale_sizes() {
        let root = unique_root("stale_after_move");
        let d = Driver::new(params(&root)).await.unwrap();
        // At the source.
        d.put_content("/src", &b"moved"[..]).await.unwrap();
        close_upload(&d, "/src", stale).await;
        d.mv("/src", "/dst").await.unwrap();
        assert_path_not_found(d.writer("/src", true).await, "append at a moved source");
        shared_bucket(&d, &root, &[("/dst", &b"moved"[..])]).await;
        d.delete("/dst").await.unwrap();

        // At the destination.
        d.put_content("/src", &b"moved"[..]).await.unwrap();
        close_upload(&d, "/dst", stale).await;
        d.mv("/src", "/dst").await.unwrap();
        assert_path_not_found(d.writer("/dst", true).await, "append at a destination");
        shared_bucket(&d, &root, &[("/dst", &b"moved"[..])]).await;

        // An empty object moved over a stale upload: the append starts from it, empty.
        d.put_content("/src", &b""[..]).await.unwrap();
        close_upload(&d, "/dst", stale).await;
        d.mv("/src", "/dst").await.unwrap();
        let mut w = d.writer("/dst", true).await.expect("append to empty");
        assert_eq!(w.size(), 0, "the stale upload at the destination came back");
        w.cancel().await.unwrap();
        shared_bucket(&d, &root, &[("/dst", &b""[..])]).await;
        d.delete("/dst").await.unwrap();
        shared_bucket(&d, &root, &[]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_to_committed_non_empty_content_is_path_not_found() {
    let root = unique_root("append_committed");
    let d = Driver::new(params(&root)).await.unwrap();
    assert_path_not_found(d.writer("/f", true).await, "append to nothing");
    d.put_content("/f", &b"X"[..]).await.unwrap();
    assert_path_not_found(d.writer("/f", true).await, "append to a put object");
    let big = &random_bytes()[..12 * MIB];
    let mut w = d.writer("/f", false).await.unwrap();
    w.write(big).await.unwrap();
    w.commit().await.unwrap();
    assert_path_not_found(d.writer("/f", true).await, "append to a committed upload");
    shared_bucket(&d, &root, &[("/f", big)]).await;
    // An empty committed object is the one exception (distribution's rule).
    d.put_content("/f", &b""[..]).await.unwrap();
    let mut w = d
        .writer("/f", true)
        .await
        .expect("append to an empty object");
    assert_eq!(w.size(), 0);
    w.write(b"tail").await.unwrap();
    w.commit().await.unwrap();
    shared_bucket(&d, &root, &[("/f", &b"tail"[..])]).await;
    d.delete("/f").await.unwrap();
    shared_bucket(&d, &root, &[]).await;
}

/// `writer(p, false)` takes the path from an older writer still open on it: the older
/// one's commit fails (it must neither succeed nor change the object), whether it had
/// uploaded parts already or only buffered bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_open_writer_loses_its_upload() {
    for older_size in [100, 6 * MIB] {
        let root = unique_root("older_writer");
        let d = Driver::new(params(&root)).await.unwrap();
        let mut old = d.writer("/f", false).await.unwrap();
        old.write(&random_bytes()[..older_size]).await.unwrap();
        let mut new = d.writer("/f", false).await.unwrap();
        new.write(b"newer").await.unwrap();
        new.commit().await.unwrap();
        // An older writer that held an upload when the newer one opened has lost it: its
        // commit fails. One that held only buffered bytes had nothing to take away; it may
        // still commit (last commit wins, as in distribution), and then the path is
        // exactly its content — never a mix.
        let more = &random_bytes()[older_size..older_size + CHUNK];
        let wrote = old.write(more).await.is_ok();
        let r = old.commit().await;
        if older_size >= CHUNK {
            assert!(
                r.is_err(),
                "the older writer ({older_size} bytes) committed over the newer one"
            );
        }
        if r.is_ok() {
            assert!(wrote);
            let whole = &random_bytes()[..older_size + CHUNK];
            shared_bucket(&d, &root, &[("/f", whole)]).await;
        } else {
            shared_bucket(&d, &root, &[("/f", &b"newer"[..])]).await;
        }
        d.delete("/f").await.unwrap();
        shared_bucket(&d, &root, &[]).await;
    }
}

/// Uploads in progress are invisible to list, stat and walk alike; the hidden tails never
/// show; a directory holding only uploads does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncommitted_uploads_are_invisible() {
    let root = unique_root("uploads_invisible");
    let d = Driver::new(params(&root)).await.unwrap();
    close_upload(&d, "/d/f", &random_bytes()[..12 * MIB]).await;
    close_upload(&d, "/d/sub/g", b"small").await;
    close_upload(&d, "/top", b"small").await;
    // An open writer with a part uploaded, too.
    let mut open = d.writer("/d/h", false).await.unwrap();
    open.write(&random_bytes()[..6 * MIB]).await.unwrap();

    assert_eq!(d.list("/").await.unwrap(), Vec::<String>::new(), "List(/)");
    for p in ["/d", "/d/sub"] {
        assert_path_not_found(d.list(p).await, &format!("List({p})"));
    }
    for p in ["/d", "/d/f", "/d/sub", "/d/sub/g", "/top", "/d/h"] {
        assert_path_not_found(d.stat(p).await, &format!("Stat({p})"));
    }
    let mut walked = Vec::new();
    d.walk("/", None, |fi| {
        walked.push(fi.path.clone());
        Ok(WalkControl::Continue)
    })
    .await
    .unwrap();
    assert!(walked.is_empty(), "walk shows uploads: {walked:?}");

    // Next to a committed object, only the committed object shows.
    d.put_content("/d/x", &b"x"[..]).await.unwrap();
    assert_eq!(d.list("/").await.unwrap(), vec!["/d".to_string()]);
    assert_eq!(d.list("/d").await.unwrap(), vec!["/d/x".to_string()]);
    assert!(d.stat("/d").await.unwrap().is_dir);
    assert_path_not_found(d.stat("/d/sub").await, "Stat(/d/sub)");
    let mut walked = Vec::new();
    d.walk("/", None, |fi| {
        walked.push((fi.path.clone(), fi.is_dir));
        Ok(WalkControl::Continue)
    })
    .await
    .unwrap();
    assert_eq!(
        walked,
        vec![("/d".to_string(), true), ("/d/x".to_string(), false)]
    );
    open.cancel().await.unwrap();
    d.delete("/d").await.unwrap();
    assert_path_not_found(d.delete("/top").await, "only an upload at /top");
    shared_bucket(&d, &root, &[]).await;
}

// ---------------------------------------------------------------------------------------
// FileWriter::size() is the number of bytes written, whenever it is asked.

async fn check_sizes(d: &Driver, p: &str, first: &[u8], second: &[u8]) {
    let n1 = first.len() as u64;
    let n2 = n1 + second.len() as u64;
    let mut w = d.writer(p, false).await.unwrap();
    assert_eq!(w.size(), 0);
    w.write(first).await.unwrap();
    assert_eq!(w.size(), n1, "after write");
    w.close().await.unwrap();
    assert_eq!(w.size(), n1, "after close");
    let mut w = d.writer(p, true).await.unwrap();
    assert_eq!(w.size(), n1, "after resume");
    w.write(second).await.unwrap();
    assert_eq!(w.size(), n2, "after a write on the resumed writer");
    w.commit().await.unwrap();
    assert_eq!(w.size(), n2, "after commit");
    w.close().await.expect("close after commit");
    assert_eq!(w.size(), n2, "after close after commit");
    assert_eq!(d.stat(p).await.unwrap().size, n2);
    let got = d.get_content(p).await.unwrap();
    assert!(
        got.len() as u64 == n2 && got[..first.len()] == *first && got[first.len()..] == *second
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_after_close_commit_and_resume_is_the_bytes_written() {
    let root = unique_root("writer_sizes");
    let d = Driver::new(params(&root)).await.unwrap();
    check_sizes(&d, "/small", b"hello", b", world").await;
    check_sizes(
        &d,
        "/big",
        &random_bytes()[..12 * MIB + 7],
        &random_bytes()[20 * MIB..23 * MIB + 1],
    )
    .await;
    check_sizes(&d, "/empty", b"", b"").await;
    for p in ["/small", "/big", "/empty"] {
        d.delete(p).await.unwrap();
    }
    shared_bucket(&d, &root, &[]).await;
}

/// After close, commit or cancel a writer takes no more bytes: `invalid-state`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_after_close_commit_or_cancel_is_invalid_state() {
    let root = unique_root("write_after_finish");
    let d = Driver::new(params(&root)).await.unwrap();
    for finish in ["close", "commit", "cancel"] {
        let mut w = d.writer("/f", false).await.unwrap();
        w.write(b"abc").await.unwrap();
        match finish {
            "close" => w.close().await.unwrap(),
            "commit" => w.commit().await.unwrap(),
            _ => w.cancel().await.unwrap(),
        }
        match w.write(b"more").await {
            Err(Error::Driver(DriverError::InvalidState(_))) => {}
            other => panic!("write after {finish}: expected invalid-state, got {other:?}"),
        }
        if finish != "cancel" {
            assert_eq!(w.size(), 3, "size after {finish} and a refused write");
        }
        // Leave the path empty for the next round.
        let mut w = d.writer("/f", false).await.unwrap();
        w.cancel().await.unwrap();
        let _ = d.delete("/f").await;
    }
    shared_bucket(&d, &root, &[]).await;
}

/// Issue 15: parts go concurrently. A part the server holds back does not hold back the
/// writer: with four parts in flight, the writes that start parts 2 to 4 return while
/// part 1 is still held; one part at a time, they wait for it. Either way the object is
/// exactly the bytes written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_in_flight_do_not_wait_for_each_other() {
    const HOLD: Duration = Duration::from_millis(2500);
    let data = &random_bytes()[..4 * CHUNK + 123];
    for (concurrency, overlaps) in [("4", true), ("1", false)] {
        let server = start_server(|_| {});
        let root = unique_root(&format!("parts_in_flight_{concurrency}"));
        let mut p = params_on(&server.endpoint(), &root);
        p.insert("uploadconcurrency".into(), concurrency.into());
        let d = Driver::new(p).await.expect("driver");
        server.faults().inject(FaultRule {
            method: Some("PUT".into()),
            path_pattern: "partNumber=1&".into(),
            count: 1,
            action: FaultAction::Delay(HOLD),
        });
        let mut w = d.writer("/f", false).await.expect("writer");
        let t = std::time::Instant::now();
        // Three whole chunks: parts 1 to 3 start.
        w.write(&data[..3 * CHUNK]).await.expect("write");
        let took = t.elapsed();
        assert_eq!(server.faults().remaining(), 0, "part 1 was never held");
        if overlaps {
            assert!(
                took < HOLD,
                "uploadconcurrency={concurrency}: the writes waited {took:?} for the held part"
            );
        } else {
            assert!(
                took >= HOLD,
                "uploadconcurrency={concurrency}: parts overlapped ({took:?})"
            );
        }
        w.write(&data[3 * CHUNK..]).await.expect("write the rest");
        w.commit().await.expect("commit");
        assert_eq!(w.size(), data.len() as u64);
        assert_bucket(&server.endpoint(), &d, &root, &[("/f", data)]).await;
        d.delete("/f").await.expect("delete");
    }
}

/// A part that keeps failing while others are in flight: a write may already meet the
/// failure (it takes its bytes all the same), and a commit, which waits for every part,
/// must report it. Nothing is lost: the writer keeps the part's bytes, a later write
/// sends it again first (and takes nothing while it still fails), and once the server
/// recovers the commit makes exactly the bytes written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_part_among_parts_in_flight_is_reported_and_sent_again() {
    let server = start_server(|_| {});
    let root = unique_root("failed_part_in_flight");
    let mut p = params_on(&server.endpoint(), &root);
    p.insert("maxretries".into(), "1".into());
    let d = Driver::new(p).await.expect("driver");
    let data = &random_bytes()[..4 * CHUNK + 77];
    server.faults().inject(FaultRule {
        method: Some("PUT".into()),
        path_pattern: "partNumber=2&".into(),
        count: 1000,
        action: FaultAction::Error {
            status: 500,
            code: "InternalError".into(),
        },
    });
    let mut w = d.writer("/f", false).await.expect("writer");
    let mut written = 0;
    for piece in data.chunks(MIB) {
        let r = w.write(piece).await;
        // Taken either way.
        written += piece.len();
        if let Err(e) = r {
            assert!(e.to_string().contains("InternalError"), "{e}");
            break;
        }
    }
    assert_eq!(w.size(), written as u64);
    match w.commit().await {
        Err(e) => assert!(e.to_string().contains("InternalError"), "{e}"),
        Ok(()) => panic!("commit succeeded with a part that always fails"),
    }
    match w.write(b"x").await {
        Err(e) => assert!(e.to_string().contains("InternalError"), "{e}"),
        Ok(()) => panic!("a write went on past a part that always fails"),
    }
    assert_eq!(w.size(), written as u64, "a refused write takes nothing");
    server.faults().clear();
    w.write(&data[written..]).await.expect("write the rest");
    w.commit().await.expect("commit once the server recovers");
    assert_eq!(w.size(), data.len() as u64);
    assert_bucket(&server.endpoint(), &d, &root, &[("/f", data)]).await;
    d.delete("/f").await.expect("delete");
}
