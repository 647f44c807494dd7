//! Choosing an instance: power of two choices over the cost, among instances whose breaker
//! admits a call, in the caller's zone first, and over every instance when too many are
//! ejected (the panic threshold).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use breakwater_circuit_breaker::CallPermit;

use crate::cost::Cost;
use crate::member::{Member, Settings};

/// The member list at one moment: replaced whole when instances come and go.
pub(crate) struct Members<S> {
    pub(crate) all: Vec<Arc<Member<S>>>,
    /// Positions in `all` of the members in the caller's zone, and of the others; both
    /// empty when zones are not looked at.
    pub(crate) local: Vec<usize>,
    pub(crate) remote: Vec<usize>,
}

impl<S> Default for Members<S> {
    fn default() -> Self {
        Members {
            all: Vec::new(),
            local: Vec::new(),
            remote: Vec::new(),
        }
    }
}

/// Where a request goes, and the breaker's permit when it admitted the call (in panic mode an
/// ejected instance gets requests without one).
pub(crate) struct Picked<S> {
    pub(crate) member: Arc<Member<S>>,
    pub(crate) permit: Option<CallPermit>,
}

/// A set of members to pick from: all of them, or some positions.
#[derive(Clone, Copy)]
enum Pool<'a> {
    All(usize),
    Some(&'a [usize]),
}

impl Pool<'_> {
    fn len(&self) -> usize {
        match self {
            Pool::All(n) => *n,
            Pool::Some(positions) => positions.len(),
        }
    }

    fn at(&self, i: usize) -> usize {
        match self {
            Pool::All(_) => i,
            Pool::Some(positions) => positions[i],
        }
    }
}

/// Whether `member` is ejected and its breaker would let a probe through now.
fn probe_due<S>(member: &Member<S>) -> bool {
    member.breaker.state() != breakwater_circuit_breaker::State::Closed && member.breaker.admits()
}

/// The member of least cost among `members` (the first of equals), each cost read once.
fn cheapest<'a, S>(
    settings: &Settings,
    members: impl IntoIterator<Item = &'a Arc<Member<S>>>,
) -> Option<&'a Arc<Member<S>>> {
    let mut best: Option<(Cost, &Arc<Member<S>>)> = None;
    for member in members {
        let cost = member
            .estimator
            .cost(&settings.cost, member.weight(settings));
        if best.is_none_or(|(least, _)| cost < least) {
            best = Some((cost, member));
        }
    }
    best.map(|(_, member)| member)
}

/// Members drawn per pick in panic mode.
const PANIC_CHOICES: usize = 4;

/// Two distinct positions below `len` (which is at least 2).
fn two(len: usize) -> (usize, usize) {
    let a = fastrand::usize(..len);
    let mut b = fastrand::usize(..len - 1);
    if b >= a {
        b += 1;
    }
    (a, b)
}

impl<S> Members<S> {
    /// Whether too few members are healthy to honour ejections.
    pub(crate) fn panicking(&self, settings: &Settings, ejected: usize) -> bool {
        let n = self.all.len();
        let healthy = n - ejected.min(n);
        healthy * 100 < usize::from(settings.config.panic_threshold_percentage) * n
    }

    /// The share of requests kept in the caller's zone: its members not ejected, out of
    /// all its members. 1 when nothing local is ejected; 0 when the zone is down.
    pub(crate) fn local_share(&self, ejected_local: usize) -> f64 {
        let local = self.local.len();
        if local == 0 {
            return 0.0;
        }
        (local - ejected_local.min(local)) as f64 / local as f64
    }

    /// Picks a member for one request, other than those of `avoid` (instance ids) when
    /// another can take it: a retry goes to a different instance than the failed try.
    pub(crate) fn pick(&self, settings: &Settings, avoid: &[Arc<str>]) -> Option<Picked<S>> {
        if !avoid.is_empty() {
            let avoided = |m: &Member<S>| avoid.iter().any(|id| **id == *m.endpoint.id);
            if let Some(picked) = self.pick_among(settings, |m| !avoided(m)) {
                return Some(picked);
            }
        }
        self.pick_among(settings, |_| true)
    }

