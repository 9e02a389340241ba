//! A validating scanner for JSON already in its canonical form: the exact bytes `orjson.dumps`
//! writes for the value `orjson.loads` reads from them. Only such bytes are accepted, so a value
//! the transform does not change can be copied verbatim and the document still comes out byte for
//! byte as the Python path's `orjson.dumps(record)`. Anything else (whitespace, escapes orjson would
//! not write, exponents, floats not in their shortest form, integers beyond 64 bits, invalid UTF-8,
//! duplicate keys, deep nesting, long objects) is refused, and the record takes the Python path.
//!
//! orjson's forms, checked against orjson 3.x (and by tests/shipper/test_native.py): strings escape
//! `"`, `\` and the control characters (`\b \t \n \f \r` short, the others `\u00xx` in lower case),
//! nothing else; integers are in [-2^63, 2^64); floats are the shortest representation that reads
//! back, with a fraction, in plain notation from 1e-5 up to 1e16 (exponent form outside, refused).

use std::ops::Range;

/// Nesting deeper than this is refused (orjson.dumps itself stops at 255).
pub const MAX_DEPTH: usize = 64;
/// Objects with more keys than this are refused: duplicate keys are looked for pairwise.
pub const MAX_KEYS: usize = 128;

/// A member of an object, as byte ranges of the record: the key with its quotes, the value.
#[derive(Clone)]
pub struct Member {
    pub key: Range<usize>,
    pub value: Range<usize>,
    /// The value's own members (in `Scanner::sub`) when it is an object on the top level.
    pub members: Range<usize>,
}

/// What a byte means inside a string.
const PLAIN: u8 = 0;
const QUOTE: u8 = 1;
const BACKSLASH: u8 = 2;
const CONTROL: u8 = 3;
const HIGH: u8 = 4;

static CLASS: [u8; 256] = {
    let mut t = [PLAIN; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if i < 0x20 {
            CONTROL
        } else if i == b'"' as usize {
            QUOTE
        } else if i == b'\\' as usize {
            BACKSLASH
        } else if i >= 0x80 {
            HIGH
        } else {
            PLAIN
        };
        i += 1;
    }
    t
};

/// The scanner's buffers, kept from record to record.
#[derive(Default)]
pub struct Scanner {
    /// The top level's members.
    pub top: Vec<Member>,
    /// The members of the objects on the top level.
    pub sub: Vec<Member>,
    keys: Vec<Range<usize>>,
    /// A key below the top level has a dot.
    pub nested_dot: bool,
    /// A string has an escape (so the raw bytes have a backslash).
    pub escaped: bool,
}

impl Scanner {
    /// Reads `b`, one canonical object; false when it is not.
    pub fn scan(&mut self, b: &[u8]) -> bool {
        self.top.clear();
        self.sub.clear();
        self.keys.clear();
        self.nested_dot = false;
        self.escaped = false;
        if b.first() != Some(&b'{') {
            return false;
        }
        let mut i = 0;
        self.object(b, &mut i, 0) == Some(()) && i == b.len()
    }

    fn value(&mut self, b: &[u8], i: &mut usize, depth: usize) -> Option<()> {
        match *b.get(*i)? {
            b'{' => self.object(b, i, depth + 1),
            b'[' => self.array(b, i, depth + 1),
            b'"' => {
                self.escaped |= string(b, i)?;
                Some(())
            }
            b't' => literal(b, i, b"true"),
            b'f' => literal(b, i, b"false"),
            b'n' => literal(b, i, b"null"),
            _ => number(b, i),
        }
    }

