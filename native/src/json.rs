//! A validating scanner for JSON already in its canonical form: the exact bytes `orjson.dumps`
//! writes for the value `orjson.loads` reads from them. Only such bytes are accepted, so a value
//! the transform does not change can be copied verbatim and the document still comes out byte for
//! byte as the Python path's `orjson.dumps(record)`. Anything else (whitespace, escapes orjson would
//! not write, exponents, floats not in their shortest form, integers beyond 64 bits, duplicate
//! keys, deep nesting, long objects) is refused, and the record takes the Python path.
//!
//! orjson's forms, checked against orjson 3.x: strings escape `"`, `\`, and the control characters
//! (`\b \t \n \f \r` short, the others `\u00xx` in lower case), nothing else; integers are in
//! [-2^63, 2^64); floats are the shortest representation that reads back, with a fraction, in
//! plain notation from 1e-5 up to 1e16 (exponent form outside, which is refused here).

/// Nesting deeper than this is refused (orjson.dumps itself stops at 255).
pub const MAX_DEPTH: usize = 64;
/// Objects with more keys than this are refused: duplicate keys are looked for pairwise.
pub const MAX_KEYS: usize = 128;

/// A member of an object: the key with its quotes, the value's bytes.
#[derive(Clone, Copy)]
pub struct Member<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
}

pub struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    keys: Vec<(usize, usize)>,
    /// A key below the top level has a dot.
    pub nested_dot: bool,
}

impl<'a> Scanner<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Scanner { b, i: 0, keys: Vec::new(), nested_dot: false }
    }

    /// The whole input is one canonical object: its members in order.
    pub fn top_object(mut self, out: &mut Vec<Member<'a>>) -> Option<Self> {
        if self.b.first() != Some(&b'{') {
            return None;
        }
        self.object(0, Some(out))?;
        if self.i != self.b.len() {
            return None;
        }
        Some(self)
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(depth + 1, None),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    /// An object at `self.i`; `members` collects its members (the top level's).
    fn object(&mut self, depth: usize, mut members: Option<&mut Vec<Member<'a>>>) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        let base = self.keys.len();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let start = self.i;
            self.string()?;
            let end = self.i;
            let key = &self.b[start..end];
            if self.keys.len() - base >= MAX_KEYS {
                return None;
            }
            // canonical strings are unique: equal keys have equal bytes
            if self.keys[base..].iter().any(|&(s, e)| &self.b[s..e] == key) {
                return None;
            }
            self.keys.push((start, end));
            if depth > 0 && key.contains(&b'.') {
                self.nested_dot = true;
            }
            if self.peek()? != b':' {
                return None;
            }
            self.i += 1;
            let vstart = self.i;
            self.value(depth)?;
            if let Some(out) = members.as_deref_mut() {
                out.push(Member { key, value: &self.b[vstart..self.i] });
            }
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    self.keys.truncate(base);
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.i += 1;
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.value(depth)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string at `self.i` (its opening quote); whether it has an escape.
    fn string(&mut self) -> Option<bool> {
        self.i += 1;
        let mut escaped = false;
        loop {
            let c = self.peek()?;
            match c {
                b'"' => {
                    self.i += 1;
                    return Some(escaped);
                }
                b'\\' => {
                    escaped = true;
                    match *self.b.get(self.i + 1)? {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                        b'u' => {
                            let h = self.b.get(self.i + 2..self.i + 6)?;
                            let v = match (h[0], h[1], h[2], h[3]) {
                                (b'0', b'0', hi @ (b'0' | b'1'), lo) => {
                                    ((hi - b'0') << 4)
                                        | match lo {
                                            b'0'..=b'9' => lo - b'0',
                                            b'a'..=b'f' => lo - b'a' + 10,
                                            _ => return None,
                                        }
                                }
                                _ => return None,
                            };
                            if matches!(v, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return None; // orjson writes these short
                            }
                            self.i += 6;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<()> {
        let start = self.i;
        if self.peek()? == b'-' {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        let float = self.peek() == Some(b'.');
        if float {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            return None;
        }
        let text = &self.b[start..self.i];
        if float {
            canonical_float(text)
        } else {
            int_value(text).map(|_| ())
        }
    }
}

/// The value of a canonical integer token, if it is one orjson reads as an int.
pub fn int_value(text: &[u8]) -> Option<i128> {
    if text == b"-0" || text.len() > 21 {
        return None;
    }
    let s = std::str::from_utf8(text).ok()?;
    let v: i128 = s.parse().ok()?;
    if v < -(1i128 << 63) || v >= (1i128 << 64) {
        return None;
    }
    Some(v)
}

fn canonical_float(text: &[u8]) -> Option<()> {
    let s = std::str::from_utf8(text).ok()?;
    let v: f64 = s.parse().ok()?;
    if !v.is_finite() {
        return None;
    }
    let a = v.abs();
    if a != 0.0 && !(1e-5..1e16).contains(&a) {
        return None;
    }
    let mut buf = ryu::Buffer::new();
    if buf.format_finite(v).as_bytes() == text {
        Some(())
    } else {
        None
    }
}

/// The members of a canonical object (validated already as part of the record).
pub fn members(obj: &[u8]) -> Option<Vec<Member<'_>>> {
    let mut out = Vec::new();
    let mut s = Scanner::new(obj);
    s.object(1, Some(&mut out))?;
    Some(out)
}

/// A string value's text when it is a string without escapes.
pub fn plain_str(value: &[u8]) -> Option<&str> {
    if value.len() >= 2 && value[0] == b'"' && !value[1..value.len() - 1].contains(&b'\\') {
        std::str::from_utf8(&value[1..value.len() - 1]).ok()
    } else {
        None
    }
}

/// `s` as orjson writes a string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &c in s.as_bytes() {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
            }
            _ => out.push(c),
        }
    }
    out.push(b'"');
}
