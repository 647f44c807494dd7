//! The state of an embedded Eureka registry: leases, status overrides, the delta queue,
//! eviction and self-preservation, following Eureka's `AbstractInstanceRegistry`.
//!
//! Time is passed in (epoch milliseconds) so tests drive it; the server passes the wall
//! clock.

mod config;
mod eviction;
mod recent;
mod renewals;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::wire::{ActionType, Application, Applications, Instance, Status};
pub use config::{InstanceRegistryConfig, InstanceRegistryError};
pub use eviction::Preservation;
use recent::Recent;
use renewals::Renewals;

/// The status an instance is given, by Eureka's rules in Eureka's order: a status other than
/// UP or OUT_OF_SERVICE is the instance's own say (DOWN and STARTING are never overridden);
/// then an override set on the server; then the status the server already holds when it is
/// UP or OUT_OF_SERVICE; then what the instance says.
fn effective_status(own: Status, overridden: Option<Status>, held: Option<Status>) -> Status {
    if !matches!(own, Status::Up | Status::OutOfService) {
        return own;
    }
    if let Some(status) = overridden {
        return status;
    }
    match held {
        Some(held @ (Status::Up | Status::OutOfService)) => held,
        _ => own,
    }
}

#[derive(Debug, Clone)]
struct Lease {
    instance: Instance,
    last_renewal_ms: i64,
    duration_ms: i64,
}

#[derive(Debug, Default)]
struct State {
    apps: BTreeMap<String, BTreeMap<String, Lease>>,
    overrides: HashMap<String, Status>,
    recent: Recent,
    version: u64,
    // Renewals counted per minute: (minute index, count) for the current and the last one.
    renewals: Renewals,
}

/// What a registry did since it was last asked ([`InstanceRegistry::take_activity`]): routine
/// work is logged as these counts, not a line per request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// Registrations (new and repeated).
    pub registrations: u64,
    /// Renewals.
    pub renewals: u64,
    /// Cancellations (evictions included).
    pub cancellations: u64,
    /// Leases evicted for not being renewed.
    pub evictions: u64,
}

/// An in-memory Eureka registry.
#[derive(Debug, Default)]
pub struct InstanceRegistry {
    config: InstanceRegistryConfig,
    state: Mutex<State>,
    /// Since last taken, and since start.
    activity: Mutex<(Activity, Activity)>,
}

