//! The file layer: a Java-style properties file, one `key=value` or `key: value` per line,
//! `#` and `!` start comments, blank lines are skipped, keys and values are trimmed.
//! (No line continuations or escapes: values are taken as written.)

use std::collections::HashMap;
use std::path::Path;

use crate::error::SourceError;
use crate::origin::{Origin, SourceKind, Sourced};

/// Reads and parses `path`; each value's origin is `path:line`.
pub(crate) fn read(path: &Path) -> Result<HashMap<String, Sourced>, SourceError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| SourceError::File {
        path: shown.clone(),
        line: 0,
        reason: e.to_string(),
    })?;
    parse(&text, &shown)
}

/// Parses properties text; a malformed line refuses the whole text, naming the line.
///
/// ```
/// use breakwater_dyn_config::source::file::parse;
///
/// let layer = parse("# comment\norders.retries = 2\n", "app.properties").unwrap();
/// assert_eq!(layer["orders.retries"].value, "2");
/// assert_eq!(layer["orders.retries"].origin.to_string(), "file (app.properties:2)");
/// assert!(parse("no separator here\n", "app.properties").is_err());
/// ```
pub fn parse(text: &str, path: &str) -> Result<HashMap<String, Sourced>, SourceError> {
    let mut layer = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let malformed = |reason: &str| SourceError::File {
            path: path.to_owned(),
            line: i + 1,
            reason: reason.to_owned(),
        };
        let Some(split) = line.find(['=', ':']) else {
            return Err(malformed("expected `key=value`"));
        };
        let (key, value) = (line[..split].trim(), line[split + 1..].trim());
        if key.is_empty() {
            return Err(malformed("empty key"));
        }
        let origin = Origin {
            kind: SourceKind::File,
            detail: format!("{path}:{}", i + 1),
        };
        let value = value.to_owned();
        layer.insert(key.to_owned(), Sourced { value, origin });
    }
    Ok(layer)
}
