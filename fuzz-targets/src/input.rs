//! Splitting one fuzz input into the several values a target needs, in a way a mutating
//! fuzzer keeps stable: fields are separated by a NUL byte, and text is read lossily.

/// The input's fields (split at NUL bytes), then empty fields for ever.
pub struct Fields<'a> {
    parts: std::slice::Split<'a, u8, fn(&u8) -> bool>,
}

fn is_nul(b: &u8) -> bool {
    *b == 0
}

impl<'a> Fields<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Fields {
            parts: data.split(is_nul as fn(&u8) -> bool),
        }
    }

    /// The next field's bytes (empty when the input is used up).
    pub fn bytes(&mut self) -> &'a [u8] {
        self.parts.next().unwrap_or(&[])
    }

    /// The next field as text (invalid UTF-8 replaced).
    pub fn text(&mut self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }

    /// The next field's first byte, or 0.
    pub fn byte(&mut self) -> u8 {
        self.bytes().first().copied().unwrap_or(0)
    }
}

/// `name: value` lines (a line without `:` is a name with an empty value).
pub fn header_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(':') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (l.trim().to_string(), String::new()),
        })
        .collect()
}
