#!/usr/bin/env python3
"""Drives ks3-local with the official KS3 Python SDK (ks3sdk==1.18.0), path-style over plain
HTTP (ks3-api.md section 8). An independent client that the server accepts is the proof that
our signing rules are KS3's.

Usage: test_ks3sdk.py [PATH_TO_ks3-local]   (or env KS3_LOCAL_BIN)
Exit status 0 when every check passes; the last line is "N passed, M failed".
"""
import io
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
MIB = 1024 * 1024


def fail_setup(msg):
    print("SETUP FAILED: " + msg, flush=True)
    print("0 passed, 1 failed", flush=True)
    sys.exit(2)


try:
    from ks3.connection import Connection, PathCallingFormat
    from ks3.exception import S3ResponseError
    import ks3
except ImportError as e:  # pragma: no cover
    fail_setup("the official KS3 SDK is not installed (%s); run: pip install ks3sdk==1.18.0" % e)


def start_server(exe, data_dir):
    proc = subprocess.Popen(
        [exe, "--addr", "127.0.0.1:0", "--data", data_dir, "--bucket", BUCKET,
         "--bucket", "other-bucket", "--access-key", AK, "--secret-key", SK],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    box = {}

    def read_first_line():
        box["line"] = proc.stdout.readline()

    t = threading.Thread(target=read_first_line, daemon=True)
    t.start()
    t.join(30)
    line = box.get("line", "")
    prefix = "listening on http://"
    if not line.startswith(prefix):
        proc.kill()
        fail_setup("ks3-local did not print 'listening on http://HOST:PORT' (got %r; stderr: %r)"
                   % (line, proc.stderr.read()))
    host, port = line[len(prefix):].strip().rsplit(":", 1)
    return proc, host, int(port)


def data(n, seed):
    return random.Random(seed).randbytes(n)


class Checks:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.conn = self.connect(SK)
        self.bucket = self.conn.get_bucket(BUCKET)

    def connect(self, secret):
        return Connection(AK, secret, host=self.host, port=self.port, is_secure=False,
                          calling_format=PathCallingFormat(), domain_mode=False)

    def expect_error(self, fn, status, code):
        try:
            fn()
        except S3ResponseError as e:
            assert e.status == status and e.error_code == code, (e.status, e.error_code, e.body)
            return e
        raise AssertionError("expected %s %s, got success" % (status, code))

    # ---- objects ----

    def test_put_get_with_sse_md5_and_crc(self):
        k = self.bucket.new_key("docker/registry/v2/blobs/sha256/ab/abcd/data")
        k.set_contents_from_string(b"hello world", headers={"Content-Type": "application/octet-stream"},
                                   encrypt_key=True)  # the SDK checks the returned CRC-64
        g = self.bucket.get_key("docker/registry/v2/blobs/sha256/ab/abcd/data", validate=True)
        assert g.encrypted == "AES256", g.encrypted
        body = g.get_contents_as_string()
        assert body == b"hello world", body
        assert g.server_crc is not None, "server sent no x-kss-checksum-crc64ecma"
        assert g.server_crc == g.client_crc, (g.server_crc, g.client_crc)
        assert g.etag == '"5eb63bbbe01eeed093cb22bb8f5acdc3"', g.etag

    def test_range(self):
        k = self.bucket.new_key("range/obj")
        k.set_contents_from_string(b"0123456789abcdef")
        g = self.bucket.new_key("range/obj")
        assert g.get_contents_as_string(byte_range=(2, 5)) == b"2345"
        g = self.bucket.new_key("range/obj")
        assert g.get_contents_as_string(byte_range=(10, None)) == b"abcdef"
        g = self.bucket.new_key("range/obj")
        self.expect_error(lambda: g.get_contents_as_string(byte_range=(100, 200)), 416, "InvalidRange")

    def test_head(self):
        self.bucket.new_key("head/obj").set_contents_from_string(b"x" * 1234)
        k = self.bucket.get_key("head/obj", validate=True)
        assert k is not None and int(k.size) == 1234, k
        assert k.last_modified, "no Last-Modified"
        assert self.bucket.get_key("head/missing", validate=True) is None  # HEAD 404 → None

    def test_delete(self):
        self.bucket.new_key("del/obj").set_contents_from_string(b"bye")
        self.bucket.delete_key("del/obj")  # the SDK insists on 204
        assert self.bucket.get_key("del/obj", validate=True) is None
        self.expect_error(lambda: self.bucket.new_key("del/obj").get_contents_as_string(), 404, "NoSuchKey")
        self.expect_error(lambda: self.bucket.delete_key("del/obj"), 404, "NoSuchKey")

    def test_unicode_key(self):
        name = "a dir/\u00fc+file=1&x.txt"
        self.bucket.new_key(name).set_contents_from_string(b"unicode")
        assert self.bucket.new_key(name).get_contents_as_string() == b"unicode"

    # ---- listing ----

    def test_list_prefix_delimiter_paging(self):
        names = ["list/a/1", "list/a/2", "list/b/1", "list/c", "list/d"]
        names += ["list/many/%03d" % i for i in range(25)]
        for n in names:
            self.bucket.new_key(n).set_contents_from_string(b"l")
        items = list(self.bucket.list(prefix="list/", delimiter="/"))
        keys = [i.name for i in items if isinstance(i, ks3.key.Key)]
        prefixes = [i.name for i in items if not isinstance(i, ks3.key.Key)]
        assert keys == ["list/c", "list/d"], keys
        assert prefixes == ["list/a/", "list/b/", "list/many/"], prefixes
        # Paging: 25 keys, 7 per page → 4 pages, NextMarker-driven.
        many = [k.name for k in self.bucket.list(prefix="list/many/", delimiter="", max_keys=7)]
        assert many == ["list/many/%03d" % i for i in range(25)], many
        # Paging with a delimiter (common prefixes count towards the page).
        mixed = [i.name for i in self.bucket.list(prefix="list/", delimiter="/", max_keys=2)]
        assert mixed == ["list/a/", "list/b/", "list/c", "list/d", "list/many/"], mixed
        # ListObjectsV2 with continuation tokens.
        v2 = [k.name for k in self.bucket.list_v2(prefix="list/many/", delimiter="", max_keys=10)]
        assert v2 == ["list/many/%03d" % i for i in range(25)], v2

    def test_list_limits(self):
        self.expect_error(lambda: list(self.bucket.list(prefix="limits/", max_keys=1001)),
                          400, "InvalidArgument")
        # With a delimiter a page holds at most 100: a larger max-keys (distribution's s3
        # driver asks for 1000) is clamped, and the SDK pages on.
        names = ["limits/%03d" % i for i in range(102)] + ["limits/sub/x"]
        for n in names:
            self.bucket.new_key(n).set_contents_from_string(b"l")
        got = [i.name for i in self.bucket.list(prefix="limits/", delimiter="/", max_keys=101)]
        assert got == names[:102] + ["limits/sub/"], got[-3:]

    # ---- multipart ----

    def test_multipart_upload(self):
        name = "mp/blob"
        p1, p2 = data(5 * MIB, 1), data(300 * 1024, 2)
        mp = self.bucket.initiate_multipart_upload(name, encrypt_key=True)
        mp.upload_part_from_file(io.BytesIO(p1), 1)
        mp.upload_part_from_file(io.BytesIO(p2), 2)
        parts = list(mp)  # list parts, paged by the SDK
        assert [p.part_number for p in parts] == [1, 2], parts
        assert [p.size for p in parts] == [len(p1), len(p2)]
        page = self.bucket.list_parts(BUCKET, name, mp.id, max_parts=1)
        assert [p.part_number for p in page.data] == [1]
        ups = [u.id for u in self.bucket.list_multipart_uploads()]
        assert mp.id in ups, ups
        res = mp.complete_upload()  # the SDK checks ChecksumCRC64ECMA against the parts' CRCs
        assert res.etag.strip('"').endswith("-2"), res.etag
        g = self.bucket.new_key(name)
        assert g.get_contents_as_string() == p1 + p2
        assert g.server_crc == g.client_crc

    def test_multipart_too_small_part(self):
        mp = self.bucket.initiate_multipart_upload("mp/small")
        mp.upload_part_from_file(io.BytesIO(b"a" * 1000), 1)
        mp.upload_part_from_file(io.BytesIO(b"b" * 1000), 2)
        self.expect_error(mp.complete_upload, 400, "EntityTooSmall")
        mp.cancel_upload()  # 204
        self.expect_error(mp.cancel_upload, 404, "NoSuchUpload")

    def test_part_copy(self):
        src = data(6 * MIB, 3)
        self.bucket.new_key("pc/src").set_contents_from_string(src)
        mp = self.bucket.initiate_multipart_upload("pc/dst")
        mp.copy_part_from_key(BUCKET, "pc/src", 1, 0, 5 * MIB - 1)
        mp.copy_part_from_key(BUCKET, "pc/src", 2, 5 * MIB, 6 * MIB - 1)
        mp.complete_upload()
        assert self.bucket.new_key("pc/dst").get_contents_as_string() == src

    # ---- copy ----

    def test_copy(self):
        src = "copy/a dir/\u00fc+src.txt"
        self.bucket.new_key(src).set_contents_from_string(b"copy me", headers={"Content-Type": "text/plain"})
        k = self.bucket.copy_key("copy/dst", BUCKET, src)  # quote_plus-encoded source
        assert k.server_crc is not None
        assert self.bucket.new_key("copy/dst").get_contents_as_string() == b"copy me"
        other = self.conn.get_bucket("other-bucket")
        other.copy_key("x", BUCKET, src)
        assert other.new_key("x").get_contents_as_string() == b"copy me"
        self.expect_error(lambda: self.bucket.copy_key("copy/x", BUCKET, "copy/missing"), 404, "NoSuchKey")

    # ---- auth ----

    def test_presigned_get_over_http(self):
        name = "presigned/a b+c.txt"
        self.bucket.new_key(name).set_contents_from_string(b"via presigned url")
        url = self.conn.generate_url(60, "GET", BUCKET, name)
        assert url.startswith("http://%s:%d/%s/" % (self.host, self.port, BUCKET)), url
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and r.read() == b"via presigned url"
        expired = self.conn.generate_url(int(time.time()) - 10, "GET", BUCKET, name, expires_in_absolute=True)
        try:
            urllib.request.urlopen(expired, timeout=10)
            raise AssertionError("expired URL accepted")
        except urllib.error.HTTPError as e:
            body = e.read().decode()
            assert e.code == 403 and "<Code>AccessDenied</Code>" in body, (e.code, body)

    def test_wrong_secret_is_rejected(self):
        bad = self.connect("not-the-secret").get_bucket(BUCKET)
        e = self.expect_error(lambda: bad.new_key("auth/x").set_contents_from_string(b"x"),
                              403, "SignatureDoesNotMatch")
        assert "<StringToSign>" in e.body, e.body
        self.expect_error(lambda: bad.new_key("docker/registry/v2/blobs/sha256/ab/abcd/data")
                          .get_contents_as_string(), 403, "SignatureDoesNotMatch")
        assert self.bucket.get_key("auth/x", validate=True) is None

    def test_head_bucket(self):
        self.conn.head_bucket(BUCKET)
        try:
            self.conn.head_bucket("no-such-bucket")
            raise AssertionError("HEAD of a missing bucket succeeded")
        except S3ResponseError as e:
            assert e.status == 404, e.status

    def test_list_buckets(self):
        names = sorted(b.name for b in self.conn.get_all_buckets())
        assert names == ["other-bucket", BUCKET], names


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("KS3_LOCAL_BIN", "")
    if not exe or not os.path.exists(exe):
        fail_setup("path to the ks3-local binary required (argv[1] or KS3_LOCAL_BIN), got %r" % exe)
    with tempfile.TemporaryDirectory() as d:
        proc, host, port = start_server(exe, d)
        passed, failed = 0, 0
        try:
            checks = Checks(host, port)
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
