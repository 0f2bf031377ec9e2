//! Typed access to a driver component's `registry:storage-driver/driver@1.1.0` exports
//! (and, when it has them, the optional `fast-path` accelerations).
//!
//! Written by hand rather than with `wasmtime::component::bindgen!`: wasmtime 48's
//! generator names a struct field after each exported function without escaping Rust
//! keywords, and the contract has a function called `move`, so the generated code does
//! not compile ("expected identifier, found keyword `move`"). The types below mirror
//! `wit/storage-driver.wit`; [`Exports::new`] type-checks every function against the
//! loaded component once, so a component that drifts from them is refused at load time.
use std::marker::PhantomData;

use anyhow::anyhow;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{
    ComponentExportIndex, ComponentType, InstancePre, Lift, Lower, Resource, ResourceAny,
};
use wasmtime_wasi::p2::DynInputStream;

use crate::error::{BackendError, DriverError, IoError, IoKind};

/// The exported interface every driver has, by its versioned name. Wasmtime finds an
/// export by any semver-compatible version (`@1.0.0` for a driver built for 1.0), so
/// drivers of every 1.x load.
pub const INTERFACE: &str = "registry:storage-driver/driver@1.1.0";

/// The optional accelerations (`wit/README.md`): used when exported, done without when not.
pub const FAST_PATH: &str = "registry:storage-driver/fast-path@1.1.0";

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Eq)]
#[component(record)]
pub struct WitFileInfo {
    pub path: String,
    pub size: u64,
    #[component(name = "mod-time-ns")]
    pub mod_time_ns: u64,
    #[component(name = "is-dir")]
    pub is_dir: bool,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Eq)]
#[component(record)]
pub struct WitBackendError {
    pub code: String,
    pub status: u16,
    pub message: String,
    #[component(name = "request-id")]
    pub request_id: String,
    pub path: String,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Eq)]
#[component(record)]
pub struct WitConfigError {
    pub parameter: String,
    pub message: String,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Eq)]
#[component(record)]
pub struct WitOffsetError {
    pub path: String,
    pub offset: i64,
}

#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq, Eq)]
#[component(enum)]
#[repr(u8)]
pub enum WitIoKind {
    #[component(name = "connect")]
    Connect,
    #[component(name = "timeout")]
    Timeout,
    #[component(name = "dropped")]
    Dropped,
    #[component(name = "tls-certificate")]
    TlsCertificate,
    #[component(name = "denied")]
    Denied,
    #[component(name = "bad-response")]
    BadResponse,
    #[component(name = "integrity")]
    Integrity,
    #[component(name = "other")]
    Other,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Eq)]
#[component(record)]
pub struct WitIoError {
    pub kind: WitIoKind,
    pub message: String,
}

#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Eq)]
#[component(variant)]
pub enum WitError {
    #[component(name = "path-not-found")]
    PathNotFound(String),
    #[component(name = "invalid-path")]
    InvalidPath(String),
    #[component(name = "invalid-offset")]
    InvalidOffset(WitOffsetError),
    #[component(name = "unsupported-method")]
    UnsupportedMethod(String),
    #[component(name = "backend")]
    Backend(WitBackendError),
    #[component(name = "config")]
    Config(WitConfigError),
    #[component(name = "io")]
    Io(WitIoError),
    #[component(name = "invalid-state")]
    InvalidState(String),
}

/// The WIT `driver-error` as the driver's own type: the one place the host converts a
/// driver error (the component's `convert` is the other side of the same boundary).
impl From<WitError> for DriverError {
    fn from(e: WitError) -> Self {
        match e {
            WitError::PathNotFound(path) => DriverError::PathNotFound(path),
            WitError::InvalidPath(path) => DriverError::InvalidPath(path),
            WitError::InvalidOffset(o) => DriverError::InvalidOffset {
                path: o.path,
                offset: o.offset,
            },
            WitError::UnsupportedMethod(m) => DriverError::UnsupportedMethod(m),
            WitError::Backend(b) => DriverError::Backend(BackendError {
                code: b.code,
                status: b.status,
                message: b.message,
                request_id: b.request_id,
                path: b.path,
            }),
            WitError::Config(c) => DriverError::Config {
                parameter: c.parameter,
                message: c.message,
            },
            WitError::Io(e) => DriverError::Io(IoError::new(io_kind(e.kind), e.message)),
            WitError::InvalidState(m) => DriverError::InvalidState(m),
        }
    }
}