impl InstanceRegistry {
    /// An empty registry.
    pub fn new(config: InstanceRegistryConfig) -> Self {
        InstanceRegistry {
            config,
            state: Mutex::default(),
            activity: Mutex::default(),
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &InstanceRegistryConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers (or re-registers) an instance. A lease whose instance is dirtier (newer
    /// `lastDirtyTimestamp`) than the one registering keeps its own copy, as Eureka does;
    /// a status override set before survives the re-registration.
    ///
    /// Refused when its metadata passes the limits, or when it would be a new application or
    /// instance beyond them.
    pub fn register(
        &self,
        mut instance: Instance,
        now_ms: i64,
    ) -> Result<(), InstanceRegistryError> {
        self.check_metadata(&instance.metadata)?;
        self.check_timestamp(instance.last_dirty_timestamp, now_ms)?;
        if instance.lease_info.duration_secs > self.config.max_lease_duration_secs {
            return Err(InstanceRegistryError::LeaseTooLong {
                asked: instance.lease_info.duration_secs,
                limit: self.config.max_lease_duration_secs,
            });
        }
        let mut state = self.lock();
        let app = instance.app.to_ascii_uppercase();
        instance.app = app.clone();
        let id = instance.id().to_owned();
        let existing = state
            .apps
            .get(&app)
            .and_then(|leases| leases.get(&id))
            .cloned();
        if existing.is_none() {
            match state.apps.get(&app) {
                None if state.apps.len() >= self.config.max_applications => {
                    return Err(InstanceRegistryError::Full {
                        what: "applications".into(),
                        limit: self.config.max_applications,
                    });
                }
                Some(leases) if leases.len() >= self.config.max_instances_per_app => {
                    return Err(InstanceRegistryError::Full {
                        what: format!("instances of {app}"),
                        limit: self.config.max_instances_per_app,
                    });
                }
                _ => {}
            }
        }
        let action = if existing.is_some() {
            ActionType::Modified
        } else {
            ActionType::Added
        };
        if let Some(existing) = &existing
            && existing.instance.last_dirty_timestamp > instance.last_dirty_timestamp
        {
            let whereabouts = |i: &Instance| {
                format!(
                    "{} ({}:{})",
                    i.host_name,
                    i.ip_addr,
                    i.port.map_or(0, |p| p.port)
                )
            };
            let (held, asked) = (whereabouts(&existing.instance), whereabouts(&instance));
            if held != asked {
                return Err(InstanceRegistryError::Conflict {
                    id,
                    held,
                    held_dirty: existing.instance.last_dirty_timestamp,
                    asked,
                    dirty: instance.last_dirty_timestamp,
                });
            }
            instance = existing.instance.clone();
        }
        if let Some(&status) = state.overrides.get(&id) {
            instance.overridden_status = status;
        } else if instance.overridden_status != Status::Unknown {
            // A client asking for an override at registration gets it recorded.
            state
                .overrides
                .insert(id.clone(), instance.overridden_status);
        }
        instance.status = effective_status(
            instance.status,
            state.overrides.get(&id).copied(),
            existing.as_ref().map(|l| l.instance.status),
        );
        let duration_secs = if instance.lease_info.duration_secs == 0 {
            90
        } else {
            instance.lease_info.duration_secs
        };
        instance.lease_info.registration_timestamp = existing
            .as_ref()
            .map_or(now_ms, |l| l.instance.lease_info.registration_timestamp);
        instance.lease_info.last_renewal_timestamp = now_ms;
        instance.lease_info.eviction_timestamp = 0;
        if instance.status == Status::Up && instance.lease_info.service_up_timestamp == 0 {
            instance.lease_info.service_up_timestamp = now_ms;
        }
        if instance.last_dirty_timestamp == 0 {
            instance.last_dirty_timestamp = now_ms;
        }
        instance.last_updated_timestamp = now_ms;
        instance.action_type = Some(action);
        let lease = Lease {
            instance: instance.clone(),
            last_renewal_ms: now_ms,
            duration_ms: i64::from(duration_secs) * 1000,
        };
        state.apps.entry(app).or_default().insert(id, lease);
        record(&mut state, &self.config, instance, now_ms);
        drop(state);
        self.count(|a| a.registrations += 1);
        Ok(())
    }

    fn check_timestamp(&self, timestamp: i64, now_ms: i64) -> Result<(), InstanceRegistryError> {
        if timestamp > now_ms.saturating_add(self.config.max_clock_skew_ms) {
            return Err(InstanceRegistryError::FutureTimestamp {
                timestamp,
                now: now_ms,
                skew_ms: self.config.max_clock_skew_ms,
            });
        }
        Ok(())
    }

    fn check_metadata(
        &self,
        metadata: &BTreeMap<String, String>,
    ) -> Result<(), InstanceRegistryError> {
        let entries = metadata.len();
        if entries > self.config.max_metadata_entries {
            return Err(InstanceRegistryError::MetadataTooLarge {
                what: "entries",
                actual: entries,
                limit: self.config.max_metadata_entries,
            });
        }
        let bytes: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > self.config.max_metadata_bytes {
            return Err(InstanceRegistryError::MetadataTooLarge {
                what: "bytes",
                actual: bytes,
                limit: self.config.max_metadata_bytes,
            });
        }
        Ok(())
    }

    fn count(&self, what: impl Fn(&mut Activity)) {
        let mut activity = self.activity.lock().unwrap_or_else(|p| p.into_inner());
        what(&mut activity.0);
        what(&mut activity.1);
    }

    /// What the registry did since the last call, and starts counting afresh.
    pub fn take_activity(&self) -> Activity {
        std::mem::take(&mut self.activity.lock().unwrap_or_else(|p| p.into_inner()).0)
    }

    /// What the registry did since it started (for counters).
    pub fn totals(&self) -> Activity {
        self.activity.lock().unwrap_or_else(|p| p.into_inner()).1
    }

    /// How many changes the delta queue holds and about how many bytes.
    pub fn delta_queue(&self) -> (usize, usize) {
        self.lock().recent.len_and_bytes()
    }

    /// A heartbeat. `None` when renewed; the caller answers 404 on an error, upon which the
    /// client registers again.
    pub fn renew(
        &self,
        app: &str,
        id: &str,
        client_dirty: Option<i64>,
        now_ms: i64,
    ) -> Result<(), InstanceRegistryError> {
        if let Some(timestamp) = client_dirty {
            self.check_timestamp(timestamp, now_ms)?;
        }
        let mut state = self.lock();
        let overridden = state.overrides.get(id).copied();
        let lease = lease_mut(&mut state, app, id)?;
        let held = lease.instance.status;
        match effective_status(held, overridden, Some(held)) {
            Status::Unknown => {
                return Err(InstanceRegistryError::StatusUnknown { id: id.to_owned() });
            }
            // Not a change of the instance's own making: not dirty, as in Eureka.
            status => lease.instance.status = status,
        }
        let server = lease.instance.last_dirty_timestamp;
        if let Some(client) = client_dirty
            && client > server
        {
            return Err(InstanceRegistryError::ClientNewer {
                id: id.to_owned(),
                client,
                server,
            });
        }
        lease.last_renewal_ms = now_ms;
        lease.instance.lease_info.last_renewal_timestamp = now_ms;
        state.renewals.renewed(id, now_ms);
        drop(state);
        self.count(|a| a.renewals += 1);
        Ok(())
    }

    /// Cancels a registration (graceful shutdown).
    pub fn cancel(&self, app: &str, id: &str, now_ms: i64) -> Result<(), InstanceRegistryError> {
        let mut state = self.lock();
        let app = app.to_ascii_uppercase();
        let removed = state
            .apps
            .get_mut(&app)
            .and_then(|leases| leases.remove(id))
            .ok_or_else(|| not_found(&app, id))?;
        if state.apps.get(&app).is_some_and(BTreeMap::is_empty) {
            state.apps.remove(&app);
        }
        state.overrides.remove(id);
        let mut instance = removed.instance;
        instance.action_type = Some(ActionType::Deleted);
        instance.last_updated_timestamp = now_ms;
        record(&mut state, &self.config, instance, now_ms);
        drop(state);
        self.count(|a| a.cancellations += 1);
        Ok(())
    }

    /// Sets a status override (`OUT_OF_SERVICE` to take an instance out of traffic). The
    /// instance's `lastDirtyTimestamp` becomes the caller's when that is newer (Eureka's
    /// rule); the override itself does not make the instance dirty.
    pub fn set_status_override(
        &self,
        app: &str,
        id: &str,
        status: Status,
        client_dirty: Option<i64>,
        now_ms: i64,
    ) -> Result<(), InstanceRegistryError> {
        self.change_status(app, id, Some(status), status, client_dirty, now_ms)
    }

    /// Removes a status override; the instance takes `status`, or `UNKNOWN`, upon which its
    /// next renewal is refused so that it registers again with its own status (Eureka's way).
    pub fn remove_status_override(
        &self,
        app: &str,
        id: &str,
        status: Option<Status>,
        client_dirty: Option<i64>,
        now_ms: i64,
    ) -> Result<(), InstanceRegistryError> {
        let status = status.unwrap_or(Status::Unknown);
        self.change_status(app, id, None, status, client_dirty, now_ms)
    }

    /// Puts `status` on an instance, with `overridden` as its override (`None`: none). Its
    /// `lastDirtyTimestamp` becomes the caller's when that is newer.
    fn change_status(
        &self,
        app: &str,
        id: &str,
        overridden: Option<Status>,
        status: Status,
        client_dirty: Option<i64>,
        now_ms: i64,
    ) -> Result<(), InstanceRegistryError> {
        if let Some(timestamp) = client_dirty {
            self.check_timestamp(timestamp, now_ms)?;
        }
        let mut state = self.lock();
        let lease = lease_mut(&mut state, app, id)?;
        lease.instance.overridden_status = overridden.unwrap_or(Status::Unknown);
        lease.instance.status = status;
        status_changed(&mut lease.instance, client_dirty, now_ms);
        let instance = lease.instance.clone();
        match overridden {
            Some(status) => state.overrides.insert(id.to_owned(), status),
            None => state.overrides.remove(id),
        };
        record(&mut state, &self.config, instance, now_ms);
        Ok(())
    }

    /// Merges metadata into an instance's.
    pub fn update_metadata(
        &self,
        app: &str,
        id: &str,
        entries: impl IntoIterator<Item = (String, String)>,
        now_ms: i64,
    ) -> Result<(), InstanceRegistryError> {
        let mut state = self.lock();
        let lease = lease_mut(&mut state, app, id)?;
        let mut metadata = lease.instance.metadata.clone();
        metadata.extend(entries);
        self.check_metadata(&metadata)?;
        let lease = lease_mut(&mut state, app, id)?;
        lease.instance.metadata = metadata;
        touch(&mut lease.instance, now_ms);
        let instance = lease.instance.clone();
        record(&mut state, &self.config, instance, now_ms);
        Ok(())
    }

    /// Every application (a full fetch), with the version and hash code.
    pub fn applications(&self) -> Applications {
        let state = self.lock();
        let applications = state
            .apps
            .iter()
            .map(|(name, leases)| Application {
                name: name.clone(),
                instances: leases.values().map(|l| l.instance.clone()).collect(),
            })
            .collect();
        let mut apps = Applications {
            versions_delta: state.version.to_string(),
            apps_hashcode: String::new(),
            applications,
        };
        apps.apps_hashcode = apps.hashcode();
        apps
    }

    /// The changes of the delta window, with the hash code of the whole registry after them.
    pub fn delta(&self, now_ms: i64) -> Applications {
        let full_hash = self.applications().apps_hashcode;
        let mut state = self.lock();
        prune(&mut state, &self.config, now_ms);
        let mut by_app: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
        for instance in state.recent.instances() {
            by_app
                .entry(instance.app.clone())
                .or_default()
                .push(instance.clone());
        }
        Applications {
            versions_delta: state.version.to_string(),
            apps_hashcode: full_hash,
            applications: by_app
                .into_iter()
                .map(|(name, instances)| Application { name, instances })
                .collect(),
        }
    }

    /// One application, if registered.
    pub fn application(&self, app: &str) -> Option<Application> {
        let state = self.lock();
        let name = app.to_ascii_uppercase();
        state.apps.get(&name).map(|leases| Application {
            name: name.clone(),
            instances: leases.values().map(|l| l.instance.clone()).collect(),
        })
    }

    /// One instance, by application and id, or by id alone.
    pub fn instance(&self, app: Option<&str>, id: &str) -> Option<Instance> {
        let state = self.lock();
        match app {
            Some(app) => state
                .apps
                .get(&app.to_ascii_uppercase())
                .and_then(|leases| leases.get(id))
                .map(|l| l.instance.clone()),
            None => state
                .apps
                .values()
                .find_map(|leases| leases.get(id))
                .map(|l| l.instance.clone()),
        }
    }

    /// Applications holding instances with this VIP (or secure VIP) address.
    pub fn by_vip(&self, vip: &str, secure: bool) -> Applications {
        let all = self.applications();
        let applications: Vec<Application> = all
            .applications
            .into_iter()
            .filter_map(|mut app| {
                app.instances.retain(|i| {
                    let v = if secure {
                        &i.secure_vip_address
                    } else {
                        &i.vip_address
                    };
                    v.as_deref()
                        .is_some_and(|v| v.split(',').any(|v| v.trim().eq_ignore_ascii_case(vip)))
                });
                (!app.instances.is_empty()).then_some(app)
            })
            .collect();
        let mut apps = Applications {
            versions_delta: all.versions_delta,
            apps_hashcode: String::new(),
            applications,
        };
        apps.apps_hashcode = apps.hashcode();
        apps
    }

    /// How many instances hold a lease (without copying the registry).
    pub fn instance_count(&self) -> usize {
        self.lock().apps.values().map(BTreeMap::len).sum()
    }
}

fn not_found(app: &str, id: &str) -> InstanceRegistryError {
    InstanceRegistryError::NotFound {
        app: app.to_owned(),
        id: id.to_owned(),
    }
}

fn lease_mut<'a>(
    state: &'a mut State,
    app: &str,
    id: &str,
) -> Result<&'a mut Lease, InstanceRegistryError> {
    let upper = app.to_ascii_uppercase();
    state
        .apps
        .get_mut(&upper)
        .and_then(|leases| leases.get_mut(id))
        .ok_or_else(|| not_found(&upper, id))
}

/// A status set from outside: `lastDirtyTimestamp` moves only to a newer one the caller
/// names; the change is recorded as a modification.
fn status_changed(instance: &mut Instance, client_dirty: Option<i64>, now_ms: i64) {
    if let Some(dirty) = client_dirty {
        instance.last_dirty_timestamp = instance.last_dirty_timestamp.max(dirty);
    }
    instance.last_updated_timestamp = now_ms;
    instance.action_type = Some(ActionType::Modified);
}

fn touch(instance: &mut Instance, now_ms: i64) {
    instance.last_dirty_timestamp = now_ms;
    instance.last_updated_timestamp = now_ms;
    instance.action_type = Some(ActionType::Modified);
}

fn record(state: &mut State, config: &InstanceRegistryConfig, instance: Instance, now_ms: i64) {
    state.version += 1;
    state.recent.record(
        now_ms,
        instance,
        config.max_delta_entries,
        config.max_delta_bytes,
    );
    prune(state, config, now_ms);
}

fn prune(state: &mut State, config: &InstanceRegistryConfig, now_ms: i64) {
    state
        .recent
        .prune(now_ms.saturating_sub(config.delta_retention_ms));
}

#[cfg(test)]
mod tests;
