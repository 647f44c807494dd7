//! Server-Sent Events: framing what we send and parsing what upstream instances send.

use bytes::{Buf, BytesMut};

/// What a frame holds when there is nothing to report, as Hystrix's servlet sends it.
pub const PING: &[u8] = b"ping: \n\n";

/// Appends one event, `data: <json>\n\n`, to `out`.
pub fn write_data(event: &impl serde::Serialize, out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    // Serializing our events (plain structs, JSON maps) into a Vec cannot fail.
    serde_json::to_writer(&mut *out, event).expect("event serializes");
    out.extend_from_slice(b"\n\n");
}

/// Appends a data event for each of `events`, or [`PING`] when there is none.
pub fn write_frame<E: serde::Serialize>(events: impl IntoIterator<Item = E>, out: &mut Vec<u8>) {
    let start = out.len();
    for event in events {
        write_data(&event, out);
    }
    if out.len() == start {
        out.extend_from_slice(PING);
    }
}

/// The most a single SSE line may hold before the stream is refused (a Hystrix event is about
/// 2 KiB; anything near this is not a Hystrix stream).
pub const MAX_LINE: usize = 1 << 20;

/// An error in an upstream event stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line grew past [`MAX_LINE`] without ending.
    #[error("line {line} is longer than {MAX_LINE} bytes")]
    LineTooLong {
        /// 1-based line number in the stream.
        line: u64,
    },
    /// An event's `data:` lines add up to more than [`MAX_LINE`] bytes.
    #[error("the event ending at line {line} holds more than {MAX_LINE} bytes of data")]
    EventTooLong {
        /// 1-based line number of the `data:` line that passed the limit.
        line: u64,
    },
    /// An event's data is not UTF-8.
    #[error("line {line} is not UTF-8")]
    NotUtf8 {
        /// 1-based line number in the stream.
        line: u64,
    },
}

/// One complete event's `data` (several `data:` lines joined by `\n`) and the line it ended on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The data.
    pub data: String,
    /// The 1-based line number of the blank line that ended it.
    pub line: u64,
}

/// An incremental parser of the `text/event-stream` format (WHATWG HTML, "Parsing an event
/// stream"), keeping only `data` fields: comments (`:ping`), `ping:` and other fields are
/// skipped, as a browser's `EventSource` skips them.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: BytesMut,
    data: String,
    has_data: bool,
    line: u64,
    // A `\r` ended the last line; a `\n` right after it belongs to it.
    after_cr: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes and returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        loop {
            if self.after_cr && self.buf.first() == Some(&b'\n') {
                self.buf.advance(1);
            }
            self.after_cr = false;
            let Some(end) = self.buf.iter().position(|&b| b == b'\n' || b == b'\r') else {
                if self.buf.len() > MAX_LINE {
                    return Err(SseError::LineTooLong {
                        line: self.line + 1,
                    });
                }
                return Ok(events);
            };
            let line = self.buf.split_to(end);
            self.after_cr = self.buf[0] == b'\r';
            self.buf.advance(1);
            self.line += 1;
            if line.is_empty() {
                if self.has_data {
                    events.push(SseEvent {
                        data: std::mem::take(&mut self.data),
                        line: self.line,
                    });
                    self.has_data = false;
                }
                continue;
            }
            let Ok(line) = std::str::from_utf8(&line) else {
                return Err(SseError::NotUtf8 { line: self.line });
            };
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            if field == "data" {
                if self.data.len() + value.len() + 1 > MAX_LINE {
                    return Err(SseError::EventTooLong { line: self.line });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_and_any_line_ending() {
        let text = b":ping\r\n\r\ndata: {\"a\":1}\n\nping: \n\ndata: x\rdata: y\r\n\r\nid: 3\n";
        for split in 0..text.len() {
            let mut p = SseParser::new();
            let mut events = p.feed(&text[..split]).unwrap();
            events.extend(p.feed(&text[split..]).unwrap());
            let data: Vec<_> = events.iter().map(|e| e.data.as_str()).collect();
            assert_eq!(data, ["{\"a\":1}", "x\ny"], "split at {split}");
        }
    }

    #[test]
    fn a_line_without_end_is_bounded() {
        let mut p = SseParser::new();
        let err = p.feed(&vec![b'a'; MAX_LINE + 1]).unwrap_err();
        assert_eq!(err, SseError::LineTooLong { line: 1 });
    }

    #[test]
    fn an_event_of_many_data_lines_is_bounded() {
        let mut p = SseParser::new();
        let line = format!("data: {}\n", "a".repeat(1000));
        let mut result = Ok(Vec::new());
        for _ in 0..(MAX_LINE / 1000 + 2) {
            result = p.feed(line.as_bytes());
            if result.is_err() {
                break;
            }
        }
        assert!(
            matches!(result, Err(SseError::EventTooLong { line }) if line > 1000),
            "{result:?}"
        );
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let mut p = SseParser::new();
        let err = p.feed(b"data: ok\n\ndata: \xff\n").unwrap_err();
        assert_eq!(err, SseError::NotUtf8 { line: 3 });
    }
}