fn io_kind(k: WitIoKind) -> IoKind {
    match k {
        WitIoKind::Connect => IoKind::Connect,
        WitIoKind::Timeout => IoKind::Timeout,
        WitIoKind::Dropped => IoKind::Dropped,
        // The guest cannot tell what was wrong with the certificate; the session adds
        // what the host saw.
        WitIoKind::TlsCertificate => IoKind::TlsCertificate(None),
        WitIoKind::Denied => IoKind::Denied,
        WitIoKind::BadResponse => IoKind::BadResponse,
        WitIoKind::Integrity => IoKind::Integrity,
        WitIoKind::Other => IoKind::Other,
    }
}

/// A WIT `result<T, driver-error>` as a single-result list.
pub type Res<T> = (Result<T, WitError>,);

/// A type-checked export whose result list is `R`; `index` is `None` for an optional
/// export the component does not have (the caller gets `unsupported-method`).
pub struct Export<R> {
    pub index: Option<ComponentExportIndex>,
    _result: PhantomData<fn() -> R>,
}

impl<R> Export<R> {
    fn absent() -> Self {
        Export {
            index: None,
            _result: PhantomData,
        }
    }
}

/// Export indices of every function the host calls, type-checked.
pub struct Exports {
    pub name: Export<(String,)>,
    pub validate_config: Export<Res<()>>,
    pub get_content: Export<Res<Vec<u8>>>,
    pub put_content: Export<Res<()>>,
    pub reader: Export<Res<ResourceAny>>,
    pub writer: Export<Res<ResourceAny>>,
    pub stat: Export<Res<WitFileInfo>>,
    pub list: Export<Res<Vec<String>>>,
    pub move_: Export<Res<()>>,
    pub delete: Export<Res<()>>,
    pub redirect_url: Export<Res<Option<String>>>,
    pub walk: Export<Res<ResourceAny>>,
    pub reader_read: Export<Res<Vec<u8>>>,
    /// Whether the component exports `fast-path`; without it the three exports below are
    /// absent and the host reads through `file-reader.read` and writes through
    /// `file-writer.write`.
    pub fast_path: bool,
    pub reader_take_stream: Export<Res<Option<Resource<DynInputStream>>>>,
    pub reader_stream_done: Export<Res<()>>,
    pub writer_write: Export<Res<()>>,
    pub writer_write_with_crc64: Export<Res<()>>,
    /// `fast-path.put-content-writerless`, `move-to-writerless` and
    /// `writer-append-or-create` (since 1.1.0: absent from a 1.0 `fast-path`).
    pub put_content_writerless: Export<Res<()>>,
    pub move_to_writerless: Export<Res<()>>,
    pub writer_append_or_create: Export<Res<ResourceAny>>,
    pub writer_size: Export<(u64,)>,
    pub writer_close: Export<Res<()>>,
    pub writer_cancel: Export<Res<()>>,
    pub writer_commit: Export<Res<()>>,
    pub walker_next: Export<Res<Vec<WitFileInfo>>>,
    pub walker_skip_directory: Export<()>,
}

