//! The driver's parameters merged from their sources: the driver crate's one reader
//! (`ks3_driver_component::config::settings`), re-exported under the host's name, with
//! the rule for `REGISTRY_STORAGE_KS3_<NAME>` variables it applies.
pub use ks3_driver_component::config::env_param;
pub use ks3_driver_component::config::settings::*;
