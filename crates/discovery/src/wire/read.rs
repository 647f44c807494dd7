//! Reading documents: JSON as both generations of servers write it, XML through [`super::xml`],
//! into the model, with the path of any offending field.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::model::*;
use super::xml::xml_to_value;
use super::{WireError, err};

/// Items of a field that may be an array, a single object, or absent.
fn items(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(Value::Null) | None => Vec::new(),
        // XML's empty element.
        Some(Value::String(s)) if s.trim().is_empty() => Vec::new(),
        Some(other) => vec![other],
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, WireError> {
    match v {
        Value::Object(m) => Ok(m),
        other => err(path, format!("expected an object, found {}", kind(other))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// The readers below say what is wrong; their callers say where, and only build the path
// when something is wrong (a 10,000-instance registry has 300,000 fields to read).

fn string_reason(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a string, found {}", kind(other))),
    }
}

fn at(path: &str, key: &str) -> impl FnOnce(String) -> WireError {
    move |reason| WireError {
        path: format!("{path}.{key}"),
        reason,
    }
}

fn opt_string(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, WireError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => string_reason(v).map(Some).map_err(at(path, key)),
    }
}

fn req_string(m: &Map<String, Value>, key: &str, path: &str) -> Result<String, WireError> {
    match opt_string(m, key, path)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => err(&format!("{path}.{key}"), "required and missing"),
    }
}

fn int_reason(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("{n} is not a whole number")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a whole number")),
        other => Err(format!("expected a number, found {}", kind(other))),
    }
}

fn opt_int(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<i64>, WireError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(v) => int_reason(v).map(Some).map_err(at(path, key)),
    }
}

fn bool_reason(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        other => Err(format!("expected true or false, found {other}")),
    }
}

fn port_of(v: &Value, path: &str, key: &str) -> Result<Port, WireError> {
    let (number, enabled) = match v {
        Value::Object(m) => {
            let inner = format!("{path}.{key}");
            let number = m
                .get("$")
                .ok_or_else(|| "required and missing".to_owned())
                .map_err(at(&inner, "$"))?;
            let enabled = match m.get("@enabled") {
                None | Some(Value::Null) => true,
                Some(e) => bool_reason(e).map_err(at(&inner, "@enabled"))?,
            };
            (int_reason(number).map_err(at(&inner, "$"))?, enabled)
        }
        other => (int_reason(other).map_err(at(path, key))?, true),
    };
    let port = u16::try_from(number)
        .map_err(|_| format!("{number} is not a port number"))
        .map_err(at(path, key))?;
    Ok(Port { port, enabled })
}

fn string_map(v: Option<&Value>, path: &str) -> Result<BTreeMap<String, String>, WireError> {
    let mut out = BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.trim().is_empty() => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                // Java's type hint on an empty map.
                if k == "@class" {
                    continue;
                }
                let value = match v {
                    Value::Null => String::new(),
                    other => string_reason(other).map_err(at(path, k))?,
                };
                out.insert(k.clone(), value);
            }
        }
        Some(other) => return err(path, format!("expected an object, found {}", kind(other))),
    }
    Ok(out)
}

