//! The driver's path rule and its path ↔ key mapping (`driver/src/path.rs`).
use ks3_driver_component::path::{is_file_key, is_valid_path, DirPath, FilePath, Keys};

use crate::input::Fields;

/// Input: `root NUL path NUL key`.
///
/// * `FilePath::parse`, `DirPath::parse` and `is_valid_path` agree, and validity is a property of the text
///   (re-checking the same path gives the same answer);
/// * for a valid path `p` under any valid root: `path_of(key(p)) == p`, its directory
///   prefix is `key(p)/`, and its saved-tail key maps to no path;
/// * any key that maps to a path maps back to itself (less trailing `/`); a key ending in
///   `/` is never a file.
pub fn paths(data: &[u8]) {
    let mut f = Fields::new(data);
    let root = f.text();
    let p = f.text();
    let key = f.text();

    let valid = is_valid_path(&p);
    assert_eq!(
        FilePath::parse(&p).is_ok(),
        valid,
        "FilePath vs is_valid_path: {p:?}"
    );
    assert_eq!(
        DirPath::parse(&p).is_ok(),
        valid || p == "/",
        "DirPath: {p:?}"
    );
    assert_eq!(is_valid_path(&p), valid);
    if valid {
        assert!(p.starts_with('/') && !p.ends_with('/') && !p.contains("//"));
    }

    // A root as `Config` normalises it: empty, or a valid path without its leading `/`.
    let root = if is_valid_path(&format!("/{root}")) {
        root
    } else {
        String::new()
    };
    let keys = Keys::new(&root);
    if let Ok(file) = FilePath::parse(&p) {
        let k = keys.key(&file);
        assert_eq!(
            keys.path_of(&k).as_ref(),
            Some(&file),
            "round trip of {p:?}"
        );
        assert_eq!(is_file_key(&keys, &k).as_ref(), Some(&file));
        assert_eq!(keys.file_dir_prefix(&file), format!("{k}/"));
        assert_eq!(
            keys.path_of(&keys.tail_key(&file)),
            None,
            "tail of {p:?} is a path"
        );
        assert!(keys.tail_dir_prefix(&file).ends_with('/'));
    }
    // The root's listing prefix is the root directory's key and its `/` (or nothing).
    let root_prefix = keys.dir_prefix(&DirPath::root());
    assert_eq!(root_prefix.trim_end_matches('/'), root);
    if let Some(q) = keys.path_of(&key) {
        assert!(is_valid_path(&q), "path_of({key:?}) = {q:?} is not valid");
        assert_eq!(keys.key(&q), key.trim_end_matches('/'), "key {key:?}");
    }
    if key.ends_with('/') {
        assert_eq!(is_file_key(&keys, &key), None);
    }
}
