//! The program: `run` takes the container's name as its first argument. It writes, reads
//! (whole and ranged, as a list and as a stream), checks, copies, moves, lists and
//! deletes objects, and leaves [`KEPT_NAME`] and [`BIG_NAME`] for the test to check
//! through the driver; with `bench-write SIZE` or `bench-read SIZE` after the name, it
//! streams one object of SIZE bytes instead (for timing, and under a memory limit). Its
//! outcome is the object [`REPORT_NAME`], written through the same
//! interface, and `run`'s result. It is `no_std` (a bump allocator, no wasi-libc) so that
//! it imports no `wasi:cli` stdio, whose `wasi:io` streams would have to be the host's
//! while the blobstore's are the provider's.
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::{pattern, BIG_LEN, BIG_NAME, BIG_SEED, HELLO, KEPT_NAME, REPORT_NAME};

wit_bindgen::generate!({
    world: "ks3:blobstore-consumer/consumer",
    path: ["../wit/deps/io", "../wit/deps/blobstore", "wit"],
    generate_all,
});

use exports::wasi::cli::run::Guest;
use wasi::blobstore::blobstore;
use wasi::blobstore::container::Container;
use wasi::blobstore::types::{IncomingValue, ObjectId, OutgoingValue};
use wasi::io::streams::StreamError;

/// Memory from `memory.grow`, never given back: the program is short.
struct Bump;

static NEXT: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);
const PAGE: usize = 65536;

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if END.load(Ordering::Relaxed) == 0 {
            let top = core::arch::wasm32::memory_size(0) * PAGE;
            NEXT.store(top, Ordering::Relaxed);
            END.store(top, Ordering::Relaxed);
        }
        let next = NEXT.load(Ordering::Relaxed);
        let end = END.load(Ordering::Relaxed);
        let align = layout.align();
        let Some(start) = next.checked_add(align - 1).map(|n| n & !(align - 1)) else {
            return core::ptr::null_mut();
        };
        let Some(stop) = start.checked_add(layout.size()) else {
            return core::ptr::null_mut();
        };
        if stop > end {
            let pages = (stop - end).div_ceil(PAGE);
            if core::arch::wasm32::memory_grow(0, pages) == usize::MAX {
                return core::ptr::null_mut();
            }
            END.store(end + pages * PAGE, Ordering::Relaxed);
        }
        NEXT.store(stop, Ordering::Relaxed);
        start as *mut u8
    }

    /// Only the last allocation is given back (a read loop's chunk, dropped before the
    /// next read), which keeps a streamed object's memory to one chunk.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let start = ptr as usize;
        if start.checked_add(layout.size()) == Some(NEXT.load(Ordering::Relaxed)) {
            NEXT.store(start, Ordering::Relaxed);
        }
    }
}

#[global_allocator]
static ALLOC: Bump = Bump;

