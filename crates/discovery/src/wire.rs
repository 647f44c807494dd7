//! Eureka's wire format: the instance, application and registry documents as Eureka servers
//! write and accept them, in JSON and XML.
//!
//! Reading is tolerant in the ways real servers differ: a single instance or application as an
//! object instead of an array, ports as `{"$":8080,"@enabled":"true"}` or with the number as a
//! string, numbers and booleans as strings, `versions__delta` as a number,
//! `{"@class":"java.util.Collections$EmptyMap"}` metadata, `overriddenStatus` or
//! `overriddenstatus`. XML is read into the same shape as JSON first (attributes become
//! `@name`, text beside attributes `$`), so one reader serves both. Anything that cannot be
//! read is a [`WireError`] that names the path of the offending field.
//!
//! Writing follows current servers: JSON with numeric ports, string timestamps and both
//! spellings of the overridden status; XML with attributes where Eureka puts them. Both are
//! written in one pass, without building a tree first.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

/// A document that cannot be read, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct WireError {
    /// Where, as `applications.application[1].instance[0].port`.
    pub path: String,
    /// What is wrong there.
    pub reason: String,
}

fn err<T>(path: &str, reason: impl Into<String>) -> Result<T, WireError> {
    Err(WireError {
        path: path.to_owned(),
        reason: reason.into(),
    })
}

/// An instance's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Status {
    /// Ready for traffic.
    Up,
    /// Failing its health check.
    Down,
    /// Starting; not ready yet.
    Starting,
    /// Taken out of traffic on purpose.
    OutOfService,
    /// Unknown (also what an unrecognised status string reads as).
    #[default]
    Unknown,
}

impl Status {
    /// Eureka's spelling: `UP`, `DOWN`, `STARTING`, `OUT_OF_SERVICE`, `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "UP",
            Status::Down => "DOWN",
            Status::Starting => "STARTING",
            Status::OutOfService => "OUT_OF_SERVICE",
            Status::Unknown => "UNKNOWN",
        }
    }

    /// Reads Eureka's spelling (case-insensitive); anything else is `Unknown`, as in Java.
    pub fn parse(s: &str) -> Status {
        match s.trim().to_ascii_uppercase().as_str() {
            "UP" => Status::Up,
            "DOWN" => Status::Down,
            "STARTING" => Status::Starting,
            "OUT_OF_SERVICE" => Status::OutOfService,
            _ => Status::Unknown,
        }
    }

    /// Reads Eureka's spelling strictly, for requests: `None` for anything else.
    pub fn parse_strict(s: &str) -> Option<Status> {
        let status = Status::parse(s);
        (status != Status::Unknown || s.eq_ignore_ascii_case("UNKNOWN")).then_some(status)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a delta entry did to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionType {
    /// Registered.
    Added,
    /// Changed (status, metadata, renewal of a changed instance...).
    Modified,
    /// Cancelled or evicted.
    Deleted,
}

impl ActionType {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionType::Added => "ADDED",
            ActionType::Modified => "MODIFIED",
            ActionType::Deleted => "DELETED",
        }
    }

    fn parse(s: &str) -> Option<ActionType> {
        match s.trim().to_ascii_uppercase().as_str() {
            "ADDED" => Some(ActionType::Added),
            "MODIFIED" => Some(ActionType::Modified),
            "DELETED" => Some(ActionType::Deleted),
            _ => None,
        }
    }
}

/// A port and whether it is enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    /// The number.
    pub port: u16,
    /// Whether traffic may use it.
    pub enabled: bool,
}

/// `dataCenterInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCenterInfo {
    /// `@class`: which Java class wrote it.
    pub class: String,
    /// `MyOwn`, `Amazon` or `Netflix`.
    pub name: String,
    /// Amazon's metadata (`instance-id`, `availability-zone`, `local-ipv4`, ...).
    pub metadata: BTreeMap<String, String>,
}

/// The class Java writes for a data center of one's own.
pub const MY_OWN_CLASS: &str = "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo";
/// The class Java writes for Amazon.
pub const AMAZON_CLASS: &str = "com.netflix.appinfo.AmazonInfo";

impl Default for DataCenterInfo {
    fn default() -> Self {
        DataCenterInfo {
            class: MY_OWN_CLASS.to_owned(),
            name: "MyOwn".to_owned(),
            metadata: BTreeMap::new(),
        }
    }
}

