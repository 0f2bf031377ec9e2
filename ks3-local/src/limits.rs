//! KS3's limits as the server uses them: the values come from `ks3_proto::limits`, their
//! one home (shared with the driver), in the types the handlers count in.
use ks3_proto::limits as ks3;

pub use ks3::{MAX_DELETE_KEYS, MAX_KEY_LEN, MAX_SKEW_SECS, MAX_USER_META};

/// Part numbers run from 1 to this.
pub const MAX_PART_NUMBER: u32 = ks3::MAX_PARTS;

/// 5 GB: KS3's limit for a single PUT, a part, and a copy source.
pub const FIVE_GB: u64 = ks3::MAX_PART_SIZE;

/// 5 MiB: the smallest size of every multipart part but the last.
pub const FIVE_MIB: u64 = ks3::MIN_PART_SIZE;

/// Keys per listing page, and uploads per ListMultipartUploads page.
pub const MAX_KEYS: usize = ks3::MAX_KEYS as usize;

/// Keys and common prefixes per listing page when a delimiter is given (a larger
/// `max-keys`, up to [`MAX_KEYS`], is clamped to it).
pub const MAX_KEYS_DELIMITED: usize = ks3::MAX_KEYS_DELIMITED as usize;

/// Parts per ListParts page.
pub const MAX_PARTS_LISTED: usize = ks3::MAX_LIST_PARTS as usize;
