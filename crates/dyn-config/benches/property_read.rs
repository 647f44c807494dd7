//! The cost of reading a property, side by side with reading a plain variable and a bare
//! `ArcSwap`, in the same run. Target: a property read at most 5 ns above a plain variable.
//!
//! Run: `cargo bench -p breakwater-dyn-config --bench property_read`.

use std::hint::black_box;
use std::sync::Arc;

use arc_swap::ArcSwap;
use breakwater_dyn_config::{ConfigStore, FeatureFlag};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("property_read");
    let plain: u64 = 250;
    group.bench_function("plain variable", |b| {
        b.iter(|| black_box(&plain).wrapping_add(0))
    });

    let swap = ArcSwap::new(Arc::new(250u64));
    group.bench_function("arc-swap load", |b| b.iter(|| **black_box(&swap).load()));

    let config = ConfigStore::new();
    let timeout = config.property("orders.timeoutMs", 1000u64);
    config.set_override("orders.timeoutMs", "250");
    group.bench_function("Property<u64>::get", |b| {
        b.iter(|| black_box(&timeout).get())
    });

    let name = config.property("orders.region", String::from("eu-west-1"));
    group.bench_function("Property<String>::load", |b| {
        b.iter(|| black_box(&name).load().len())
    });

    let mut cached = name.cached();
    group.bench_function("CachedProperty<String>::get", |b| {
        b.iter(|| black_box(&mut cached).get().len())
    });

    let flag = FeatureFlag::new(&config, "feature.newCheckout", false);
    config.set_override("feature.newCheckout", "25%");
    group.bench_function("FeatureFlag::is_enabled_for", |b| {
        b.iter(|| black_box(&flag).is_enabled_for(black_box("tenant-4711")))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
