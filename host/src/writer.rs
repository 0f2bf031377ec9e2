//! An upload in its own sandboxed instance: chunks go to the guest's `file-writer` with
//! their CRC-64 computed here, natively.
use ks3_proto::Crc64;
use wasmtime::component::ResourceAny;

use crate::bindings::{Export, Exports, Res};
use crate::error::{DriverError, Error};
use crate::session::Session;

/// Largest chunk handed to the guest in one `write` call.
pub const WRITE_CHUNK: usize = 1 << 20;

/// How a writer is opened.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Opening {
    /// `writer(path, append)`.
    Writer { append: bool },
    /// `fast-path.writer-append-or-create` (or, without it, its two `writer` calls).
    AppendOrCreate,
}

/// An upload in progress, with its own sandboxed instance.
pub struct FileWriter {
    session: Session,
    handle: ResourceAny,
    path: String,
    size: u64,
    /// Send each chunk's CRC-64 along (`fast-path.writer-write-with-crc64`; only when the driver exports it).
    crc_by_host: bool,
}

impl FileWriter {
    /// Opens a writer of `path` (with `append`, resuming a closed upload) in `session`, a
    /// fresh instance of its own.
    pub(crate) async fn open(
        mut session: Session,
        path: &str,
        opening: Opening,
        crc_by_host: bool,
    ) -> Result<FileWriter, Error> {
        let fast = session.has_fast_path();
        let handle = match opening {
            Opening::Writer { append } => {
                session
                    .call(&format!("writer {path}"), |e| &e.writer, (path, append))
                    .await?
            }
            Opening::AppendOrCreate => {
                let what = format!("writer-append-or-create {path}");
                match session
                    .call(&what, |e| &e.writer_append_or_create, (path,))
                    .await
                {
                    // A driver without it: the two calls it stands for.
                    Err(Error::Driver(DriverError::UnsupportedMethod(_))) => {
                        let what = format!("writer {path}");
                        match session.call(&what, |e| &e.writer, (path, true)).await {
                            Err(e) if e.is_not_found() => {
                                session.call(&what, |e| &e.writer, (path, false)).await?
                            }
                            other => other?,
                        }
                    }
                    other => other?,
                }
            }
        };
        let mut w = FileWriter {
            session,
            handle,
            path: path.to_string(),
            size: 0,
            // A driver without `fast-path` takes no checksum along.
            crc_by_host: crc_by_host && fast,
        };
        w.refresh_size().await?;
        Ok(w)
    }

    /// Appends `data`, handed to the guest in calls of at most 1 MiB.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        let handle = self.handle;
        let what = format!("write {}", self.path);
        let result = async {
            for chunk in data.chunks(WRITE_CHUNK) {
                if self.crc_by_host {
                    let crc = Crc64::checksum(chunk);
                    self.session
                        .call::<_, ()>(&what, |e| &e.writer_write_with_crc64, (handle, chunk, crc))
                        .await?;
                } else {
                    self.session
                        .call::<_, ()>(&what, |e| &e.writer_write, (handle, chunk))
                        .await?;
                }
            }
            Ok(())
        }
        .await;
        // The size is what the guest accepted, even after a failed chunk.
        let refreshed = self.refresh_size().await;
        result.and(refreshed)
    }

    /// Bytes accepted so far (including those of a resumed upload).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Persists what was written, without making it visible, so `writer(path, true)`
    /// can resume.
    pub async fn close(&mut self) -> Result<(), Error> {
        self.finish_call("close", |e| &e.writer_close).await
    }

    /// Aborts the upload; nothing is left behind.
    pub async fn cancel(&mut self) -> Result<(), Error> {
        self.finish_call("cancel", |e| &e.writer_cancel).await
    }

    /// Makes the content visible at the path. On an error the upload is kept: `commit`
    /// again, or resume it with `writer(path, true)`.
    pub async fn commit(&mut self) -> Result<(), Error> {
        self.finish_call("commit", |e| &e.writer_commit).await
    }

    /// `close`, `cancel` or `commit`: one call on the writer's handle, then
    /// [`settle`](Self::settle).
    async fn finish_call(
        &mut self,
        verb: &str,
        export: fn(&Exports) -> &Export<Res<()>>,
    ) -> Result<(), Error> {
        let handle = self.handle;
        let what = format!("{verb} {}", self.path);
        let result = self.session.call(&what, export, (handle,)).await;
        self.settle(result).await
    }

    /// After a call that may change the writer's state, [`size`](Self::size) is what the
    /// guest says, not what the host remembers. A trapped instance has nothing to say;
    /// the call's own error is the one that matters.
    async fn settle(&mut self, result: Result<(), Error>) -> Result<(), Error> {
        let refreshed = self.refresh_size().await;
        match result {
            Ok(()) => refreshed,
            Err(e) => Err(e),
        }
    }

    async fn refresh_size(&mut self) -> Result<(), Error> {
        let handle = self.handle;
        let what = format!("size {}", self.path);
        let (size,) = self
            .session
            .invoke::<_, (u64,)>(&what, |e| &e.writer_size, (handle,))
            .await?;
        self.size = size;
        Ok(())
    }
}