impl Exports {
    pub fn new<T: 'static>(pre: &InstancePre<T>) -> anyhow::Result<Exports> {
        let component = pre.component();
        let ty = pre.instance_type();
        let iface = component
            .get_export_index(None, INTERFACE)
            .ok_or_else(|| anyhow!("the component does not export `{INTERFACE}`"))?;
        let fast = component.get_export_index(None, FAST_PATH);
        macro_rules! func {
            ($name:literal, $params:ty, $results:ty) => {
                func!(iface, $name, $params, $results)
            };
            ($iface:expr, $name:literal, $params:ty, $results:ty) => {{
                let (item, index) = component
                    .get_export(Some(&$iface), $name)
                    .ok_or_else(|| anyhow!("the component does not export `{}`", $name))?;
                match item {
                    ComponentItem::ComponentFunc(f) => f
                        .typecheck::<$params, $results>(&ty)
                        .map_err(|e| anyhow!("export `{}` has the wrong type: {e}", $name))?,
                    _ => return Err(anyhow!("export `{}` is not a function", $name)),
                }
                Export::<$results> {
                    index: Some(index),
                    _result: PhantomData,
                }
            }};
        }
        let (reader_take_stream, reader_stream_done, writer_write_with_crc64) = match fast {
            Some(fast) => (
                func!(
                    fast,
                    "reader-take-stream",
                    (ResourceAny,),
                    Res<Option<Resource<DynInputStream>>>
                ),
                func!(
                    fast,
                    "reader-stream-done",
                    (ResourceAny, u64, u64, Option<&str>),
                    Res<()>
                ),
                func!(
                    fast,
                    "writer-write-with-crc64",
                    (ResourceAny, &[u8], u64),
                    Res<()>
                ),
            ),
            None => (Export::absent(), Export::absent(), Export::absent()),
        };
        // Added in 1.1.0, so each optional on its own: a 1.0 driver's `fast-path` lacks them.
        macro_rules! since_1_1 {
            ($name:literal, $params:ty, $results:ty) => {
                match fast {
                    Some(fast) if component.get_export(Some(&fast), $name).is_some() => {
                        func!(fast, $name, $params, $results)
                    }
                    _ => Export::absent(),
                }
            };
        }
        let put_content_writerless = since_1_1!("put-content-writerless", (&str, &[u8]), Res<()>);
        let move_to_writerless = since_1_1!("move-to-writerless", (&str, &str), Res<()>);
        let writer_append_or_create =
            since_1_1!("writer-append-or-create", (&str,), Res<ResourceAny>);
        Ok(Exports {
            name: func!("name", (), (String,)),
            validate_config: func!("validate-config", (), Res<()>),
            get_content: func!("get-content", (&str,), Res<Vec<u8>>),
            put_content: func!("put-content", (&str, &[u8]), Res<()>),
            reader: func!("reader", (&str, i64), Res<ResourceAny>),
            writer: func!("writer", (&str, bool), Res<ResourceAny>),
            stat: func!("stat", (&str,), Res<WitFileInfo>),
            list: func!("list-children", (&str,), Res<Vec<String>>),
            move_: func!("move", (&str, &str), Res<()>),
            delete: func!("delete", (&str,), Res<()>),
            redirect_url: func!("redirect-url", (&str, &str), Res<Option<String>>),
            walk: func!("walk", (&str, Option<&str>), Res<ResourceAny>),
            reader_read: func!("[method]file-reader.read", (ResourceAny, u32), Res<Vec<u8>>),
            fast_path: fast.is_some(),
            reader_take_stream,
            reader_stream_done,
            writer_write: func!("[method]file-writer.write", (ResourceAny, &[u8]), Res<()>),
            writer_write_with_crc64,
            put_content_writerless,
            move_to_writerless,
            writer_append_or_create,
            writer_size: func!("[method]file-writer.size", (ResourceAny,), (u64,)),
            writer_close: func!("[method]file-writer.close", (ResourceAny,), Res<()>),
            writer_cancel: func!("[method]file-writer.cancel", (ResourceAny,), Res<()>),
            writer_commit: func!("[method]file-writer.commit", (ResourceAny,), Res<()>),
            walker_next: func!(
                "[method]walker.next",
                (ResourceAny, u32),
                Res<Vec<WitFileInfo>>
            ),
            walker_skip_directory: func!("[method]walker.skip-directory", (ResourceAny, &str), ()),
        })
    }
}
