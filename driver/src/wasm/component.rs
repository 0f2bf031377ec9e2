//! The WIT exports: each one converts arguments, calls the operation, converts the result.
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use super::transport::{self, HandedOver, StreamParents, WasiTransport};
use crate::config::Config;
use crate::error::DriverError as Error;
use crate::ops;
use crate::path::{DirPath, FilePath};

wit_bindgen::generate!({
    // The KS3 driver exports the contract and the optional host accelerations.
    world: "storage-driver-fast",
    path: "../wit",
    // The stream a reader hands over is the wasi crate's own type.
    with: {
        "wasi:io/error@0.2.4": wasi::io::error,
        "wasi:io/poll@0.2.4": wasi::io::poll,
        "wasi:io/streams@0.2.4": wasi::io::streams,
    },
});

use exports::registry::storage_driver::driver::{
    FileReader, FileReaderBorrow, FileWriter, FileWriterBorrow, Guest, GuestFileReader,
    GuestFileWriter, GuestWalker, Walker,
};
use exports::registry::storage_driver::fast_path::Guest as FastPath;
use registry::storage_driver::types::{
    BackendError, ConfigError, DriverError, FileInfo, IoError, IoKind, OffsetError,
};

type Driver = ops::Driver<WasiTransport>;

/// One driver per instance, configured from the environment the host gave it.
fn driver() -> Result<Arc<Driver>, DriverError> {
    static DRIVER: OnceLock<Result<Arc<Driver>, Error>> = OnceLock::new();
    DRIVER
        .get_or_init(|| {
            let config = Config::from_env_vars(super::environment())?;
            let transport = WasiTransport::new(&config.endpoint);
            Ok(ops::Driver::new(config, transport))
        })
        .clone()
        .map_err(convert)
}

/// The driver's error as the WIT `driver-error`, field for field: this side of the
/// boundary and the host's `From<WitError> for DriverError` (`host/src/bindings.rs`) are
/// the only two conversions a driver error goes through.
fn convert(e: Error) -> DriverError {
    match e {
        Error::PathNotFound(p) => DriverError::PathNotFound(p),
        Error::InvalidPath(p) => DriverError::InvalidPath(p),
        Error::InvalidOffset { path, offset } => {
            DriverError::InvalidOffset(OffsetError { path, offset })
        }
        Error::UnsupportedMethod(m) => DriverError::UnsupportedMethod(m),
        Error::Backend(b) => DriverError::Backend(BackendError {
            code: b.code,
            status: b.status,
            message: b.message,
            request_id: b.request_id,
            path: b.path,
        }),
        Error::Config { parameter, message } => {
            DriverError::Config(ConfigError { parameter, message })
        }
        Error::Io(e) => DriverError::Io(IoError {
            kind: io_kind(e.kind),
            message: e.message,
        }),
        Error::InvalidState(m) => DriverError::InvalidState(m),
    }
}

fn io_kind(k: crate::error::IoKind) -> IoKind {
    use crate::error::IoKind as K;
    match k {
        K::Connect => IoKind::Connect,
        K::Timeout => IoKind::Timeout,
        K::Dropped => IoKind::Dropped,
        K::TlsCertificate(_) => IoKind::TlsCertificate,
        K::Denied => IoKind::Denied,
        K::BadResponse => IoKind::BadResponse,
        K::Integrity => IoKind::Integrity,
        K::Other => IoKind::Other,
    }
}

fn info(i: ops::FileInfo) -> FileInfo {
    FileInfo {
        path: i.path,
        size: i.size,
        mod_time_ns: i.mod_time_ns,
        is_dir: i.is_dir,
    }
}

/// Every path crosses the WIT boundary as text and is checked here, once: the operations
/// take only [`FilePath`] / [`DirPath`].
fn file(p: &str) -> Result<FilePath, DriverError> {
    FilePath::parse(p).map_err(convert)
}

fn dir(p: &str) -> Result<DirPath, DriverError> {
    DirPath::parse(p).map_err(convert)
}

struct Component;
export!(Component);

impl Guest for Component {
    type FileReader = ReaderResource;
    type FileWriter = WriterResource;
    type Walker = WalkerResource;

    fn name() -> String {
        crate::DRIVER_NAME.to_string()
    }

    fn validate_config() -> Result<(), DriverError> {
        driver().map(|_| ())
    }

    fn get_content(path: String) -> Result<Vec<u8>, DriverError> {
        driver()?.get_content(&file(&path)?).map_err(convert)
    }

    fn put_content(path: String, content: Vec<u8>) -> Result<(), DriverError> {
        driver()?
            .put_content(&file(&path)?, &content)
            .map_err(convert)
    }

    fn reader(path: String, offset: i64) -> Result<FileReader, DriverError> {
        let r = driver()?.reader(&file(&path)?, offset).map_err(convert)?;
        Ok(FileReader::new(ReaderResource {
            reader: RefCell::new(r),
            handed: RefCell::new(None),
        }))
    }

    fn writer(path: String, append: bool) -> Result<FileWriter, DriverError> {
        let w = driver()?.writer(&file(&path)?, append).map_err(convert)?;
        Ok(FileWriter::new(WriterResource(RefCell::new(w))))
    }

    fn stat(path: String) -> Result<FileInfo, DriverError> {
        driver()?.stat(&dir(&path)?).map(info).map_err(convert)
    }

