#!/usr/bin/env bash
# The test command: installs what is missing (tests/setup.sh), then runs formatting, lint and
# every test (unit, the test servers' own tests, end to end).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash tests/setup.sh

echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test" >&2
# Each end-to-end test starts moto, a Kubernetes test server and the operator; a few at a time
# keeps a two-core machine responsive.
cargo test --workspace --locked -- --test-threads="${ARNSYNC_TEST_THREADS:-4}"
echo "== demo" >&2; bash tests/demo.sh
