//! Signing vectors computed with the official KS3 Python SDK (ks3sdk 1.18.0),
//! from shared/reference/ks3-api.md §7.
use ks3_proto::sign::{canonical_resource, presigned_query, signature, StringToSign};
use ks3_proto::SignedRequest;

const AK: &str = "AKLTtestaccesskey0001";
const SK: &str = "testsecretkeyTESTSECRETKEY0123456789abcd";
const DATE: &str = "Wed, 25 Nov 2026 08:00:00 GMT";
const BUCKET: &str = "registry-bucket";
const KEY: &str = "docker/registry/v2/blobs/sha256/ab/abcd/data";

struct Case<'a> {
    name: &'a str,
    method: &'a str,
    key: &'a str,
    query: &'a str,
    md5: &'a str,
    ctype: &'a str,
    headers: &'a [(&'a str, &'a str)],
    sts: &'a str,
    auth: &'a str,
}

fn check(c: &Case<'_>) {
    let q = ks3_proto::encode::split_query(c.query);
    let resource = canonical_resource(BUCKET, c.key, &q);
    let sts = StringToSign {
        method: c.method,
        content_md5: c.md5,
        content_type: c.ctype,
        date: DATE,
        headers: c.headers.to_vec(),
        resource: &resource,
    };
    assert_eq!(
        sts.build(),
        c.sts.replace("\\n", "\n"),
        "{}: string to sign",
        c.name
    );
    assert_eq!(
        SignedRequest::authorization(AK, SK, &sts),
        c.auth,
        "{}: authorization",
        c.name
    );
}

