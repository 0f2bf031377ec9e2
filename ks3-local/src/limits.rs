//! KS3's limits, in one place, so that the handlers, the error catalogue and the defaults
//! of [`crate::ServerConfig`] cannot disagree (facts: `shared/reference/ks3-api.md`).
//! `ks3-proto` holds no limits yet; when it does, these should come from there.

/// Longest key KS3 accepts, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// Part numbers run from 1 to this.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// 5 GB: KS3's limit for a single PUT, a part, and a copy source.
pub const FIVE_GB: u64 = 5_000_000_000;

/// 5 MiB: the smallest size of every multipart part but the last.
pub const FIVE_MIB: u64 = 5 * 1024 * 1024;

/// Keys per listing page, and uploads per ListMultipartUploads page.
pub const MAX_KEYS: usize = 1000;

/// Keys and common prefixes per listing page when a delimiter is given: KS3 documents 100
/// (a larger `max-keys`, up to [`MAX_KEYS`], is clamped to it).
pub const MAX_KEYS_DELIMITED: usize = 100;

/// Parts per ListParts page.
pub const MAX_PARTS_LISTED: usize = 1000;

/// Keys per multi-object delete.
pub const MAX_DELETE_KEYS: usize = 1000;

/// Bytes of `x-kss-meta-*` names (without the prefix) and values together.
pub const MAX_USER_META: usize = 2048;

/// Allowed difference between a request's date and the server clock.
pub const MAX_SKEW_SECS: i64 = 15 * 60;
