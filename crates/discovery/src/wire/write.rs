//! Writing documents as current servers do, JSON or XML, in one pass.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::model::*;

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
        if s.chars().all(xml_char) {
            self.out.push_str(&quick_xml::escape::escape(s));
        } else {
            // The registry refuses such text; anything that got in another way is written
            // as U+FFFD rather than as a document no XML reader can parse.
            let clean: String = s
                .chars()
                .map(|c| if xml_char(c) { c } else { '\u{FFFD}' })
                .collect();
            self.out.push_str(&quick_xml::escape::escape(&clean));
        }
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

/// Whether XML 1.0 can carry `c` at all (its `Char` production: tab, line feed, carriage
/// return, and everything from U+0020 but U+FFFE and U+FFFF; surrogates are not `char`s).
pub fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
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
