//! KS3's limits, one home for the driver (which stays within them) and ks3-local (which
//! enforces them). Sources: `../shared/reference/ks3-api.md`, "Limits".

/// A key is at most 1024 bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 1024;
/// Part numbers run from 1 to 10 000; a multipart upload has at most this many parts.
pub const MAX_PARTS: u32 = 10_000;
/// Every part but the last is at least 5 MB on older regions (newer ones take 100 KB): the
/// driver keeps to the stricter rule and ks3-local enforces it.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// The largest part, single PUT and copy source: 5 GB.
pub const MAX_PART_SIZE: u64 = 5_000_000_000;
/// A listing page holds at most 1000 entries…
pub const MAX_KEYS: u32 = 1000;
/// …and at most 100 when a delimiter is given.
pub const MAX_KEYS_DELIMITED: u32 = 100;
/// One multi-object delete names at most 1000 keys.
pub const MAX_DELETE_KEYS: usize = 1000;
/// A `ListParts` page holds at most 1000 parts.
pub const MAX_LIST_PARTS: u32 = 1000;
/// Bytes of `x-kss-meta-*` names (without the prefix) and values together.
pub const MAX_USER_META: usize = 2048;
/// The largest difference KS3 allows between a request's date and its clock.
pub const MAX_SKEW_SECS: i64 = 15 * 60;
