//! Feature flags: on, off, or a sticky percentage rollout.

use crate::property::Property;
use crate::store::ConfigStore;
use crate::value::FromConfig;

/// How far a flag is rolled out.
///
/// ```
/// use breakwater_dyn_config::{FromConfig, Rollout};
///
/// assert_eq!(Rollout::from_config("on"), Ok(Rollout::On));
/// assert_eq!(Rollout::from_config("12.5%"), Ok(Rollout::Percent(1250)));
/// assert!(Rollout::from_config("120%").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// Off for everyone.
    Off,
    /// On for everyone.
    On,
    /// On for this many hundredths of a percent of subjects (0..=10000), chosen by a stable
    /// hash of the flag's name and the subject.
    Percent(u16),
}

impl FromConfig for Rollout {
    /// `on`/`true`, `off`/`false`, or a percentage such as `25%` or `12.5%`.
    fn from_config(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("on") || t.eq_ignore_ascii_case("true") {
            return Ok(Rollout::On);
        }
        if t.eq_ignore_ascii_case("off") || t.eq_ignore_ascii_case("false") {
            return Ok(Rollout::Off);
        }
        let expected = || format!("expected on, off or a percentage such as 25%, got {text:?}");
        let number = t.strip_suffix('%').ok_or_else(expected)?.trim();
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || fraction.len() > 2 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(expected());
        }
        let whole: u32 = whole.parse().map_err(|_| expected())?;
        let hundredths: u32 = format!("{fraction:0<2}").parse().unwrap_or(0);
        let basis = whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(hundredths))
            .filter(|b| *b <= 10_000)
            .ok_or_else(|| format!("a percentage must be from 0% to 100%, got {text:?}"))?;
        Ok(Rollout::Percent(basis as u16))
    }
    const PACKED: bool = true;
    fn pack(&self) -> u64 {
        match self {
            Rollout::Off => 1 << 32,
            Rollout::On => 2 << 32,
            Rollout::Percent(p) => u64::from(*p),
        }
    }
    fn unpack(bits: u64) -> Option<Self> {
        Some(match bits >> 32 {
            1 => Rollout::Off,
            2 => Rollout::On,
            _ => Rollout::Percent(bits as u16),
        })
    }
}

/// A feature flag read from config (key `feature.<name>` by convention, but any key works).
///
/// ```
/// use breakwater_dyn_config::{ConfigStore, FeatureFlag};
///
/// let config = ConfigStore::new();
/// let flag = FeatureFlag::new(&config, "feature.newCheckout", false);
/// assert!(!flag.is_enabled_for("tenant-42"));
/// config.set_override("feature.newCheckout", "100%");
/// assert!(flag.is_enabled_for("tenant-42"));
/// ```
#[derive(Debug, Clone)]
pub struct FeatureFlag {
    property: Property<Rollout>,
    /// The hash state after the flag's name: only the subject is hashed per call.
    seed: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64-bit, continued from `hash` over one part and a separator: stable across
/// processes, platforms and releases (unlike std's hasher), which makes a rollout sticky.
fn fnv1a(mut hash: u64, part: &[u8]) -> u64 {
    for &b in part {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= 0xff;
    hash.wrapping_mul(0x0100_0000_01b3)
}

impl FeatureFlag {
    /// A flag on `key`, `default_on` until config says otherwise.
    pub fn new(config: &ConfigStore, key: &str, default_on: bool) -> Self {
        let default = if default_on {
            Rollout::On
        } else {
            Rollout::Off
        };
        FeatureFlag {
            property: config.property(key, default),
            seed: fnv1a(FNV_OFFSET, key.as_bytes()),
        }
    }

    /// The rollout now.
    pub fn rollout(&self) -> Rollout {
        self.property.get()
    }

    /// On for everyone (a partial rollout counts as off here; use
    /// [`is_enabled_for`](Self::is_enabled_for) for it).
    pub fn is_enabled(&self) -> bool {
        matches!(self.property.get(), Rollout::On | Rollout::Percent(10_000))
    }

    /// On for `subject` (a tenant, user, ...). A subject's bucket never changes, so raising
    /// the percentage only adds subjects: nobody who was on is turned off.
    pub fn is_enabled_for(&self, subject: &str) -> bool {
        match self.property.get() {
            Rollout::On => true,
            Rollout::Off => false,
            Rollout::Percent(p) => ((fnv1a(self.seed, subject.as_bytes()) % 10_000) as u16) < p,
        }
    }

    /// The property behind the flag (for callbacks and watching).
    pub fn property(&self) -> &Property<Rollout> {
        &self.property
    }
}

/// The subject's bucket for this flag, 0..10000: the same on every machine and release, so
/// a subject on at 10% is still on at 20%.
///
/// ```
/// use breakwater_dyn_config::flag::bucket;
///
/// assert_eq!(bucket("feature.x", "tenant-1"), bucket("feature.x", "tenant-1"));
/// assert!(bucket("feature.x", "tenant-1") < 10_000);
/// ```
pub fn bucket(flag: &str, subject: &str) -> u16 {
    (fnv1a(fnv1a(FNV_OFFSET, flag.as_bytes()), subject.as_bytes()) % 10_000) as u16
}
