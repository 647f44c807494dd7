//! Eureka registry with 10,000 registered instances (500 applications of 20): full-fetch
//! latency through our client (server encode + loopback HTTP + client decode), beside the bare
//! HTTP transfer of the same document; and the client's delta apply (+ hash check), beside
//! copying the registry it applies to.
//!
//! Run: `cargo bench --bench eureka_fetch`. Figures: benches/README.md.

use std::sync::Arc;
use std::time::Duration;

use breakwater_discovery::client::{EurekaClient, EurekaClientConfig};
use breakwater_discovery::registry::{InstanceRegistry, InstanceRegistryConfig};
use breakwater_discovery::wire::{
    self, ActionType, Application, Applications, Instance, Port, Status,
};
use criterion::{Criterion, criterion_group, criterion_main};

const APPS: usize = 500;
const PER_APP: usize = 20;

fn instance(app: usize, n: usize) -> Instance {
    let mut i = Instance {
        instance_id: format!("app-{app:03}-{n:02}"),
        app: format!("APP-{app:03}"),
        host_name: format!("10.{}.{}.{n}", app / 250, app % 250),
        ip_addr: format!("10.{}.{}.{n}", app / 250, app % 250),
        status: if n == 0 { Status::Down } else { Status::Up },
        port: Some(Port {
            port: 8080,
            enabled: true,
        }),
        vip_address: Some(format!("app-{app:03}")),
        home_page_url: Some(format!("http://10.0.0.{n}:8080/")),
        health_check_url: Some(format!("http://10.0.0.{n}:8080/health")),
        ..Instance::default()
    };
    i.metadata.insert("zone".into(), format!("zone-{}", n % 3));
    i.metadata.insert("version".into(), "1.4.2".into());
    i
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let registry = Arc::new(InstanceRegistry::new(InstanceRegistryConfig::default()));
    for app in 0..APPS {
        for n in 0..PER_APP {
            registry.register(instance(app, n), 1).unwrap();
        }
    }
    let url = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/eureka/", listener.local_addr().unwrap());
        let router = breakwater_discovery::server::router(registry.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        url
    });
    let client = EurekaClient::new(
        EurekaClientConfig {
            service_urls: vec![url.clone()],
            request_timeout: Duration::from_secs(30),
            ..EurekaClientConfig::default()
        },
        None,
    )
    .unwrap();
    runtime.block_on(client.fetch_full()).unwrap();
    assert_eq!(client.applications().len(), APPS * PER_APP);

    let mut group = c.benchmark_group("full_fetch_10k_instances");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(15));
    group.bench_function("client_full_fetch_json", |b| {
        b.iter(|| runtime.block_on(client.fetch_full()).unwrap())
    });
    // The same GET with no decode: what the transfer and server side cost alone.
    let http: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let apps_url: http::Uri = format!("{url}apps/").parse().unwrap();
    group.bench_function("bare_http_get_json", |b| {
        b.iter(|| {
            runtime.block_on(async {
                use http_body_util::BodyExt;
                let request = http::Request::get(apps_url.clone())
                    .header("accept", "application/json")
                    .body(http_body_util::Empty::new())
                    .unwrap();
                let body = http
                    .request(request)
                    .await
                    .unwrap()
                    .into_body()
                    .collect()
                    .await
                    .unwrap();
                body.to_bytes().len()
            })
        })
    });
    let document = runtime.block_on(async {
        use http_body_util::BodyExt;
        let request = http::Request::get(apps_url.clone())
            .body(http_body_util::Empty::new())
            .unwrap();
        http.request(request)
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
    });
    group.bench_function("client_decode_xml_only", |b| {
        b.iter(|| wire::read_applications(&document).unwrap().len())
    });
    group.finish();

    // A delta of 10 changes applied to the client's 10,000-instance copy.
    let full: Applications = (*client.applications()).clone();
    let mut delta = Applications {
        versions_delta: "2".into(),
        ..Applications::default()
    };
    for k in 0..10 {
        let mut i = instance(k * 7, 3);
        i.status = Status::OutOfService;
        i.action_type = Some(ActionType::Modified);
        delta.applications.push(Application {
            name: i.app.clone(),
            instances: vec![i],
        });
    }
    let mut group = c.benchmark_group("delta_apply_10k_instances");
    group.bench_function("clone_registry_only", |b| b.iter(|| full.clone().len()));
    group.bench_function("clone_apply_10_changes_and_hash", |b| {
        b.iter(|| {
            let mut local = full.clone();
            local.apply_delta(&delta);
            local.hashcode()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
