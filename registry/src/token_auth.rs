//! distribution's token authentication (`auth.token`): the Bearer challenge, and the
//! verification of the JSON Web Tokens an authorization server issues.
//!
//! Facts followed (distribution 2.8.2, observed; `registry-notes.md` §9):
//! * a token's key comes from its `x5c` chain, which must lead to a certificate of
//!   `rootcertbundle` (the leaf alone, a whole chain, or a self-signed certificate in the
//!   bundle), or from `kid`: the libtrust key id of a key in the bundle, or a key of the
//!   `jwks` file (distribution v3's option);
//! * `iss` must be the configured issuer and `aud` the service; `exp` and `nbf` are
//!   checked with 60 s of leeway; `access` grants actions per resource.
//!
//! On purpose unlike 2.8.2: an `aud` array naming the service is accepted (RFC 7519 and
//! distribution v3 allow it; 2.8.2 refuses arrays), and a certificate's extended key usage
//! is not restricted (as Go's `ExtKeyUsageAny`, which distribution passes).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use ring::signature::{self, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Deserialize;

/// The `auth.token` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenConfig {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    pub rootcertbundle: Option<PathBuf>,
    pub jwks: Option<PathBuf>,
}

/// How far `exp` and `nbf` may be off (distribution's leeway).
pub const LEEWAY_SECS: i64 = 60;

/// The longest token taken (a chain of a few certificates fits many times over).
const MAX_TOKEN: usize = 64 * 1024;
/// The most certificates an `x5c` chain may carry.
const MAX_CHAIN: usize = 8;

/// Why a token was refused; the text is for logs (the client only learns `invalid_token`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bearer token refused: {0}")]
pub struct TokenError(pub String);

fn refuse<T>(why: impl Into<String>) -> Result<T, TokenError> {
    Err(TokenError(why.into()))
}

/// A public key that may sign tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PublicKey {
    /// PKCS#1 `RSAPublicKey` DER.
    Rsa(Vec<u8>),
    /// The modulus and exponent, big-endian (a JWK).
    RsaParts { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed point on P-256 or P-384.
    Ec { curve: Curve, point: Vec<u8> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

/// One entry of the `access` claim (and of a scope asked for).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    #[serde(default)]
    pub actions: Vec<String>,
}

/// What a verified token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    /// `sub`, for the access log.
    pub subject: String,
    pub access: Vec<Access>,
}

impl Grants {
    /// Whether `action` on the resource is granted (`*` grants every action).
    pub fn allows(&self, resource_type: &str, name: &str, action: &str) -> bool {
        self.access.iter().any(|a| {
            a.resource_type == resource_type
                && a.name == name
                && a.actions.iter().any(|x| x == action || x == "*")
        })
    }
}

