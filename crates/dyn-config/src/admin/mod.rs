//! Writes with optimistic versioning, audit attributes and history: what the operator CLI
//! does, as a library.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::{DateTime, DateTimeFormat};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, StreamSpecification, StreamViewType, TransactWriteItem, Update,
};

use crate::table::{GLOBAL_SCOPE, Row, Scope, VERSION_ITEM_KEY, rows_of_key};

mod error;

pub use error::WriteError;
use error::{built, dynamo};

/// One past write of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The version this write made.
    pub version: u64,
    /// The value written (`None`: deleted).
    pub value: Option<String>,
    /// The value before.
    pub previous_value: Option<String>,
    /// Who.
    pub updated_by: String,
    /// When (RFC 3339).
    pub updated_at: String,
}

/// The table and its history table (`<table>-history`).
///
/// ```no_run
/// use breakwater_dyn_config::{Scope, admin::{Admin, WriteError}};
///
/// # async fn run(client: aws_sdk_dynamodb::Client) -> Result<(), WriteError> {
/// let admin = Admin::new(client, "breakwater-config");
/// let key = "hystrix.command.payments.circuitBreaker.forceOpen";
/// let row = admin.write(key, &Scope::default(), Some("true"), "alice", None).await?;
/// // Later, and only if nobody wrote it since:
/// admin.write(key, &Scope::default(), Some("false"), "alice", Some(row.version)).await?;
/// admin.rollback(key, &Scope::default(), row.version, "alice", None).await?;
/// for entry in admin.history(key, &Scope::default()).await? {
///     println!("v{} {:?} by {}", entry.version, entry.value, entry.updated_by);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
    table: String,
    history: String,
    force: bool,
}

/// The history item id of `key` in `scope`: the key's length first, so that no key and scope
/// can spell another's (`col2|app=A` everywhere and `col2` for app `A|*` once shared an id).
fn history_id(key: &str, scope: &Scope) -> String {
    format!("{}:{key}|{}", key.len(), scope.id())
}

/// The id history items had before [`history_id`]: still read, never written.
fn legacy_history_id(key: &str, scope: &Scope) -> String {
    format!("{key}|{}", scope.id())
}

/// How long [`Admin::create_tables`] waits for new tables to become `ACTIVE`.
pub const TABLE_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// What [`Admin::create_tables`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tables {
    /// Tables it created.
    pub created: Vec<String>,
    /// Tables that were there already.
    pub existing: Vec<String>,
}

fn attribute(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .expect("name and type are set")
}

fn key_element(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("name and key type are set")
}