/// Without wasi-libc, the one libc function the program's code calls.
///
/// # Safety
/// `a` and `b` are valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        let (x, y) = (*a.add(i), *b.add(i));
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// The canonical ABI's allocator (wasi-libc provides it to std components).
///
/// # Safety
/// Called by the component model with an `old_ptr` it got from here, or null.
#[no_mangle]
pub unsafe extern "C" fn cabi_realloc(
    old_ptr: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    if new_len == 0 {
        return align as *mut u8;
    }
    let new = match Layout::from_size_align(new_len, align) {
        Ok(layout) => ALLOC.alloc(layout),
        Err(_) => core::ptr::null_mut(),
    };
    if new.is_null() {
        core::arch::wasm32::unreachable();
    }
    if !old_ptr.is_null() {
        core::ptr::copy_nonoverlapping(old_ptr, new, old_len.min(new_len));
    }
    new
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

struct Program;

impl Guest for Program {
    fn run() -> Result<(), ()> {
        // `PROGRAM CONTAINER` runs the checks; `PROGRAM CONTAINER bench-write|bench-read
        // SIZE` streams one object of SIZE bytes (for timing by the caller).
        let args = wasi::cli::environment::get_arguments();
        let container_name = args.get(1).cloned().unwrap_or_default();
        let container = blobstore::get_container(&container_name).map_err(drop)?;
        let outcome = match (args.get(2).map(String::as_str), args.get(3)) {
            (None, _) => run(&container, &container_name),
            (Some(mode), Some(size)) => match size.parse::<u64>() {
                Ok(size) => bench(&container, mode, size),
                Err(_) => Err(format!("bad size `{size}`")),
            },
            (Some(mode), None) => Err(format!("`{mode}` needs a size")),
        };
        let report = match &outcome {
            Ok(()) => "ok".to_string(),
            Err(e) => e.clone(),
        };
        write(&container, REPORT_NAME, report.as_bytes(), Order::NameFirst).map_err(drop)?;
        outcome.map_err(drop)
    }
}

/// The object the bench modes write and read: [`pattern`]'s first MiB, repeated.
const BENCH_NAME: &str = "bench/object.bin";

fn bench(c: &Container, mode: &str, size: u64) -> Result<(), String> {
    let block = pattern(1 << 20, BIG_SEED);
    match mode {
        "bench-write" => {
            let value = OutgoingValue::new_outgoing_value();
            let body = value
                .outgoing_value_write_body()
                .map_err(|()| "outgoing-value-write-body failed".to_string())?;
            c.write_data(BENCH_NAME, &value)
                .map_err(|e| format!("write-data: {e}"))?;
            let mut left = size;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                body.write(&block[..n])
                    .map_err(|e| stream_error(BENCH_NAME, e))?;
                left -= n as u64;
            }
            drop(body);
            OutgoingValue::finish(value).map_err(|e| format!("finish: {e}"))
        }
        "bench-read" => {
            let value = c
                .get_data(BENCH_NAME, 0, u64::MAX)
                .map_err(|e| format!("get-data: {e}"))?;
            check(value.size() == size, || format!("size {}", value.size()))?;
            let stream = IncomingValue::incoming_value_consume_async(value)
                .map_err(|e| format!("consume-async: {e}"))?;
            let mut pos = 0u64;
            loop {
                match stream.blocking_read(1 << 20) {
                    Ok(chunk) => {
                        for (i, b) in chunk.iter().enumerate() {
                            let at = (pos + i as u64) % block.len() as u64;
                            if block[at as usize] != *b {
                                return Err(format!("byte {} differs", pos + i as u64));
                            }
                        }
                        pos += chunk.len() as u64;
                    }
                    Err(StreamError::Closed) => break,
                    Err(e) => return Err(stream_error(BENCH_NAME, e)),
                }
            }
            check(pos == size, || format!("read {pos} of {size} bytes"))
        }
        other => Err(format!("unknown mode `{other}`")),
    }
}

export!(Program);

fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

#[derive(Clone, Copy)]
enum Order {
    /// write-body, write-data, the bytes, finish (wasmCloud's fixture).
    NameFirst,
    /// write-body, the bytes, write-data, finish (wasmCloud's runtime).
    BodyFirst,
}

fn write(c: &Container, name: &str, data: &[u8], order: Order) -> Result<(), String> {
    let value = OutgoingValue::new_outgoing_value();
    let body = value
        .outgoing_value_write_body()
        .map_err(|()| format!("{name}: outgoing-value-write-body failed"))?;
    if let Order::NameFirst = order {
        c.write_data(name, &value)
            .map_err(|e| format!("{name}: write-data: {e}"))?;
    }
    let mut rest = data;
    while !rest.is_empty() {
        let budget = body.check_write().map_err(|e| stream_error(name, e))?;
        let n = usize::try_from(budget)
            .unwrap_or(usize::MAX)
            .min(rest.len())
            .max(1);
        let (chunk, tail) = rest.split_at(n);
        body.write(chunk).map_err(|e| stream_error(name, e))?;
        rest = tail;
    }
    body.flush().map_err(|e| stream_error(name, e))?;
    drop(body);
    if let Order::BodyFirst = order {
        c.write_data(name, &value)
            .map_err(|e| format!("{name}: write-data: {e}"))?;
    }
    OutgoingValue::finish(value).map_err(|e| format!("{name}: finish: {e}"))
}

