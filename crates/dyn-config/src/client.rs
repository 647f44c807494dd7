//! Live settings of a [`Client`] of `breakwater-client` (feature `client`): every service it
//! calls, from its first call on, follows
//!
//! - `<service>.ribbon.<Setting>`, else `ribbon.<Setting>`, for Ribbon's settings
//!   (`MaxAutoRetries`, `MaxAutoRetriesNextServer`, `OkToRetryOnAllOperations`,
//!   `ConnectTimeout`, `ReadTimeout`: the names Archaius users already have in their tables);
//! - `client.<service>.<setting>`, else `client.default.<setting>`, for ours (budget, hedging,
//!   back-off, body limit); every name and what it holds: [`breakwater_client::SETTINGS`];
//! - `hystrix.command.<service>.*` for its circuit breaker, timeout and bulkhead
//!   ([`hystrix`](crate::hystrix));
//! - `balance.<service>.*` for its balancer ([`balance`](crate::balance)).
//!
//! A setting without a property keeps what the client was built with. Refused text is logged
//! and counted (`breakwater_config_rejected_total`) and the last good value stays.
//!
//! ```
//! use std::time::Duration;
//! use breakwater_circuit_breaker::Mode;
//! use breakwater_client::Client;
//! use breakwater_dyn_config::{ConfigStore, client};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let config = ConfigStore::new();
//! config.set_override("payments.ribbon.MaxAutoRetriesNextServer", "1");
//! config.set_override("ribbon.ReadTimeout", "800");
//! let client = Client::builder()
//!     .read_env(false)
//!     .instances("payments", ["127.0.0.1:9"])
//!     .unwrap()
//!     .build()
//!     .unwrap();
//! let _binding = client::bind(&config, &client);
//! // The service is set up on its first call, and follows from then on.
//! let _ = client.get("service://payments/").timeout(Duration::from_millis(50)).send().await;
//! assert_eq!(client.call_config("payments").max_attempts(), 2);
//! assert_eq!(client.call_config("payments").read_timeout, Some(Duration::from_millis(800)));
//! config.set_override("client.payments.hedge.delayMs", "25");
//! assert_eq!(client.call_config("payments").hedge_delay, Some(Duration::from_millis(25)));
//! config.set_override("hystrix.command.payments.circuitBreaker.forceOpen", "true");
//! assert_eq!(client.breaker("payments").unwrap().config().mode, Mode::ForcedOpen);
//! # }
//! ```

use std::sync::{Arc, Mutex, Weak};

use breakwater_client::{CallConfig, Client, SETTINGS};

use crate::balance::{BalanceBinding, bind_with};
use crate::hystrix::HystrixBinding;
use crate::scoped::{Scoped, follow};
use crate::store::{ConfigStore, Watcher};

/// Ribbon's settings among [`SETTINGS`]: read from `<service>.ribbon.*` and `ribbon.*`.
const RIBBON: [&str; 5] = [
    "MaxAutoRetries",
    "MaxAutoRetriesNextServer",
    "OkToRetryOnAllOperations",
    "ConnectTimeout",
    "ReadTimeout",
];

/// Keeps a client's services following configuration: drop it to stop (services keep the
/// settings they had).
pub struct ClientBinding {
    _state: Arc<State>,
}

impl std::fmt::Debug for ClientBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBinding").finish_non_exhaustive()
    }
}

struct State {
    config: ConfigStore,
    calls: Mutex<Vec<Arc<dyn Watcher>>>,
    balancers: Mutex<Vec<BalanceBinding>>,
    breakers: Mutex<HystrixBinding>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The property keys of one call setting of `service`, most specific first.
fn keys(service: &str, setting: &str) -> Vec<String> {
    if RIBBON.contains(&setting) {
        vec![
            format!("{service}.ribbon.{setting}"),
            format!("ribbon.{setting}"),
        ]
    } else {
        vec![
            format!("client.{service}.{setting}"),
            format!("client.default.{setting}"),
        ]
    }
}

/// Binds every service `client` calls, now and from its first call on, to the properties
/// of `config` (see the module docs), and applies them at once.
pub fn bind(config: &ConfigStore, client: &Client) -> ClientBinding {
    let state = Arc::new(State {
        config: config.clone(),
        calls: Mutex::new(Vec::new()),
        balancers: Mutex::new(Vec::new()),
        breakers: Mutex::new(HystrixBinding::empty(config)),
    });
    // The client holds the hook, the hook only a weak reference: dropping the binding
    // unbinds (and the hook then asks to be removed).
    let weak: Weak<State> = Arc::downgrade(&state);
    client.on_service(move |client, service| match weak.upgrade() {
        Some(state) => {
            bind_service(&state, client, service);
            true
        }
        None => false,
    });
    ClientBinding { _state: state }
}

fn bind_service(state: &State, client: &Client, service: &str) {
    let keys = SETTINGS
        .iter()
        .map(|(setting, _)| (*setting, keys(service, setting)))
        .collect();
    let target = client.clone();
    let name = service.to_owned();
    let watcher = follow(
        &state.config,
        Scoped {
            owner: format!("calls to {service}"),
            keys,
            original: client.call_config(service),
            set: |c: &mut CallConfig, setting, text| {
                c.set(setting, text).map_err(|e| e.to_string())
            },
            apply: Box::new(move |c| target.set_call_config(&name, c).map_err(|e| e.to_string())),
        },
    );
    lock(&state.calls).push(watcher);
    if let Some(original) = client.balance_config(service) {
        let (target, name) = (client.clone(), service.to_owned());
        let apply = Box::new(move |c| {
            target
                .set_balance_config(&name, c)
                .map_err(|e| e.to_string())
        });
        let binding = bind_with(&state.config, service, original, apply);
        lock(&state.balancers).push(binding);
    }
    if let Some(breaker) = client.breaker(service) {
        lock(&state.breakers).bind(&breaker);
    }
}
