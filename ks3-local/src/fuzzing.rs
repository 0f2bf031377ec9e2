//! Entry points for the fuzz targets (`fuzz/`, and the corpus replay test of the
//! `fuzz-targets` crate): the server's whole request path — HTTP parsing, addressing,
//! authentication, query, headers, bodies, handlers — without a socket. Not an API.
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::config::ServerConfig;
use crate::server::{serve_connection, Protocol};
use crate::state::State;

/// Serves one connection whose client writes `request` (raw HTTP/1.1 bytes, possibly
/// several requests) and then closes its side; returns what the server answered. A fresh
/// in-memory server with `config` (its `data_dir` is ignored) answers each call.
pub fn exchange(config: ServerConfig, request: &[u8]) -> Vec<u8> {
    let config = ServerConfig {
        data_dir: None,
        verbose: false,
        ..config
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("fuzzing: no tokio runtime: {e}"),
    };
    let state = match State::new(config) {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("fuzzing: no server state: {e}"),
    };
    rt.block_on(async move {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (_tx, rx) = watch::channel(false);
        serve_connection(server, state, rx, Protocol::Http1HalfClose);
        let (mut rd, mut wr) = tokio::io::split(client);
        let request = request.to_vec();
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&request).await;
            let _ = wr.shutdown().await;
            wr
        });
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut out)).await;
        let _ = writer.await;
        if read.is_err() {
            panic!("fuzzing: the server neither answered nor closed the connection in 20 s");
        }
        out
    })
}
