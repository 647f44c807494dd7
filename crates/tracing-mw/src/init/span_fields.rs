//! Span fields for JSON log lines, kept as a JSON object that later values are appended to.
//!
//! `tracing-subscriber`'s `JsonFields` builds a map per span and, on every `span.record`,
//! parses the object it wrote and writes it again: tens of microseconds per request for the
//! server and client spans of [`ServerLayer`](crate::ServerLayer) and
//! [`ClientLayer`](crate::ClientLayer), even when no line is logged. Here each field is
//! escaped once, straight into the span's text, and a recorded value is appended before the
//! closing brace. The JSON event format reads the object back when a line is written (and
//! keeps the last of repeated keys).

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::Writer;

/// The [`FormatFields`] of the JSON log layer: see the module docs.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AppendJsonFields;

/// Writes `"name":value` members, comma-separated, into a string.
struct Members<'a> {
    out: &'a mut String,
    first: bool,
    // Display and Debug values are formatted here first, then escaped.
    scratch: String,
}

impl Members<'_> {
    fn key(&mut self, field: &Field) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        let name = field.name();
        escape(name.strip_prefix("r#").unwrap_or(name), self.out);
        self.out.push(':');
    }
}

impl Visit for Members<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        escape(value, self.out);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        self.scratch.clear();
        let _ = write!(self.scratch, "{value:?}");
        escape(&self.scratch, self.out);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            let _ = write!(self.out, "{value}");
        } else {
            // JSON has no NaN or infinity; serde_json writes null for them too.
            self.out.push_str("null");
        }
    }
}

/// Bytes a JSON string must not hold as they are.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[0x7f] = true;
    table
};

/// A JSON string literal of `text` (RFC 8259 escapes; control characters as `\u00XX`).
fn escape(text: &str, out: &mut String) {
    out.push('"');
    // Most values need no escape at all: one scan, one copy.
    let Some(first) = text.bytes().position(|b| NEEDS_ESCAPE[b as usize]) else {
        out.push_str(text);
        out.push('"');
        return;
    };
    out.push_str(&text[..first]);
    let mut start = first;
    for (i, b) in text.bytes().enumerate().skip(first) {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f | 0x7f => "",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escaped);
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

impl<'writer> FormatFields<'writer> for AppendJsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut object = String::with_capacity(160);
        object.push('{');
        fields.record(&mut Members {
            out: &mut object,
            first: true,
            scratch: String::new(),
        });
        object.push('}');
        writer.write_str(&object)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        // Reopen the object (a text never formatted starts as `{`), append, close again.
        let text = &mut current.fields;
        if text.ends_with('}') {
            text.pop();
        } else {
            text.clear();
            text.push('{');
        }
        let first = text.len() == 1;
        fields.record(&mut Members {
            out: text,
            first,
            scratch: String::new(),
        });
        text.push('}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_json_does() {
        for text in [
            "plain",
            "quote \" and \\ back",
            "line\nfeed\ttab\r",
            "\u{1}\u{1f}\u{7f}",
            "ünï €",
        ] {
            let mut out = String::new();
            escape(text, &mut out);
            let back: String = serde_json::from_str(&out).unwrap();
            assert_eq!(back, text, "{out}");
        }
    }
}
