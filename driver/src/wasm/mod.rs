//! The component: WIT exports over [`crate::ops`], and wasi:http as the transport.
mod component;
mod transport;
