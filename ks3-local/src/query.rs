//! The query string of a request.
use crate::error::S3Error;

/// Decoded query parameters (`+` read as a space).
#[derive(Debug, Default)]
pub struct Query(pub Vec<(String, Option<String>)>);

impl Query {
    pub fn parse(raw: &str) -> Result<Query, S3Error> {
        let mut out = Vec::new();
        for (k, v) in ks3_proto::encode::split_query(raw) {
            let k = ks3_proto::encode::decode(k, true).ok_or_else(S3Error::invalid_uri)?;
            let v = match v {
                Some(v) => {
                    Some(ks3_proto::encode::decode(v, true).ok_or_else(S3Error::invalid_uri)?)
                }
                None => None,
            };
            out.push((k, v));
        }
        Ok(Query(out))
    }
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
    /// The value (`""` for a parameter without `=`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }
    /// The value, with an empty one treated as absent.
    pub fn get_nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }
}