/// `leaseInfo`: times in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // Eureka's own field names
pub struct LeaseInfo {
    pub renewal_interval_secs: u32,
    pub duration_secs: u32,
    pub registration_timestamp: i64,
    pub last_renewal_timestamp: i64,
    pub eviction_timestamp: i64,
    pub service_up_timestamp: i64,
}

impl Default for LeaseInfo {
    fn default() -> Self {
        LeaseInfo {
            renewal_interval_secs: 30,
            duration_secs: 90,
            registration_timestamp: 0,
            last_renewal_timestamp: 0,
            eviction_timestamp: 0,
            service_up_timestamp: 0,
        }
    }
}

/// One registered instance (Java's `InstanceInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(missing_docs)] // Eureka's own field names
pub struct Instance {
    pub instance_id: String,
    pub app: String,
    pub app_group_name: Option<String>,
    pub ip_addr: String,
    pub host_name: String,
    pub status: Status,
    pub overridden_status: Status,
    pub port: Option<Port>,
    pub secure_port: Option<Port>,
    pub country_id: i64,
    pub data_center_info: DataCenterInfo,
    pub lease_info: LeaseInfo,
    pub metadata: BTreeMap<String, String>,
    pub home_page_url: Option<String>,
    pub status_page_url: Option<String>,
    pub health_check_url: Option<String>,
    pub secure_health_check_url: Option<String>,
    pub vip_address: Option<String>,
    pub secure_vip_address: Option<String>,
    pub is_coordinating_discovery_server: bool,
    pub last_updated_timestamp: i64,
    pub last_dirty_timestamp: i64,
    pub action_type: Option<ActionType>,
    pub asg_name: Option<String>,
}

impl Instance {
    /// Its Eureka id: `instanceId`, else Amazon's `instance-id`, else `hostName`.
    pub fn id(&self) -> &str {
        if !self.instance_id.is_empty() {
            return &self.instance_id;
        }
        if let Some(id) = self.data_center_info.metadata.get("instance-id") {
            return id;
        }
        &self.host_name
    }

    /// Its availability zone: Amazon's `availability-zone`, else metadata `zone`.
    pub fn zone(&self) -> Option<&str> {
        self.data_center_info
            .metadata
            .get("availability-zone")
            .or_else(|| self.metadata.get("zone"))
            .map(String::as_str)
    }
}

/// One application and its instances.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Application {
    /// Upper-case name.
    pub name: String,
    /// Its instances.
    pub instances: Vec<Instance>,
}

/// A registry document: every application (a full fetch) or the recent changes (a delta).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applications {
    /// `versions__delta`.
    pub versions_delta: String,
    /// `apps__hashcode`: see [`Applications::hashcode`].
    pub apps_hashcode: String,
    /// The applications.
    pub applications: Vec<Application>,
}

impl Applications {
    /// Eureka's reconcile hash: instances counted by status (all of them, not only UP),
    /// statuses in alphabetical order, `STATUS_count_` each: `DOWN_1_UP_3_`.
    pub fn hashcode(&self) -> String {
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for instance in self.applications.iter().flat_map(|a| &a.instances) {
            *counts.entry(instance.status.as_str()).or_default() += 1;
        }
        let mut out = String::new();
        for (status, count) in counts {
            let _ = write!(out, "{status}_{count}_");
        }
        out
    }

    /// Every instance, with its application.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.applications.iter().flat_map(|a| a.instances.iter())
    }

    /// The number of instances.
    pub fn len(&self) -> usize {
        self.applications.iter().map(|a| a.instances.len()).sum()
    }

    /// True with no instances.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies a delta: ADDED and MODIFIED replace by id, DELETED removes; applications left
    /// empty are dropped.
    pub fn apply_delta(&mut self, delta: &Applications) {
        for app in &delta.applications {
            for change in &app.instances {
                let name = if change.app.is_empty() {
                    &app.name
                } else {
                    &change.app
                };
                let name = name.to_ascii_uppercase();
                let position = self.applications.iter().position(|a| a.name == name);
                match change.action_type {
                    Some(ActionType::Deleted) => {
                        if let Some(i) = position {
                            let instances = &mut self.applications[i].instances;
                            instances.retain(|x| x.id() != change.id());
                            if instances.is_empty() {
                                self.applications.remove(i);
                            }
                        }
                    }
                    _ => {
                        let i = position.unwrap_or_else(|| {
                            self.applications.push(Application {
                                name: name.clone(),
                                instances: Vec::new(),
                            });
                            self.applications.len() - 1
                        });
                        let instances = &mut self.applications[i].instances;
                        match instances.iter_mut().find(|x| x.id() == change.id()) {
                            Some(existing) => *existing = change.clone(),
                            None => instances.push(change.clone()),
                        }
                    }
                }
            }
        }
        self.versions_delta = delta.versions_delta.clone();
    }
}

