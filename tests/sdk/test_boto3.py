#!/usr/bin/env python3
"""Drives ks3-local with boto3's S3 client (AWS Signature V4, `s3v4`, path-style over plain
HTTP): botocore is an independent AWS4 signer, so a server that accepts it, and refuses it
with a wrong secret, checks our AWS4 verification against the reference implementation.

Usage: test_boto3.py [PATH_TO_ks3-local]   (or env KS3_LOCAL_BIN)
Exit status 0 when every check passes; the last line is "N passed, M failed".
"""
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

AK = "AKLTtestaccesskey0001"
SK = "testsecretkeyTESTSECRETKEY0123456789abcd"
BUCKET = "registry-bucket"
REGION = "BEIJING"  # the V4 region name of ks3-cn-beijing (ks3-api.md section 4)
MIB = 1024 * 1024
ODD = "a dir/\u00fc+file=1&x~y!(z)*'.txt"


def fail_setup(msg):
    print("SETUP FAILED: " + msg, flush=True)
    print("0 passed, 1 failed", flush=True)
    sys.exit(2)


try:
    import boto3
    import botocore
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError as e:  # pragma: no cover
    fail_setup("boto3 is not installed (%s); run: pip install boto3" % e)


def start_server(exe, data_dir):
    proc = subprocess.Popen(
        [exe, "--addr", "127.0.0.1:0", "--data", data_dir, "--bucket", BUCKET,
         "--access-key", AK, "--secret-key", SK, "--min-part-size", str(5 * MIB)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    box = {}

    def read_first_line():
        box["line"] = proc.stdout.readline()

    t = threading.Thread(target=read_first_line, daemon=True)
    t.start()
    t.join(30)
    line = box.get("line", "")
    prefix = "listening on "
    if not line.startswith(prefix + "http://"):
        proc.kill()
        fail_setup("ks3-local did not print 'listening on http://HOST:PORT' (got %r; stderr: %r)"
                   % (line, proc.stderr.read()))
    return proc, line[len(prefix):].strip()


def data(n, seed):
    return random.Random(seed).randbytes(n)


class Checks:
    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.s3 = self.client(SK)

    def client(self, secret):
        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=AK,
            aws_secret_access_key=secret, region_name=REGION,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"max_attempts": 1}))

    def expect_error(self, fn, status, code):
        try:
            fn()
        except ClientError as e:
            got = (e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"])
            assert got == (status, code), (got, e.response)
            return e
        raise AssertionError("expected %s %s, got success" % (status, code))

    def body(self, key, **kw):
        return self.s3.get_object(Bucket=BUCKET, Key=key, **kw)["Body"].read()

    # ---- bucket ----

    def test_head_bucket_and_location(self):
        self.s3.head_bucket(Bucket=BUCKET)
        loc = self.s3.get_bucket_location(Bucket=BUCKET)["LocationConstraint"]
        assert loc == REGION, loc
        self.expect_error(lambda: self.s3.head_bucket(Bucket="no-such-bucket"), 404, "404")

    # ---- objects ----

    def test_put_get_metadata_sse(self):
        r = self.s3.put_object(Bucket=BUCKET, Key="obj/a", Body=b"hello world",
                               ContentType="text/plain", Metadata={"color": "blue"},
                               ServerSideEncryption="AES256", ACL="private")
        assert r["ETag"] == '"5eb63bbbe01eeed093cb22bb8f5acdc3"', r["ETag"]
        g = self.s3.get_object(Bucket=BUCKET, Key="obj/a")
        assert g["Body"].read() == b"hello world"
        assert g["ContentType"] == "text/plain", g["ContentType"]
        assert g["Metadata"] == {"color": "blue"}, g["Metadata"]
        assert g["ServerSideEncryption"] == "AES256", g.get("ServerSideEncryption")

    def test_key_needing_encoding(self):
        self.s3.put_object(Bucket=BUCKET, Key=ODD, Body=b"odd")
        assert self.body(ODD) == b"odd"

    def test_range(self):
        self.s3.put_object(Bucket=BUCKET, Key="range/obj", Body=b"0123456789abcdef")
        g = self.s3.get_object(Bucket=BUCKET, Key="range/obj", Range="bytes=2-5")
        assert g["Body"].read() == b"2345"
        assert g["ContentRange"] == "bytes 2-5/16", g["ContentRange"]
        assert self.body("range/obj", Range="bytes=10-") == b"abcdef"
        self.expect_error(lambda: self.s3.get_object(Bucket=BUCKET, Key="range/obj",
                                                     Range="bytes=100-200"), 416, "InvalidRange")

    def test_head_and_missing(self):
        self.s3.put_object(Bucket=BUCKET, Key="head/obj", Body=b"x" * 1234)
        h = self.s3.head_object(Bucket=BUCKET, Key="head/obj")
        assert h["ContentLength"] == 1234, h["ContentLength"]
        assert h["LastModified"] is not None
        self.expect_error(lambda: self.s3.head_object(Bucket=BUCKET, Key="head/none"), 404, "404")
        self.expect_error(lambda: self.s3.get_object(Bucket=BUCKET, Key="head/none"), 404,
                          "NoSuchKey")

    def test_delete_object(self):
        self.s3.put_object(Bucket=BUCKET, Key="del/obj", Body=b"bye")
        r = self.s3.delete_object(Bucket=BUCKET, Key="del/obj")
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
        self.expect_error(lambda: self.s3.get_object(Bucket=BUCKET, Key="del/obj"), 404,
                          "NoSuchKey")

    # ---- listing ----

    def put_tree(self, root):
        names = [root + n for n in ["a/1", "a/2", "b/1", "c", "d"]]
        names += [root + "many/%03d" % i for i in range(5)]
        for n in names:
            self.s3.put_object(Bucket=BUCKET, Key=n, Body=b"l")
        return names

    def test_list_v1_delimiter_and_paging(self):
        self.put_tree("l1/")
        r = self.s3.list_objects(Bucket=BUCKET, Prefix="l1/", Delimiter="/")
        keys = [c["Key"] for c in r.get("Contents", [])]
        prefixes = [p["Prefix"] for p in r.get("CommonPrefixes", [])]
        assert keys == ["l1/c", "l1/d"], keys
        assert prefixes == ["l1/a/", "l1/b/", "l1/many/"], prefixes
        assert r["IsTruncated"] is False
        pages = self.s3.get_paginator("list_objects").paginate(
            Bucket=BUCKET, Prefix="l1/many/", PaginationConfig={"PageSize": 2})
        got = [c["Key"] for p in pages for c in p.get("Contents", [])]
        assert got == ["l1/many/%03d" % i for i in range(5)], got

    def test_list_v2_delimiter_and_paging(self):
        names = self.put_tree("l2/")
        r = self.s3.list_objects_v2(Bucket=BUCKET, Prefix="l2/", Delimiter="/")
        assert [c["Key"] for c in r.get("Contents", [])] == ["l2/c", "l2/d"], r
        assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["l2/a/", "l2/b/", "l2/many/"]
        assert r["KeyCount"] == 5, r["KeyCount"]
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix="l2/", PaginationConfig={"PageSize": 3})
        got = [c["Key"] for p in pages for c in p.get("Contents", [])]
        assert got == sorted(names), got
        r = self.s3.list_objects_v2(Bucket=BUCKET, Prefix="l2/", StartAfter="l2/c")
        assert [c["Key"] for c in r["Contents"]] == ["l2/d"] + ["l2/many/%03d" % i for i in range(5)]

    # ---- multipart ----

    def test_multipart_with_list_parts_and_part_copy(self):
        key = "mp/" + ODD
        p1, src, p3 = data(5 * MIB, 1), data(6 * MIB, 2), data(1000, 3)
        self.s3.put_object(Bucket=BUCKET, Key="mp/src", Body=src)
        up = self.s3.create_multipart_upload(Bucket=BUCKET, Key=key, ContentType="x/y")
        uid = up["UploadId"]
        e1 = self.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=1, Body=p1)["ETag"]
        c2 = self.s3.upload_part_copy(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=2,
                                      CopySource={"Bucket": BUCKET, "Key": "mp/src"},
                                      CopySourceRange="bytes=0-%d" % (5 * MIB - 1))
        e2 = c2["CopyPartResult"]["ETag"]
        e3 = self.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=3, Body=p3)["ETag"]
        ups = self.s3.list_multipart_uploads(Bucket=BUCKET, Prefix="mp/")
        assert [u["UploadId"] for u in ups["Uploads"]] == [uid], ups
        parts = self.s3.list_parts(Bucket=BUCKET, Key=key, UploadId=uid, MaxParts=2)
        assert [p["PartNumber"] for p in parts["Parts"]] == [1, 2], parts["Parts"]
        assert parts["IsTruncated"] is True
        assert [p["Size"] for p in parts["Parts"]] == [5 * MIB, 5 * MIB]
        rest = self.s3.list_parts(Bucket=BUCKET, Key=key, UploadId=uid,
                                  PartNumberMarker=parts["NextPartNumberMarker"])
        assert [p["PartNumber"] for p in rest["Parts"]] == [3], rest["Parts"]
        self.s3.complete_multipart_upload(
            Bucket=BUCKET, Key=key, UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2},
                                       {"PartNumber": 3, "ETag": e3}]})
        assert self.body(key) == p1 + src[:5 * MIB] + p3
        self.expect_error(lambda: self.s3.list_parts(Bucket=BUCKET, Key=key, UploadId=uid), 404,
                          "NoSuchUpload")

    def test_multipart_abort(self):
        uid = self.s3.create_multipart_upload(Bucket=BUCKET, Key="mp/abort")["UploadId"]
        self.s3.upload_part(Bucket=BUCKET, Key="mp/abort", UploadId=uid, PartNumber=1, Body=b"x")
        self.s3.abort_multipart_upload(Bucket=BUCKET, Key="mp/abort", UploadId=uid)
        self.expect_error(lambda: self.s3.list_parts(Bucket=BUCKET, Key="mp/abort", UploadId=uid),
                          404, "NoSuchUpload")

    # ---- copy and multi-delete ----

    def test_copy_object(self):
        self.s3.put_object(Bucket=BUCKET, Key="cp/" + ODD, Body=b"copy me", Metadata={"k": "v"})
        self.s3.copy_object(Bucket=BUCKET, Key="cp/dst", CopySource={"Bucket": BUCKET,
                                                                      "Key": "cp/" + ODD})
        g = self.s3.get_object(Bucket=BUCKET, Key="cp/dst")
        assert g["Body"].read() == b"copy me"
        assert g["Metadata"] == {"k": "v"}, g["Metadata"]

    def test_multi_delete(self):
        keys = ["md/1", "md/2", "md/" + ODD]
        for k in keys:
            self.s3.put_object(Bucket=BUCKET, Key=k, Body=b"d")
        r = self.s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys]})
        assert sorted(d["Key"] for d in r["Deleted"]) == sorted(keys), r
        assert not r.get("Errors"), r["Errors"]
        assert "Contents" not in self.s3.list_objects(Bucket=BUCKET, Prefix="md/")

    # ---- presigned URLs, fetched without boto3 ----

    def test_presigned_get_and_put(self):
        key = "pre/" + ODD
        put = self.s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": key},
                                             ExpiresIn=600)
        assert "X-Amz-Signature=" in put, put
        req = urllib.request.Request(put, data=b"presigned body", method="PUT")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200, r.status
        get = self.s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key},
                                             ExpiresIn=600)
        with urllib.request.urlopen(get, timeout=30) as r:
            assert r.read() == b"presigned body"
        assert self.body(key) == b"presigned body"
        bad = self.client("wrong-secret").generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=600)
        try:
            urllib.request.urlopen(bad, timeout=30)
            raise AssertionError("a URL signed with a wrong secret was accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 403 and b"SignatureDoesNotMatch" in e.read(), e.code

    # ---- rejection ----

    def test_wrong_secret_is_rejected(self):
        bad = self.client("wrong-secret")
        e = self.expect_error(lambda: bad.put_object(Bucket=BUCKET, Key="x", Body=b"x"), 403,
                              "SignatureDoesNotMatch")
        assert "CanonicalRequest" in e.response["Error"], e.response["Error"]
        self.expect_error(lambda: bad.list_objects_v2(Bucket=BUCKET), 403,
                          "SignatureDoesNotMatch")
        self.expect_error(lambda: self.s3.get_object(Bucket=BUCKET, Key="x"), 404, "NoSuchKey")


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("KS3_LOCAL_BIN", "")
    if not exe or not os.path.exists(exe):
        fail_setup("path to the ks3-local binary required (argv[1] or KS3_LOCAL_BIN), got %r" % exe)
    print("boto3 %s, botocore %s" % (boto3.__version__, botocore.__version__), flush=True)
    with tempfile.TemporaryDirectory() as d:
        proc, endpoint = start_server(exe, d)
        passed, failed = 0, 0
        try:
            checks = Checks(endpoint)
            names = sorted(n for n in dir(checks) if n.startswith("test_"))
            for n in names:
                t = time.time()
                try:
                    getattr(checks, n)()
                    passed += 1
                    print("ok   %s (%.2fs)" % (n, time.time() - t), flush=True)
                except Exception:
                    failed += 1
                    print("FAIL %s" % n, flush=True)
                    traceback.print_exc()
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        print("%d passed, %d failed" % (passed, failed), flush=True)
        sys.exit(0 if failed == 0 and passed > 0 else 1)


if __name__ == "__main__":
    main()