fn stream_error(name: &str, e: StreamError) -> String {
    match e {
        StreamError::Closed => format!("{name}: stream closed"),
        StreamError::LastOperationFailed(e) => format!("{name}: {}", e.to_debug_string()),
    }
}

fn read_sync(c: &Container, name: &str, start: u64, end: u64) -> Result<Vec<u8>, String> {
    let value = c
        .get_data(name, start, end)
        .map_err(|e| format!("{name}: get-data({start}, {end}): {e}"))?;
    IncomingValue::incoming_value_consume_sync(value)
        .map_err(|e| format!("{name}: consume-sync: {e}"))
}

fn read_async(c: &Container, name: &str, start: u64, end: u64) -> Result<Vec<u8>, String> {
    let value = c
        .get_data(name, start, end)
        .map_err(|e| format!("{name}: get-data({start}, {end}): {e}"))?;
    let size = value.size();
    let stream = IncomingValue::incoming_value_consume_async(value)
        .map_err(|e| format!("{name}: consume-async: {e}"))?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(1 << 20) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(e) => return Err(stream_error(name, e)),
        }
    }
    check(out.len() as u64 == size, || {
        format!("{name}: size() said {size}, the stream gave {}", out.len())
    })?;
    Ok(out)
}

fn list(c: &Container) -> Result<Vec<String>, String> {
    let names = c.list_objects().map_err(|e| format!("list-objects: {e}"))?;
    let mut all = Vec::new();
    loop {
        // Small pages, to page for real.
        let (page, end) = names
            .read_stream_object_names(2)
            .map_err(|e| format!("read-stream-object-names: {e}"))?;
        all.extend(page);
        if end {
            return Ok(all);
        }
    }
}