// ---------------------------------------------------------------------------------------
// Reading

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

/// How deep XML elements may nest (JSON is held to serde_json's 128 levels).
pub const MAX_XML_DEPTH: usize = 32;

/// Reads XML into the JSON shape Eureka's JSON codec uses.
fn xml_to_value(text: &str) -> Result<Value, WireError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    // Text is kept as sent (values may start or end with spaces); whitespace between
    // elements is dropped in `finish`.
    // (name, attributes and children so far, text so far)
    let mut stack: Vec<(String, Map<String, Value>, String)> = Vec::new();
    let mut root: Option<(String, Value)> = None;
    loop {
        let event = reader.read_event().map_err(|e| xml_error(&reader, e))?;
        match event {
            Event::Start(e) | Event::Empty(e) if root.is_some() => {
                let _ = e;
                return Err(xml_error(&reader, "content after the root element"));
            }
            Event::Start(e) => {
                // Eureka's documents nest six levels deep; a limit keeps a hostile body from
                // building a tree whose (recursive) drop would overflow the stack.
                if stack.len() >= MAX_XML_DEPTH {
                    return Err(xml_error(
                        &reader,
                        format!("elements nested deeper than {MAX_XML_DEPTH}"),
                    ));
                }
                let (name, attrs) = element(&e, &reader)?;
                stack.push((name, attrs, String::new()));
            }
            Event::Empty(e) => {
                let (name, attrs) = element(&e, &reader)?;
                root = attach(&mut stack, name, finish(attrs, String::new()));
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let text = t.decode().map_err(|e| xml_error(&reader, e))?;
                    let text =
                        quick_xml::escape::unescape(&text).map_err(|e| xml_error(&reader, e))?;
                    top.2.push_str(&text);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.2.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    let name = String::from_utf8_lossy(&r).into_owned();
                    let reference = format!("&{name};");
                    let resolved = quick_xml::escape::unescape(&reference)
                        .map_err(|e| xml_error(&reader, e))?;
                    top.2.push_str(&resolved);
                }
            }
            Event::End(_) => {
                let Some((name, attrs, text)) = stack.pop() else {
                    return Err(xml_error(&reader, "closing tag without an opening one"));
                };
                root = attach(&mut stack, name, finish(attrs, text));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return err(
            "XML",
            format!("unclosed element <{}>", stack.last().map_or("", |s| &s.0)),
        );
    }
    let Some((name, value)) = root else {
        return err("XML", "no root element");
    };
    let mut doc = Map::new();
    doc.insert(name, value);
    Ok(Value::Object(doc))
}

/// An XML error at the reader's position.
fn xml_error(reader: &quick_xml::Reader<&[u8]>, reason: impl std::fmt::Display) -> WireError {
    WireError {
        path: format!("XML at byte {}", reader.buffer_position()),
        reason: reason.to_string(),
    }
}

fn element(
    e: &quick_xml::events::BytesStart<'_>,
    reader: &quick_xml::Reader<&[u8]>,
) -> Result<(String, Map<String, Value>), WireError> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut attrs = Map::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|e| xml_error(reader, e))?;
        let key = format!("@{}", String::from_utf8_lossy(attr.key.as_ref()));
        let value = attr.unescape_value().map_err(|e| xml_error(reader, e))?;
        attrs.insert(key, Value::String(value.into_owned()));
    }
    Ok((name, attrs))
}

fn finish(mut fields: Map<String, Value>, text: String) -> Value {
    if fields.is_empty() {
        // A leaf keeps its text exactly; an element holding only indentation is empty.
        if text.trim().is_empty() {
            return Value::String(String::new());
        }
        return Value::String(text);
    }
    if !text.trim().is_empty() {
        fields.insert("$".to_owned(), Value::String(text));
    }
    Value::Object(fields)
}

/// Adds a child to the element on top of the stack; repeated names become arrays. Gives the
/// element back when there is no parent (it is the root).
fn attach(
    stack: &mut [(String, Map<String, Value>, String)],
    name: String,
    value: Value,
) -> Option<(String, Value)> {
    let Some((_, fields, _)) = stack.last_mut() else {
        return Some((name, value));
    };
    match fields.get_mut(&name) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            fields.insert(name, value);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Writing

/// A document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON, as current servers write it.
    Json,
    /// XML, what servers answer when the client does not ask for JSON.
    Xml,
}

