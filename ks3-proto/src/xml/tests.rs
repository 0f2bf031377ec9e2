use super::*;

fn round_trip<T: Document + PartialEq + fmt::Debug>(v: &T) -> String {
    let doc = to_xml(v).unwrap();
    let back: T = from_xml(doc.as_bytes()).unwrap();
    assert_eq!(&back, v, "{doc}");
    doc
}

fn owner() -> Option<Owner> {
    Some(Owner {
        id: Some("1".into()),
        display_name: Some("1".into()),
    })
}

#[test]
fn list_bucket_result_round_trips() {
    let v = ListBucketResult {
        xmlns: Some(S3_NS.into()),
        name: Some("b".into()),
        prefix: Some("".into()),
        marker: Some("a&b".into()),
        max_keys: Some(1000),
        delimiter: Some("/".into()),
        is_truncated: true,
        next_marker: Some("c/".into()),
        contents: vec![ObjectEntry {
            key: " k <\"'> ".into(),
            last_modified: Some("2026-11-25T08:00:00.000Z".into()),
            etag: Some("\"abc\"".into()),
            size: u64::MAX,
            owner: owner(),
            storage_class: Some("STANDARD".into()),
            kind: Some("Normal".into()),
        }],
        common_prefixes: vec![
            CommonPrefix {
                prefix: "c/".into(),
            },
            CommonPrefix {
                prefix: "d/".into(),
            },
        ],
        ..Default::default()
    };
    let doc = round_trip(&v);
    // The shape ks3-local wrote by hand before: declaration, namespace on the root, full
    // escaping, empty elements expanded, fields in S3's order.
    assert!(doc.starts_with(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix></Prefix><Marker>a&amp;b</Marker><MaxKeys>1000</MaxKeys>"
    ), "{doc}");
    assert!(doc.contains("<Key> k &lt;&quot;&apos;&gt; </Key>"), "{doc}");
    assert!(
        doc.contains("<IsTruncated>true</IsTruncated><NextMarker>c/</NextMarker><Contents>"),
        "{doc}"
    );
    assert!(
        doc.ends_with("<CommonPrefixes><Prefix>d/</Prefix></CommonPrefixes></ListBucketResult>"),
        "{doc}"
    );

    // v2 fields.
    round_trip(&ListBucketResult {
        key_count: Some(0),
        continuation_token: Some("t".into()),
        next_continuation_token: Some("n".into()),
        start_after: Some("s".into()),
        encoding_type: Some("url".into()),
        ..Default::default()
    });
}

#[test]
fn multipart_shapes_round_trip() {
    round_trip(&InitiateMultipartUploadResult {
        xmlns: Some(S3_NS.into()),
        bucket: Some("b".into()),
        key: Some("k".into()),
        upload_id: "id".into(),
    });
    let doc = round_trip(&CompleteMultipartUpload {
        parts: vec![
            CompletePart {
                part_number: 1,
                etag: "\"a\"".into(),
                crc64: Some(7),
            },
            CompletePart {
                part_number: 2,
                etag: "b".into(),
                crc64: None,
            },
        ],
    });
    assert!(doc.contains("<Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag><ChecksumCRC64ECMA>7</ChecksumCRC64ECMA></Part><Part><PartNumber>2</PartNumber><ETag>b</ETag></Part>"), "{doc}");
    round_trip(&CompleteMultipartUpload::default());
    round_trip(&CompleteMultipartUploadResult {
        xmlns: Some(S3_NS.into()),
        location: Some("http://h/b/k".into()),
        bucket: Some("b".into()),
        key: Some("k".into()),
        etag: Some("\"e-2\"".into()),
        crc64: Some(u64::MAX),
    });
    round_trip(&ListPartsResult {
        xmlns: Some(S3_NS.into()),
        bucket: Some("b".into()),
        key: Some("k".into()),
        upload_id: Some("id".into()),
        initiator: owner(),
        owner: owner(),
        storage_class: Some("STANDARD".into()),
        part_number_marker: Some("0".into()),
        next_part_number_marker: Some("2".into()),
        max_parts: Some(1000),
        is_truncated: false,
        encoding_type: None,
        parts: vec![
            PartEntry {
                part_number: 1,
                last_modified: Some("2026-11-25T08:00:00.000Z".into()),
                etag: "\"a\"".into(),
                size: 5 << 20,
                crc64: Some(1),
            },
            PartEntry {
                part_number: 10000,
                last_modified: None,
                etag: "b".into(),
                size: 0,
                crc64: None,
            },
        ],
    });
    round_trip(&ListMultipartUploadsResult {
        xmlns: Some(S3_NS.into()),
        bucket: Some("b".into()),
        key_marker: Some("".into()),
        upload_id_marker: Some("".into()),
        next_key_marker: Some("k".into()),
        next_upload_id_marker: Some("u".into()),
        delimiter: None,
        prefix: Some("".into()),
        max_uploads: Some(1000),
        is_truncated: true,
        encoding_type: None,
        uploads: vec![UploadEntry {
            key: "k".into(),
            upload_id: "u".into(),
            initiator: owner(),
            owner: owner(),
            storage_class: Some("STANDARD".into()),
            initiated: Some("2026-11-25T08:00:00.000Z".into()),
        }],
        common_prefixes: vec![CommonPrefix {
            prefix: "p/".into(),
        }],
    });
    round_trip(&CopyObjectResult {
        last_modified: Some("2026-11-25T08:00:00.000Z".into()),
        etag: Some("\"e\"".into()),
        crc64: Some(3),
    });
    round_trip(&CopyPartResult {
        last_modified: None,
        etag: "\"e\"".into(),
        crc64: None,
    });
}

