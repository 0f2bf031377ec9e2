//! No state outside KS3: an upload started on one registry instance continues and
//! completes on another, and survives a restart; limits on request bodies.
mod common;

use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use ks3_registry::layout;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_upload_across_two_instances_and_a_restart() {
    let ks3 = shared_ks3();
    let a = serve_shared(&ks3, "storage:\n  redirect:\n    disable: true\n").await;
    let b = serve_shared(&ks3, "storage:\n  redirect:\n    disable: true\n").await;
    // Over one 10 MiB part, so the upload has a real multipart part and a saved tail.
    let data = bytes(13 << 20, 7);
    let d = sha256(&data);
    let (c1, rest) = data.split_at(5 << 20);
    let (c2, c3) = rest.split_at(6 << 20);

    let start = request(
        Method::POST,
        &format!("{}/v2/shared/app/blobs/uploads/", a.base),
        &[],
        "",
    )
    .await;
    assert_eq!(start.status, StatusCode::ACCEPTED);
    let path = start.header("location").expect("location").to_string();
    let on = |s: &Served| format!("{}{path}", s.base);

    let p1 = request(
        Method::PATCH,
        &on(&a),
        &[("content-range", &format!("0-{}", c1.len() - 1))],
        c1.to_vec(),
    )
    .await;
    assert_eq!(p1.status, StatusCode::ACCEPTED);
    // The second chunk goes to the other instance.
    let status = request(Method::GET, &on(&b), &[], "").await;
    assert_eq!(
        status.header("range"),
        Some(format!("0-{}", c1.len() - 1).as_str())
    );
    let p2 = request(
        Method::PATCH,
        &on(&b),
        &[(
            "content-range",
            &format!("{}-{}", c1.len(), c1.len() + c2.len() - 1),
        )],
        c2.to_vec(),
    )
    .await;
    assert_eq!(
        p2.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&p2.body)
    );

    // Instance A goes away; a new one (a restart) takes the last chunk and the PUT.
    drop(a);
    let c = serve_shared(&ks3, "storage:\n  redirect:\n    disable: true\n").await;
    let p3 = request(Method::PATCH, &on(&c), &[], c3.to_vec()).await;
    assert_eq!(p3.status, StatusCode::ACCEPTED);
    assert_eq!(
        p3.header("range"),
        Some(format!("0-{}", data.len() - 1).as_str())
    );
    let put = request(Method::PUT, &format!("{}?digest={d}", on(&c)), &[], "").await;
    assert_eq!(
        put.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&put.body)
    );
    assert_eq!(c.registry.stats().digests_from_saved_state, 1);

    // Both remaining instances serve it.
    for s in [&b, &c] {
        let get = request(
            Method::GET,
            &format!("{}/v2/shared/app/blobs/{d}", s.base),
            &[],
            "",
        )
        .await;
        assert_eq!(get.status, StatusCode::OK);
        assert!(
            get.body == data,
            "the blob assembled from three instances' chunks"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_hash_state_falls_back_to_reading_the_upload() {
    let ks3 = shared_ks3();
    let r = serve_shared(&ks3, "").await;
    // Over the 4 MiB that are verified by reading them into memory: the path where a
    // saved state is used when there is one.
    let data = bytes(5 << 20, 9);
    let d = sha256(&data);
    let start = request(
        Method::POST,
        &format!("{}/v2/fb/blobs/uploads/", r.base),
        &[],
        "",
    )
    .await;
    let id = start
        .header("docker-upload-uuid")
        .expect("uuid")
        .to_string();
    let loc = format!("{}{}", r.base, start.header("location").expect("location"));
    request(Method::PATCH, &loc, &[], data.clone()).await;
    // As after a crash between the data's close and the state's write.
    r.registry
        .driver()
        .delete(&layout::upload_hash_state("fb", &id, data.len() as u64))
        .await
        .expect("state deleted");
    let put = request(Method::PUT, &format!("{loc}?digest={d}"), &[], "").await;
    assert_eq!(put.status, StatusCode::CREATED);
    let s = r.registry.stats();
    assert_eq!((s.digests_from_saved_state, s.digests_from_reread), (0, 1));

    // sha512 has no saved state (as distribution): verified by reading back.
    let d512 = ks3_registry::digest::Digest::of(ks3_registry::digest::Algorithm::Sha512, &data);
    let start = request(
        Method::POST,
        &format!("{}/v2/fb/blobs/uploads/", r.base),
        &[],
        "",
    )
    .await;
    let loc = format!("{}{}", r.base, start.header("location").expect("location"));
    request(Method::PATCH, &loc, &[], data.clone()).await;
    let put = request(Method::PUT, &format!("{loc}?digest={d512}"), &[], "").await;
    assert_eq!(
        put.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&put.body)
    );
    let head = request(
        Method::HEAD,
        &format!("{}/v2/fb/blobs/{d512}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limits_and_a_stalled_client() {
    let r =
        serve_yaml("limits:\n  maxbodysize: 100000\n  bodytimeout: 2s\n  maxuploads: 1\n").await;
    let big = bytes(100_001, 5);
    let resp = request(
        Method::POST,
        &format!("{}/v2/lim/blobs/uploads/?digest={}", r.base, sha256(&big)),
        &[],
        big,
    )
    .await;
    assert_eq!(resp.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp.error_code(), "SIZE_INVALID");

    // A client that sends part of a PATCH body and stalls: after the body timeout the
    // request fails and what arrived is kept (the writer is closed, not held).
    let start = request(
        Method::POST,
        &format!("{}/v2/lim/blobs/uploads/", r.base),
        &[],
        "",
    )
    .await;
    let path = start.header("location").expect("location").to_string();
    let mut sock = tokio::net::TcpStream::connect(&r.host)
        .await
        .expect("connect");
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 5000\r\nContent-Type: application/octet-stream\r\n\r\n",
        r.host
    );
    sock.write_all(head.as_bytes()).await.expect("write");
    sock.write_all(&[7u8; 1000]).await.expect("write");
    // While the stalled request holds the only upload slot, another upload is refused.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = request(
        Method::POST,
        &format!("{}/v2/lim/blobs/uploads/?digest={}", r.base, sha256(b"x")),
        &[],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(busy.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(busy.error_code(), "TOOMANYREQUESTS");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut answer))
        .await
        .expect("the registry answers within the timeout")
        .expect("read");
    let text = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let status = request(Method::GET, &format!("{}{path}", r.base), &[], "").await;
    assert_eq!(status.header("range"), Some("0-999"));
}