fn now() -> String {
    DateTime::from(std::time::SystemTime::now())
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_default()
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl Admin {
    /// Works on `table` and `<table>-history`. A client with no operation timeout of its own
    /// gets [`call_timeouts`](crate::source::dynamodb::call_timeouts).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = table.into();
        Admin {
            history: format!("{table}-history"),
            client: crate::source::calls::bounded(client),
            table,
            force: false,
        }
    }

    /// Writes keys under a known prefix that match no known setting (a likely typo, refused
    /// by default with the nearest known name).
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// The history table's name.
    pub fn history_table(&self) -> &str {
        &self.history
    }

    /// Creates both tables (on-demand billing; `streams` turns DynamoDB Streams on for the
    /// settings table) unless they exist, and waits until both are `ACTIVE` (at most
    /// [`TABLE_WAIT`]): a write right after it must not find no table.
    pub async fn create_tables(&self, streams: bool) -> Result<Tables, WriteError> {
        self.create_tables_reporting(streams, |_| {}).await
    }

    /// [`create_tables`](Self::create_tables), telling `progress` what it is waiting for.
    pub async fn create_tables_reporting(
        &self,
        streams: bool,
        mut progress: impl FnMut(&str),
    ) -> Result<Tables, WriteError> {
        let mut tables = Tables::default();
        for (table, outcome) in [
            (&self.table, self.create_settings_table(streams).await),
            (&self.history, self.create_history_table().await),
        ] {
            match outcome {
                Ok(()) => tables.created.push(table.clone()),
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_in_use_exception()) =>
                {
                    tables.existing.push(table.clone())
                }
                Err(error) => return Err(dynamo(error)),
            }
        }
        let started = std::time::Instant::now();
        let mut last_said: Option<std::time::Instant> = None;
        for table in [&self.table, &self.history] {
            loop {
                let description = self
                    .client
                    .describe_table()
                    .table_name(table)
                    .send()
                    .await
                    .map_err(dynamo)?;
                let status = description
                    .table()
                    .and_then(|t| t.table_status())
                    .map_or("UNKNOWN".to_owned(), |s| s.as_str().to_owned());
                if status == "ACTIVE" {
                    break;
                }
                if started.elapsed() >= TABLE_WAIT {
                    return Err(WriteError::DynamoDb {
                        code: None,
                        message: format!(
                            "table {table} is still {status} after {} s",
                            TABLE_WAIT.as_secs()
                        ),
                        detail: String::new(),
                    });
                }
                if last_said.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(5)) {
                    progress(&format!(
                        "waiting for table {table} to become ACTIVE (now {status}, {} s so far)",
                        started.elapsed().as_secs()
                    ));
                    last_said = Some(std::time::Instant::now());
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
        Ok(tables)
    }

    async fn create_settings_table(
        &self,
        streams: bool,
    ) -> Result<
        (),
        aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::create_table::CreateTableError,
        >,
    > {
        let mut settings = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("key", ScalarAttributeType::S))
            .attribute_definitions(attribute("scope", ScalarAttributeType::S))
            .key_schema(key_element("key", KeyType::Hash))
            .key_schema(key_element("scope", KeyType::Range));
        if streams {
            settings = settings.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .expect("enabled and view type are set"),
            );
        }
        settings.send().await.map(|_| ())
    }

    async fn create_history_table(
        &self,
    ) -> Result<
        (),
        aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::create_table::CreateTableError,
        >,
    > {
        self.client
            .create_table()
            .table_name(&self.history)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("id", ScalarAttributeType::S))
            .attribute_definitions(attribute("version", ScalarAttributeType::N))
            .key_schema(key_element("id", KeyType::Hash))
            .key_schema(key_element("version", KeyType::Range))
            .send()
            .await
            .map(|_| ())
    }

    /// The row of `key` in `scope` (tombstones included).
    pub async fn get(&self, key: &str, scope: &Scope) -> Result<Option<Row>, WriteError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key", s(key))
            .key("scope", s(scope.id()))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?;
        out.item()
            .map(Row::from_item)
            .transpose()
            .map_err(|reason| WriteError::Invalid {
                key: key.to_owned(),
                reason: format!("the stored row is malformed: {reason}"),
            })
    }

    /// The row an instance of scope `reader` uses for `key`: the most specific row that
    /// applies to it (tombstones left out), as the DynamoDB layer picks it. `None`: no row
    /// applies, the instance's lower layers or default do.
    pub async fn resolve(&self, key: &str, reader: &Scope) -> Result<Option<Row>, WriteError> {
        let mut best: Option<Row> = None;
        let mut items = rows_of_key(&self.client, &self.table, key).send();
        while let Some(item) = items.try_next().await.map_err(dynamo)? {
            if let Ok(row) = Row::from_item(&item)
                && reader.prefers(&row, best.as_ref())
            {
                best = Some(row);
            }
        }
        Ok(best)
    }

    /// Every row (tombstones and the version item left out), sorted by key and scope.
    pub async fn list(&self) -> Result<Vec<Row>, WriteError> {
        let mut rows = Vec::new();
        let mut items = self
            .client
            .scan()
            .table_name(&self.table)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.try_next().await.map_err(dynamo)? {
            if let Ok(row) = Row::from_item(&item)
                && row.value.is_some()
                && row.key != VERSION_ITEM_KEY
            {
                rows.push(row);
            }
        }
        rows.sort_by(|a, b| (&a.key, a.scope.id()).cmp(&(&b.key, b.scope.id())));
        Ok(rows)
    }

    /// Writes `value` (or deletes with `None`) if the row is still at `expected` (the version
    /// read now when `None`): two operators never overwrite each other silently. Records the
    /// write in the history and moves the version item.
    pub async fn write(
        &self,
        key: &str,
        scope: &Scope,
        value: Option<&str>,
        who: &str,
        expected: Option<u64>,
    ) -> Result<Row, WriteError> {
        if let Err(reason) = scope.check().and(crate::validate::key(key)) {
            return Err(WriteError::Invalid {
                key: key.to_owned(),
                reason,
            });
        }
        if !self.force
            && let Some(reason) = crate::hystrix::unknown_setting(key)
        {
            return Err(WriteError::Invalid {
                key: key.to_owned(),
                reason: format!("{reason}; --force writes it anyway"),
            });
        }
        if let Some(value) = value
            && let Some(Err(reason)) = crate::validate::known_key(key, value)
        {
            return Err(WriteError::Invalid {
                key: key.to_owned(),
                reason,
            });
        }
        let current = self.get(key, scope).await?;
        let current_version = current.as_ref().map_or(0, |r| r.version);
        let expected = expected.unwrap_or(current_version);
        let conflict = |current: Option<&Row>| WriteError::Conflict {
            key: key.to_owned(),
            scope: scope.id(),
            expected,
            current: current.map_or(0, |r| r.version),
            by: current
                .and_then(|r| r.updated_by.clone())
                .unwrap_or_else(|| "?".into()),
            at: current
                .and_then(|r| r.updated_at.clone())
                .unwrap_or_else(|| "?".into()),
        };
        if expected != current_version {
            return Err(conflict(current.as_ref()));
        }
        let row = Row {
            key: key.to_owned(),
            scope: scope.clone(),
            value: value.map(str::to_owned),
            version: expected.checked_add(1).ok_or_else(|| WriteError::Invalid {
                key: key.to_owned(),
                reason: format!("version {expected} cannot be raised"),
            })?,
            updated_by: Some(who.to_owned()),
            updated_at: Some(now()),
            previous_value: current.as_ref().and_then(|r| r.value.clone()),
        };
        let mut history: HashMap<String, AttributeValue> = HashMap::new();
        history.insert("id".into(), s(history_id(key, scope)));
        history.insert("version".into(), AttributeValue::N(row.version.to_string()));
        match &row.value {
            Some(v) => history.insert("value".into(), s(v.clone())),
            None => history.insert("deleted".into(), AttributeValue::Bool(true)),
        };
        if let Some(p) = &row.previous_value {
            history.insert("previous_value".into(), s(p.clone()));
        }
        history.insert("updated_by".into(), s(who));
        history.insert(
            "updated_at".into(),
            s(row.updated_at.clone().unwrap_or_default()),
        );
        // The row, its history entry and the version bump happen together or not at all.
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(row.to_item()))
            .expression_attribute_names("#v", "version");
        put = if expected == 0 {
            put.condition_expression("attribute_not_exists(#k) OR attribute_not_exists(#v)")
                .expression_attribute_names("#k", "key")
        } else {
            put.condition_expression("#v = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
        };
        let put = put.build().map_err(built)?;
        let history = Put::builder()
            .table_name(&self.history)
            .set_item(Some(history))
            .condition_expression("attribute_not_exists(id)")
            .build()
            .map_err(built)?;
        let bump = Update::builder()
            .table_name(&self.table)
            .key("key", s(VERSION_ITEM_KEY))
            .key("scope", s(GLOBAL_SCOPE))
            .update_expression("ADD #v :one")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .build()
            .map_err(built)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().put(history).build())
            .transact_items(TransactWriteItem::builder().update(bump).build())
            .send()
            .await;
        if let Err(e) = result {
            let canceled = e
                .as_service_error()
                .is_some_and(|s| s.is_transaction_canceled_exception());
            if canceled {
                // Somebody else's write is the usual reason: say whose.
                let now_current = self.get(key, scope).await?;
                if now_current.as_ref().map_or(0, |r| r.version) != expected {
                    return Err(conflict(now_current.as_ref()));
                }
            }
            return Err(dynamo(e));
        }
        Ok(row)
    }

    async fn history_items(&self, id: &str) -> Result<Vec<HistoryEntry>, WriteError> {
        let mut entries = Vec::new();
        let mut items = self
            .client
            .query()
            .table_name(&self.history)
            .key_condition_expression("id = :id")
            .expression_attribute_values(":id", s(id))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.try_next().await.map_err(dynamo)? {
            let text = |n: &str| match item.get(n) {
                Some(AttributeValue::S(v)) => Some(v.clone()),
                _ => None,
            };
            let version = match item.get("version") {
                Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
                _ => 0,
            };
            entries.push(HistoryEntry {
                version,
                value: text("value"),
                previous_value: text("previous_value"),
                updated_by: text("updated_by").unwrap_or_default(),
                updated_at: text("updated_at").unwrap_or_default(),
            });
        }
        Ok(entries)
    }

    /// The key's writes, oldest first (items of the former id format included).
    pub async fn history(&self, key: &str, scope: &Scope) -> Result<Vec<HistoryEntry>, WriteError> {
        let mut entries = self.history_items(&history_id(key, scope)).await?;
        for old in self.history_items(&legacy_history_id(key, scope)).await? {
            if !entries.iter().any(|e| e.version == old.version) {
                entries.push(old);
            }
        }
        entries.sort_by_key(|e| e.version);
        Ok(entries)
    }

    /// Writes again the value the key had at `version` (a new version; conditional like any
    /// write).
    pub async fn rollback(
        &self,
        key: &str,
        scope: &Scope,
        version: u64,
        who: &str,
        expected: Option<u64>,
    ) -> Result<Row, WriteError> {
        let history = self.history(key, scope).await?;
        let Some(entry) = history.iter().find(|e| e.version == version) else {
            return Err(WriteError::NoSuchVersion {
                key: key.to_owned(),
                scope: scope.id(),
                version,
            });
        };
        self.write(key, scope, entry.value.as_deref(), who, expected)
            .await
    }
}
