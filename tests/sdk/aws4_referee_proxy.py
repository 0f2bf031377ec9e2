#!/usr/bin/env python3
"""A recording stand-in server that re-verifies every AWS4 signature with botocore.

The driver component (signatureversion=aws4) is pointed at this proxy instead of ks3-local.
For each request the proxy rebuilds an AWSRequest with the same method, URL, headers and
body, signs it with botocore's own signer at the request's X-Amz-Date (S3SigV4Auth for
Authorization headers, S3SigV4QueryAuth with the same X-Amz-Expires for presigned URLs),
and compares: the whole Authorization header, or X-Amz-Credential, X-Amz-SignedHeaders and
X-Amz-Signature. botocore computes the payload hash itself from the body it is given, so a
wrong x-amz-content-sha256 is a mismatch too. Then the request is forwarded unchanged to
the upstream ks3-local (which verifies it once more) and its answer relayed, so the
driver's operations succeed.

The rebuilt request carries the headers the request says it signed (SignedHeaders), so
botocore signs exactly those values; a header the client sent but left unsigned is a
finding of its own (a driver must sign all it sends, or a proxy could alter it), except the
hop-by-hop ones an HTTP stack adds by itself, and except with --allow-unsigned (for
checking the proxy against boto3's own client, which adds headers after signing).

Usage: aws4_referee_proxy.py [--allow-unsigned] UPSTREAM_URL ACCESS_KEY SECRET_KEY REGION
Prints "listening on http://127.0.0.1:PORT" first. GET /__referee/report answers a text
report: "checked H header, P presigned, M mismatches", then one line per operation kind
seen ("op: ..."), then each mismatch ("mismatch: ..."). Exits when stdin closes.
"""
import datetime
import http.client
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

try:
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError as e:  # pragma: no cover
    print("SETUP FAILED: botocore is not installed (%s); run: pip install boto3" % e, flush=True)
    sys.exit(2)

ARGS = [a for a in sys.argv[1:] if a != "--allow-unsigned"]
ALLOW_UNSIGNED = len(ARGS) != len(sys.argv) - 1
UPSTREAM, AK, SK, REGION = ARGS[:4]
UP = urlsplit(UPSTREAM)
# Added by HTTP stacks, never by the driver; botocore does not sign them either.
TRANSPORT_HEADERS = {"connection", "keep-alive", "te", "transfer-encoding", "user-agent"}
AUTH_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
               "X-Amz-SignedHeaders", "X-Amz-Signature")

lock = threading.Lock()  # mock.patch of the clock is process-wide
stats = {"header": 0, "presigned": 0}
ops = set()
mismatches = []


def at(amz_date):
    return datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc)


def op_name(method, query, headers):
    names = sorted({k for k, _ in query if not k.startswith("X-Amz-")})
    kind = method + (" ?" + "&".join(names) if names else "")
    if "x-amz-copy-source" in headers:
        kind += " copy"
    if any(k == "X-Amz-Signature" for k, _ in query):
        kind += " presigned"
    return kind


def verify_header(method, target, headers, body):
    got = headers.get("authorization", "")
    amz_date = headers.get("x-amz-date")
    if not got.startswith("AWS4-HMAC-SHA256 ") or not amz_date:
        return "not an AWS4 header-signed request (Authorization %r)" % got[:40]
    url = "http://%s%s" % (headers.get("host", ""), target)
    signed = set()
    for part in got.split(" ", 1)[1].split(","):
        k, _, v = part.strip().partition("=")
        if k == "SignedHeaders":
            signed = set(v.split(";"))
    unsigned = sorted(k for k in headers
                      if k.lower() not in signed | TRANSPORT_HEADERS | {"authorization"})
    if unsigned and not ALLOW_UNSIGNED:
        return "headers sent but not signed: %s" % ", ".join(unsigned)
    # Date and payload hash are botocore's to set (the latter from the body it is given).
    kept = {k: v for k, v in headers.items()
            if k in signed - {"host", "x-amz-date", "x-amz-content-sha256"}}
    req = AWSRequest(method=method, url=url, headers=kept, data=body)
    auth = botocore.auth.S3SigV4Auth(Credentials(AK, SK), "s3", REGION)
    with lock, mock.patch("botocore.auth.get_current_datetime", return_value=at(amz_date)):
        auth.add_auth(req)
    want = req.headers["Authorization"]
    if got != want:
        return "Authorization %r, botocore computes %r (payload hash sent %s, botocore's %s)" % (
            got, want, headers.get("x-amz-content-sha256"), req.headers["X-Amz-Content-SHA256"])
    return None