/// Reads an instance object.
pub fn instance_from_value(v: &Value, path: &str) -> Result<Instance, WireError> {
    let m = object(v, path)?;
    let status = |key: &str| -> Result<Option<Status>, WireError> {
        Ok(opt_string(m, key, path)?.map(|s| Status::parse(&s)))
    };
    let data_center_info = match m.get("dataCenterInfo") {
        None | Some(Value::Null) => DataCenterInfo::default(),
        Some(d) => {
            let dpath = format!("{path}.dataCenterInfo");
            let d = object(d, &dpath)?;
            DataCenterInfo {
                class: opt_string(d, "@class", &dpath)?.unwrap_or_else(|| MY_OWN_CLASS.into()),
                name: opt_string(d, "name", &dpath)?.unwrap_or_else(|| "MyOwn".into()),
                metadata: string_map(d.get("metadata"), &format!("{dpath}.metadata"))?,
            }
        }
    };
    let lease_info = match m.get("leaseInfo") {
        None | Some(Value::Null) => LeaseInfo::default(),
        Some(l) => {
            let lpath = format!("{path}.leaseInfo");
            let l = object(l, &lpath)?;
            let d = LeaseInfo::default();
            let secs = |key: &str, default: u32| -> Result<u32, WireError> {
                match opt_int(l, key, &lpath)? {
                    None => Ok(default),
                    Some(n) => u32::try_from(n).map_or_else(
                        |_| err(&format!("{lpath}.{key}"), format!("{n} is out of range")),
                        Ok,
                    ),
                }
            };
            LeaseInfo {
                renewal_interval_secs: secs("renewalIntervalInSecs", d.renewal_interval_secs)?,
                duration_secs: secs("durationInSecs", d.duration_secs)?,
                registration_timestamp: opt_int(l, "registrationTimestamp", &lpath)?.unwrap_or(0),
                last_renewal_timestamp: opt_int(l, "lastRenewalTimestamp", &lpath)?.unwrap_or(0),
                eviction_timestamp: opt_int(l, "evictionTimestamp", &lpath)?.unwrap_or(0),
                service_up_timestamp: opt_int(l, "serviceUpTimestamp", &lpath)?.unwrap_or(0),
            }
        }
    };
    let port = |key: &str| -> Result<Option<Port>, WireError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(p) => port_of(p, path, key).map(Some),
        }
    };
    let action_type = match opt_string(m, "actionType", path)? {
        None => None,
        Some(s) => Some(ActionType::parse(&s).map_or_else(
            || {
                err(
                    &format!("{path}.actionType"),
                    format!("{s:?} is not ADDED, MODIFIED or DELETED"),
                )
            },
            Ok,
        )?),
    };
    let mut instance = Instance {
        instance_id: opt_string(m, "instanceId", path)?.unwrap_or_default(),
        app: req_string(m, "app", path)?.to_ascii_uppercase(),
        app_group_name: opt_string(m, "appGroupName", path)?,
        ip_addr: opt_string(m, "ipAddr", path)?.unwrap_or_default(),
        host_name: opt_string(m, "hostName", path)?.unwrap_or_default(),
        status: status("status")?.unwrap_or(Status::Up),
        overridden_status: match status("overriddenStatus")? {
            Some(s) => s,
            None => status("overriddenstatus")?.unwrap_or(Status::Unknown),
        },
        port: port("port")?,
        secure_port: port("securePort")?,
        country_id: opt_int(m, "countryId", path)?.unwrap_or(1),
        data_center_info,
        lease_info,
        metadata: string_map(m.get("metadata"), &format!("{path}.metadata"))?,
        home_page_url: opt_string(m, "homePageUrl", path)?,
        status_page_url: opt_string(m, "statusPageUrl", path)?,
        health_check_url: opt_string(m, "healthCheckUrl", path)?,
        secure_health_check_url: opt_string(m, "secureHealthCheckUrl", path)?,
        vip_address: opt_string(m, "vipAddress", path)?,
        secure_vip_address: opt_string(m, "secureVipAddress", path)?,
        is_coordinating_discovery_server: match m.get("isCoordinatingDiscoveryServer") {
            None | Some(Value::Null) => false,
            Some(v) => bool_reason(v).map_err(at(path, "isCoordinatingDiscoveryServer"))?,
        },
        last_updated_timestamp: opt_int(m, "lastUpdatedTimestamp", path)?.unwrap_or(0),
        last_dirty_timestamp: opt_int(m, "lastDirtyTimestamp", path)?.unwrap_or(0),
        action_type,
        asg_name: opt_string(m, "asgName", path)?,
    };
    if instance.id().trim().is_empty() {
        return err(path, "no instanceId, Amazon instance-id or hostName");
    }
    // Old servers send no instanceId: the id Java derives becomes it.
    if instance.instance_id.is_empty() {
        instance.instance_id = instance.id().to_owned();
    }
    Ok(instance)
}

fn application_from_value(v: &Value, path: &str) -> Result<Application, WireError> {
    let m = object(v, path)?;
    let name = req_string(m, "name", path)?.to_ascii_uppercase();
    let instances = items(m.get("instance"))
        .into_iter()
        .enumerate()
        .map(|(i, v)| instance_from_value(v, &format!("{path}.instance[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(Application { name, instances })
}

fn applications_from_value(v: &Value, path: &str) -> Result<Applications, WireError> {
    let m = object(v, path)?;
    let applications = items(m.get("application"))
        .into_iter()
        .enumerate()
        .map(|(i, v)| application_from_value(v, &format!("{path}.application[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(Applications {
        versions_delta: opt_string(m, "versions__delta", path)?.unwrap_or_default(),
        apps_hashcode: opt_string(m, "apps__hashcode", path)?.unwrap_or_default(),
        applications,
    })
}

/// The most a document may hold before it is refused unread.
pub const MAX_DOCUMENT: usize = 64 << 20;

/// Parses a document body, JSON or XML (by its first character), into the JSON shape.
pub fn parse_document(body: &[u8]) -> Result<Value, WireError> {
    if body.len() > MAX_DOCUMENT {
        return err(
            "document",
            format!(
                "{} bytes is more than the {MAX_DOCUMENT} allowed",
                body.len()
            ),
        );
    }
    let text = std::str::from_utf8(body).map_or_else(
        |e| err("document", format!("not UTF-8 at byte {}", e.valid_up_to())),
        Ok,
    )?;
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('<') {
        xml_to_value(trimmed)
    } else {
        serde_json::from_str(trimmed).map_or_else(
            |e| {
                err(
                    "document",
                    format!("not JSON: {e} (line {}, column {})", e.line(), e.column()),
                )
            },
            Ok,
        )
    }
}

fn root<'a>(doc: &'a Value, name: &str) -> Result<&'a Value, WireError> {
    match doc.get(name) {
        Some(v) => Ok(v),
        None => err(name, format!("the document has no {name:?} root")),
    }
}

/// Reads a `{"applications":...}` document (JSON or XML).
pub fn read_applications(body: &[u8]) -> Result<Applications, WireError> {
    let doc = parse_document(body)?;
    applications_from_value(root(&doc, "applications")?, "applications")
}

/// Reads a `{"application":...}` document (JSON or XML).
pub fn read_application(body: &[u8]) -> Result<Application, WireError> {
    let doc = parse_document(body)?;
    application_from_value(root(&doc, "application")?, "application")
}

/// Reads an `{"instance":...}` document (JSON or XML).
pub fn read_instance(body: &[u8]) -> Result<Instance, WireError> {
    let doc = parse_document(body)?;
    instance_from_value(root(&doc, "instance")?, "instance")
}
