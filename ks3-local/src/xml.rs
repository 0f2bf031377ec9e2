//! A tiny XML writer for responses and a bounded tree parser for request bodies
//! (`<Delete>`, `<CompleteMultipartUpload>`). Elements are matched by local name.
use quick_xml::events::Event;
use quick_xml::Reader;

pub const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
pub const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Escapes text for element content. Characters XML 1.0 cannot carry raw are written as
/// numeric references (as S3 does); use `encoding-type=url` to avoid them.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' && c != '\r' => {
                out.push_str(&format!("&#x{:X};", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Builds a response document.
pub struct XmlWriter(String);

impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl XmlWriter {
    pub fn new() -> Self {
        XmlWriter(String::from(DECL))
    }
    /// Opens the root element with the S3 namespace.
    pub fn root(&mut self, name: &str) {
        self.0.push_str(&format!("<{name} xmlns=\"{NS}\">"));
    }
    pub fn open(&mut self, name: &str) {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
    }
    pub fn close(&mut self, name: &str) {
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
    }
    pub fn elem(&mut self, name: &str, text: &str) {
        self.open(name);
        self.0.push_str(&escape(text));
        self.close(name);
    }
    pub fn finish(self) -> String {
        self.0
    }
}

/// A parsed element: local name, concatenated text, children.
#[derive(Debug, Default, Clone)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// A request body that is not acceptable XML (answered with `MalformedXML`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlError;

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed XML")
    }
}

impl std::error::Error for XmlError {}

const MAX_DEPTH: usize = 16;
const MAX_ELEMENTS: usize = 200_000;

fn local(name: &[u8]) -> Result<String, XmlError> {
    let n = match name.iter().rposition(|b| *b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    };
    String::from_utf8(n.to_vec()).map_err(|_| XmlError)
}

/// Parses a whole document into its root element. Any syntax error, a DOCTYPE, trailing
/// content, excessive depth or size → `Err(XmlError)` (the caller answers `MalformedXML`).
pub fn parse(data: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(data).map_err(|_| XmlError)?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let ev = reader.read_event().map_err(|_| XmlError)?;
        match ev {
            Event::Start(_) | Event::Empty(_) if root.is_some() => return Err(XmlError),
            Event::Start(s) => {
                count += 1;
                if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err(XmlError);
                }
                stack.push(Element {
                    name: local(s.name().as_ref())?,
                    ..Default::default()
                });
            }
            Event::Empty(s) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError);
                }
                let el = Element {
                    name: local(s.name().as_ref())?,
                    ..Default::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or(XmlError)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(|_| XmlError)?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => return Err(XmlError),
                }
            }
            Event::CData(c) => {
                let s = std::str::from_utf8(c.as_ref()).map_err(|_| XmlError)?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(s),
                    None => return Err(XmlError),
                }
            }
            Event::DocType(_) => return Err(XmlError),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError);
    }
    root.ok_or(XmlError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_prefixes_and_entities() {
        let doc = br#"<?xml version="1.0"?><ns2:Delete xmlns:ns2="x"><Quiet>true</Quiet><Object><Key>a&amp;b</Key></Object><Object><Key><![CDATA[c<d]]></Key></Object></ns2:Delete>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "Delete");
        let keys: Vec<_> = root
            .children_named("Object")
            .map(|o| o.child("Key").unwrap().text.clone())
            .collect();
        assert_eq!(keys, vec!["a&b", "c<d"]);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(b"").is_err());
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a></a><b/>").is_err());
        assert!(parse(b"<a>").is_err());
        assert!(parse(b"not xml").is_err());
        assert!(parse(b"<!DOCTYPE x [<!ENTITY e 'x'>]><a>&e;</a>").is_err());
        assert!(parse(&[0xff, 0xfe]).is_err());
        let deep = "<a>".repeat(40) + &"</a>".repeat(40);
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn escapes() {
        assert_eq!(escape("a<&>\"'\u{1}"), "a&lt;&amp;&gt;&quot;&apos;&#x1;");
    }
}