def verify_presigned(method, target, headers):
    parts = urlsplit(target)
    query = parse_qsl(parts.query, keep_blank_values=True)
    got = dict((k, v) for k, v in query if k in AUTH_PARAMS)
    if got.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        return "presigned URL without X-Amz-Algorithm=AWS4-HMAC-SHA256"
    # The URL's other parameters, as sent (still encoded).
    rest = "&".join(p for p in parts.query.split("&")
                    if p and p.split("=", 1)[0] not in AUTH_PARAMS)
    url = "http://%s%s%s" % (headers.get("host", ""), parts.path, "?" + rest if rest else "")
    req = AWSRequest(method=method, url=url, headers={})
    auth = botocore.auth.S3SigV4QueryAuth(Credentials(AK, SK), "s3", REGION,
                                          expires=int(got.get("X-Amz-Expires", "0")))
    with lock, mock.patch("botocore.auth.get_current_datetime",
                          return_value=at(got.get("X-Amz-Date", ""))):
        auth.add_auth(req)
    want = dict((k, v) for k, v in parse_qsl(urlsplit(req.url).query) if k in AUTH_PARAMS)
    if got != want:
        return "presigned parameters %r, botocore computes %r" % (got, want)
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        if self.path == "/__referee/report":
            with lock:
                lines = ["checked %d header, %d presigned, %d mismatches" % (
                    stats["header"], stats["presigned"], len(mismatches))]
                lines += ["op: " + o for o in sorted(ops)]
                lines += ["cut off: %d (bodies that never fully came)" % stats.get("cut off", 0)]
                lines += ["mismatch: " + m for m in mismatches]
            body = ("\n".join(lines) + "\n").encode()
            self.reply(200, [("Content-Length", str(len(body)))], body)
            return
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if len(body) < n:
            # The client went away mid-body (a writer dropped while a part was going
            # out): the signature covers the whole body, which never came; nothing to
            # verify and nothing to forward.
            with lock:
                stats["cut off"] = stats.get("cut off", 0) + 1
            self.close_connection = True
            return
        # Lower-case names: HTTP header names are case-insensitive, clients differ.
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = parse_qsl(urlsplit(self.path).query, keep_blank_values=True)
        kind = op_name(self.command, query, headers)
        try:
            if any(k == "X-Amz-Signature" for k, _ in query):
                why, counter = verify_presigned(self.command, self.path, headers), "presigned"
            else:
                why, counter = verify_header(self.command, self.path, headers, body), "header"
        except Exception as e:  # a request botocore cannot even sign is a mismatch too
            why, counter = "botocore raised %r" % e, "header"
        with lock:
            stats[counter] += 1
            ops.add(kind)
            if why:
                mismatches.append("%s %s: %s" % (self.command, self.path, why))
        self.forward(body)

    def forward(self, body):
        conn = http.client.HTTPConnection(UP.hostname, UP.port, timeout=120)
        # The request goes on exactly as the driver sent it (its Host included, so the
        # upstream's own verification sees the signed value).
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() not in ("connection", "keep-alive"):
                conn.putheader(k, v)
        conn.endheaders(body if body or self.command in ("PUT", "POST") else None)
        resp = conn.getresponse()
        data = resp.read()
        out = [(k, v) for k, v in resp.getheaders()
               if k.lower() not in ("transfer-encoding", "connection", "content-length")]
        length = resp.getheader("Content-Length")
        out.append(("Content-Length", length if self.command == "HEAD" and length
                    else str(len(data))))
        conn.close()
        self.reply(resp.status, out, data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_any


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("listening on http://127.0.0.1:%d" % server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # the test closes stdin (or dies) when it is done
    server.shutdown()


if __name__ == "__main__":
    main()
