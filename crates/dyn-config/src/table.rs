//! The DynamoDB table layout, shared by the source and the operator CLI.
//!
//! One item per key and scope: `key` (S, partition key) and `scope` (S, sort key: `*` for
//! everyone, else e.g. `environment=prod;app=checkout`), `value` (S), the scope's parts as
//! their own attributes (`environment`, `region`, `zone`, `app`, `instance`), and audit
//! attributes: `version` (N, +1 per write), `updated_by`, `updated_at` (RFC 3339),
//! `previous_value`. A deleted key stays as a tombstone (`deleted` = true, no `value`) so its
//! version keeps counting. The `key`/`value` pair is the schema of Archaius's DynamoDB
//! source; a table with only a `key` partition key (no `scope`) is read too.
//!
//! Every write also adds 1 to the `version` of the item with key [`VERSION_ITEM_KEY`]: a
//! poller reads that one item and scans only when it moved.

#[cfg(feature = "dynamodb")]
use std::collections::HashMap;
use std::fmt;

#[cfg(feature = "dynamodb")]
use aws_sdk_dynamodb::types::AttributeValue;

/// Keys starting with this are bookkeeping, not settings.
pub const INTERNAL_PREFIX: &str = "__breakwater__/";
/// The item whose `version` moves on every write.
pub const VERSION_ITEM_KEY: &str = "__breakwater__/version";
/// The scope id of a row for everyone.
pub const GLOBAL_SCOPE: &str = "*";

/// Where a row applies: every part it sets must match the reader's.
///
/// ```
/// use breakwater_dyn_config::Scope;
///
/// let me = Scope { environment: Some("prod".into()), app: Some("orders".into()), ..Scope::default() };
/// let for_orders = Scope { app: Some("orders".into()), ..Scope::default() };
/// let for_search = Scope { app: Some("search".into()), ..Scope::default() };
/// assert!(me.admits(&Scope::default()) && me.admits(&for_orders) && !me.admits(&for_search));
/// assert!(for_orders.specificity() > Scope::default().specificity());
/// assert_eq!(me.id(), "environment=prod;app=orders");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Scope {
    /// e.g. `prod`.
    pub environment: Option<String>,
    /// e.g. `eu-west-1`.
    pub region: Option<String>,
    /// e.g. `eu-west-1a`.
    pub zone: Option<String>,
    /// The application (service) name.
    pub app: Option<String>,
    /// One instance.
    pub instance: Option<String>,
}

/// The scope attributes, from least to most specific.
pub const SCOPE_ATTRIBUTES: [&str; 5] = ["environment", "region", "zone", "app", "instance"];

impl Scope {
    fn parts(&self) -> [&Option<String>; 5] {
        [
            &self.environment,
            &self.region,
            &self.zone,
            &self.app,
            &self.instance,
        ]
    }

    #[cfg(feature = "dynamodb")]
    fn parts_mut(&mut self) -> [&mut Option<String>; 5] {
        [
            &mut self.environment,
            &mut self.region,
            &mut self.zone,
            &mut self.app,
            &mut self.instance,
        ]
    }

