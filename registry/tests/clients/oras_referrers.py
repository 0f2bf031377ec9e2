"""Driven by registry/tests/clients.rs: the `oras` Python package pushes an artifact whose
`subject` is another artifact, then finds it through the referrers API.

Usage: python3 oras_referrers.py HOST:PORT WORKDIR. Prints one JSON object on stdout.
"""
import hashlib
import json
import os
import sys

import oras.client
import oras.oci

host, workdir = sys.argv[1], sys.argv[2]
os.chdir(workdir)  # oras-py only pushes files under the working directory
client = oras.client.OrasClient(hostname=host, insecure=True)
repo = f"{host}/oras/app"

with open("subject.txt", "w") as f:
    f.write("the subject artifact\n")
client.push(target=f"{repo}:v1", files=["subject.txt"], quiet=True)

manifest_type = "application/vnd.oci.image.manifest.v1+json"
got = client.do_request(
    f"http://{host}/v2/oras/app/manifests/v1", "GET", headers={"Accept": manifest_type}
)
got.raise_for_status()
body = got.content
subject_digest = "sha256:" + hashlib.sha256(body).hexdigest()
subject = oras.oci.Subject(mediaType=manifest_type, digest=subject_digest, size=len(body))

with open("signature.txt", "w") as f:
    f.write("a signature of the subject\n")
with open("config.json", "w") as f:
    f.write("{}")
pushed = client.push(
    target=f"{repo}:sig",
    files=["signature.txt"],
    subject=subject,
    manifest_config="config.json:application/vnd.example.signature",
    quiet=True,
)

referrers = client.do_request(f"http://{host}/v2/oras/app/referrers/{subject_digest}", "GET")
filtered = client.do_request(
    f"http://{host}/v2/oras/app/referrers/{subject_digest}?artifactType=application/vnd.example.other",
    "GET",
)
print(
    json.dumps(
        {
            "subject": subject_digest,
            "pushed_digest": pushed.headers.get("Docker-Content-Digest"),
            "oci_subject": pushed.headers.get("OCI-Subject"),
            "referrers_status": referrers.status_code,
            "referrers": referrers.json(),
            "filtered": filtered.json(),
            "filters_applied": filtered.headers.get("OCI-Filters-Applied"),
        }
    )
)
