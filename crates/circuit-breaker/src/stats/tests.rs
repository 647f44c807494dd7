use super::*;

const SEC: u64 = 1_000_000_000;

impl Stats {
    fn window_t(&self, now: u64) -> WindowTotals {
        self.window(now, true)
    }
}

fn stats() -> Stats {
    Stats::new(0, (SEC, 10), (10 * SEC, 6))
}

fn record(s: &Stats, counter: usize, now: u64) {
    s.begin();
    s.finish(counter, now, false, None);
}

#[test]
fn bucket_layout_matches_the_histogram_crate() {
    for v in (0..5_000u64).chain([MAX_MICROS, MAX_MICROS - 1, 1 << 20, (1 << 20) + 12_345]) {
        let mut h = new_histogram();
        h.increment(v).unwrap();
        let expected = h.as_slice().iter().position(|&c| c == 1).unwrap();
        assert_eq!(bucket_of(v), expected, "value {v}");
    }
}

#[test]
fn window_rolls_bucket_by_bucket() {
    let s = stats();
    record(&s, SUCCESS, SEC / 2); // bucket 0
    record(&s, FAILURE, 3 * SEC + 1); // bucket 3
    record(&s, FAILURE, 9 * SEC + 5); // bucket 9
    assert_eq!(s.window_t(9 * SEC + 6).totals[SUCCESS], 1);
    assert_eq!(s.window_t(9 * SEC + 6).totals[FAILURE], 2);
    // At 10 s bucket 0 leaves the window.
    assert_eq!(s.window_t(10 * SEC).totals[SUCCESS], 0);
    assert_eq!(s.window_t(10 * SEC).totals[FAILURE], 2);
    assert_eq!(s.window_t(13 * SEC).totals[FAILURE], 1);
    assert_eq!(s.window_t(18 * SEC + 999).totals[FAILURE], 1);
    assert_eq!(s.window_t(19 * SEC).totals[FAILURE], 0);
    // Far in the future, with no recordings, everything has rolled out.
    assert_eq!(s.window_t(1000 * SEC).totals, [0; COUNTERS]);
    assert_eq!(s.totals()[FAILURE], 2);
}

#[test]
fn reset_hides_earlier_calls() {
    let s = stats();
    record(&s, FAILURE, SEC);
    s.reset_window(SEC + 10);
    record(&s, SUCCESS, SEC + 20);
    let w = s.window_t(SEC + 30);
    assert_eq!(w.totals[FAILURE], 0);
    assert_eq!(w.totals[SUCCESS], 1);
    // The rolling statistics (what dashboards show) are not reset.
    let rolling = s.window(SEC + 30, false);
    assert_eq!(rolling.totals[FAILURE], 1);
    assert_eq!(rolling.totals[SUCCESS], 1);
}

#[test]
fn concurrency_is_started_minus_finished_and_peaks_are_kept() {
    let s = stats();
    s.begin();
    s.begin();
    s.begin();
    s.finish(SUCCESS, 10, false, None);
    // A call may end on another thread than the one it began on.
    std::thread::scope(|t| {
        t.spawn(|| s.finish(FAILURE, 20, false, None));
    });
    assert_eq!(s.in_flight(), 1);
    s.observe_concurrency(3);
    assert_eq!(s.window(30, false).max_in_flight, 3);
    s.finish(CANCELLED, 2 * SEC, false, None);
    assert_eq!(s.in_flight(), 0);
    assert_eq!(s.window(2 * SEC + 1, false).max_in_flight, 3);
    record(&s, SUCCESS, 12 * SEC);
    assert_eq!(s.window(12 * SEC + 1, false).max_in_flight, 1);
}

#[test]
fn latency_window_and_percentiles() {
    let s = stats();
    for ms in 1..=100u64 {
        s.begin();
        s.finish(SUCCESS, ms * 1_000_000, false, Some(ms * 1_000_000));
    }
    let [exec, total] = s.latency_window(SEC);
    assert_eq!(total.as_slice().iter().sum::<u64>(), 0);
    let result = exec.quantile(0.5).unwrap().unwrap();
    let p50 = result.entries().values().next().unwrap().clone();
    assert!((47_000..=53_000).contains(&p50.end()), "{p50:?}");
    // Rolled out after the percentile window.
    let [exec, _] = s.latency_window(61 * SEC);
    assert_eq!(exec.as_slice().iter().sum::<u64>(), 0);
}

#[test]
fn count_window_keeps_last_n() {
    let w = CountWindow::new(3);
    w.push(FAILURE, false);
    w.push(SUCCESS, true);
    w.push(SUCCESS, false);
    assert_eq!(w.totals()[FAILURE], 1);
    assert_eq!(w.totals()[SUCCESS], 2);
    assert_eq!(w.totals()[SLOW], 1);
    w.push(TIMEOUT, false); // evicts the failure
    assert_eq!(w.totals()[FAILURE], 0);
    assert_eq!(w.totals()[TIMEOUT], 1);
    w.push(SUCCESS, false); // evicts the slow success
    assert_eq!(w.totals()[SLOW], 0);
    w.clear();
    assert_eq!(w.totals(), [0; COUNTERS]);
}
