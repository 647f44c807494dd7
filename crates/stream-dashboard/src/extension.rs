//! Stream extensions: events of our own beside Hystrix's, asked for by name, so that the stock
//! Hystrix Dashboard and Turbine never see them.
//!
//! An extension writes events that each carry a `type` of its own (never one starting `Hystrix`) and a `name`. A client asks for them with `?extensions=all` or
//! `?extensions=<type>[,<type>…]`; without it a stream holds Hystrix's events alone.
//!
//! The [`Aggregator`](crate::Aggregator) asks every upstream for all of its extensions and
//! passes their events on unmerged, each with a `source` field naming the instance it came
//! from: what one instance sees of its upstreams is its own, and summing it with another's
//! would mean nothing. So a dashboard in another process shows the same extension events as
//! the instance's own page.
//!
//! ```
//! use breakwater_stream_dashboard::Dashboard;
//! use breakwater_stream_dashboard::extension::StreamExtension;
//!
//! struct Deploys;
//!
//! impl StreamExtension for Deploys {
//!     fn event_type(&self) -> &'static str {
//!         "ExampleDeploy"
//!     }
//!     fn write_events(&self, out: &mut Vec<u8>) {
//!         let event = serde_json::json!({"type": "ExampleDeploy", "name": "v42"});
//!         breakwater_stream_dashboard::sse::write_data(&event, out);
//!     }
//! }
//!
//! // `/hystrix.stream?extensions=ExampleDeploy` (or `=all`) carries the event too.
//! let dashboard = Dashboard::new().extension(Deploys);
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use breakwater_server::ConnectionLimit;

use crate::metrics::Counting;
use crate::stream::{FrameSource, StreamConfig, Streamer};

/// The query parameter that asks for extension events.
pub const QUERY: &str = "extensions";
/// Most event types one client may list.
const MAX_LISTED: usize = 8;
/// The longest event type accepted in a query.
const MAX_TYPE_LEN: usize = 64;
/// Most distinct `?extensions=` selections served per stream endpoint at once (each has its
/// own frame cache).
const MAX_SELECTIONS: usize = 16;

/// A source of extension events for a stream.
pub trait StreamExtension: Send + Sync + 'static {
    /// The `type` of every event it writes, and the name a client asks for it by.
    fn event_type(&self) -> &'static str;

    /// Appends the current events, each written with [`sse::write_data`](crate::sse::write_data).
    fn write_events(&self, out: &mut Vec<u8>);
}

/// Whether an event type is one of Hystrix's own (`HystrixCommand`, `HystrixThreadPool`,
/// `HystrixCollapser`: merged by Turbine's rules), rather than an extension's.
pub fn is_hystrix(event_type: &str) -> bool {
    event_type.starts_with("Hystrix")
}

/// The extension events a client asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Extensions {
    /// None: Hystrix's events alone (what a request without `?extensions=` gets).
    #[default]
    None,
    /// Every extension's events.
    All,
    /// Events of these types (sorted, no repeats).
    Only(Vec<String>),
}

impl Extensions {
    /// Reads the value of `?extensions=`: `all`, or event types separated by commas.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(Extensions::None);
        };
        if value == "all" {
            return Ok(Extensions::All);
        }
        let mut types: Vec<String> = Vec::new();
        for item in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let valid = item.len() <= MAX_TYPE_LEN
                && item.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!(
                    "query parameter `{QUERY}`: {item:?} is not an event type (letters, digits \
                     and `_`, at most {MAX_TYPE_LEN})"
                ));
            }
            types.push(item.to_owned());
        }
        types.sort();
        types.dedup();
        if types.len() > MAX_LISTED {
            return Err(format!(
                "query parameter `{QUERY}`: {} event types listed; at most {MAX_LISTED}, or `all`",
                types.len()
            ));
        }
        Ok(if types.is_empty() {
            Extensions::None
        } else {
            Extensions::Only(types)
        })
    }

    /// Whether events of `event_type` are asked for.
    pub fn includes(&self, event_type: &str) -> bool {
        match self {
            Extensions::None => false,
            Extensions::All => true,
            Extensions::Only(types) => types.iter().any(|t| t == event_type),
        }
    }

    /// The event types listed that none of `known` writes.
    pub(crate) fn unknown<'a>(&'a self, known: &[Arc<dyn StreamExtension>]) -> Vec<&'a str> {
        match self {
            Extensions::Only(types) => types
                .iter()
                .filter(|t| !known.iter().any(|e| e.event_type() == t.as_str()))
                .map(String::as_str)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Writes the events of `extensions` that `selection` asks for.
pub(crate) fn write_selected(
    extensions: &[Arc<dyn StreamExtension>],
    selection: &Extensions,
    out: &mut Vec<u8>,
) {
    for extension in extensions {
        if selection.includes(extension.event_type()) {
            extension.write_events(out);
        }
    }
}

type MakeSource = dyn Fn(&Extensions) -> Arc<dyn FrameSource> + Send + Sync;

/// One stream endpoint's streamers, one per selection of extensions asked for, each with its
/// own frame cache shared by the clients that asked the same.
#[derive(Clone)]
pub(crate) struct Selections {
    make: Arc<MakeSource>,
    streamers: Arc<Mutex<HashMap<Extensions, Streamer>>>,
    settings: Arc<StreamConfig>,
    connections: ConnectionLimit,
    counting: Counting,
}

impl Selections {
    pub(crate) fn new(
        make: impl Fn(&Extensions) -> Arc<dyn FrameSource> + Send + Sync + 'static,
        settings: Arc<StreamConfig>,
        connections: ConnectionLimit,
        counting: Counting,
    ) -> Self {
        Selections {
            make: Arc::new(make),
            streamers: Arc::default(),
            settings,
            connections,
            counting,
        }
    }

    /// The streamer of `selection`, made on first use.
    pub(crate) fn get(&self, selection: &Extensions) -> Result<Streamer, String> {
        let mut streamers = self.streamers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(streamer) = streamers.get(selection) {
            return Ok(streamer.clone());
        }
        if streamers.len() >= MAX_SELECTIONS {
            return Err(format!(
                "query parameter `{QUERY}`: {MAX_SELECTIONS} different selections are served \
                 already; ask for `all` or one of those"
            ));
        }
        let streamer = Streamer::new(
            (self.make)(selection),
            self.settings.clone(),
            self.connections.clone(),
            self.counting.clone(),
        );
        streamers.insert(selection.clone(), streamer.clone());
        Ok(streamer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_are_read_from_the_query() {
        assert_eq!(Extensions::parse(None), Ok(Extensions::None));
        assert_eq!(Extensions::parse(Some(" ")), Ok(Extensions::None));
        assert_eq!(Extensions::parse(Some("all")), Ok(Extensions::All));
        assert_eq!(
            Extensions::parse(Some("B,A, B")),
            Ok(Extensions::Only(vec!["A".into(), "B".into()]))
        );
        let bad = Extensions::parse(Some("A,<script>")).unwrap_err();
        assert!(
            bad.contains("`extensions`") && bad.contains("<script>"),
            "{bad}"
        );
        let many = (0..9)
            .map(|i| format!("T{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(
            Extensions::parse(Some(&many))
                .unwrap_err()
                .contains("at most 8")
        );
        let long = "x".repeat(65);
        assert!(Extensions::parse(Some(&long)).is_err());
        let only = Extensions::parse(Some("BreakwaterBalancer")).unwrap();
        assert!(only.includes("BreakwaterBalancer") && !only.includes("Other"));
        assert!(Extensions::All.includes("Other") && !Extensions::None.includes("Other"));
    }
}