/// What a request needs: the scope the challenge names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// `/v2/` itself: any valid token.
    Login,
    /// `repository:<name>:<actions>` for each repository (a mount also needs `pull` on
    /// the repository it mounts from).
    Repositories(Vec<(String, Vec<&'static str>)>),
    /// `registry:catalog:*`.
    Catalog,
}

impl Need {
    /// One repository.
    pub fn repository(name: &str, actions: &[&'static str]) -> Need {
        Need::Repositories(vec![(name.to_string(), actions.to_vec())])
    }

    /// The scope string of a challenge, if any (several scopes are space-separated).
    pub fn scope(&self) -> Option<String> {
        match self {
            Need::Login => None,
            Need::Repositories(repos) => Some(
                repos
                    .iter()
                    .map(|(name, actions)| format!("repository:{name}:{}", actions.join(",")))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            Need::Catalog => Some("registry:catalog:*".into()),
        }
    }

    /// The needed actions the grants lack, as distribution lists them in a 401's detail
    /// (type, name, action).
    pub fn missing(&self, g: &Grants) -> Vec<(String, String, String)> {
        match self {
            Need::Login => Vec::new(),
            Need::Repositories(repos) => repos
                .iter()
                .flat_map(|(name, actions)| {
                    actions
                        .iter()
                        .filter(|a| !g.allows("repository", name, a))
                        .map(|a| ("repository".to_string(), name.clone(), (*a).to_string()))
                })
                .collect(),
            Need::Catalog => {
                if g.allows("registry", "catalog", "*") {
                    Vec::new()
                } else {
                    vec![("registry".into(), "catalog".into(), "*".into())]
                }
            }
        }
    }
}

/// Verifies tokens for one configuration.
pub struct TokenVerifier {
    config: TokenConfig,
    /// The bundle's certificates (DER), the anchors of `x5c` chains.
    roots: Vec<CertificateDer<'static>>,
    /// Keys a token may name by `kid`: the bundle's by libtrust id, and the JWKS's.
    keys: HashMap<String, PublicKey>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("config", &self.config)
            .field("roots", &self.roots.len())
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TokenVerifier {
    /// Reads the bundle and the JWKS the configuration names. At least one of them must
    /// give a key, and realm, service and issuer must be set.
    pub fn new(config: TokenConfig) -> Result<TokenVerifier, String> {
        for (key, v) in [
            ("realm", &config.realm),
            ("service", &config.service),
            ("issuer", &config.issuer),
        ] {
            if v.is_empty() {
                return Err(format!("auth.token.{key} is required"));
            }
        }
        let mut roots = Vec::new();
        let mut keys = HashMap::new();
        if let Some(path) = &config.rootcertbundle {
            for cert in read_bundle(path)? {
                let key = cert_key(&cert).map_err(|e| {
                    format!("auth.token.rootcertbundle {}: {}", path.display(), e.0)
                })?;
                keys.insert(libtrust_kid(&spki_of(&cert)?), key);
                roots.push(cert);
            }
        }
        if let Some(path) = &config.jwks {
            let raw = std::fs::read(path)
                .map_err(|e| format!("auth.token.jwks {}: {e}", path.display()))?;
            for (kid, key) in parse_jwks(&raw)
                .map_err(|e| format!("auth.token.jwks {}: {}", path.display(), e.0))?
            {
                keys.insert(kid, key);
            }
        }
        if roots.is_empty() && keys.is_empty() {
            return Err("auth.token: rootcertbundle or jwks must name at least one key".into());
        }
        Ok(TokenVerifier {
            config,
            roots,
            keys,
        })
    }

    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// The `WWW-Authenticate` value of a 401 for `need`, with `error` when a token was
    /// sent (`invalid_token`, `insufficient_scope`).
    pub fn challenge(&self, need: &Need, error: Option<&str>) -> String {
        let mut c = format!(
            "Bearer realm={},service={}",
            quote(&self.config.realm),
            quote(&self.config.service)
        );
        if let Some(scope) = need.scope() {
            c.push_str(&format!(",scope={}", quote(&scope)));
        }
        if let Some(e) = error {
            c.push_str(&format!(",error={}", quote(e)));
        }
        c
    }

    /// Verifies `token` (the part after `Bearer `) at `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: i64) -> Result<Grants, TokenError> {
        if token.len() > MAX_TOKEN {
            return refuse(format!("longer than {MAX_TOKEN} bytes"));
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return refuse("not three dot-separated parts");
        };
        let header: Header =
            serde_json::from_slice(&b64url(h64)?).or_else(|e| refuse(format!("header: {e}")))?;
        let signature = b64url(s64)?;
        let key = self.signing_key(&header, now)?;
        let signed = &token.as_bytes()[..h64.len() + 1 + p64.len()];
        verify_signature(&key, &header.alg, signed, &signature)?;
        let claims: Claims =
            serde_json::from_slice(&b64url(p64)?).or_else(|e| refuse(format!("claims: {e}")))?;
        self.check_claims(&claims, now)?;
        Ok(Grants {
            subject: claims.sub.unwrap_or_default(),
            access: claims.access.unwrap_or_default(),
        })
    }

    /// The key the header names: its `x5c` chain's leaf once the chain leads to the
    /// bundle, or the key its `kid` names.
    fn signing_key(&self, header: &Header, now: i64) -> Result<PublicKey, TokenError> {
        if let Some(chain) = &header.x5c {
            if chain.is_empty() || chain.len() > MAX_CHAIN {
                return refuse(format!("x5c has {} certificates", chain.len()));
            }
            let ders = chain
                .iter()
                .map(|c| {
                    base64::engine::general_purpose::STANDARD
                        .decode(c)
                        .map(CertificateDer::from)
                        .or_else(|_| refuse("x5c is not base64"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.verify_chain(&ders, now)?;
            return cert_key(&ders[0]);
        }
        if let Some(kid) = &header.kid {
            return self
                .keys
                .get(kid)
                .cloned()
                .ok_or_else(|| TokenError(format!("unknown kid {}", printable(kid))));
        }
        refuse("neither x5c nor kid")
    }

    fn verify_chain(&self, chain: &[CertificateDer<'_>], now: i64) -> Result<(), TokenError> {
        // A self-signed certificate of the bundle itself is trusted as it is.
        if chain.len() == 1 && self.roots.iter().any(|r| r.as_ref() == chain[0].as_ref()) {
            return Ok(());
        }
        let anchors = self
            .roots
            .iter()
            .filter_map(|r| webpki::anchor_from_trusted_cert(r).ok())
            .collect::<Vec<_>>();
        let leaf = webpki::EndEntityCert::try_from(&chain[0])
            .or_else(|e| refuse(format!("x5c leaf: {e}")))?;
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(now).unwrap_or(0),
        ));
        leaf.verify_for_usage(SIG_ALGS, &anchors, &chain[1..], time, AnyUsage, None, None)
            .map(|_| ())
            .or_else(|e| refuse(format!("x5c chain: {e}")))
    }

    fn check_claims(&self, c: &Claims, now: i64) -> Result<(), TokenError> {
        if c.iss.as_deref() != Some(self.config.issuer.as_str()) {
            return refuse("iss is not the configured issuer");
        }
        let service = self.config.service.as_str();
        let aud_ok = match &c.aud {
            Some(serde_json::Value::String(s)) => s == service,
            Some(serde_json::Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(service)),
            _ => false,
        };
        if !aud_ok {
            return refuse("aud does not name this service");
        }
        let Some(exp) = c.exp else {
            return refuse("no exp");
        };
        if now > exp.saturating_add(LEEWAY_SECS) {
            return refuse("expired");
        }
        if let Some(nbf) = c.nbf {
            if now.saturating_add(LEEWAY_SECS) < nbf {
                return refuse("not valid yet (nbf)");
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    x5c: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<serde_json::Value>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    access: Option<Vec<Access>>,
}

/// Certificate signatures a token's chain may use.
static SIG_ALGS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::ED25519,
];

/// Any extended key usage, or none (Go's `ExtKeyUsageAny`, as distribution verifies).
struct AnyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for purpose in iter {
            purpose?;
        }
        Ok(())
    }
}

fn verify_signature(
    key: &PublicKey,
    alg: &str,
    signed: &[u8],
    sig: &[u8],
) -> Result<(), TokenError> {
    let rsa = match alg {
        "RS256" => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
        "RS384" => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
        "RS512" => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
        _ => None,
    };
    let ok = match (key, rsa, alg) {
        (PublicKey::Rsa(der), Some(params), _) => UnparsedPublicKey::new(params, der)
            .verify(signed, sig)
            .is_ok(),
        (PublicKey::RsaParts { n, e }, Some(params), _) => signature::RsaPublicKeyComponents {
            n: n.as_slice(),
            e: e.as_slice(),
        }
        .verify(params, signed, sig)
        .is_ok(),
        (
            PublicKey::Ec {
                curve: Curve::P256,
                point,
            },
            None,
            "ES256",
        ) => UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
            .verify(signed, sig)
            .is_ok(),
        (
            PublicKey::Ec {
                curve: Curve::P384,
                point,
            },
            None,
            "ES384",
        ) => UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
            .verify(signed, sig)
            .is_ok(),
        _ => return refuse(format!("alg {} does not fit the key", printable(alg))),
    };
    if ok {
        Ok(())
    } else {
        refuse("bad signature")
    }
}

fn b64url(s: &str) -> Result<Vec<u8>, TokenError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .or_else(|_| refuse("not base64url"))
}

fn read_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("auth.token.rootcertbundle {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "auth.token.rootcertbundle {}: no certificate",
            path.display()
        ));
    }
    Ok(certs)
}

fn spki_of(cert: &CertificateDer<'_>) -> Result<Vec<u8>, String> {
    let ee = webpki::EndEntityCert::try_from(cert).map_err(|e| format!("certificate: {e}"))?;
    Ok(ee.subject_public_key_info().as_ref().to_vec())
}

fn cert_key(cert: &CertificateDer<'_>) -> Result<PublicKey, TokenError> {
    let spki = spki_of(cert).map_err(TokenError)?;
    spki_key(&spki)
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

/// The key of a DER `SubjectPublicKeyInfo`: RSA, or EC on P-256 / P-384.
fn spki_key(spki: &[u8]) -> Result<PublicKey, TokenError> {
    let bad = || TokenError("unsupported or malformed public key".into());
    let (body, _) = der_take(spki, 0x30).ok_or_else(bad)?;
    let (alg, rest) = der_take(body, 0x30).ok_or_else(bad)?;
    let (bits, _) = der_take(rest, 0x03).ok_or_else(bad)?;
    let (&unused, key) = bits.split_first().ok_or_else(bad)?;
    if unused != 0 {
        return Err(bad());
    }
    let (oid, params) = der_take(alg, 0x06).ok_or_else(bad)?;
    if oid == OID_RSA {
        return Ok(PublicKey::Rsa(key.to_vec()));
    }
    if oid == OID_EC {
        let (curve, _) = der_take(params, 0x06).ok_or_else(bad)?;
        let curve = match curve {
            c if c == OID_P256 => Curve::P256,
            c if c == OID_P384 => Curve::P384,
            _ => return Err(bad()),
        };
        return Ok(PublicKey::Ec {
            curve,
            point: key.to_vec(),
        });
    }
    Err(bad())
}

/// One DER element of `tag` at the start of `input`: its content and what follows.
fn der_take(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().try_fold(0usize, |acc, b| {
            acc.checked_mul(256)?.checked_add(usize::from(*b))
        })?;
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

/// The libtrust key id distribution derives for a key: SHA-256 of its DER
/// SubjectPublicKeyInfo, the first 30 bytes in unpadded base32, in 12 groups of 4
/// joined by `:`.
pub fn libtrust_kid(spki_der: &[u8]) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, spki_der);
    let b32 = base32(&hash.as_ref()[..30]);
    b32.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 4648 base32 without padding.
fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in data {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The keys of a JWK set (`{"keys":[…]}`): RSA (`n`, `e`) and EC (`P-256`, `P-384`);
/// each needs a `kid`.
fn parse_jwks(raw: &[u8]) -> Result<Vec<(String, PublicKey)>, TokenError> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<Jwk>,
    }
    #[derive(Deserialize)]
    struct Jwk {
        kty: String,
        #[serde(default)]
        kid: Option<String>,
        #[serde(default)]
        n: Option<String>,
        #[serde(default)]
        e: Option<String>,
        #[serde(default)]
        crv: Option<String>,
        #[serde(default)]
        x: Option<String>,
        #[serde(default)]
        y: Option<String>,
    }
    let set: Set = serde_json::from_slice(raw).or_else(|e| refuse(format!("{e}")))?;
    let mut out = Vec::new();
    for k in set.keys {
        let Some(kid) = k.kid else {
            return refuse("a key without kid");
        };
        let field = |v: Option<String>, name: &str| match v {
            Some(s) => b64url(&s),
            None => refuse(format!("key {kid}: no {name}")),
        };
        let key = match (k.kty.as_str(), k.crv.as_deref()) {
            ("RSA", _) => PublicKey::RsaParts {
                n: field(k.n, "n")?,
                e: field(k.e, "e")?,
            },
            ("EC", Some(crv @ ("P-256" | "P-384"))) => {
                let mut point = vec![0x04];
                point.extend(field(k.x, "x")?);
                point.extend(field(k.y, "y")?);
                PublicKey::Ec {
                    curve: if crv == "P-256" {
                        Curve::P256
                    } else {
                        Curve::P384
                    },
                    point,
                }
            }
            (kty, crv) => {
                return refuse(format!(
                    "key {kid}: unsupported kty {kty} / crv {}",
                    crv.unwrap_or("-")
                ))
            }
        };
        out.push((kid, key));
    }
    Ok(out)
}

/// A quoted-string of a challenge parameter.
fn quote(s: &str) -> String {
    format!(
        "\"{}\"",
        s.chars()
            .filter(|c| !c.is_control())
            .collect::<String>()
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    )
}

/// A value from a token, safe to log.
fn printable(s: &str) -> String {
    s.chars().take(64).filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests;
