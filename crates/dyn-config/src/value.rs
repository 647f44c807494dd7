//! Turning the text of a setting into a typed value.

use std::time::Duration;

/// A type a property can hold: parsed from the setting's text, with a message on failure.
pub trait FromConfig: Sized + Send + Sync + 'static {
    /// Parses `text`; the error says what was expected (the caller adds key and origin).
    fn from_config(text: &str) -> Result<Self, String>;
}

impl FromConfig for bool {
    /// `true`/`false` (any case), `1`/`0`.
    fn from_config(text: &str) -> Result<Self, String> {
        match text.trim() {
            t if t.eq_ignore_ascii_case("true") || t == "1" => Ok(true),
            t if t.eq_ignore_ascii_case("false") || t == "0" => Ok(false),
            _ => Err("expected true or false".into()),
        }
    }
}

macro_rules! numbers {
    ($($t:ty => $what:literal),*) => {$(
        impl FromConfig for $t {
            fn from_config(text: &str) -> Result<Self, String> {
                text.trim()
                    .parse()
                    .map_err(|_| format!(concat!("expected ", $what, ", got {:?}"), text))
            }
        }
    )*};
}

numbers!(
    u8 => "a whole number from 0 to 255",
    u16 => "a whole number from 0 to 65535",
    u32 => "a whole number from 0 to 4294967295",
    u64 => "a whole number of at least 0",
    usize => "a whole number of at least 0",
    i32 => "a whole number",
    i64 => "a whole number",
    f64 => "a number"
);

impl FromConfig for String {
    fn from_config(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }
}

impl FromConfig for Duration {
    /// Milliseconds (`1500`, as Hystrix's `...InMilliseconds` settings) or a number with a
    /// unit: `250ms`, `5s`, `2m`.
    fn from_config(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (number, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => t.split_at(i),
            None => (t, "ms"),
        };
        let n: u64 = number.parse().map_err(|_| {
            format!("expected a duration such as 1500, 250ms, 5s or 2m, got {text:?}")
        })?;
        match unit.trim() {
            "ms" => Ok(Duration::from_millis(n)),
            "s" => Ok(Duration::from_secs(n)),
            "m" => n
                .checked_mul(60)
                .map(Duration::from_secs)
                .ok_or_else(|| "duration too long".to_owned()),
            other => Err(format!("unknown duration unit {other:?} (use ms, s or m)")),
        }
    }
}

impl<T: FromConfig> FromConfig for Vec<T> {
    /// Comma-separated items; empty items are skipped.
    fn from_config(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(i, s)| T::from_config(s).map_err(|e| format!("item {i}: {e}")))
            .collect()
    }
}
