//! Trace and span ids, trace flags, and the W3C `traceparent` header, parsed strictly.

use std::fmt;

use crate::error::HeaderError;
use crate::header;

/// A 16-byte trace id; never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

/// An 8-byte span id; never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId([u8; 8]);

impl TraceId {
    /// A random id (never zero).
    pub fn random() -> Self {
        loop {
            let id = fastrand::u128(..).to_be_bytes();
            if id != [0; 16] {
                return TraceId(id);
            }
        }
    }

    /// From bytes; `None` for all zeros.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        (bytes != [0; 16]).then_some(TraceId(bytes))
    }

    /// The bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// Parses 32 lowercase hex digits, or 16 (a 64-bit B3 id, left-padded with zeros).
    pub fn from_hex(hex: &str) -> Option<Self> {
        let mut bytes = [0u8; 16];
        match hex.len() {
            32 => decode_hex(hex, &mut bytes)?,
            16 => decode_hex(hex, &mut bytes[8..])?,
            _ => return None,
        }
        Self::from_bytes(bytes)
    }
}

impl SpanId {
    /// A random id (never zero).
    pub fn random() -> Self {
        loop {
            let id = fastrand::u64(..).to_be_bytes();
            if id != [0; 8] {
                return SpanId(id);
            }
        }
    }

    /// From bytes; `None` for all zeros.
    pub fn from_bytes(bytes: [u8; 8]) -> Option<Self> {
        (bytes != [0; 8]).then_some(SpanId(bytes))
    }

    /// The bytes.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0
    }

    /// Parses 16 lowercase hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let mut bytes = [0u8; 8];
        if hex.len() != 16 {
            return None;
        }
        decode_hex(hex, &mut bytes)?;
        Self::from_bytes(bytes)
    }
}

/// Each byte's value as a lowercase hex digit; 0x10 and above for anything else.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut d = 0;
    while d < 10 {
        table[b'0' as usize + d] = d as u8;
        d += 1;
    }
    let mut d = 0;
    while d < 6 {
        table[b'a' as usize + d] = 10 + d as u8;
        d += 1;
    }
    table
};

/// Decodes lowercase hex only (the W3C grammar is `HEXDIGLC`): one table load per digit,
/// and one check at the end.
fn decode_hex(hex: &str, out: &mut [u8]) -> Option<()> {
    decode_hex_bytes(hex.as_bytes(), out)
}

