//! The metrics this crate publishes (through the [`metrics`] facade, so any exporter works).
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `breakwater_config_rejected_total` | counter | `key`, `layer` | values refused (type or validator) |
//! | `breakwater_config_staleness_seconds` | gauge | `source`, `table` | age of the last successful read of the table |
//! | `breakwater_config_poll_errors_total` | counter | `source`, `table` | failed polls of the table |
//! | `breakwater_config_stream_errors_total` | counter | `table` | failed reads of the table's stream |
//! | `breakwater_config_reloads_total` | counter | `table`, `trigger` | layer reloads (`poll`, `stream`, `refresh`) |
//!
//! ```
//! // Once, after installing a recorder: the descriptions show up in e.g. Prometheus' HELP.
//! breakwater_dyn_config::metrics::describe();
//! ```

use crate::origin::SourceKind;

/// Values refused by a property's type or validator.
pub const REJECTED_TOTAL: &str = "breakwater_config_rejected_total";
/// Seconds since the DynamoDB layer was last read successfully.
pub const STALENESS_SECONDS: &str = "breakwater_config_staleness_seconds";
/// Failed polls of the DynamoDB table.
pub const POLL_ERRORS_TOTAL: &str = "breakwater_config_poll_errors_total";
/// Failed reads of the table's DynamoDB Stream.
pub const STREAM_ERRORS_TOTAL: &str = "breakwater_config_stream_errors_total";
/// Reloads of the DynamoDB layer (whole or one key), by what triggered them.
pub const RELOADS_TOTAL: &str = "breakwater_config_reloads_total";

/// Registers the descriptions of every metric above with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        REJECTED_TOTAL,
        "ConfigStore values refused by their property's type or validator"
    );
    metrics::describe_gauge!(
        STALENESS_SECONDS,
        metrics::Unit::Seconds,
        "Seconds since the config table was last read successfully"
    );
    metrics::describe_counter!(POLL_ERRORS_TOTAL, "Failed polls of the config table");
    metrics::describe_counter!(
        STREAM_ERRORS_TOTAL,
        "Failed reads of the config table's DynamoDB Stream"
    );
    metrics::describe_counter!(RELOADS_TOTAL, "Reloads of the DynamoDB config layer");
}

pub(crate) fn rejected(key: &str, layer: SourceKind) {
    metrics::counter!(REJECTED_TOTAL, "key" => key.to_owned(), "layer" => layer.to_string())
        .increment(1);
}