    /// An object at `*i`; its members are kept on the top level (depth 0) and the one below.
    fn object(&mut self, b: &[u8], i: &mut usize, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        *i += 1;
        if *b.get(*i)? == b'}' {
            *i += 1;
            return Some(());
        }
        let base = self.keys.len();
        loop {
            if *b.get(*i)? != b'"' {
                return None;
            }
            let start = *i;
            self.escaped |= string(b, i)?;
            let key = start..*i;
            if self.keys.len() - base >= MAX_KEYS {
                return None;
            }
            // canonical strings are unique: equal keys have equal bytes
            if self.keys[base..].iter().any(|k| b[k.clone()] == b[key.clone()]) {
                return None;
            }
            if depth > 0 && b[key.clone()].contains(&b'.') {
                self.nested_dot = true;
            }
            self.keys.push(key.clone());
            if *b.get(*i)? != b':' {
                return None;
            }
            *i += 1;
            let vstart = *i;
            let first = self.sub.len();
            self.value(b, i, depth)?;
            match depth {
                0 => {
                    let members = if b[vstart] == b'{' { first..self.sub.len() } else { 0..0 };
                    self.top.push(Member { key, value: vstart..*i, members });
                }
                1 => self.sub.push(Member { key, value: vstart..*i, members: 0..0 }),
                _ => {}
            }
            match *b.get(*i)? {
                b',' => *i += 1,
                b'}' => {
                    *i += 1;
                    self.keys.truncate(base);
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, b: &[u8], i: &mut usize, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        *i += 1;
        if *b.get(*i)? == b']' {
            *i += 1;
            return Some(());
        }
        // members of objects in arrays are nobody's: scanned at a depth that keeps none
        let depth = depth.max(2);
        loop {
            self.value(b, i, depth)?;
            match *b.get(*i)? {
                b',' => *i += 1,
                b']' => {
                    *i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

fn literal(b: &[u8], i: &mut usize, word: &[u8]) -> Option<()> {
    if b[*i..].starts_with(word) {
        *i += word.len();
        Some(())
    } else {
        None
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether a byte of `w` is a quote, a backslash, a control character or above ASCII.
#[inline]
fn special(w: u64) -> bool {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let quote = zero(w ^ (ONES * b'"' as u64));
    let backslash = zero(w ^ (ONES * b'\\' as u64));
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    (quote | backslash | control | (w & HIGHS)) != 0
}

/// A string at `*i` (its opening quote), canonical and valid UTF-8; whether it has an escape.
fn string(b: &[u8], i: &mut usize) -> Option<bool> {
    *i += 1;
    let start = *i;
    let mut escaped = false;
    let mut high = false;
    loop {
        // eight bytes at a time while none of them ends the string, escapes or is no ASCII
        while *i + 8 <= b.len() {
            let w = u64::from_le_bytes(b[*i..*i + 8].try_into().expect("eight bytes"));
            if special(w) {
                break;
            }
            *i += 8;
        }
        while *i < b.len() && CLASS[b[*i] as usize] == PLAIN {
            *i += 1;
        }
        match CLASS[*b.get(*i)? as usize] {
            QUOTE => {
                if high {
                    std::str::from_utf8(&b[start..*i]).ok()?;
                }
                *i += 1;
                return Some(escaped);
            }
            BACKSLASH => {
                escaped = true;
                match *b.get(*i + 1)? {
                    b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => *i += 2,
                    b'u' => {
                        let h = b.get(*i + 2..*i + 6)?;
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
                        *i += 6;
                    }
                    _ => return None,
                }
            }
            HIGH => {
                high = true;
                *i += 1;
            }
            _ => return None, // a raw control character: no JSON
        }
    }
}

fn digits(b: &[u8], i: &mut usize) -> usize {
    let start = *i;
    while *i < b.len() && b[*i].is_ascii_digit() {
        *i += 1;
    }
    *i - start
}

fn number(b: &[u8], i: &mut usize) -> Option<()> {
    let start = *i;
    if *b.get(*i)? == b'-' {
        *i += 1;
    }
    match *b.get(*i)? {
        b'0' => *i += 1,
        b'1'..=b'9' => {
            digits(b, i);
        }
        _ => return None,
    }
    let float = b.get(*i) == Some(&b'.');
    if float {
        *i += 1;
        if digits(b, i) == 0 {
            return None;
        }
    }
    if matches!(b.get(*i), Some(b'e' | b'E')) {
        return None;
    }
    let text = &b[start..*i];
    if float {
        canonical_float(text)
    } else if text.len() <= 18 {
        (text != b"-0").then_some(())
    } else {
        int_value(text).map(|_| ())
    }
}

/// The value of a canonical integer token, if it is one orjson reads as an int.
pub fn int_value(text: &[u8]) -> Option<i128> {
    if text == b"-0" || text.len() > 21 || text.contains(&b'.') {
        return None;
    }
    let v: i128 = std::str::from_utf8(text).ok()?.parse().ok()?;
    if v < -(1i128 << 63) || v >= (1i128 << 64) {
        return None;
    }
    Some(v)
}

fn canonical_float(text: &[u8]) -> Option<()> {
    let v: f64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    if !v.is_finite() {
        return None;
    }
    let a = v.abs();
    if a != 0.0 && !(1e-5..1e16).contains(&a) {
        return None;
    }
    let mut buf = ryu::Buffer::new();
    (buf.format_finite(v).as_bytes() == text).then_some(())
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

pub fn json_str(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 2);
    write_str(&mut v, s);
    v
}
