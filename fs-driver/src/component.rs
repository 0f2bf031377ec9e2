//! The WIT exports (world `storage-driver`, no `fast-path`): each converts arguments,
//! calls the driver, converts the result.
use std::cell::RefCell;
use std::sync::OnceLock;

use crate::{Driver, Error};

wit_bindgen::generate!({
    world: "storage-driver",
    path: "../wit",
});

use exports::registry::storage_driver::driver::{
    FileReader, FileWriter, Guest, GuestFileReader, GuestFileWriter, GuestWalker, Walker,
};
use registry::storage_driver::types::{
    BackendError, ConfigError, DriverError, FileInfo, IoError, IoKind, OffsetError,
};

/// One driver per instance, configured from the environment the host gave it.
fn driver() -> Result<&'static Driver, DriverError> {
    static DRIVER: OnceLock<Result<Driver, Error>> = OnceLock::new();
    DRIVER
        .get_or_init(|| Driver::from_env(|k| std::env::var(k).ok()))
        .as_ref()
        .map_err(|e| convert(e.clone()))
}

fn convert(e: Error) -> DriverError {
    match e {
        Error::PathNotFound(p) => DriverError::PathNotFound(p),
        Error::InvalidPath(p) => DriverError::InvalidPath(p),
        Error::InvalidOffset { path, offset } => {
            DriverError::InvalidOffset(OffsetError { path, offset })
        }
        Error::Backend {
            code,
            status,
            message,
            path,
        } => DriverError::Backend(BackendError {
            code,
            status,
            message,
            request_id: String::new(),
            path,
        }),
        Error::Config { parameter, message } => {
            DriverError::Config(ConfigError { parameter, message })
        }
        Error::Io { integrity, message } => DriverError::Io(IoError {
            kind: if integrity {
                IoKind::Integrity
            } else {
                IoKind::Other
            },
            message,
        }),
        Error::InvalidState(m) => DriverError::InvalidState(m),
    }
}

fn info(i: crate::FileInfo) -> FileInfo {
    FileInfo {
        path: i.path,
        size: i.size,
        mod_time_ns: i.mod_time_ns,
        is_dir: i.is_dir,
    }
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
        driver()?.get_content(&path).map_err(convert)
    }

    fn put_content(path: String, content: Vec<u8>) -> Result<(), DriverError> {
        driver()?.put_content(&path, &content).map_err(convert)
    }

    fn reader(path: String, offset: i64) -> Result<FileReader, DriverError> {
        let r = driver()?.reader(&path, offset).map_err(convert)?;
        Ok(FileReader::new(ReaderResource(RefCell::new(r))))
    }

    fn writer(path: String, append: bool) -> Result<FileWriter, DriverError> {
        let w = driver()?.writer(&path, append).map_err(convert)?;
        Ok(FileWriter::new(WriterResource(RefCell::new(w))))
    }

    fn stat(path: String) -> Result<FileInfo, DriverError> {
        driver()?.stat(&path).map(info).map_err(convert)
    }

    fn list_children(path: String) -> Result<Vec<String>, DriverError> {
        driver()?.list(&path).map_err(convert)
    }

    fn move_(source: String, dest: String) -> Result<(), DriverError> {
        driver()?.mv(&source, &dest).map_err(convert)
    }

    fn delete(path: String) -> Result<(), DriverError> {
        driver()?.delete(&path).map_err(convert)
    }

    fn redirect_url(_method: String, path: String) -> Result<Option<String>, DriverError> {
        // Files have no URLs: the registry serves the content itself.
        if !crate::valid_path(&path) {
            return Err(DriverError::InvalidPath(path));
        }
        Ok(None)
    }

    fn walk(path: String, start_after: Option<String>) -> Result<Walker, DriverError> {
        let w = driver()?
            .walk(&path, start_after.as_deref())
            .map_err(convert)?;
        Ok(Walker::new(WalkerResource(RefCell::new(w))))
    }
}

struct ReaderResource(RefCell<crate::FileReader>);

impl GuestFileReader for ReaderResource {
    fn read(&self, max: u32) -> Result<Vec<u8>, DriverError> {
        let max = usize::try_from(max).unwrap_or(crate::MAX_READ);
        self.0.borrow_mut().read(max).map_err(convert)
    }
    fn position(&self) -> u64 {
        self.0.borrow().position()
    }
}

struct WriterResource(RefCell<crate::FileWriter>);

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

struct WalkerResource(RefCell<crate::Walker>);

impl GuestWalker for WalkerResource {
    fn next(&self, max: u32) -> Result<Vec<FileInfo>, DriverError> {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        Ok(self
            .0
            .borrow_mut()
            .next(max)
            .into_iter()
            .map(info)
            .collect())
    }
    fn skip_directory(&self, path: String) {
        self.0.borrow_mut().skip_directory(&path)
    }
}
