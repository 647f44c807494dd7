//! Which instances renewed, per minute: what self-preservation counts.

use std::collections::HashSet;

/// The distinct instances that renewed, per minute: this minute's so far and the last one's.
#[derive(Debug, Default)]
pub(super) struct Renewals {
    minute: i64,
    this: HashSet<String>,
    last: usize,
}

impl Renewals {
    fn roll(&mut self, now_ms: i64) {
        let minute = now_ms.div_euclid(60_000);
        if minute == self.minute {
            return;
        }
        self.last = if minute == self.minute + 1 {
            self.this.len()
        } else {
            0
        };
        self.this.clear();
        self.minute = minute;
    }

    pub(super) fn renewed(&mut self, id: &str, now_ms: i64) {
        self.roll(now_ms);
        if !self.this.contains(id) {
            self.this.insert(id.to_owned());
        }
    }

    pub(super) fn last_full_minute(&self, now_ms: i64) -> usize {
        let minute = now_ms.div_euclid(60_000);
        if minute == self.minute {
            self.last
        } else if minute == self.minute + 1 {
            self.this.len()
        } else {
            0
        }
    }
}
