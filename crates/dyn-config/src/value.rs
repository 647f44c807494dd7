//! Turning the text of a setting into a typed value.

use std::time::Duration;

/// A type a property can hold: parsed from the setting's text, with a message on failure.
///
/// ```
/// use std::time::Duration;
/// use breakwater_dyn_config::FromConfig;
///
/// assert_eq!(Duration::from_config("1500"), Ok(Duration::from_millis(1500)));
/// assert_eq!(Duration::from_config("5s"), Ok(Duration::from_secs(5)));
/// assert_eq!(Vec::<u16>::from_config("80, 443"), Ok(vec![80, 443]));
/// assert!(bool::from_config("maybe").is_err());
///
/// // Your own types: implement `from_config` (reads then cost an ArcSwap load).
/// #[derive(Clone, PartialEq)]
/// struct Level(String);
/// impl FromConfig for Level {
///     fn from_config(text: &str) -> Result<Self, String> {
///         match text {
///             "low" | "high" => Ok(Level(text.to_owned())),
///             _ => Err(format!("expected low or high, got {text:?}")),
///         }
///     }
/// }
/// ```
pub trait FromConfig: Sized + Send + Sync + 'static {
    /// Parses `text`; the error says what was expected (the caller adds key and origin).
    fn from_config(text: &str) -> Result<Self, String>;

    /// Whether values fit in 64 bits ([`pack`](Self::pack)/[`unpack`](Self::unpack)), so a
    /// read is one atomic load instead of an `ArcSwap` load (which costs a fence).
    const PACKED: bool = false;

    /// The value as 64 bits (only used when `PACKED`).
    fn pack(&self) -> u64 {
        0
    }

    /// The value back from [`pack`](Self::pack) (only used when `PACKED`).
    fn unpack(_bits: u64) -> Option<Self> {
        None
    }
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
    const PACKED: bool = true;
    fn pack(&self) -> u64 {
        u64::from(*self)
    }
    fn unpack(bits: u64) -> Option<Self> {
        Some(bits != 0)
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
            const PACKED: bool = true;
            fn pack(&self) -> u64 {
                *self as u64
            }
            fn unpack(bits: u64) -> Option<Self> {
                Some(bits as $t)
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
    i64 => "a whole number"
);

impl FromConfig for f64 {
    fn from_config(text: &str) -> Result<Self, String> {
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| format!("expected a finite number, got {text:?}"))
    }
    const PACKED: bool = true;
    fn pack(&self) -> u64 {
        self.to_bits()
    }
    fn unpack(bits: u64) -> Option<Self> {
        Some(f64::from_bits(bits))
    }
}

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
    const PACKED: bool = true;
    fn pack(&self) -> u64 {
        u64::try_from(self.as_nanos()).unwrap_or(u64::MAX)
    }
    fn unpack(bits: u64) -> Option<Self> {
        // Saturated by `pack`: the exact value is in the ArcSwap.
        (bits != u64::MAX).then(|| Duration::from_nanos(bits))
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
