//! distribution's event schema (`notifications/event.go`): the JSON its consumers read,
//! field for field, empty fields left out where distribution leaves them out.
use serde::Serialize;
use serde_json::Value;

/// The envelope's media type (`Content-Type` of every POST).
pub const EVENTS_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";

/// A blob's media type in its events, as distribution's (from the blob's `Stat`).
pub const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Push,
    Pull,
    Delete,
    Mount,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Pull => "pull",
            Action::Delete => "delete",
            Action::Mount => "mount",
        }
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One event. `timestamp`, `target`, `request`, `actor` and `source` are always there (Go
/// does not omit structs); `request.id`, `.method` and `.useragent` too.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: String,
    pub timestamp: String,
    pub action: Action,
    pub target: Target,
    pub request: RequestRecord,
    pub actor: ActorRecord,
    pub source: SourceRecord,
}

/// `target`: a descriptor (`mediaType`, `size`, `digest`) and where it is.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Target {
    #[serde(rename = "mediaType", skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub size: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub digest: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub length: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub repository: String,
    #[serde(rename = "fromRepository", skip_serializing_if = "String::is_empty")]
    pub from_repository: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// The manifest's descriptors (`notifications.events.includereferences`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Value>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestRecord {
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub addr: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    pub method: String,
    pub useragent: String,
}

/// `actor`: the authenticated user's name; `{}` when anonymous.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ActorRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceRecord {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub addr: String,
    #[serde(rename = "instanceID", skip_serializing_if = "String::is_empty")]
    pub instance_id: String,
}

/// The POST body of one event: `{"events":[…]}`, indented as distribution indents it
/// (three spaces).
pub fn envelope(event: &Event) -> Vec<u8> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        events: [&'a Event; 1],
    }
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Plain strings, numbers and JSON values: serializing cannot fail.
    let _ = Envelope { events: [event] }.serialize(&mut ser);
    out
}

/// The descriptors a manifest refers to, as distribution's `References()` lists them:
/// config then layers of an image, the children of an index (with their `platform`).
pub fn references(manifest: &[u8]) -> Vec<Value> {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(manifest) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut add = |d: &Value| {
        if let Value::Object(d) = d {
            let mut kept = serde_json::Map::new();
            for k in [
                "mediaType",
                "size",
                "digest",
                "urls",
                "annotations",
                "platform",
            ] {
                if let Some(v) = d.get(k) {
                    kept.insert(k.to_string(), v.clone());
                }
            }
            out.push(Value::Object(kept));
        }
    };
    if let Some(c) = m.get("config") {
        add(c);
    }
    for key in ["layers", "manifests"] {
        if let Some(Value::Array(list)) = m.get(key) {
            list.iter().for_each(&mut add);
        }
    }
    out
}

/// Now, in RFC 3339 with nanoseconds (trailing zeros trimmed), UTC: Go's `RFC3339Nano`.
pub fn timestamp_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    timestamp(now.as_secs(), now.subsec_nanos())
}

fn timestamp(secs: u64, nanos: u32) -> String {
    let base = ks3_proto::date::rfc3339(i64::try_from(secs).unwrap_or(i64::MAX));
    let stem = base.strip_suffix('Z').unwrap_or(&base);
    if nanos == 0 {
        return format!("{stem}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{stem}.{}Z", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_and_formats() {
        let e = Event {
            id: crate::ids::uuid4(),
            timestamp: timestamp(0, 912_594_470),
            action: Action::Delete,
            target: Target {
                digest: "sha256:ab".into(),
                repository: "a/b".into(),
                ..Default::default()
            },
            request: RequestRecord {
                id: "r".into(),
                method: "DELETE".into(),
                ..Default::default()
            },
            actor: ActorRecord::default(),
            source: SourceRecord::default(),
        };
        let v: Value = serde_json::from_slice(&envelope(&e)).unwrap();
        let ev = &v["events"][0];
        assert_eq!(ev["timestamp"], "1970-01-01T00:00:00.91259447Z");
        assert_eq!(ev["action"], "delete");
        assert_eq!(
            ev["target"],
            serde_json::json!({"digest": "sha256:ab", "repository": "a/b"})
        );
        assert_eq!(
            ev["request"],
            serde_json::json!({"id": "r", "method": "DELETE", "useragent": ""})
        );
        assert_eq!(ev["actor"], serde_json::json!({}));
        assert_eq!(ev["id"].as_str().unwrap().len(), 36);
        assert!(String::from_utf8(envelope(&e))
            .unwrap()
            .contains("\n   \"events\""));
        assert_eq!(timestamp(1, 0), "1970-01-01T00:00:01Z");
    }

    #[test]
    fn references_of_an_image_and_an_index() {
        let image = br#"{"config":{"mediaType":"c","size":2,"digest":"sha256:c"},"layers":[{"mediaType":"l","size":3,"digest":"sha256:l","x":1}]}"#;
        let r = references(image);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[1],
            serde_json::json!({"mediaType":"l","size":3,"digest":"sha256:l"})
        );
        let index = br#"{"manifests":[{"mediaType":"m","size":4,"digest":"sha256:m","platform":{"os":"linux"}}]}"#;
        assert_eq!(references(index)[0]["platform"]["os"], "linux");
    }
}
