//! The ks3-local harness reaches what it claims to: a signed request gets past
//! authentication, an unsigned one does not, and pipelined requests are all answered.
use ks3_fuzz_targets::ks3_local::{request, AK, BUCKET, SK};
use ks3_local::ServerConfig;

#[test]
fn ks3_local_harness_signs_requests_that_the_server_accepts() {
    let mut wire = request(
        "PUT",
        &format!("/{BUCKET}/a/b"),
        "Content-Type: text/plain",
        b"hello world",
        0,
    );
    wire.extend(request(
        "GET",
        &format!("/{BUCKET}/a/b"),
        "Range: bytes=2-5",
        b"",
        0,
    ));
    wire.extend(request("GET", &format!("/{BUCKET}/a/b"), "", b"", 0));
    wire.extend(request("GET", &format!("/{BUCKET}/a/b"), "", b"", 2));
    let answer = ks3_local::fuzzing::exchange(ServerConfig::memory(BUCKET, AK, SK), &wire);
    let text = String::from_utf8_lossy(&answer);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "206", "200", "403"], "{text}");
    assert!(text.contains("llo "), "{text}");
}