#[test]
fn other_shapes_round_trip() {
    let doc = round_trip(&Delete {
        quiet: Some(false),
        objects: vec![
            DeleteObject { key: "a&b".into() },
            DeleteObject {
                key: "  spaced  ".into(),
            },
        ],
    });
    assert!(doc.contains("<Key>a&amp;b</Key>"), "{doc}");
    round_trip(&Delete {
        quiet: None,
        objects: vec![],
    });
    let doc = round_trip(&DeleteResult {
        xmlns: Some(S3_NS.into()),
        entries: vec![
            DeleteEntry::Deleted(Deleted { key: "a".into() }),
            DeleteEntry::Error(DeleteError {
                key: "b".into(),
                code: "NoSuchKey".into(),
                message: Some("gone".into()),
            }),
            DeleteEntry::Deleted(Deleted { key: "c".into() }),
        ],
    });
    assert!(doc.contains("<Deleted><Key>a</Key></Deleted><Error><Key>b</Key><Code>NoSuchKey</Code><Message>gone</Message></Error><Deleted><Key>c</Key></Deleted>"), "{doc}");
    round_trip(&DeleteResult::default());
    round_trip(&ListAllMyBucketsResult {
        xmlns: Some(S3_NS.into()),
        owner: owner(),
        buckets: Buckets {
            buckets: vec![BucketEntry {
                name: "b".into(),
                creation_date: Some("2026-11-25T08:00:00.000Z".into()),
            }],
        },
    });
    let doc = round_trip(&LocationConstraint {
        xmlns: Some(S3_NS.into()),
        region: "BEIJING".into(),
    });
    assert!(doc.ends_with("<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">BEIJING</LocationConstraint>"), "{doc}");
}

#[test]
fn errors_write_their_details_in_order_and_read_without_them() {
    let e = ErrorResponse {
        code: "SignatureDoesNotMatch".into(),
        message: Some("no".into()),
        resource: Some("/b/k".into()),
        request_id: Some("r1".into()),
        details: vec![
            ("StringToSign", "PUT\n\u{1}".into()),
            ("AWSAccessKeyId", "ak".into()),
        ],
    };
    let doc = to_xml(&e).unwrap();
    assert_eq!(
        doc,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch</Code><Message>no</Message><Resource>/b/k</Resource><RequestId>r1</RequestId><StringToSign>PUT\n&#x1;</StringToSign><AWSAccessKeyId>ak</AWSAccessKeyId></Error>"
    );
    let back: ErrorResponse = from_xml(doc.as_bytes()).unwrap();
    assert_eq!(
        back,
        ErrorResponse {
            details: vec![],
            ..e
        }
    );
    // Only the code is required.
    let min: ErrorResponse = from_xml(b"<Error><Code>NoSuchKey</Code></Error>").unwrap();
    assert_eq!((min.code.as_str(), min.message), ("NoSuchKey", None));
    assert!(from_xml::<ErrorResponse>(b"<Error><Message>m</Message></Error>").is_err());
}

#[test]
fn missing_required_fields_are_errors() {
    let no_truncated = b"<ListBucketResult><Name>b</Name><Contents><Key>k</Key><Size>1</Size></Contents></ListBucketResult>";
    let e = from_xml::<ListBucketResult>(no_truncated).unwrap_err();
    assert!(e.to_string().contains("IsTruncated"), "{e}");
    assert!(from_xml::<ListBucketResult>(b"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key></Contents></ListBucketResult>").is_err());
    assert!(from_xml::<ListBucketResult>(b"<ListBucketResult><IsTruncated>false</IsTruncated><CommonPrefixes></CommonPrefixes></ListBucketResult>").is_err());
    let e = from_xml::<InitiateMultipartUploadResult>(
        b"<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key></InitiateMultipartUploadResult>",
    )
    .unwrap_err();
    assert!(e.to_string().contains("UploadId"), "{e}");
    assert!(from_xml::<ListPartsResult>(b"<ListPartsResult><Part><PartNumber>1</PartNumber><ETag>e</ETag><Size>1</Size></Part></ListPartsResult>").is_err());
    assert!(from_xml::<ListPartsResult>(b"<ListPartsResult><IsTruncated>false</IsTruncated><Part><PartNumber>1</PartNumber><Size>1</Size></Part></ListPartsResult>").is_err());
    assert!(from_xml::<ListMultipartUploadsResult>(b"<ListMultipartUploadsResult><Upload><Key>k</Key><UploadId>u</UploadId></Upload></ListMultipartUploadsResult>").is_err());
    assert!(from_xml::<ListMultipartUploadsResult>(b"<ListMultipartUploadsResult><IsTruncated>false</IsTruncated><Upload><Key>k</Key></Upload></ListMultipartUploadsResult>").is_err());
    assert!(from_xml::<CopyPartResult>(
        b"<CopyPartResult><LastModified>x</LastModified></CopyPartResult>"
    )
    .is_err());
    assert!(from_xml::<CompleteMultipartUpload>(
        b"<CompleteMultipartUpload><Part><ETag>e</ETag></Part></CompleteMultipartUpload>"
    )
    .is_err());
    assert!(from_xml::<Delete>(b"<Delete><Object></Object></Delete>").is_err());
    // Optional ones may be left out; an empty CRC-64 is none.
    let r: CompleteMultipartUploadResult = from_xml(b"<CompleteMultipartUploadResult><ChecksumCRC64ECMA></ChecksumCRC64ECMA></CompleteMultipartUploadResult>").unwrap();
    assert_eq!(r, CompleteMultipartUploadResult::default());
    let r: CopyObjectResult = from_xml(b"<CopyObjectResult/>").unwrap();
    assert_eq!(r, CopyObjectResult::default());
}

#[test]
fn the_root_must_be_the_expected_one() {
    let e = from_xml::<CopyObjectResult>(b"<Error><Code>x</Code></Error>").unwrap_err();
    assert!(e.to_string().contains("<Error>"), "{e}");
    assert_eq!(
        root_name(
            b"<?xml version=\"1.0\"?>\n<ns2:Error xmlns:ns2=\"x\"><Code>c</Code></ns2:Error>\n"
        )
        .unwrap(),
        "Error"
    );
}

#[test]
fn namespaced_documents_parse_by_local_name() {
    let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<ns2:ListPartsResult xmlns:ns2="http://s3.amazonaws.com/doc/2006-03-01/">
  <ns2:Bucket>b</ns2:Bucket>
  <ns2:UploadId>id</ns2:UploadId>
  <ns2:NextPartNumberMarker>2</ns2:NextPartNumberMarker>
  <ns2:IsTruncated>true</ns2:IsTruncated>
  <ns2:Part><ns2:PartNumber> 1 </ns2:PartNumber><ns2:ETag>&quot;ab&quot;</ns2:ETag><ns2:Size>5</ns2:Size></ns2:Part>
  <ns2:Part><PartNumber>2</PartNumber><ETag>cd</ETag><Size>6</Size><ChecksumCRC64ECMA>9</ChecksumCRC64ECMA></ns2:Part>
  <ns2:Unknown><x>ignored</x></ns2:Unknown>
</ns2:ListPartsResult>"#;
    let r: ListPartsResult = from_xml(doc).unwrap();
    assert!(r.is_truncated);
    assert_eq!(r.upload_id.as_deref(), Some("id"));
    assert_eq!(r.next_part_number_marker.as_deref(), Some("2"));
    assert_eq!(r.parts.len(), 2);
    assert_eq!(
        (
            r.parts[0].part_number,
            r.parts[0].etag.as_str(),
            r.parts[0].size
        ),
        (1, "\"ab\"", 5)
    );
    assert_eq!(r.parts[1].crc64, Some(9));

    let r: DeleteResult = from_xml(b"<a:DeleteResult xmlns:a=\"x\"><a:Deleted><a:Key>k</a:Key></a:Deleted><a:Error><a:Key>j</a:Key><a:Code>AccessDenied</a:Code></a:Error></a:DeleteResult>").unwrap();
    assert_eq!(r.entries.len(), 2);
    assert!(matches!(&r.entries[1], DeleteEntry::Error(e) if e.code == "AccessDenied"));
    let e: ErrorResponse = from_xml(b"<ns2:Error xmlns:ns2=\"x\"><ns2:Code>NoSuchKey</ns2:Code><ns2:RequestId>r</ns2:RequestId></ns2:Error>").unwrap();
    assert_eq!(
        (e.code.as_str(), e.request_id.as_deref()),
        ("NoSuchKey", Some("r"))
    );
}

#[test]
fn text_keeps_its_spaces_and_entities() {
    let d: Delete = from_xml(b"<Delete><Quiet> true </Quiet><Object><Key> a  b </Key></Object><Object><Key><![CDATA[c<d]]></Key></Object><Object><Key>&#x1;&amp;</Key></Object></Delete>").unwrap();
    assert_eq!(d.quiet, Some(true));
    let keys: Vec<_> = d.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, vec![" a  b ", "c<d", "\u{1}&"]);
}

#[test]
fn hostile_input_is_an_error_not_a_panic() {
    // Numbers out of range, negative, or not numbers at all.
    for size in [
        "18446744073709551616",
        "-1",
        "1e3",
        "0x10",
        "",
        "99999999999999999999999999999",
    ] {
        let doc = format!("<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>{size}</Size></Contents></ListBucketResult>");
        assert!(
            from_xml::<ListBucketResult>(doc.as_bytes()).is_err(),
            "{size}"
        );
    }
    for n in ["4294967296", "-1", "one", ""] {
        let doc = format!("<CompleteMultipartUpload><Part><PartNumber>{n}</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>");
        assert!(
            from_xml::<CompleteMultipartUpload>(doc.as_bytes()).is_err(),
            "{n}"
        );
        let doc = format!("<ListPartsResult><IsTruncated>false</IsTruncated><Part><PartNumber>{n}</PartNumber><ETag>e</ETag><Size>1</Size></Part></ListPartsResult>");
        assert!(from_xml::<ListPartsResult>(doc.as_bytes()).is_err(), "{n}");
    }
    let e = from_xml::<CopyObjectResult>(b"<CopyObjectResult><ChecksumCRC64ECMA>18446744073709551616</ChecksumCRC64ECMA></CopyObjectResult>").unwrap_err();
    assert!(e.to_string().contains("18446744073709551616"), "{e}");
    for t in ["maybe", "", "TRUE "] {
        let doc = format!("<ListBucketResult><IsTruncated>{t}</IsTruncated></ListBucketResult>");
        assert!(from_xml::<ListBucketResult>(doc.as_bytes()).is_err(), "{t}");
    }

    // Deep nesting, also inside an element the types ignore.
    let deep = format!(
        "<ListBucketResult><IsTruncated>false</IsTruncated>{}{}</ListBucketResult>",
        "<x>".repeat(100_000),
        "</x>".repeat(100_000)
    );
    assert!(from_xml::<ListBucketResult>(deep.as_bytes())
        .unwrap_err()
        .to_string()
        .contains("deep"));
    let ok = format!(
        "<ListBucketResult><IsTruncated>false</IsTruncated>{}{}</ListBucketResult>",
        "<x>".repeat(MAX_DEPTH - 1),
        "</x>".repeat(MAX_DEPTH - 1)
    );
    assert!(from_xml::<ListBucketResult>(ok.as_bytes()).is_ok());
    // Too many elements.
    let wide = format!("<Delete>{}</Delete>", "<x/>".repeat(MAX_ELEMENTS));
    assert!(from_xml::<Delete>(wide.as_bytes())
        .unwrap_err()
        .to_string()
        .contains("many"));

    // Malformed documents.
    for doc in [
        &b""[..],
        b"   ",
        b"not xml",
        b"<Delete>",
        b"<Delete><Object></Delete>",
        b"<Delete></Delete><Delete></Delete>",
        b"<Delete></Delete>trailing",
        b"<!DOCTYPE x [<!ENTITY e 'x'>]><Delete><Object><Key>&e;</Key></Object></Delete>",
        b"<Delete><Object><Key>&e;</Key></Object></Delete>",
        b"<Delete><Object><Key>&#0;</Key></Object></Delete>",
        &[0xff, 0xfe, b'<', 0],
        b"<Delete><Quiet>true</Quiet><Quiet>false</Quiet></Delete>",
    ] {
        assert!(
            from_xml::<Delete>(doc).is_err(),
            "{}",
            String::from_utf8_lossy(doc)
        );
    }
}
