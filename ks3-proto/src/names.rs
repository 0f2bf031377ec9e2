//! Header values KS3 accepts, shared by the driver's configuration check and the local
//! server's request check.

/// `x-kss-storage-class` values.
pub const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "STANDARD_IA",
    "DEEP_IA",
    "ARCHIVE",
    "COLD_ARCHIVE",
    "DEEP_COLD_ARCHIVE",
    "EXTREME_PL1",
    "EXTREME_PL2",
    "EXTREME_PL3",
];

/// `x-kss-acl` canned ACLs.
pub const CANNED_ACLS: &[&str] = &["private", "public-read", "public-read-write"];
