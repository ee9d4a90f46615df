#!/usr/bin/env bash
# The pure routing cost per statement (parse + classify + plan + bind for the
# simple protocol; bind only for prepared statements), measured without
# servers by sql-rewrite/examples/route_cost.rs on the golden route config.
# A benchmark, not a test: it prints µs and asserts nothing.
#
# Environment: ITERATIONS per statement (default 100000).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo run --quiet --release -p sql-rewrite --example route_cost