fn run(c: &Container, container_name: &str) -> Result<(), String> {
    // Containers: the one that exists, one that does not, and what cannot be done.
    check(c.name().ok().as_deref() == Some(container_name), || {
        "container name".into()
    })?;
    check(
        blobstore::container_exists(container_name) == Ok(true),
        || "container-exists".into(),
    )?;
    check(
        blobstore::container_exists("no-such-container") == Ok(false),
        || "container-exists of a missing container".into(),
    )?;
    check(
        blobstore::get_container("no-such-container").is_err(),
        || "get-container of a missing container".into(),
    )?;
    check(blobstore::create_container("another").is_err(), || {
        "create-container".into()
    })?;

    // Writes, in both orders.
    write(c, "hello/world.txt", HELLO, Order::BodyFirst)?;
    write(c, KEPT_NAME, HELLO, Order::NameFirst)?;
    let big = pattern(BIG_LEN, BIG_SEED);
    write(c, BIG_NAME, &big, Order::BodyFirst)?;
    check(
        write(c, "bad name", HELLO, Order::NameFirst).is_err(),
        || "a name the provider refuses was accepted".into(),
    )?;

    // Existence and metadata.
    check(c.has_object("hello/world.txt") == Ok(true), || {
        "has-object hello/world.txt".into()
    })?;
    check(c.has_object("hello") == Ok(false), || {
        "has-object of a prefix".into()
    })?;
    check(c.has_object("missing.txt") == Ok(false), || {
        "has-object missing.txt".into()
    })?;
    let info = c
        .object_info("big/12m.bin")
        .map_err(|e| format!("object-info: {e}"))?;
    check(
        info.size == BIG_LEN as u64
            && info.name == "big/12m.bin"
            && info.container == container_name,
        || format!("object-info: {info:?}"),
    )?;
    check(c.object_info("missing.txt").is_err(), || {
        "object-info of a missing object".into()
    })?;

    // Reads: whole, ranged (inclusive), past the end, as a list and as a stream.
    check(
        read_sync(c, "hello/world.txt", 0, u64::MAX)? == HELLO,
        || "whole read".into(),
    )?;
    check(read_sync(c, "hello/world.txt", 7, 10)? == b"blob", || {
        "ranged read 7..=10".into()
    })?;
    check(read_sync(c, "hello/world.txt", 15, 15)? == b"e", || {
        "one-byte read".into()
    })?;
    check(
        read_sync(c, "hello/world.txt", 7, 1000)? == HELLO[7..],
        || "read past the end".into(),
    )?;
    check(c.get_data("hello/world.txt", 16, 20).is_err(), || {
        "start past the end".into()
    })?;
    check(c.get_data("hello/world.txt", 5, 4).is_err(), || {
        "start after end".into()
    })?;
    check(c.get_data("missing.txt", 0, u64::MAX).is_err(), || {
        "get-data of a missing object".into()
    })?;
    check(read_async(c, "big/12m.bin", 0, u64::MAX)? == big, || {
        "12 MiB stream read".into()
    })?;
    let (s, e) = (3_000_001usize, 9_500_000usize);
    check(
        read_async(c, "big/12m.bin", s as u64, e as u64)? == big[s..=e],
        || "ranged 12 MiB stream read".into(),
    )?;

    // Copy and move.
    let id = |object: &str| ObjectId {
        container: container_name.to_string(),
        object: object.to_string(),
    };
    blobstore::copy_object(&id("hello/world.txt"), &id("copies/a.txt"))
        .map_err(|e| format!("copy-object: {e}"))?;
    blobstore::move_object(&id("copies/a.txt"), &id("copies/b.txt"))
        .map_err(|e| format!("move-object: {e}"))?;
    check(read_sync(c, "copies/b.txt", 0, u64::MAX)? == HELLO, || {
        "moved copy".into()
    })?;
    check(c.has_object("copies/a.txt") == Ok(false), || {
        "move left its source".into()
    })?;

    // Listing: every object once, the staging area never.
    let mut names = list(c)?;
    names.sort();
    let want = [
        "big/12m.bin",
        "copies/b.txt",
        "hello/kept.txt",
        "hello/world.txt",
    ];
    check(names == want, || format!("list-objects: {names:?}"))?;
    let skipper = c.list_objects().map_err(|e| format!("list-objects: {e}"))?;
    let skipped = skipper
        .skip_stream_object_names(3)
        .map_err(|e| format!("skip: {e}"))?;
    check(skipped == (3, false), || {
        format!("skip-stream-object-names(3): {skipped:?}")
    })?;
    let rest = skipper
        .read_stream_object_names(10)
        .map_err(|e| format!("read after skip: {e}"))?;
    check(rest.0.len() == 1 && rest.1, || {
        format!("read after skip: {rest:?}")
    })?;

    // Deletes: one, several, a missing one (no error).
    c.delete_object("hello/world.txt")
        .map_err(|e| format!("delete-object: {e}"))?;
    check(c.has_object("hello/world.txt") == Ok(false), || {
        "deleted object still there".into()
    })?;
    check(c.has_object("hello/kept.txt") == Ok(true), || {
        "delete took a sibling".into()
    })?;
    c.delete_object("missing.txt")
        .map_err(|e| format!("delete-object of a missing object: {e}"))?;
    c.delete_objects(&["copies/b.txt".into()])
        .map_err(|e| format!("delete-objects: {e}"))?;
    let mut names = list(c)?;
    names.sort();
    check(names == ["big/12m.bin", "hello/kept.txt"], || {
        format!("after deletes: {names:?}")
    })?;
    Ok(())
}
