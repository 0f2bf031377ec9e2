//! Running the embedded precompiled component where it lies in the binary.
//!
//! `Component::deserialize` copies the 2 MB artifact into fresh anonymous memory before
//! making its code executable. In a short process (one `ks3-driver stat`) that copy was
//! the largest part of the start-up that native code does not pay: over 500 page faults
//! of zero-filled memory and the copy itself (`perf stat`: 1 263 page faults against
//! 530 for the same command run natively).
//!
//! Here the artifact is embedded page-aligned, and the process's first runtime hands it
//! to `Component::deserialize_raw`: wasmtime uses the bytes in place, and the only change
//! is making the artifact's `.text` pages executable (`mprotect`, through the engine's
//! [`wasmtime::CustomCodeMemory`] hook). Pages are then faulted in from the binary's file
//! mapping as the code runs, a few at a time.
//!
//! wasmtime registers each loaded image's code range process-wide and refuses the same
//! range twice, so only one runtime per process can run the artifact in place: the first
//! one to ask ([`claim`]) keeps it for the life of the process; any other runtime (tests
//! make many) copies it as before. Only on x86-64 Linux, where `mprotect` is all that
//! executable code needs (no instruction-cache maintenance, no branch-protection flag).
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The bytes, aligned for `mprotect` on any page size up to 64 KiB.
#[repr(C, align(65536))]
struct PageAligned<B: ?Sized>(B);

static ALIGNED_ARTIFACT: &PageAligned<[u8]> = &PageAligned(*include_bytes!(concat!(
    env!("OUT_DIR"),
    "/ks3-driver-component.cwasm"
)));

/// The precompiled component as embedded (see `runtime::EMBEDDED_ARTIFACT`).
pub(crate) static ARTIFACT: &[u8] = &ALIGNED_ARTIFACT.0;

/// Whether this platform can run code in place (see the module's documentation).
pub(crate) const SUPPORTED: bool = cfg!(all(target_os = "linux", target_arch = "x86_64"));

static CLAIMED: AtomicBool = AtomicBool::new(false);

/// The artifact's memory for `Component::deserialize_raw`, for the first caller in the
/// process whose `artifact` is the embedded one (and where that is supported and the
/// bytes are page-aligned); `None` otherwise: copy it.
pub(crate) fn claim(artifact: &[u8]) -> Option<NonNull<[u8]>> {
    if !SUPPORTED || artifact.is_empty() || !std::ptr::eq(artifact, ARTIFACT) {
        return None;
    }
    if !(artifact.as_ptr() as usize).is_multiple_of(page_size()) {
        return None;
    }
    if CLAIMED.swap(true, Ordering::SeqCst) {
        return None;
    }
    Some(NonNull::from(artifact))
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|n| *n > 0).unwrap_or(4096)
}

/// wasmtime's code publishing by `mprotect`, as its default does on x86-64 Linux, but
/// also for memory wasmtime did not map itself (the artifact in the binary).
struct MprotectCode {
    page: usize,
}

/// The hook the runtime's engine uses, where supported.
pub(crate) fn code_memory() -> Option<Arc<dyn wasmtime::CustomCodeMemory>> {
    SUPPORTED.then(|| Arc::new(MprotectCode { page: page_size() }) as _)
}

fn protect(ptr: *const u8, len: usize, prot: libc::c_int) -> wasmtime::Result<()> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: wasmtime passes a page-aligned range of code memory it owns or was given
    // (`deserialize_raw`), which stays mapped while the code is loaded.
    let r = unsafe { libc::mprotect(ptr as *mut libc::c_void, len, prot) };
    if r == 0 {
        Ok(())
    } else {
        Err(wasmtime::Error::msg(format!(
            "mprotect of compiled code: {}",
            std::io::Error::last_os_error()
        )))
    }
}

impl wasmtime::CustomCodeMemory for MprotectCode {
    fn required_alignment(&self) -> usize {
        self.page
    }

    fn publish_executable(&self, ptr: *const u8, len: usize) -> wasmtime::Result<()> {
        protect(ptr, len, libc::PROT_READ | libc::PROT_EXEC)
    }

    fn unpublish_executable(&self, ptr: *const u8, len: usize) -> wasmtime::Result<()> {
        protect(ptr, len, libc::PROT_READ | libc::PROT_WRITE)
    }
}