    /// Checks that every part set can be written: not empty (an empty part would read back
    /// as "any", widening the row to every instance), and without `;` or `=` (which would
    /// make its sort key collide with another scope's).
    pub fn check(&self) -> Result<(), String> {
        for (name, part) in SCOPE_ATTRIBUTES.iter().zip(self.parts()) {
            match part {
                Some(v) if v.is_empty() => {
                    return Err(format!(
                        "scope {name} is empty (leave it out for any {name})"
                    ));
                }
                Some(v) if v.contains([';', '=']) => {
                    return Err(format!("scope {name} {v:?} contains `;` or `=`"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The sort-key value: `*`, or `name=value` parts joined with `;` in a fixed order.
    pub fn id(&self) -> String {
        let parts: Vec<String> = SCOPE_ATTRIBUTES
            .iter()
            .zip(self.parts())
            .filter_map(|(name, v)| v.as_ref().map(|v| format!("{name}={v}")))
            .collect();
        if parts.is_empty() {
            GLOBAL_SCOPE.to_owned()
        } else {
            parts.join(";")
        }
    }

    /// Whether a row of scope `row` applies to a reader of this scope.
    pub fn admits(&self, row: &Scope) -> bool {
        row.parts()
            .iter()
            .zip(self.parts())
            .all(|(want, ours)| want.is_none() || *want == ours)
    }

    /// Whether a reader of this scope takes `row` over `best` (the row it has so far): a live
    /// row (a tombstone removes its own row only, so broader rows still apply) whose scope
    /// admits the reader and is more specific. The one rule of the DynamoDB layer and of
    /// `breakwater-config resolve`.
    pub fn prefers(&self, row: &Row, best: Option<&Row>) -> bool {
        row.value.is_some()
            && self.admits(&row.scope)
            && best.is_none_or(|b| row.scope.specificity() > b.scope.specificity())
    }

    /// How specific a row's scope is: a more specific part outweighs all less specific ones.
    pub fn specificity(&self) -> u32 {
        self.parts()
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_some())
            .map(|(i, _)| 1 << i)
            .sum()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

/// One item of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The setting's key.
    pub key: String,
    /// Where it applies.
    pub scope: Scope,
    /// The text; `None` for a deleted key's tombstone.
    pub value: Option<String>,
    /// Writes so far (0 when the item has no version).
    pub version: u64,
    /// Who wrote it last.
    pub updated_by: Option<String>,
    /// When (RFC 3339).
    pub updated_at: Option<String>,
    /// The value before the last write.
    pub previous_value: Option<String>,
}

/// Every row of `key` in `table`, all scopes, read consistently and page by page: what the
/// DynamoDB layer reloads a key with and what `Admin::resolve` picks from.
#[cfg(feature = "dynamodb")]
pub(crate) fn rows_of_key(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
) -> aws_sdk_dynamodb::operation::query::paginator::QueryPaginatorItems {
    client
        .query()
        .table_name(table)
        .key_condition_expression("#k = :k")
        .expression_attribute_names("#k", "key")
        .expression_attribute_values(":k", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .into_paginator()
        .items()
}

#[cfg(feature = "dynamodb")]
fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        Some(AttributeValue::N(n)) => Some(n.clone()),
        Some(AttributeValue::Bool(b)) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(feature = "dynamodb")]
impl Row {
    /// Reads an item; the error names what is missing or malformed.
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Row, String> {
        let key = match item.get("key") {
            Some(AttributeValue::S(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err("attribute `key` is not a non-empty string".into()),
            None => return Err("attribute `key` is missing".into()),
        };
        let mut scope = Scope::default();
        for (name, part) in SCOPE_ATTRIBUTES.iter().zip(scope.parts_mut()) {
            *part = text(item, name).filter(|s| !s.is_empty());
        }
        let deleted = matches!(item.get("deleted"), Some(AttributeValue::Bool(true)));
        let value = if deleted {
            None
        } else {
            match item.get("value") {
                Some(AttributeValue::S(s)) => Some(s.clone()),
                Some(AttributeValue::N(n)) => Some(n.clone()),
                Some(AttributeValue::Bool(b)) => Some(b.to_string()),
                Some(_) => {
                    return Err(format!(
                        "key `{key}`: attribute `value` is not a string, number or boolean"
                    ));
                }
                None => return Err(format!("key `{key}`: attribute `value` is missing")),
            }
        };
        let version = match item.get("version") {
            Some(AttributeValue::N(n)) => n
                .parse()
                .map_err(|_| format!("key `{key}`: `version` {n:?} is not a whole number"))?,
            _ => 0,
        };
        Ok(Row {
            key,
            scope,
            value,
            version,
            updated_by: text(item, "updated_by"),
            updated_at: text(item, "updated_at"),
            previous_value: text(item, "previous_value"),
        })
    }

    /// The item to write.
    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::new();
        item.insert("key".into(), AttributeValue::S(self.key.clone()));
        item.insert("scope".into(), AttributeValue::S(self.scope.id()));
        for (name, part) in SCOPE_ATTRIBUTES.iter().zip(self.scope.parts()) {
            if let Some(v) = part {
                item.insert((*name).into(), AttributeValue::S(v.clone()));
            }
        }
        match &self.value {
            Some(v) => {
                item.insert("value".into(), AttributeValue::S(v.clone()));
            }
            None => {
                item.insert("deleted".into(), AttributeValue::Bool(true));
            }
        }
        item.insert(
            "version".into(),
            AttributeValue::N(self.version.to_string()),
        );
        for (name, v) in [
            ("updated_by", &self.updated_by),
            ("updated_at", &self.updated_at),
            ("previous_value", &self.previous_value),
        ] {
            if let Some(v) = v {
                item.insert(name.into(), AttributeValue::S(v.clone()));
            }
        }
        item
    }
}