    /// Picks a member among those `allowed`.
    fn pick_among(
        &self,
        settings: &Settings,
        allowed: impl Fn(&Member<S>) -> bool + Copy,
    ) -> Option<Picked<S>> {
        let n = self.all.len();
        if n == 0 {
            return None;
        }
        let core = &self.all[0].core;
        let ejected = core.ejected.load(Ordering::Relaxed);
        if !self.panicking(settings, ejected) {
            let zoned = !self.local.is_empty() && !self.remote.is_empty();
            let (first, second) = if zoned {
                let share = self.local_share(core.ejected_local.load(Ordering::Relaxed));
                let local = Pool::Some(&self.local);
                let remote = Pool::Some(&self.remote);
                if share >= 1.0 || fastrand::f64() < share {
                    (local, remote)
                } else {
                    (remote, local)
                }
            } else {
                (Pool::All(n), Pool::All(n))
            };
            if let Some(picked) = self.pick_admitted(settings, first, allowed) {
                return Some(picked);
            }
            if zoned && let Some(picked) = self.pick_admitted(settings, second, allowed) {
                return Some(picked);
            }
        }
        // Panic, or nobody admits a call (breakers tripped between the count and now):
        // spread over every member, ejected or not, taking a permit where one is given. With
        // most members failing, two choices often draw two failing ones; the cheapest of
        // four draws still spreads load (the in-flight count is in the cost) but finds a
        // healthy member far more often.
        let member = self.cheapest_of(settings, PANIC_CHOICES, allowed)?;
        let permit = member.breaker.try_acquire().ok();
        Some(Picked {
            member: member.clone(),
            permit,
        })
    }

    /// Power of two choices among the members of `pool` whose breaker admits a call; a few
    /// random draws, then a scan, so a pool with one admitting member still finds it.
    fn pick_admitted(
        &self,
        settings: &Settings,
        pool: Pool<'_>,
        allowed: impl Fn(&Member<S>) -> bool,
    ) -> Option<Picked<S>> {
        for _ in 0..3 {
            let member = self.cheaper(settings, pool, |m| allowed(m) && m.breaker.admits())?;
            match member.breaker.try_acquire() {
                Ok(permit) => {
                    return Some(Picked {
                        member: member.clone(),
                        permit: Some(permit),
                    });
                }
                // A probe taken by another request between `admits` and now: draw again.
                Err(_) => member.sync(),
            }
        }
        None
    }

    /// The cheapest of `draws` random `allowed` members (drawn with replacement); when the
    /// draws find none allowed, the cheapest allowed member by a scan.
    fn cheapest_of(
        &self,
        settings: &Settings,
        draws: usize,
        allowed: impl Fn(&Member<S>) -> bool,
    ) -> Option<&Arc<Member<S>>> {
        let n = self.all.len();
        let drawn = (0..draws.min(n.max(1)))
            .map(|_| &self.all[fastrand::usize(..n)])
            .filter(|m| allowed(m));
        cheapest(settings, drawn)
            .or_else(|| cheapest(settings, self.all.iter().filter(|m| allowed(m))))
    }

    /// The cheaper of two random members of `pool` that pass `usable`; if the draws find
    /// none, the cheapest usable member by a scan.
    fn cheaper(
        &self,
        settings: &Settings,
        pool: Pool<'_>,
        usable: impl Fn(&Member<S>) -> bool,
    ) -> Option<&Arc<Member<S>>> {
        let len = pool.len();
        let member = |i: usize| &self.all[pool.at(i)];
        match len {
            0 => return None,
            1 => return Some(member(0)).filter(|m| usable(m)),
            _ => {}
        }
        for _ in 0..2 {
            let (a, b) = two(len);
            let (a, b) = (member(a), member(b));
            match (usable(a), usable(b)) {
                // An instance whose ejection is over gets its probe whatever its cost (which
                // still carries the failures that ejected it).
                (true, true) if probe_due(a) => return Some(a),
                (true, true) if probe_due(b) => return Some(b),
                (true, true) => return cheapest(settings, [a, b]),
                (true, false) => return Some(a),
                (false, true) => return Some(b),
                (false, false) => {}
            }
        }
        cheapest(settings, (0..len).map(member).filter(|m| usable(m)))
    }
}
