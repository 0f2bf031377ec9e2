//! The component: WIT exports over [`crate::ops`], and wasi:http as the transport.
#[cfg(feature = "component")]
mod component;
pub mod transport;
