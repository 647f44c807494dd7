#!/usr/bin/env bash
# Every test of the workspace: formatting, lints, unit/integration/property/doc tests, and a
# short run of the demo. Installs what it needs first, so it passes on a fresh machine.
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
command -v cargo >/dev/null || { echo "cargo is required (rustup toolchain)"; exit 1; }
cargo --version
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy

step "browser test dependencies (Debian chromium, npm playwright-core)"
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq --no-install-recommends chromium >/dev/null
fi
chromium --version
command -v node >/dev/null || { echo "node is required for the browser test"; exit 1; }
(cd crates/stream-dashboard/tests/browser && npm ci --no-audit --no-fund --loglevel=error)

step "Eureka peer (PyPI py-eureka-client)"
python3 -m pip install --quiet --disable-pip-version-check py-eureka-client==0.13.3
python3 -c "import py_eureka_client; print('py-eureka-client', py_eureka_client.version)"

step "metrics checker (Debian prometheus: promtool)"
if ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool --version | head -1

step "metrics parser (PyPI prometheus_client)"
python3 -m pip install --quiet --disable-pip-version-check prometheus_client==0.21.1
python3 -c "import prometheus_client.parser; print('prometheus_client parser ready')"

step "DNS server for dns: sources (PyPI dnslib)"
python3 -m pip install --quiet --disable-pip-version-check dnslib==0.9.26
python3 -c "import dnslib; print('dnslib', dnslib.version)"

step "trace propagation peers (PyPI opentelemetry-sdk, npm @elastic/mockotlpserver)"
python3 -m pip install --quiet --disable-pip-version-check opentelemetry-sdk==1.45.2
python3 -c "import opentelemetry.version as v; print('opentelemetry-sdk', v.__version__)"
(cd crates/tracing-mw/tests/peers && npm ci --no-audit --no-fund --loglevel=error)

step "DynamoDB peer (PyPI moto[server])"
python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.1'
python3 -c "import moto; print('moto', moto.__version__)"

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "light builds: each crate on its default features (what a user who names one crate compiles)"
for crate in backoff server circuit-breaker balance client discovery tracing-mw dyn-config stream-dashboard; do
  cargo check --quiet --locked --all-targets -p "breakwater-$crate"
done
cargo check --quiet --locked -p breakwater --no-default-features

step "tests"
cargo test --workspace --all-features --locked

step "balance bench smoke (--quick, debug build: every scenario runs; figures come from cargo bench)"
cargo test --quiet --locked --features balance --bench balance -- --quick

step "client bench smoke (--quick, debug build: every part runs; figures come from cargo bench)"
cargo test --quiet --locked --features client,otlp --bench client -- --quick

step "demo smoke run (8 s): terminal output, registry discovery, config, dashboard page, stream and aggregation"
cargo build --quiet --locked --example demo
log=$(mktemp)
target/debug/examples/demo --seconds 8 --port 0 >"$log" 2>&1 &
demo=$!
url=""
for _ in $(seq 1 50); do
  url=$(grep -o 'dashboard: http://[0-9.:]*/' "$log" | head -1 | cut -d' ' -f2 || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "demo printed no dashboard URL:"; cat "$log"; kill $demo; exit 1; }
python3 scripts/check_dashboard.py "$url"
wait $demo
grep -q "2 instances of DEMO-SERVICE" "$log" || { echo "the dashboard did not discover both instances through the registry:"; cat "$log"; exit 1; }
grep -q "config: hystrix.command.inventory.circuitBreaker.forceOpen" "$log" || { echo "demo output lacks the config line:"; cat "$log"; exit 1; }
for name in inventory payments recommendations; do
  grep -q "$name" "$log" || { echo "demo output lacks $name:"; cat "$log"; exit 1; }
done
echo "demo ran, reported all three breakers and served its dashboard at $url"