fn decode_hex_bytes(digits: &[u8], out: &mut [u8]) -> Option<()> {
    if digits.len() != out.len() * 2 {
        return None;
    }
    let mut invalid = 0u8;
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (high, low) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
        invalid |= high | low;
        *byte = (high << 4) | (low & 0x0f);
    }
    (invalid < 0x10).then_some(())
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes` into `out` (twice as long).
pub(crate) fn encode_hex(bytes: &[u8], out: &mut [u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0x0f)];
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    // One write of a stack buffer: ids are formatted on every request and log line.
    let mut buf = [0u8; 32];
    let out = &mut buf[..bytes.len() * 2];
    encode_hex(bytes, out);
    f.write_str(std::str::from_utf8(out).unwrap_or_default())
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// Trace flags. Only the bits this version knows are kept: `sampled` (0x01) and `random`
/// (0x02, W3C level 2); unknown bits are never propagated as set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// The sampled bit.
    pub const SAMPLED: TraceFlags = TraceFlags(0x01);
    /// The random-trace-id bit (W3C Trace Context level 2).
    pub const RANDOM: TraceFlags = TraceFlags(0x02);
    const KNOWN: u8 = 0x03;

    /// From a byte, dropping unknown bits.
    pub fn from_byte(byte: u8) -> Self {
        TraceFlags(byte & Self::KNOWN)
    }

    /// The byte.
    pub fn to_byte(self) -> u8 {
        self.0
    }

    /// Whether the sampled bit is set.
    pub fn is_sampled(self) -> bool {
        self.0 & Self::SAMPLED.0 != 0
    }

    /// With the sampled bit set or cleared.
    pub fn with_sampled(self, sampled: bool) -> Self {
        if sampled {
            TraceFlags(self.0 | Self::SAMPLED.0)
        } else {
            TraceFlags(self.0 & !Self::SAMPLED.0)
        }
    }
}

/// The ids a `traceparent` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span (our parent).
    pub parent_id: SpanId,
    /// The flags.
    pub flags: TraceFlags,
}

const VERSION_00_LEN: usize = 55;

impl TraceParent {
    /// Parses a `traceparent` value by the W3C rules: version `00` exactly 55 characters;
    /// a higher version (not `ff`) read from its first 55 characters, the rest beginning with
    /// `-`; lowercase hex only; all-zero ids invalid.
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        let bad = |reason: &str| Err(HeaderError::new(header::TRACEPARENT, reason));
        if !value.is_ascii() {
            return bad("not ASCII");
        }
        let bytes = value.as_bytes();
        if bytes.len() < VERSION_00_LEN {
            return bad("shorter than 55 characters");
        }
        let mut v = [0u8; 1];
        if decode_hex(&value[0..2], &mut v).is_none() {
            return bad("version is not 2 lowercase hex digits");
        }
        match v[0] {
            0xff => return bad("version ff is invalid"),
            0x00 if bytes.len() != VERSION_00_LEN => {
                return bad("version 00 must be exactly 55 characters");
            }
            0x00 => {}
            _ if bytes.len() > VERSION_00_LEN && bytes[VERSION_00_LEN] != b'-' => {
                return bad("a later version's extra fields must start with '-'");
            }
            _ => {}
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return bad("fields are not separated by '-' at 2, 35 and 52");
        }
        let field = |range: std::ops::Range<usize>| value.get(range).unwrap_or("");
        let Some(trace_id) = TraceId::from_hex(field(3..35)) else {
            return bad("trace-id is not 32 lowercase hex digits, or is all zeros");
        };
        let Some(parent_id) = SpanId::from_hex(field(36..52)) else {
            return bad("parent-id is not 16 lowercase hex digits, or is all zeros");
        };
        let mut flags = [0u8; 1];
        if decode_hex(field(53..55), &mut flags).is_none() {
            return bad("trace-flags is not 2 lowercase hex digits");
        }
        Ok(TraceParent {
            trace_id,
            parent_id,
            flags: TraceFlags::from_byte(flags[0]),
        })
    }

    /// The common case, a version-00 value, read straight from the header's bytes (no UTF-8
    /// or visible-ASCII pass first: every byte is checked as a hex digit or `-`). `None`
    /// for anything else, which [`TraceParent::parse`] then reads (and words the error).
    pub(crate) fn parse_version_00(b: &[u8]) -> Option<Self> {
        if b.len() != VERSION_00_LEN || b[..3] != *b"00-" || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut parent_id = [0u8; 8];
        let mut flags = [0u8; 1];
        decode_hex_bytes(&b[3..35], &mut trace_id)?;
        decode_hex_bytes(&b[36..52], &mut parent_id)?;
        decode_hex_bytes(&b[53..55], &mut flags)?;
        Some(TraceParent {
            trace_id: TraceId::from_bytes(trace_id)?,
            parent_id: SpanId::from_bytes(parent_id)?,
            flags: TraceFlags::from_byte(flags[0]),
        })
    }

    /// The header value (always version `00`).
    pub fn to_header(&self) -> String {
        String::from_utf8_lossy(&self.to_header_bytes()).into_owned()
    }

    /// The header value in a stack buffer.
    pub(crate) fn to_header_bytes(self) -> [u8; VERSION_00_LEN] {
        let mut out = [b'-'; VERSION_00_LEN];
        out[0] = b'0';
        out[1] = b'0';
        encode_hex(&self.trace_id.0, &mut out[3..35]);
        encode_hex(&self.parent_id.0, &mut out[36..52]);
        encode_hex(&[self.flags.to_byte()], &mut out[53..55]);
        out
    }
}