#[test]
fn header_vectors() {
    let cases = [
        Case { name: "put_object_sse", method: "PUT", key: KEY, query: "", md5: "", ctype: "application/octet-stream",
            headers: &[("x-kss-server-side-encryption", "AES256"), ("Content-Length", "11")],
            sts: "PUT\\n\\napplication/octet-stream\\nWed, 25 Nov 2026 08:00:00 GMT\\nx-kss-server-side-encryption:AES256\\n/registry-bucket/docker/registry/v2/blobs/sha256/ab/abcd/data",
            auth: "KSS AKLTtestaccesskey0001:2ywTTwrD2lA6znRnVe4Z8Br/7XM=" },
        Case { name: "put_object_sse_md5", method: "PUT", key: KEY, query: "", md5: "XrY7u+Ae7tCTyyK7j1rNww==", ctype: "application/octet-stream",
            headers: &[("x-kss-server-side-encryption", "AES256")],
            sts: "PUT\\nXrY7u+Ae7tCTyyK7j1rNww==\\napplication/octet-stream\\nWed, 25 Nov 2026 08:00:00 GMT\\nx-kss-server-side-encryption:AES256\\n/registry-bucket/docker/registry/v2/blobs/sha256/ab/abcd/data",
            auth: "KSS AKLTtestaccesskey0001:oFBIA2IMJX2tPXtTtZfD+JIuMM0=" },
        Case { name: "put_object_multi_kss_headers", method: "PUT", key: KEY, query: "", md5: "", ctype: "application/octet-stream",
            headers: &[("X-Kss-Storage-Class", "STANDARD"), ("x-kss-acl", "private"), ("X-KSS-META-Author", "registry"), ("x-kss-server-side-encryption", "AES256")],
            sts: "PUT\\n\\napplication/octet-stream\\nWed, 25 Nov 2026 08:00:00 GMT\\nx-kss-acl:private\\nx-kss-meta-author:registry\\nx-kss-server-side-encryption:AES256\\nx-kss-storage-class:STANDARD\\n/registry-bucket/docker/registry/v2/blobs/sha256/ab/abcd/data",
            auth: "KSS AKLTtestaccesskey0001:R9crDivXCy2sO/sD8dEQEJgURJ8=" },
        Case { name: "get_object_range", method: "GET", key: KEY, query: "", md5: "", ctype: "", headers: &[("Range", "bytes=0-1023")],
            sts: "GET\\n\\n\\nWed, 25 Nov 2026 08:00:00 GMT\\n/registry-bucket/docker/registry/v2/blobs/sha256/ab/abcd/data",
            auth: "KSS AKLTtestaccesskey0001:KbTyln2zkrE1A5p9Z7ROorI4iRQ=" },
        Case { name: "head_object", method: "HEAD", key: KEY, query: "", md5: "", ctype: "", headers: &[],
            sts: "HEAD\\n\\n\\nWed, 25 Nov 2026 08:00:00 GMT\\n/registry-bucket/docker/registry/v2/blobs/sha256/ab/abcd/data",
            auth: "KSS AKLTtestaccesskey0001:KQegsh6B3WE3Pk30WXMr/eVijmk=" },
        Case { name: "delete_object", method: "DELETE", key: KEY, query: "", md5: "", ctype: "", headers: &[],
            sts: "DELETE\\n\\n\\nWed, 25 Nov 2026 08:00:00 GMT\\n/registry-bucket/docker/registry/v2/blobs/sha256/ab/abcd/data",
            auth: "KSS AKLTtestaccesskey0001:5DuZJIvwTtsdXBmVvLkp7+0UptA=" },
        Case { name: "list_objects_v1", method: "GET", key: "", query: "delimiter=/&marker=docker/registry/v2/repositories/library/&max-keys=1000&prefix=docker/registry/v2/repositories/", md5: "", ctype: "", headers: &[],
            sts: "GET\\n\\n\\nWed, 25 Nov 2026 08:00:00 GMT\\n/registry-bucket/",
            auth: "KSS AKLTtestaccesskey0001:x624Qjj2gAEou4MDBd9usNaRlSU=" },
        Case { name: "list_objects_v2", method: "GET", key: "", query: "continuation-token=tok&delimiter=/&list-type=2&max-keys=1000&prefix=docker/", md5: "", ctype: "", headers: &[],
            sts: "GET\\n\\n\\nWed, 25 Nov 2026 08:00:00 GMT\\n/registry-bucket/",
            auth: "KSS AKLTtestaccesskey0001:x624Qjj2gAEou4MDBd9usNaRlSU=" },
        Case { name: "initiate_multipart", method: "POST", key: KEY, query: "uploads", md5: "", ctype: "application/octet-stream",
            headers: &[("x-kss-server-side-encryption", "AES256"), ("Content-Length", "0")],
            sts: "POST\\n\\napplication/octet-stream\\nWed, 25 Nov 2026 08:00:00 GMT\\nx-kss-server-side-encryption:AES256\\n/registry-bucket/docker/registry/v2/blobs/sha256/ab/abcd/data?uploads",
            auth: "KSS AKLTtestaccesskey0001:k6vQS/79f/GQf4WcG4Rzfidn5PQ=" },
        Case { name: "list_multipart_uploads", method: "GET", key: "", query: "uploads&max-uploads=1000&prefix=docker/", md5: "", ctype: "", headers: &[],
            sts: "GET\\n\\n\\nWed, 25 Nov 2026 08:00:00 GMT\\n/registry-bucket/?uploads",
            auth: "KSS AKLTtestaccesskey0001:KswGS2Wq/k3t4E6ifBbTn6746xQ=" },
        Case { name: "upload_part", method: "PUT", key: KEY, query: "partNumber=3&uploadId=XYZ", md5: "", ctype: "", headers: &[("Content-Length", "5242880")],
            sts: "PUT\\n\\n\\nWed, 25 Nov 2026 08:00:00 GMT\\n/registry-bucket/docker/registry/v2/blobs/sha256/ab/abcd/data?partNumber=3&uploadId=XYZ",
            auth: "KSS AKLTtestaccesskey0001:dc1jnNS2aUs5H0LFG9xYuVGu07s=" },
        Case { name: "upload_part_with_md5", method: "PUT", key: KEY, query: "uploadId=XYZ&partNumber=3", md5: "XrY7u+Ae7tCTyyK7j1rNww==", ctype: "application/octet-stream", headers: &[],
            sts: "PUT\\nXrY7u+Ae7tCTyyK7j1rNww==\\napplication/octet-stream\\nWed, 25 Nov 2026 08:00:00 GMT\\n/registry-bucket/docker/registry/v2/blobs/sha256/ab/abcd/data?partNumber=3&uploadId=XYZ",
            auth: "KSS AKLTtestaccesskey0001:W7rS2DtW/WPCidSw3lWKN17csxE=" },
        Case { name: "list_parts", method: "GET", key: KEY, query: "uploadId=XYZ&max-parts=1000&part-number-marker=2", md5: "", ctype: "", headers: &[],
            sts: "GET\\n\\n\\nWed, 25 Nov 2026 08:00:00 GMT\\n/registry-bucket/docker/registry/v2/blobs/sha256/ab/abcd/data?uploadId=XYZ",
            auth: "KSS AKLTtestaccesskey0001:E9Z0Ujb1JRS2Q1D87aGUmFHarVA=" },
        Case { name: "abort_multipart", method: "DELETE", key: KEY, query: "uploadId=XYZ", md5: "", ctype: "", headers: &[],
            sts: "DELETE\\n\\n\\nWed, 25 Nov 2026 08:00:00 GMT\\n/registry-bucket/docker/registry/v2/blobs/sha256/ab/abcd/data?uploadId=XYZ",
            auth: "KSS AKLTtestaccesskey0001:YEvQ96hoyvGamnW7sy5vZOKQIDs=" },
        Case { name: "complete_multipart", method: "POST", key: KEY, query: "uploadId=XYZ", md5: "", ctype: "text/xml", headers: &[],
            sts: "POST\\n\\ntext/xml\\nWed, 25 Nov 2026 08:00:00 GMT\\n/registry-bucket/docker/registry/v2/blobs/sha256/ab/abcd/data?uploadId=XYZ",
            auth: "KSS AKLTtestaccesskey0001:VMemvDv1dO3EsOPH7P7M8ck2NSI=" },
        Case { name: "multi_delete", method: "POST", key: "", query: "delete", md5: "ys9POGEn9mu6OzWXmvtkig==", ctype: "text/xml", headers: &[("Content-Length", "146")],
            sts: "POST\\nys9POGEn9mu6OzWXmvtkig==\\ntext/xml\\nWed, 25 Nov 2026 08:00:00 GMT\\n/registry-bucket/?delete",
            auth: "KSS AKLTtestaccesskey0001:B7T2Y1iO/xnvKfH38q4d/8VQI7Y=" },
        Case { name: "copy_object", method: "PUT", key: KEY, query: "", md5: "", ctype: "",
            headers: &[("x-kss-copy-source", "/registry-bucket/docker%2Fregistry%2Fv2%2Frepositories%2Flib%2F_uploads%2Fu1%2Fdata"), ("Content-Length", "0")],
            sts: "PUT\\n\\n\\nWed, 25 Nov 2026 08:00:00 GMT\\nx-kss-copy-source:/registry-bucket/docker%2Fregistry%2Fv2%2Frepositories%2Flib%2F_uploads%2Fu1%2Fdata\\n/registry-bucket/docker/registry/v2/blobs/sha256/ab/abcd/data",
            auth: "KSS AKLTtestaccesskey0001:5UK9YYGok8Kr9vEqOfcXHZQHcCU=" },
        Case { name: "upload_part_copy", method: "PUT", key: KEY, query: "uploadId=XYZ&partNumber=1", md5: "", ctype: "",
            headers: &[("x-kss-copy-source", "/registry-bucket/docker%2Fregistry%2Fv2%2Frepositories%2Flib%2F_uploads%2Fu1%2Fdata"), ("x-kss-copy-source-range", "bytes=0-5242879")],
            sts: "PUT\\n\\n\\nWed, 25 Nov 2026 08:00:00 GMT\\nx-kss-copy-source:/registry-bucket/docker%2Fregistry%2Fv2%2Frepositories%2Flib%2F_uploads%2Fu1%2Fdata\\nx-kss-copy-source-range:bytes=0-5242879\\n/registry-bucket/docker/registry/v2/blobs/sha256/ab/abcd/data?partNumber=1&uploadId=XYZ",
            auth: "KSS AKLTtestaccesskey0001:RyF/kkYtZ5H+PXSyf0C8XBlJ7qU=" },
        Case { name: "put_unicode_key", method: "PUT", key: "a dir/ü+file=1&x.txt", query: "", md5: "", ctype: "text/plain", headers: &[],
            sts: "PUT\\n\\ntext/plain\\nWed, 25 Nov 2026 08:00:00 GMT\\n/registry-bucket/a%20dir/%C3%BC%2Bfile%3D1%26x.txt",
            auth: "KSS AKLTtestaccesskey0001:uIEZqB9TNGiydyg1BLPW+48XxkI=" },
        Case { name: "put_unicode_key_md5", method: "PUT", key: "a dir/ü+file=1&x.txt", query: "", md5: "XrY7u+Ae7tCTyyK7j1rNww==", ctype: "text/plain", headers: &[],
            sts: "PUT\\nXrY7u+Ae7tCTyyK7j1rNww==\\ntext/plain\\nWed, 25 Nov 2026 08:00:00 GMT\\n/registry-bucket/a%20dir/%C3%BC%2Bfile%3D1%26x.txt",
            auth: "KSS AKLTtestaccesskey0001:2z+LPnGfxt3+C8EJy1cdYYjxjj4=" },
        Case { name: "get_unicode_key", method: "GET", key: "a dir/ü+file=1&x.txt", query: "", md5: "", ctype: "", headers: &[],
            sts: "GET\\n\\n\\nWed, 25 Nov 2026 08:00:00 GMT\\n/registry-bucket/a%20dir/%C3%BC%2Bfile%3D1%26x.txt",
            auth: "KSS AKLTtestaccesskey0001:56ZWWpRSOuSsN2XQAhVV24nDBu0=" },
        Case { name: "copy_unicode_key", method: "PUT", key: "dst/a dir/ü+file=1&x.txt", query: "", md5: "", ctype: "",
            headers: &[("x-kss-copy-source", "/registry-bucket/a+dir%2F%C3%BC%2Bfile%3D1%26x.txt")],
            sts: "PUT\\n\\n\\nWed, 25 Nov 2026 08:00:00 GMT\\nx-kss-copy-source:/registry-bucket/a+dir%2F%C3%BC%2Bfile%3D1%26x.txt\\n/registry-bucket/dst/a%20dir/%C3%BC%2Bfile%3D1%26x.txt",
            auth: "KSS AKLTtestaccesskey0001:A4YHZgVl1j7Gcc2eYt6ZwdNZD/4=" },
        Case { name: "double_slash_key", method: "GET", key: "a//b", query: "", md5: "", ctype: "", headers: &[],
            sts: "GET\\n\\n\\nWed, 25 Nov 2026 08:00:00 GMT\\n/registry-bucket/a/%2Fb",
            auth: "KSS AKLTtestaccesskey0001:v+9SmVOUNKX8PkgaScKCDQKqTeM=" },
    ];
    for c in &cases {
        check(c);
    }
}

