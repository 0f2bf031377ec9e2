//! Where the stateless driver calls run: a few threads of the runtime's own, each a
//! single-threaded tokio runtime.
//!
//! Why: one guest call that sends a request makes wasmtime-wasi-http spawn two tasks, and
//! hyper's connection task and the store's own task pass the request and its answer
//! between them. On the caller's multi-threaded tokio runtime those hops wake the other
//! workers, and every wake is a futex round trip on another core. On a two-core machine
//! those wake-ups were some 40 % of a `stat` (p50 ≈ 200 µs, against ≈ 120 µs when the
//! same call ran on one thread). On an executor the store's
//! task, the spawned request tasks and the connection tasks run on one thread (egress
//! keeps a connection pool per executor, since a connection's task runs on the runtime
//! that opened it); only the hand-over to it and the answer back cross threads. Calls go
//! to the executor with the fewest in hand, so concurrent calls spread over the cores.
//!
//! Readers, writers and walkers keep their instance on the caller's runtime: their calls
//! are long (parts in flight, streams the host reads) and run among the caller's own work.
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::oneshot;
use tracing::Instrument;

use crate::error::Error;

/// The most executor threads a runtime starts (one per core up to this).
pub(crate) const MAX_THREADS: usize = 16;

thread_local! {
    /// The index of the executor this thread is, if it is one.
    static CURRENT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// The index of the executor thread this code runs on, if it runs on one (egress keeps a
/// connection pool per executor).
pub(crate) fn current() -> Option<usize> {
    CURRENT.with(|c| c.get())
}

/// One executor thread: its runtime's handle and how many calls it has in hand.
struct Executor {
    handle: tokio::runtime::Handle,
    busy: Arc<AtomicUsize>,
    /// Dropped with the pool: the thread's runtime then stops (and cancels what it ran).
    _stop: oneshot::Sender<()>,
}

/// The executors of one [`crate::Runtime`], started on first use.
pub(crate) struct Executors {
    threads: Mutex<Option<Arc<Vec<Executor>>>>,
}

/// Decrements an executor's count of calls in hand when the call ends or is dropped.
struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Aborts the executor's task when the caller stops waiting (a dropped future cancels
/// the call, as it would on the caller's runtime).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl Executors {
    pub(crate) fn new() -> Self {
        Executors {
            threads: Mutex::new(None),
        }
    }

    fn threads(&self) -> Result<Arc<Vec<Executor>>, Error> {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = threads.as_ref() {
            return Ok(Arc::clone(t));
        }
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, MAX_THREADS);
        let started = (0..n).map(start).collect::<Result<Vec<_>, _>>()?;
        let started = Arc::new(started);
        *threads = Some(Arc::clone(&started));
        Ok(started)
    }

    /// Runs `call` on the executor with the fewest calls in hand (the first of equals,
    /// so that calls one at a time stay on one thread with the connections they opened),
    /// in the caller's tracing span. A panic in `call` resumes in the caller.
    pub(crate) async fn run<F, T>(&self, call: F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>> + Send + 'static,
        T: Send + 'static,
    {
        let threads = self.threads()?;
        let Some(ex) = threads
            .iter()
            .min_by_key(|e| e.busy.load(Ordering::Relaxed))
        else {
            return Err(Error::Runtime("no driver executor thread".into()));
        };
        ex.busy.fetch_add(1, Ordering::Relaxed);
        let busy = Busy(Arc::clone(&ex.busy));
        let span = tracing::Span::current();
        let task = ex.handle.spawn(
            async move {
                let _busy = busy;
                call.await
            }
            .instrument(span),
        );
        match AbortOnDrop(task).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::Runtime(
                "the driver's executor stopped during the call".into(),
            )),
        }
    }
}

/// Starts executor thread `i`.
fn start(i: usize) -> Result<Executor, Error> {
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(format!("ks3-driver-{i}"))
        .spawn(move || {
            CURRENT.with(|c| c.set(Some(i)));
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = handle_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = handle_tx.send(Ok(rt.handle().clone()));
            // Until the pool is dropped; the runtime's drop then cancels its tasks.
            rt.block_on(async move {
                let _ = stopped.await;
            });
        })
        .map_err(|e| Error::Runtime(format!("cannot start a driver thread: {e}")))?;
    let handle = handle_rx
        .recv()
        .map_err(|_| Error::Runtime("a driver thread ended at start".into()))?
        .map_err(|e| Error::Runtime(format!("cannot start a driver thread's runtime: {e}")))?;
    Ok(Executor {
        handle,
        busy: Arc::new(AtomicUsize::new(0)),
        _stop: stop,
    })
}
