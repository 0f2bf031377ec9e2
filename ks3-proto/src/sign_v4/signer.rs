//! A client's V4 signer: the headers of a signed request, or a presigned URL's query.
use super::canonical::{check_region, compute, day_of, default_signed_headers, scope};
use super::{V4Error, V4Namespace, V4Request, MAX_PRESIGN_EXPIRES};
use crate::date::amz_date;
use crate::encode::encode_component;

/// A client's V4 signer: namespace, credentials and region. Its `Debug` never shows the
/// secret key.
#[derive(Clone, Copy)]
pub struct V4Signer<'a> {
    pub namespace: V4Namespace,
    pub access_key: &'a str,
    pub secret_key: &'a str,
    /// The V4 region name (`BEIJING`; see [`v4_region`]).
    pub region: &'a str,
}

impl std::fmt::Debug for V4Signer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4Signer")
            .field("namespace", &self.namespace)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("region", &self.region)
            .finish()
    }
}

impl V4Signer<'_> {
    /// Header signing. `req.headers` holds the request's headers without the date and
    /// payload-hash headers (they are added here) and must include `host`; all of them but
    /// the unsigned ones (`user-agent`, `expect`, …) are signed. Returns the headers to add
    /// to the request: `x-…-date`, `x-…-content-sha256` (= `req.payload_hash`) and
    /// `authorization`.
    pub fn sign(
        &self,
        req: &V4Request<'_>,
        unix_time: i64,
    ) -> Result<Vec<(&'static str, String)>, V4Error> {
        check_region(self.region)?;
        let ns = self.namespace;
        let date = amz_date(unix_time);
        let mut headers: Vec<(&str, &str)> = req.headers.to_vec();
        headers.push((ns.date_header(), &date));
        headers.push((ns.content_sha256_header(), req.payload_hash));
        let signed = default_signed_headers(&headers);
        let signed_refs: Vec<&str> = signed.iter().map(String::as_str).collect();
        let full = V4Request {
            headers: &headers,
            ..*req
        };
        let c = compute(ns, &full, &signed_refs, &date, self.region, self.secret_key)?;
        let auth = format!(
            "{} Credential={}/{}, SignedHeaders={}, Signature={}",
            ns.algorithm(),
            self.access_key,
            scope(ns, day_of(&date), self.region),
            signed.join(";"),
            c.signature
        );
        Ok(vec![
            (ns.date_header(), date.clone()),
            (ns.content_sha256_header(), req.payload_hash.to_string()),
            ("authorization", auth),
        ])
    }

    /// A presigned URL's authentication parameters, valid `expires_secs` (1 ..= 7 days)
    /// from `unix_time`. `req.query` holds the URL's other parameters (signed along), and
    /// `req.headers` the headers the URL's user will send (normally just `host`); the
    /// payload hash is normally [`UNSIGNED_PAYLOAD`]. Returns the encoded parameters
    /// (`X-…-Algorithm=…&…&X-…-Signature=…`) to append to the URL's query with `&`.
    pub fn presign(
        &self,
        req: &V4Request<'_>,
        unix_time: i64,
        expires_secs: u64,
    ) -> Result<String, V4Error> {
        check_region(self.region)?;
        if !(1..=MAX_PRESIGN_EXPIRES).contains(&expires_secs) {
            return Err(V4Error::InvalidExpires);
        }
        let ns = self.namespace;
        let date = amz_date(unix_time);
        let credential = format!(
            "{}/{}",
            self.access_key,
            scope(ns, day_of(&date), self.region)
        );
        let signed = default_signed_headers(req.headers);
        let signed_list = signed.join(";");
        let expires = expires_secs.to_string();
        let auth_params = [
            (ns.query_param("Algorithm"), ns.algorithm().to_string()),
            (ns.query_param("Credential"), credential),
            (ns.query_param("Date"), date.clone()),
            (ns.query_param("Expires"), expires),
            (ns.query_param("SignedHeaders"), signed_list),
        ];
        let mut query: Vec<(&str, &str)> = req.query.to_vec();
        query.extend(auth_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let signed_refs: Vec<&str> = signed.iter().map(String::as_str).collect();
        let full = V4Request {
            query: &query,
            ..*req
        };
        let c = compute(ns, &full, &signed_refs, &date, self.region, self.secret_key)?;
        let mut out: Vec<String> = auth_params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_component(v)))
            .collect();
        out.push(format!("{}={}", ns.query_param("Signature"), c.signature));
        Ok(out.join("&"))
    }
}
