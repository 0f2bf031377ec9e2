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
//! that opened it); only the hand-over to it and the answer back cross threads.
//!
//! Where a call goes. On Linux, when there is one executor per CPU the process may run
//! on, each is pinned to its CPU, and a call goes to the executor of the CPU its caller
//! runs on if that one has nothing in hand: the caller then waits, and the hand-over and
//! the answer are a switch between two threads on one core. Waking a thread on another,
//! idle core costs far more: on the 2-core VMs this project is measured on, a round trip
//! to an executor took 1.8 µs on the caller's core and 40–60 µs across cores (a wake-up
//! of an idle virtual CPU is a trip through the hypervisor). Otherwise, or when that
//! executor is busy, the call goes to the executor with the fewest calls in hand, so
//! concurrent calls spread over the cores.
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

use crate::error::{Error, SandboxKind};

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
    /// The CPU the thread is pinned to, if it is.
    cpu: Option<usize>,
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
        // Pinned only with one executor per allowed CPU: with fewer (a CPU quota below
        // the CPUs the process may use, or more CPUs than `MAX_THREADS`), callers mostly
        // run on CPUs no executor is on, and the scheduler places threads better.
        let cpus = affinity::allowed_cpus().filter(|c| c.len() == n);
        let started = (0..n)
            .map(|i| start(i, cpus.as_ref().map(|c| c[i])))
            .collect::<Result<Vec<_>, _>>()?;
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
        let Some(ex) = pick(&threads) else {
            return Err(Error::sandbox(
                SandboxKind::Start,
                "no driver executor thread",
            ));
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
            Err(_) => Err(Error::sandbox(
                SandboxKind::Broken,
                "the driver's executor stopped during the call",
            )),
        }
    }
}

/// The executor for a call: the idle one pinned to the caller's CPU, else the one with
/// the fewest calls in hand (the first of equals, so that calls one at a time stay on one
/// thread with the connections they opened).
fn pick(threads: &[Executor]) -> Option<&Executor> {
    if let Some(cpu) = affinity::current_cpu() {
        let here = threads
            .iter()
            .find(|e| e.cpu == Some(cpu) && e.busy.load(Ordering::Relaxed) == 0);
        if here.is_some() {
            return here;
        }
    }
    threads
        .iter()
        .min_by_key(|e| e.busy.load(Ordering::Relaxed))
}

/// Starts executor thread `i`, pinned to `cpu` if given.
fn start(i: usize, cpu: Option<usize>) -> Result<Executor, Error> {
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(format!("ks3-driver-{i}"))
        .spawn(move || {
            CURRENT.with(|c| c.set(Some(i)));
            // A refused pin (a cpuset changed since it was read) leaves the thread
            // unpinned: the calls run all the same, the hand-over costs more.
            let cpu = cpu.filter(|&c| affinity::pin_current_thread(c));
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
            let _ = handle_tx.send(Ok((rt.handle().clone(), cpu)));
            // Until the pool is dropped; the runtime's drop then cancels its tasks.
            rt.block_on(async move {
                let _ = stopped.await;
            });
        })
        .map_err(|e| {
            Error::sandbox(
                SandboxKind::Start,
                format!("cannot start a driver thread: {e}"),
            )
        })?;
    let (handle, cpu) = handle_rx
        .recv()
        .map_err(|_| Error::sandbox(SandboxKind::Start, "a driver thread ended at start"))?
        .map_err(|e| {
            Error::sandbox(
                SandboxKind::Start,
                format!("cannot start a driver thread's runtime: {e}"),
            )
        })?;
    Ok(Executor {
        handle,
        busy: Arc::new(AtomicUsize::new(0)),
        cpu,
        _stop: stop,
    })
}

/// The CPUs of this process and of the calling thread (Linux; elsewhere nothing is
/// pinned and every call goes to the least busy executor).
mod affinity {
    /// The CPUs the process may run on, in order, if they can be read.
    #[cfg(target_os = "linux")]
    pub(super) fn allowed_cpus() -> Option<Vec<usize>> {
        // SAFETY: `set` is a plain bitmask the kernel fills; its size is passed along.
        let set = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return None;
            }
            set
        };
        let n = usize::try_from(libc::CPU_SETSIZE).ok()?;
        // SAFETY: reads bits of an initialised set, each index below CPU_SETSIZE.
        Some(
            (0..n)
                .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
                .collect(),
        )
    }

    /// Pins the calling thread to `cpu`: whether that was done.
    #[cfg(target_os = "linux")]
    pub(super) fn pin_current_thread(cpu: usize) -> bool {
        // SAFETY: as in `allowed_cpus`; `cpu` came from the allowed set (< CPU_SETSIZE).
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
        }
    }

    /// The CPU the calling thread runs on (it may move right after).
    #[cfg(target_os = "linux")]
    pub(super) fn current_cpu() -> Option<usize> {
        // SAFETY: no arguments; -1 on failure.
        usize::try_from(unsafe { libc::sched_getcpu() }).ok()
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn allowed_cpus() -> Option<Vec<usize>> {
        None
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn pin_current_thread(_cpu: usize) -> bool {
        false
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn current_cpu() -> Option<usize> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call from a thread on CPU `cpu`: the CPU it ran on and its executor's pin.
    fn call_from(executors: &Arc<Executors>, cpu: usize) -> (Option<usize>, Option<usize>) {
        let executors = Arc::clone(executors);
        std::thread::spawn(move || {
            assert!(
                affinity::pin_current_thread(cpu),
                "cannot pin the test thread"
            );
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let ran_on = rt
                .block_on(executors.run(async { Ok(affinity::current_cpu()) }))
                .unwrap();
            let threads = executors.threads().unwrap();
            let pins = threads.iter().map(|e| e.cpu).collect::<Vec<_>>();
            (ran_on, pins.into_iter().find(|p| *p == ran_on).flatten())
        })
        .join()
        .unwrap()
    }

    #[test]
    fn a_call_runs_on_its_callers_cpu_when_every_cpu_has_an_executor() {
        let executors = Arc::new(Executors::new());
        let threads = executors.threads().unwrap();
        let allowed = affinity::allowed_cpus();
        let pinned: Vec<Option<usize>> = threads.iter().map(|e| e.cpu).collect();
        match allowed.filter(|c| c.len() == threads.len()) {
            Some(cpus) => {
                assert_eq!(pinned, cpus.iter().copied().map(Some).collect::<Vec<_>>());
                // From each CPU in turn, the call runs on that CPU's executor.
                for &cpu in &cpus {
                    let (ran_on, pin) = call_from(&executors, cpu);
                    assert_eq!(ran_on, Some(cpu), "a call from CPU {cpu}");
                    assert_eq!(pin, Some(cpu));
                }
            }
            // Fewer executors than allowed CPUs (or not Linux): none is pinned.
            None => assert!(pinned.iter().all(Option::is_none), "{pinned:?}"),
        }
    }
}