#[test]
fn presigned_vectors() {
    let expires = 1_795_000_000;
    let res = canonical_resource(BUCKET, KEY, &[]);
    assert_eq!(
        presigned_query(AK, SK, "GET", &res, expires),
        "Signature=1CgMNYSQmNjR7sE5bP%2BIF4fle44%3D&Expires=1795000000&KSSAccessKeyId=AKLTtestaccesskey0001"
    );
    assert_eq!(
        presigned_query(AK, SK, "HEAD", &res, expires),
        "Signature=LPZLtMqZZzaXPCDdzTX%2Fd3GO0Ig%3D&Expires=1795000000&KSSAccessKeyId=AKLTtestaccesskey0001"
    );
    let res = canonical_resource(BUCKET, "a dir/ü+file=1&x.txt", &[]);
    assert_eq!(
        presigned_query(AK, SK, "GET", &res, expires),
        "Signature=6q7eO7SWY1v4Ew9l4raorIUlEhA%3D&Expires=1795000000&KSSAccessKeyId=AKLTtestaccesskey0001"
    );
    let res = canonical_resource(
        BUCKET,
        KEY,
        &[("response-content-type", Some("application/octet-stream"))],
    );
    assert_eq!(
        signature(SK, &format!("GET\n\n\n{expires}\n{res}")),
        "TdVZPB1OVej2jRV0pNDmTGwrCqk="
    );
}