    fn list_children(path: String) -> Result<Vec<String>, DriverError> {
        driver()?.list(&dir(&path)?).map_err(convert)
    }

    fn move_(source: String, dest: String) -> Result<(), DriverError> {
        driver()?
            .mv(&file(&source)?, &file(&dest)?)
            .map_err(convert)
    }

    fn delete(path: String) -> Result<(), DriverError> {
        driver()?.delete(&file(&path)?).map_err(convert)
    }

    fn redirect_url(method: String, path: String) -> Result<Option<String>, DriverError> {
        driver()?
            .redirect_url(&method, &file(&path)?)
            .map_err(convert)
    }

    fn walk(path: String, start_after: Option<String>) -> Result<Walker, DriverError> {
        let w = driver()?
            .walk(&dir(&path)?, start_after.as_deref())
            .map_err(convert)?;
        Ok(Walker::new(WalkerResource(RefCell::new(w))))
    }
}

struct ReaderResource {
    reader: RefCell<ops::FileReader<WasiTransport>>,
    /// The parents of the stream the host holds (`reader-take-stream`), dropped at
    /// `reader-stream-done`.
    handed: RefCell<Option<StreamParents>>,
}

impl GuestFileReader for ReaderResource {
    fn read(&self, max: u32) -> Result<Vec<u8>, DriverError> {
        self.reader.borrow_mut().read(max as usize).map_err(convert)
    }
    fn position(&self) -> u64 {
        self.reader.borrow().position()
    }
}

/// The `fast-path` interface: the host reads a response body's stream itself and hands
/// the writer a CRC-64 it computed anyway; a registry puts content at writerless paths in
/// one request (see `wit/README.md`).
impl FastPath for Component {
    fn reader_take_stream(
        reader: FileReaderBorrow<'_>,
    ) -> Result<Option<wasi::io::streams::InputStream>, DriverError> {
        let this = reader.get::<ReaderResource>();
        let mut reader = this.reader.borrow_mut();
        loop {
            let Some(mut body) = reader.take_body().map_err(convert)? else {
                return Ok(None);
            };
            let outcome = match transport::hand_over(body.as_mut()) {
                Some(HandedOver::Stream(stream, parents)) => {
                    *this.handed.borrow_mut() = Some(parents);
                    return Ok(Some(stream));
                }
                Some(HandedOver::Ended) => None,
                Some(HandedOver::Broken(why)) => Some(why),
                None => Some("the response body is not a wasi:http body".to_string()),
            };
            reader.body_done(0, 0, outcome).map_err(convert)?;
        }
    }

    fn reader_stream_done(
        reader: FileReaderBorrow<'_>,
        count: u64,
        crc64: u64,
        broken: Option<String>,
    ) -> Result<(), DriverError> {
        let this = reader.get::<ReaderResource>();
        // The host dropped the stream: its body and response may go now.
        this.handed.borrow_mut().take();
        this.reader
            .borrow_mut()
            .body_done(count, crc64, broken)
            .map_err(convert)
    }

    fn writer_write_with_crc64(
        writer: FileWriterBorrow<'_>,
        data: Vec<u8>,
        crc64: u64,
    ) -> Result<(), DriverError> {
        writer
            .get::<WriterResource>()
            .0
            .borrow_mut()
            .write_with_crc(&data, Some(crc64))
            .map_err(convert)
    }

    fn put_content_writerless(path: String, content: Vec<u8>) -> Result<(), DriverError> {
        driver()?
            .put_content_writerless(&file(&path)?, &content)
            .map_err(convert)
    }

    fn move_to_writerless(source: String, dest: String) -> Result<(), DriverError> {
        driver()?
            .mv_to_writerless(&file(&source)?, &file(&dest)?)
            .map_err(convert)
    }

    fn writer_append_or_create(path: String) -> Result<FileWriter, DriverError> {
        let w = driver()?
            .writer_append_or_create(&file(&path)?)
            .map_err(convert)?;
        Ok(FileWriter::new(WriterResource(RefCell::new(w))))
    }
}

struct WriterResource(RefCell<ops::FileWriter<WasiTransport>>);

impl GuestFileWriter for WriterResource {
    fn write(&self, data: Vec<u8>) -> Result<(), DriverError> {
        self.0.borrow_mut().write(&data).map_err(convert)
    }
    fn size(&self) -> u64 {
        self.0.borrow().size()
    }
    fn close(&self) -> Result<(), DriverError> {
        self.0.borrow_mut().close().map_err(convert)
    }
    fn cancel(&self) -> Result<(), DriverError> {
        self.0.borrow_mut().cancel().map_err(convert)
    }
    fn commit(&self) -> Result<(), DriverError> {
        self.0.borrow_mut().commit().map_err(convert)
    }
}

struct WalkerResource(RefCell<ops::Walker<WasiTransport>>);

impl GuestWalker for WalkerResource {
    fn next(&self, max: u32) -> Result<Vec<FileInfo>, DriverError> {
        self.0
            .borrow_mut()
            .next(max as usize)
            .map(|v| v.into_iter().map(info).collect())
            .map_err(convert)
    }
    fn skip_directory(&self, path: String) {
        // Not a path of the walk, so nothing to skip (the WIT gives no error here).
        if let Ok(dir) = FilePath::parse(&path) {
            self.0.borrow_mut().skip_directory(&dir)
        }
    }
}
