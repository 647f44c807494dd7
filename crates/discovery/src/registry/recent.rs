//! The delta queue: what changed in the retention window, one entry per instance id (the
//! latest change of each), bounded in count and bytes. A change pushed out by the bounds is
//! not lost to clients: their delta then fails the hash check and they fetch everything.

use std::collections::{BTreeMap, HashMap};

use crate::wire::Instance;

#[derive(Debug, Default)]
pub(super) struct Recent {
    /// Instance id -> (order, when, the instance as changed, its size).
    by_id: HashMap<String, (u64, i64, Instance, usize)>,
    /// Order -> instance id, oldest first.
    order: BTreeMap<u64, String>,
    next: u64,
    bytes: usize,
}

/// About what an instance costs to hold and to send: its text and a fixed overhead.
pub(super) fn approx_size(i: &Instance) -> usize {
    let text = [
        Some(i.instance_id.as_str()),
        Some(i.host_name.as_str()),
        Some(i.app.as_str()),
        Some(i.ip_addr.as_str()),
        i.vip_address.as_deref(),
        i.secure_vip_address.as_deref(),
        i.home_page_url.as_deref(),
        i.status_page_url.as_deref(),
        i.health_check_url.as_deref(),
        i.secure_health_check_url.as_deref(),
        i.app_group_name.as_deref(),
        i.asg_name.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(str::len)
    .sum::<usize>();
    let maps = [&i.metadata, &i.data_center_info.metadata]
        .into_iter()
        .flat_map(|m| m.iter())
        .map(|(k, v)| k.len() + v.len())
        .sum::<usize>();
    512 + text + maps
}

impl Recent {
    /// Records `instance` as changed at `at`, replacing its earlier entry, then drops the
    /// oldest entries beyond `max_entries` or `max_bytes`.
    pub(super) fn record(
        &mut self,
        at: i64,
        instance: Instance,
        max_entries: usize,
        max_bytes: usize,
    ) {
        let id = instance.id().to_owned();
        self.remove(&id);
        let size = approx_size(&instance);
        let order = self.next;
        self.next += 1;
        self.order.insert(order, id.clone());
        self.by_id.insert(id, (order, at, instance, size));
        self.bytes += size;
        while self.by_id.len() > max_entries.max(1)
            || (self.bytes > max_bytes && self.by_id.len() > 1)
        {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, _, _, size)) = self.by_id.remove(&oldest) {
                self.bytes -= size;
            }
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some((order, _, _, size)) = self.by_id.remove(id) {
            self.order.remove(&order);
            self.bytes -= size;
        }
    }

    /// Drops entries recorded before `cutoff`.
    pub(super) fn prune(&mut self, cutoff: i64) {
        while let Some((&order, id)) = self.order.first_key_value() {
            match self.by_id.get(id) {
                Some((_, at, _, _)) if *at < cutoff => {
                    let id = id.clone();
                    self.order.remove(&order);
                    self.remove(&id);
                }
                _ => break,
            }
        }
    }

    /// The entries, oldest first.
    pub(super) fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.order
            .values()
            .filter_map(|id| self.by_id.get(id).map(|(_, _, i, _)| i))
    }

    /// How many entries and about how many bytes the queue holds.
    pub(super) fn len_and_bytes(&self) -> (usize, usize) {
        (self.by_id.len(), self.bytes)
    }
}
