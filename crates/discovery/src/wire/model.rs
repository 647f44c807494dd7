//! The documents' model: instances, applications and the registry, as Eureka's Java classes
//! hold them, with the reconcile hash and delta application.

use std::collections::BTreeMap;
use std::fmt::Write as _;

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

    pub(super) fn parse(s: &str) -> Option<ActionType> {
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
