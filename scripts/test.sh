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

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked

step "demo smoke run (3 s)"
out=$(cargo run --quiet --locked --example demo -- --seconds 3)
for name in inventory payments recommendations; do
  grep -q "$name" <<<"$out" || { echo "demo output lacks $name:"; echo "$out"; exit 1; }
done
echo "demo ran and reported all three breakers"
