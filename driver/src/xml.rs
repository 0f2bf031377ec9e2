//! KS3's XML, read by local name (responses may carry `ns2:` prefixes) into a small tree,
//! and the two request bodies the driver sends.
use quick_xml::events::Event;
use quick_xml::Reader;

/// An element: its local name, text and children.
#[derive(Debug, Default, Clone)]
pub struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    /// Text of the first child called `name`, or "".
    pub fn text_of(&self, name: &str) -> &str {
        self.child(name).map(|c| c.text.as_str()).unwrap_or("")
    }
}

const MAX_DEPTH: usize = 32;

/// Parses a document into its root element.
pub fn parse(doc: &[u8]) -> Result<Node, String> {
    let mut reader = Reader::from_reader(doc);
    let mut stack: Vec<Node> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("malformed XML: {e}"))?;
        match ev {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err("XML nested too deeply".into());
                }
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                stack.push(Node {
                    name,
                    ..Default::default()
                });
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let node = Node {
                    name,
                    ..Default::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let s = t
                        .unescape()
                        .map_err(|e| format!("malformed XML text: {e}"))?;
                    top.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("unbalanced XML")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::Eof => return Err("truncated XML document".into()),
            _ => {}
        }
        buf.clear();
    }
}

/// Escapes text for an XML element.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

/// `<CompleteMultipartUpload>` for parts `(number, etag, CRC-64 if known)`; a known CRC
/// lets KS3 check that the part it holds is the one the driver sent.
pub fn complete_body(parts: &[(u32, &str, Option<u64>)]) -> String {
    let mut s = String::from("<CompleteMultipartUpload>");
    for (n, etag, crc) in parts {
        s.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag>",
            escape(etag)
        ));
        if let Some(crc) = crc {
            s.push_str(&format!("<ChecksumCRC64ECMA>{crc}</ChecksumCRC64ECMA>"));
        }
        s.push_str("</Part>");
    }
    s.push_str("</CompleteMultipartUpload>");
    s
}

/// `<Delete>` for a multi-object delete (verbose, so per-key errors come back).
pub fn delete_body(keys: &[String]) -> String {
    let mut s =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Quiet>false</Quiet>");
    for k in keys {
        s.push_str(&format!("<Object><Key>{}</Key></Object>", escape(k)));
    }
    s.push_str("</Delete>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_by_local_name() {
        let n = parse(b"<?xml version=\"1.0\"?><ns2:ListPartsResult xmlns:ns2=\"x\"><ns2:Part><PartNumber>1</PartNumber><ETag>&quot;ab&quot;</ETag></ns2:Part><IsTruncated>false</IsTruncated><Empty/></ns2:ListPartsResult>").unwrap();
        assert_eq!(n.name, "ListPartsResult");
        let p = n.child("Part").unwrap();
        assert_eq!(p.text_of("ETag"), "\"ab\"");
        assert_eq!(n.text_of("IsTruncated"), "false");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a>").is_err());
        assert!(parse(b"not xml at all").is_err());
        assert!(parse(b"").is_err());
        let deep = "<a>".repeat(100);
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn bodies_escape_keys() {
        assert!(delete_body(&["a&b".into()]).contains("<Key>a&amp;b</Key>"));
        assert!(complete_body(&[(1, "\"x\"", None)]).contains("<ETag>&quot;x&quot;</ETag>"));
        let body = complete_body(&[(1, "a", Some(7)), (2, "b", None)]);
        assert!(body.contains("<ETag>a</ETag><ChecksumCRC64ECMA>7</ChecksumCRC64ECMA></Part>"));
        assert!(body.contains("<PartNumber>2</PartNumber><ETag>b</ETag></Part>"));
    }
}
