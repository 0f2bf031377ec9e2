use super::*;

fn driver() -> (tempfile::TempDir, Driver) {
    let dir = tempfile::tempdir().unwrap();
    let d = Driver::new(dir.path());
    (dir, d)
}

#[test]
fn path_rule() {
    for ok in ["/a", "/a/b.c", "/A-_.9/x"] {
        assert!(valid_path(ok), "{ok}");
    }
    for bad in [
        "",
        "/",
        "a",
        "/a/",
        "//a",
        "/a//b",
        "/a b",
        "/~uploads",
        "/a/~x",
    ] {
        assert!(!valid_path(bad), "{bad}");
    }
}

#[test]
fn uploads_are_hidden_and_resume() {
    let (_t, d) = driver();
    let mut w = d.writer("/a/b", false).unwrap();
    w.write(b"hello ").unwrap();
    w.close().unwrap();
    assert_eq!(d.list("/").unwrap(), Vec::<String>::new());
    assert!(matches!(d.stat("/a"), Err(Error::PathNotFound(_))));
    assert!(d.walk("/", None).unwrap().next(100).is_empty());
    let mut w = d.writer("/a/b", true).unwrap();
    assert_eq!(w.size(), 6);
    w.write(b"world").unwrap();
    w.commit().unwrap();
    assert_eq!(d.get_content("/a/b").unwrap(), b"hello world");
    assert!(matches!(
        d.writer("/a/b", true),
        Err(Error::PathNotFound(_))
    ));
}

#[test]
fn a_new_writer_discards_the_old_upload() {
    let (_t, d) = driver();
    let mut old = d.writer("/x", false).unwrap();
    old.write(b"old").unwrap();
    let mut new = d.writer("/x", false).unwrap();
    new.write(b"new").unwrap();
    // Same length as the old one's: still not the old writer's to commit or remove.
    assert!(matches!(old.commit(), Err(Error::InvalidState(_))));
    old.cancel().unwrap();
    new.write(b"!").unwrap();
    new.commit().unwrap();
    assert_eq!(d.get_content("/x").unwrap(), b"new!");
}

#[test]
fn delete_prunes_empty_parents_and_spares_siblings() {
    let (t, d) = driver();
    d.put_content("/p/q/r", b"1").unwrap();
    d.put_content("/p/q-2", b"2").unwrap();
    d.delete("/p/q").unwrap();
    assert_eq!(d.list("/p").unwrap(), vec!["/p/q-2".to_string()]);
    d.delete("/p/q-2").unwrap();
    assert!(!t.path().join("p").exists());
    assert!(matches!(d.stat("/p"), Err(Error::PathNotFound(_))));
}

#[test]
fn reader_offsets() {
    let (_t, d) = driver();
    d.put_content("/f", b"0123456789").unwrap();
    let mut r = d.reader("/f", 4).unwrap();
    assert_eq!(r.read(3).unwrap(), b"456");
    assert_eq!(r.position(), 7);
    let mut r = d.reader("/f", 100).unwrap();
    assert!(r.read(10).unwrap().is_empty());
    assert!(matches!(
        d.reader("/f", -1),
        Err(Error::InvalidOffset { offset: -1, .. })
    ));
}

#[test]
fn walk_in_byte_order_with_skip() {
    let (_t, d) = driver();
    for p in ["/a/b/c", "/a/b/d", "/a-c", "/a/e"] {
        d.put_content(p, b"x").unwrap();
    }
    let mut w = d.walk("/", None).unwrap();
    let first = w.next(2);
    let paths: Vec<_> = first.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["/a", "/a-c"]);
    w.skip_directory("/a/b");
    let rest: Vec<_> = w.next(100).into_iter().map(|e| e.path).collect();
    assert_eq!(rest, ["/a/b", "/a/e"]);
    let after: Vec<_> = d
        .walk("/a", Some("/a/b/c"))
        .unwrap()
        .next(100)
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(after, ["/a/b/d", "/a/e"]);
}