/// Writes the same tree as JSON or XML straight into a string (no intermediate tree: a
/// 10,000-instance registry is written in one pass).
struct Writer {
    format: Format,
    out: String,
    // JSON: whether the current object or array has no member yet.
    first: Vec<bool>,
}

impl Writer {
    fn new(format: Format, capacity: usize) -> Self {
        let mut out = String::with_capacity(capacity);
        if format == Format::Xml {
            out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        }
        Writer {
            format,
            out,
            first: vec![true],
        }
    }

    fn json_string(&mut self, s: &str) {
        // Writing a str into a String cannot fail.
        let escaped = serde_json::to_string(s).expect("a str serializes");
        self.out.push_str(&escaped);
    }

    fn xml_text(&mut self, s: &str) {
        self.out.push_str(&quick_xml::escape::escape(s));
    }

    /// JSON: the separator and `"name":` (no key inside arrays).
    fn key(&mut self, name: Option<&str>) {
        let first = self.first.last_mut().expect("inside a value");
        if !*first {
            self.out.push(',');
        }
        *first = false;
        if let Some(name) = name {
            self.json_string(name);
            self.out.push(':');
        }
    }

    /// Opens an object; `attrs` are XML attributes (JSON `@name` members). `key: None` for an
    /// array item in JSON.
    fn open(&mut self, name: &str, key: bool, attrs: &[(&str, &str)]) {
        match self.format {
            Format::Json => {
                self.key(key.then_some(name));
                self.out.push('{');
                self.first.push(true);
                for (k, v) in attrs {
                    self.string(&format!("@{k}"), v);
                }
            }
            Format::Xml => {
                self.out.push('<');
                self.out.push_str(name);
                for (k, v) in attrs {
                    let _ = write!(self.out, " {k}=\"");
                    self.xml_text(v);
                    self.out.push('"');
                }
                self.out.push('>');
            }
        }
    }

    fn close(&mut self, name: &str) {
        match self.format {
            Format::Json => {
                self.first.pop();
                self.out.push('}');
            }
            Format::Xml => {
                let _ = write!(self.out, "</{name}>");
            }
        }
    }

    fn open_list(&mut self, name: &str) {
        if self.format == Format::Json {
            self.key(Some(name));
            self.out.push('[');
            self.first.push(true);
        }
    }

    fn close_list(&mut self) {
        if self.format == Format::Json {
            self.first.pop();
            self.out.push(']');
        }
    }

    fn string(&mut self, name: &str, value: &str) {
        match self.format {
            Format::Json => {
                self.key(Some(name));
                self.json_string(value);
            }
            Format::Xml => {
                let _ = write!(self.out, "<{name}>");
                self.xml_text(value);
                let _ = write!(self.out, "</{name}>");
            }
        }
    }

    fn number(&mut self, name: &str, value: i64) {
        match self.format {
            Format::Json => {
                self.key(Some(name));
                let _ = write!(self.out, "{value}");
            }
            Format::Xml => {
                let _ = write!(self.out, "<{name}>{value}</{name}>");
            }
        }
    }

    fn port(&mut self, name: &str, port: &Port) {
        match self.format {
            Format::Json => {
                self.key(Some(name));
                let _ = write!(
                    self.out,
                    "{{\"$\":{},\"@enabled\":\"{}\"}}",
                    port.port, port.enabled
                );
            }
            Format::Xml => {
                let _ = write!(
                    self.out,
                    "<{name} enabled=\"{}\">{}</{name}>",
                    port.enabled, port.port
                );
            }
        }
    }

    fn map(&mut self, name: &str, map: &BTreeMap<String, String>) {
        if self.format == Format::Xml {
            // Keys become element names; one that cannot be an XML name cannot be written
            // (Eureka's own XML writer cannot either). JSON carries it.
            self.open(name, true, &[]);
            for (k, v) in map {
                if is_xml_name(k) {
                    self.string(k, v);
                } else {
                    tracing::debug!(key = %k, "metadata key is not an XML name; left out of XML");
                }
            }
            self.close(name);
            return;
        }
        if map.is_empty() {
            // What Java's Jackson codec writes for an empty map.
            self.open(name, true, &[("class", "java.util.Collections$EmptyMap")]);
            self.close(name);
            return;
        }
        self.open(name, true, &[]);
        for (k, v) in map {
            self.string(k, v);
        }
        self.close(name);
    }

    fn finish(self) -> String {
        self.out
    }
}

