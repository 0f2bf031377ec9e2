#!/usr/bin/env python3
"""The official KS3 Python SDK (ks3sdk) measured against a KS3 endpoint, for the peer column
of `ks3-driver bench`: streamed upload and download throughput and small-object latencies.

Usage: bench_ks3sdk.py HOST:PORT BUCKET AK SK [--size-mib N] [--small N]
Prints one JSON object on stdout.
"""
import argparse
import io
import json
import statistics
import sys
import time

from ks3.connection import Connection, PathCallingFormat


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("endpoint")
    ap.add_argument("bucket")
    ap.add_argument("ak")
    ap.add_argument("sk")
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--small", type=int, default=200)
    a = ap.parse_args()
    host, port = a.endpoint.rsplit(":", 1)
    conn = Connection(a.ak, a.sk, host=host, port=int(port), is_secure=False,
                      calling_format=PathCallingFormat(), domain_mode=False)
    bucket = conn.get_bucket(a.bucket)
    out = {}

    size = a.size_mib * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)
    key = bucket.new_key("sdk-bench/large")
    t = time.perf_counter()
    key.set_contents_from_file(io.BytesIO(payload), headers={"Content-Type": "application/octet-stream"})
    out["upload_mibps"] = a.size_mib / (time.perf_counter() - t)

    t = time.perf_counter()
    got = bucket.get_key("sdk-bench/large").get_contents_as_string()
    out["download_mibps"] = a.size_mib / (time.perf_counter() - t)
    if len(got) != size:
        print("download returned %d of %d bytes" % (len(got), size), file=sys.stderr)
        sys.exit(1)
    bucket.delete_key("sdk-bench/large")

    small = bytes(4096)
    lat = {"put": [], "get": [], "stat": []}
    for i in range(a.small):
        name = "sdk-bench/small/%06d" % i
        k = bucket.new_key(name)
        t = time.perf_counter()
        k.set_contents_from_string(small)
        lat["put"].append(time.perf_counter() - t)
        t = time.perf_counter()
        bucket.get_key(name).get_contents_as_string()
        lat["get"].append(time.perf_counter() - t)
        t = time.perf_counter()
        bucket.get_key(name, validate=True)  # a HEAD
        lat["stat"].append(time.perf_counter() - t)
    for op, v in lat.items():
        out["small_%s_ops" % op] = len(v) / sum(v)
        out["small_%s_p50_us" % op] = pct(v, 50) * 1e6
        out["small_%s_p99_us" % op] = pct(v, 99) * 1e6
        out["small_%s_mean_us" % op] = statistics.mean(v) * 1e6
    for i in range(a.small):
        bucket.delete_key("sdk-bench/small/%06d" % i)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
