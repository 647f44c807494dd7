#!/usr/bin/env bash
# What a small user crate compiles: three programs with an empty main that depend on
# (a) breakers + env/file config, (b) the Eureka client only, (c) propagation only, each built
# clean (debug) in a target directory of its own. Prints crates compiled and wall time.
# Usage: bash scripts/build_cost.sh [CHECKOUT]   (default: this one; give an older checkout,
# e.g. a `git worktree`, to compare)
set -euo pipefail
root=$(cd "${1:-$(dirname "$0")/..}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
user() { # name, dependency lines, uses
  mkdir -p "$work/$1/src"
  printf '[package]\nname = "user-%s"\nversion = "0.1.0"\nedition = "2024"\npublish = false\n\n[workspace]\n\n[dependencies]\n%b\n' "$1" "$2" >"$work/$1/Cargo.toml"
  printf '%b\nfn main() {}\n' "$3" >"$work/$1/src/main.rs"
  cp "$root/Cargo.lock" "$work/$1/"
}
user breakers-env "breakwater-circuit-breaker = { path = \"$root/crates/circuit-breaker\" }\nbreakwater-dyn-config = { path = \"$root/crates/dyn-config\" }" "use breakwater_circuit_breaker as _;\nuse breakwater_dyn_config as _;"
user eureka-client "breakwater-discovery = { path = \"$root/crates/discovery\" }" "use breakwater_discovery as _;"
user propagation "breakwater-tracing-mw = { path = \"$root/crates/tracing-mw\" }" "use breakwater_tracing_mw as _;"
for u in breakers-env eureka-client propagation; do
  (cd "$work/$u"
   cargo fetch -q
   start=$(date +%s.%N)
   cargo build 2>build.log
   end=$(date +%s.%N)
   printf '%-14s %4d crates compiled  %6.1f s\n' "$u" "$(grep -c '^ *Compiling' build.log)" "$(awk "BEGIN { print $end - $start }")")
done
