//! The server's side: what an `Authorization` header or a presigned query claims, before
//! anything is verified.
use super::{V4Error, V4Namespace, MAX_PRESIGN_EXPIRES};

/// The credential and signature claims of a V4 request, from its `Authorization` header
/// or its presigned query. Nothing here is verified yet.
#[derive(Clone, PartialEq, Eq)]
pub struct V4Claims {
    pub namespace: V4Namespace,
    pub access_key: String,
    /// The scope's date, `yyyymmdd`.
    pub scope_date: String,
    pub region: String,
    pub service: String,
    pub terminator: String,
    /// Lower-case, in the order given.
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// Presigned only: `X-…-Date` and `X-…-Expires` (seconds).
    pub presigned: Option<(String, u64)>,
}

/// The signature is the secret being proved; keep it out of logs.
impl std::fmt::Debug for V4Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4Claims")
            .field("namespace", &self.namespace)
            .field("access_key", &self.access_key)
            .field("scope_date", &self.scope_date)
            .field("region", &self.region)
            .field("service", &self.service)
            .field("terminator", &self.terminator)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &"<redacted>")
            .field("presigned", &self.presigned)
            .finish()
    }
}

impl V4Claims {
    /// The credential scope as claimed.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.scope_date, self.region, self.service, self.terminator
        )
    }

    /// Whether the scope's service and terminator are the namespace's own and its date is
    /// eight digits. `Err` says what is wrong.
    pub fn check_scope(&self) -> Result<(), V4Error> {
        let ns = self.namespace;
        if self.scope_date.len() != 8 || !self.scope_date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(V4Error::Malformed(format!(
                "the credential's date {:?} is not yyyymmdd",
                self.scope_date
            )));
        }
        if self.region.is_empty() {
            return Err(V4Error::Malformed("the credential has no region".into()));
        }
        if self.service != ns.service() {
            return Err(V4Error::Malformed(format!(
                "the credential's service is {:?}; {} expects {:?}",
                self.service,
                ns.algorithm(),
                ns.service()
            )));
        }
        if self.terminator != ns.terminator() {
            return Err(V4Error::Malformed(format!(
                "the credential ends in {:?}; {} expects {:?}",
                self.terminator,
                ns.algorithm(),
                ns.terminator()
            )));
        }
        Ok(())
    }
}

/// Splits `AK/yyyymmdd/region/service/terminator` (the access key is whatever precedes the
/// last four elements).
fn parse_credential(ns: V4Namespace, cred: &str) -> Result<V4Claims, V4Error> {
    let mut it = cred.rsplitn(5, '/');
    let (Some(term), Some(svc), Some(region), Some(date), Some(ak)) =
        (it.next(), it.next(), it.next(), it.next(), it.next())
    else {
        return Err(V4Error::Malformed(format!(
            "the Credential {cred:?} is not AccessKeyId/yyyymmdd/region/service/{}",
            ns.terminator()
        )));
    };
    if ak.is_empty() {
        return Err(V4Error::Malformed(
            "the Credential has no access key".into(),
        ));
    }
    Ok(V4Claims {
        namespace: ns,
        access_key: ak.to_string(),
        scope_date: date.to_string(),
        region: region.to_string(),
        service: svc.to_string(),
        terminator: term.to_string(),
        signed_headers: Vec::new(),
        signature: String::new(),
        presigned: None,
    })
}

fn parse_signed_headers(list: &str) -> Result<Vec<String>, V4Error> {
    let names: Vec<String> = list
        .split(';')
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    if names.iter().any(String::is_empty) {
        return Err(V4Error::Malformed(format!(
            "SignedHeaders {list:?} has an empty name"
        )));
    }
    Ok(names)
}

/// Parses `ALGORITHM Credential=…, SignedHeaders=…, Signature=…` (separators `,` with or
/// without spaces, in any order). `Ok(None)` when the scheme is not a V4 one.
pub fn parse_authorization(value: &str) -> Result<Option<V4Claims>, V4Error> {
    let value = value.trim();
    let (alg, rest) = value.split_once(' ').unwrap_or((value, ""));
    let Some(ns) = V4Namespace::from_algorithm(alg) else {
        return Ok(None);
    };
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            return Err(V4Error::Malformed(format!(
                "the Authorization header has an element without '=': {part:?}"
            )));
        };
        let slot = match k.trim() {
            "Credential" => &mut cred,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut sig,
            other => {
                return Err(V4Error::Malformed(format!(
                    "the Authorization header has an unknown element {other:?}"
                )))
            }
        };
        if slot.replace(v.trim()).is_some() {
            return Err(V4Error::Malformed(format!(
                "the Authorization header repeats {k:?}"
            )));
        }
    }
    let (Some(cred), Some(signed), Some(sig)) = (cred, signed, sig) else {
        return Err(V4Error::Malformed(format!(
            "the {} Authorization header needs Credential, SignedHeaders and Signature",
            ns.algorithm()
        )));
    };
    let mut claims = parse_credential(ns, cred)?;
    claims.signed_headers = parse_signed_headers(signed)?;
    claims.signature = sig.to_string();
    Ok(Some(claims))
}

/// Whether the (decoded) query carries presigned-URL parameters of some V4 namespace, and
/// of which.
pub fn presigned_namespace(query: &[(&str, &str)]) -> Option<V4Namespace> {
    [V4Namespace::Kss4, V4Namespace::Aws4]
        .into_iter()
        .find(|ns| query.iter().any(|(k, _)| k.starts_with(ns.query_prefix())))
}

/// Parses the presigned parameters of `ns` from the decoded query. Every one of
/// `Algorithm`, `Credential`, `Date`, `Expires` (1 ..= 7 days), `SignedHeaders` and
/// `Signature` is required, once.
pub fn parse_presigned(ns: V4Namespace, query: &[(&str, &str)]) -> Result<V4Claims, V4Error> {
    let get = |suffix: &str| -> Result<&str, V4Error> {
        let name = ns.query_param(suffix);
        let mut found = query.iter().filter(|(k, _)| *k == name).map(|(_, v)| *v);
        match (found.next(), found.next()) {
            (Some(v), None) => Ok(v),
            (None, _) => Err(V4Error::Malformed(format!(
                "the presigned URL lacks the {name} parameter"
            ))),
            (Some(_), Some(_)) => Err(V4Error::Malformed(format!(
                "the presigned URL repeats the {name} parameter"
            ))),
        }
    };
    let alg = get("Algorithm")?;
    if alg != ns.algorithm() {
        return Err(V4Error::Malformed(format!(
            "{} must be {}",
            ns.query_param("Algorithm"),
            ns.algorithm()
        )));
    }
    let mut claims = parse_credential(ns, get("Credential")?)?;
    claims.signed_headers = parse_signed_headers(get("SignedHeaders")?)?;
    claims.signature = get("Signature")?.to_string();
    let date = get("Date")?.to_string();
    let expires = get("Expires")?;
    let expires = expires
        .parse::<u64>()
        .ok()
        .filter(|e| (1..=MAX_PRESIGN_EXPIRES).contains(e))
        .ok_or(V4Error::InvalidExpires)?;
    claims.presigned = Some((date, expires));
    Ok(claims)
}

/// Constant-time comparison of two signatures.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    crate::sign::signatures_equal(a, b)
}
