//! Turbine's merge rules: one event from the events of one `(type, name)` sent by several
//! hosts (see [`aggregate`](crate::aggregate) for the rules and our two departures).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Number, Value};

/// Merges the events of one `(type, name)` from several hosts by Turbine's rules.
pub fn merge(events: &[&Map<String, Value>]) -> Map<String, Value> {
    let hosts: Vec<u64> = events
        .iter()
        .map(|e| {
            e.get("reportingHosts")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1)
        })
        .collect();
    let mut keys: Vec<&str> = Vec::new();
    let mut seen = HashSet::new();
    for event in events {
        for key in event.keys() {
            if seen.insert(key.as_str()) {
                keys.push(key);
            }
        }
    }
    let mut merged = Map::new();
    for key in keys {
        let values: Vec<(&Value, u64)> = events
            .iter()
            .zip(&hosts)
            .filter_map(|(e, &h)| e.get(key).map(|v| (v, h)))
            .collect();
        let value = match key {
            "reportingHosts" => Value::from(saturating_sum(&hosts)),
            "type" | "name" => values[0].0.clone(),
            "currentTime" => values
                .iter()
                .filter_map(|(v, _)| v.as_u64())
                .max()
                .map_or(Value::Null, Value::from),
            _ if key.starts_with("propertyValue_") => count_values(&values),
            _ if values.iter().all(|(v, _)| v.is_number()) => {
                sum_numbers(values.iter().map(|(v, _)| *v))
            }
            _ if values.iter().all(|(v, _)| is_number_map(v)) => sum_maps(&values),
            _ => count_values(&values),
        };
        merged.insert(key.to_owned(), value);
    }
    // Hosts that do not say (old Hystrix thread-pool events) count as one each.
    merged.insert(
        "reportingHosts".to_owned(),
        Value::from(saturating_sum(&hosts)),
    );
    if let (Some(errors), Some(requests)) = (
        merged.get("errorCount").and_then(Value::as_u64),
        merged.get("requestCount").and_then(Value::as_u64),
    ) && merged.contains_key("errorPercentage")
    {
        let percentage = errors
            .saturating_mul(100)
            .checked_div(requests)
            .unwrap_or(0);
        merged.insert("errorPercentage".to_owned(), Value::from(percentage));
    }
    merged
}

/// Upstream counts are untrusted: a sum saturates instead of overflowing.
fn saturating_sum(values: &[u64]) -> u64 {
    values.iter().fold(0, |sum, &n| sum.saturating_add(n))
}

fn is_number_map(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.values().all(Value::is_number))
}

fn sum_numbers<'a>(values: impl Iterator<Item = &'a Value>) -> Value {
    let (mut int, mut float, mut all_int) = (0i128, 0f64, true);
    for v in values {
        match (v.as_i64(), v.as_u64()) {
            (Some(i), _) => int += i128::from(i),
            (None, Some(u)) => int += i128::from(u),
            _ => {
                all_int = false;
                float += v.as_f64().unwrap_or(0.0);
            }
        }
    }
    if all_int {
        if let Ok(u) = u64::try_from(int) {
            return Value::from(u);
        }
        if let Ok(i) = i64::try_from(int) {
            return Value::from(i);
        }
    }
    Number::from_f64(float + int as f64).map_or(Value::Null, Value::Number)
}

fn sum_maps(values: &[(&Value, u64)]) -> Value {
    let mut keys: Vec<&String> = Vec::new();
    let mut seen = HashSet::new();
    for (v, _) in values {
        if let Value::Object(m) = v {
            keys.extend(m.keys().filter(|k| seen.insert(*k)));
        }
    }
    let mut out = Map::new();
    for key in keys {
        let sum = sum_numbers(values.iter().filter_map(|(v, _)| v.get(key)));
        out.insert(key.clone(), sum);
    }
    Value::Object(out)
}

/// Counts hosts per value; one value when all agree. An upstream that is itself an
/// aggregator sends counts already (`{"true":2}`) or a single value for all its hosts.
fn count_values(values: &[(&Value, u64)]) -> Value {
    let mut counts: HashMap<String, (u64, Value)> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut add = |key: String, n: u64, repr: Value| {
        let entry = counts.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            (0, repr)
        });
        entry.0 = entry.0.saturating_add(n);
    };
    for (value, hosts) in values {
        match value {
            Value::Object(m) if m.values().all(Value::is_number) => {
                for (k, n) in m {
                    add(k.clone(), n.as_u64().unwrap_or(0), value_of_key(k));
                }
            }
            other => add(key_of_value(other), *hosts, (*other).clone()),
        }
    }
    if order.len() == 1 {
        return counts
            .remove(&order[0])
            .map(|(_, v)| v)
            .unwrap_or(Value::Null);
    }
    Value::Object(
        order
            .into_iter()
            .map(|k| {
                let n = counts[&k].0;
                (k, Value::from(n))
            })
            .collect(),
    )
}

fn key_of_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn value_of_key(k: &str) -> Value {
    match k {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Null,
        _ => k
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(k.to_owned())),
    }
}