/// Whether `name` can be an XML element name (ASCII letters, digits, `-`, `.`, `_`; not
/// starting with a digit, `-` or `.`, nor with `xml`). Metadata keys that are not are left
/// out of XML documents.
pub fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        && !name.to_ascii_lowercase().starts_with("xml")
}

fn write_instance(w: &mut Writer, i: &Instance, key: bool) {
    w.open("instance", key, &[]);
    w.string("instanceId", i.id());
    w.string("hostName", &i.host_name);
    w.string("app", &i.app);
    if let Some(g) = &i.app_group_name {
        w.string("appGroupName", g);
    }
    w.string("ipAddr", &i.ip_addr);
    w.string("status", i.status.as_str());
    // Current servers spell it `overriddenStatus`, older ones and XML `overriddenstatus`.
    if w.format == Format::Json {
        w.string("overriddenStatus", i.overridden_status.as_str());
    }
    w.string("overriddenstatus", i.overridden_status.as_str());
    // A port nobody gave is left out rather than invented.
    if let Some(p) = &i.port {
        w.port("port", p);
    }
    if let Some(p) = &i.secure_port {
        w.port("securePort", p);
    }
    w.number("countryId", i.country_id);
    let dc = &i.data_center_info;
    w.open("dataCenterInfo", true, &[("class", &dc.class)]);
    w.string("name", &dc.name);
    if !dc.metadata.is_empty() {
        w.map("metadata", &dc.metadata);
    }
    w.close("dataCenterInfo");
    let l = &i.lease_info;
    w.open("leaseInfo", true, &[]);
    w.number("renewalIntervalInSecs", l.renewal_interval_secs.into());
    w.number("durationInSecs", l.duration_secs.into());
    w.number("registrationTimestamp", l.registration_timestamp);
    w.number("lastRenewalTimestamp", l.last_renewal_timestamp);
    w.number("evictionTimestamp", l.eviction_timestamp);
    w.number("serviceUpTimestamp", l.service_up_timestamp);
    w.close("leaseInfo");
    w.map("metadata", &i.metadata);
    for (key, value) in [
        ("homePageUrl", &i.home_page_url),
        ("statusPageUrl", &i.status_page_url),
        ("healthCheckUrl", &i.health_check_url),
        ("secureHealthCheckUrl", &i.secure_health_check_url),
        ("vipAddress", &i.vip_address),
        ("secureVipAddress", &i.secure_vip_address),
    ] {
        if let Some(v) = value {
            w.string(key, v);
        }
    }
    w.string(
        "isCoordinatingDiscoveryServer",
        if i.is_coordinating_discovery_server {
            "true"
        } else {
            "false"
        },
    );
    w.string(
        "lastUpdatedTimestamp",
        &i.last_updated_timestamp.to_string(),
    );
    w.string("lastDirtyTimestamp", &i.last_dirty_timestamp.to_string());
    if let Some(a) = i.action_type {
        w.string("actionType", a.as_str());
    }
    if let Some(asg) = &i.asg_name {
        w.string("asgName", asg);
    }
    w.close("instance");
}

fn write_application(w: &mut Writer, a: &Application, key: bool) {
    w.open("application", key, &[]);
    w.string("name", &a.name);
    w.open_list("instance");
    for i in &a.instances {
        write_instance(w, i, false);
    }
    w.close_list();
    w.close("application");
}

fn document(format: Format, capacity: usize, body: impl FnOnce(&mut Writer)) -> String {
    let mut w = Writer::new(format, capacity);
    if format == Format::Json {
        w.out.push('{');
        w.first.push(true);
    }
    body(&mut w);
    if format == Format::Json {
        w.out.push('}');
    }
    w.finish()
}

/// `{"applications":{...}}` (or `<applications>`), as current servers write it.
pub fn applications_document(apps: &Applications, format: Format) -> String {
    document(format, 64 + apps.len() * 1200, |w| {
        w.open("applications", true, &[]);
        w.string("versions__delta", &apps.versions_delta);
        w.string("apps__hashcode", &apps.apps_hashcode);
        w.open_list("application");
        for a in &apps.applications {
            write_application(w, a, false);
        }
        w.close_list();
        w.close("applications");
    })
}

/// `{"application":{...}}` (or `<application>`).
pub fn application_document(app: &Application, format: Format) -> String {
    document(format, 64 + app.instances.len() * 1200, |w| {
        write_application(w, app, true)
    })
}

/// `{"instance":{...}}` (or `<instance>`).
pub fn instance_document(instance: &Instance, format: Format) -> String {
    document(format, 1500, |w| write_instance(w, instance, true))
}
