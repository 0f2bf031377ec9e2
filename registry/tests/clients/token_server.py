"""A token server for distribution's token authentication, written with PyJWT: the
independent issuer of the registry's `auth.token` tests.

    token_server.py serve DIR USERS_JSON   # prints "listening on http://127.0.0.1:PORT"
    token_server.py mint DIR ALG KIND EXP_OFFSET SUBJECT ACCESS_JSON [ISSUER [AUDIENCE]]

`serve` makes an RSA and an EC key in DIR (when missing), each with a certificate signed by
a CA it also makes (`DIR/ca.pem`: the registry's `rootcertbundle`), writes
`DIR/jwks.json` (the public keys by `kid`), and answers `GET /token?service=&scope=…`
with Basic credentials of USERS_JSON: `{"user": {"password": "…", "grants": {"repo":
["pull", "push"], "*": ["pull"]}, "catalog": true, "alg": "RS256"|"ES256", "kid":
"x5c"|"libtrust"|"jwks"}}`. A repository asked about is granted every action the user's
grants allow there, never more; tokens live 300 s. `mint` prints one token with the given
expiry offset (seconds from now), for expired and foreign-signed cases; KIND `foreign`
signs with a key whose certificate is not under the CA.
"""
import base64
import datetime
import hashlib
import http.server
import json
import os
import sys
import time
import urllib.parse

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

ISSUER = "token.test"
SERVICE = "registry.test"


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject_key, subject_cn, issuer_key, issuer_cn, ca):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject_cn))
        .issuer_name(_name(issuer_cn))
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return b.sign(issuer_key, hashes.SHA256())


def _pem_key(k):
    return k.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def _load_cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def ensure_keys(d):
    """CA, an RSA and an EC signer under it, and a foreign EC signer (its own CA)."""
    os.makedirs(d, exist_ok=True)
    if os.path.exists(os.path.join(d, "ca.pem")):
        return
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert(ca_key, "token CA", ca_key, "token CA", True)
    signers = {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
    }
    for kind, key in signers.items():
        cert = _cert(key, f"token signer {kind}", ca_key, "token CA", False)
        with open(os.path.join(d, f"{kind}.key"), "wb") as f:
            f.write(_pem_key(key))
        with open(os.path.join(d, f"{kind}.pem"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
    foreign_ca_key = ec.generate_private_key(ec.SECP256R1())
    foreign_key = ec.generate_private_key(ec.SECP256R1())
    foreign = _cert(foreign_key, "foreign signer", foreign_ca_key, "foreign CA", False)
    with open(os.path.join(d, "foreign.key"), "wb") as f:
        f.write(_pem_key(foreign_key))
    with open(os.path.join(d, "foreign.pem"), "wb") as f:
        f.write(foreign.public_bytes(serialization.Encoding.PEM))
    # The bundle: the CA, and the signers' own certificates (so `kid` can name their keys,
    # which distribution looks up among the bundle's keys).
    with open(os.path.join(d, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
        for kind in signers:
            f.write(_load_cert(os.path.join(d, f"{kind}.pem")).public_bytes(serialization.Encoding.PEM))
    keys = []
    for kind, alg in (("rsa", "RS256"), ("ec", "ES256")):
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(signers[kind].public_key()))
        jwk["kid"] = f"jwks-{kind}"
        keys.append(jwk)
    with open(os.path.join(d, "jwks.json"), "w") as f:
        json.dump({"keys": keys}, f)


def libtrust_kid(cert):
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    b32 = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


def mint(d, alg, kind, exp_offset, subject, access, issuer=ISSUER, audience=SERVICE):
    """One signed token. kind: x5c, libtrust, jwks, or foreign (x5c outside the CA)."""
    signer = "foreign" if kind == "foreign" else ("rsa" if alg.startswith("RS") else "ec")
    key = _load_key(os.path.join(d, f"{signer}.key"))
    cert = _load_cert(os.path.join(d, f"{signer}.pem"))
    headers = {"typ": "JWT"}
    if kind in ("x5c", "foreign"):
        headers["x5c"] = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
    elif kind == "libtrust":
        headers["kid"] = libtrust_kid(cert)
    elif kind == "jwks":
        headers["kid"] = f"jwks-{signer}"
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": now + int(exp_offset),
        "nbf": now - 5,
        "iat": now,
        "jti": base64.urlsafe_b64encode(os.urandom(12)).decode(),
        "access": access,
    }
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def granted(user, scope):
    """The access entries a scope string gets for this user (only what the grants allow)."""
    out = []
    for one in scope.split(" "):
        parts = one.split(":")
        if len(parts) < 3:
            continue
        typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
        if typ == "registry" and name == "catalog":
            if user.get("catalog"):
                out.append({"type": "registry", "name": "catalog", "actions": ["*"]})
            continue
        grants = user.get("grants", {})
        allowed = set(grants.get(name, [])) | set(grants.get("*", []))
        # Every action the user has on a repository it asks about, not only those asked
        # for: oras-py reuses its first token (asked for `pull`) for the whole push.
        ok = sorted(allowed) if any(a in allowed or "*" in allowed for a in actions) else []
        if typ == "repository" and ok:
            out.append({"type": "repository", "name": name, "actions": ok})
    return out


def serve(d, users_path):
    ensure_keys(d)
    with open(users_path) as f:
        users = json.load(f)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            sys.stderr.write("token server: " + (fmt % args) + "\n")

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            if url.path != "/token":
                self.send_error(404)
                return
            q = urllib.parse.parse_qs(url.query)
            auth = self.headers.get("Authorization", "")
            user = None
            if auth.startswith("Basic "):
                try:
                    name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                except Exception:
                    name, password = "", ""
                u = users.get(name)
                if u and u.get("password") == password:
                    user = (name, u)
            if user is None:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="token"')
                self.end_headers()
                return
            if q.get("service", [SERVICE])[0] != SERVICE:
                self.send_error(400, "unknown service")
                return
            scopes = q.get("scope", [])
            access = []
            for s in scopes:
                access.extend(granted(user[1], s))
            token = mint(d, user[1].get("alg", "RS256"), user[1].get("kid", "x5c"), 300, user[0], access)
            body = json.dumps(
                {"token": token, "access_token": token, "expires_in": 300,
                 "issued_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening on http://127.0.0.1:{srv.server_address[1]}", flush=True)
    srv.serve_forever()


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 8 and sys.argv[1] == "mint":
        d, alg, kind, exp, sub, access = sys.argv[2:8]
        ensure_keys(d)
        extra = sys.argv[8:10]
        print(mint(d, alg, kind, int(exp), sub, json.loads(access), *extra))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
