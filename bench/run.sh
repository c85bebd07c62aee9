#!/usr/bin/env bash
# The fan-out benchmark, side by side with its peers, in one command:
#   bash bench/run.sh [omnicast-bench options...]      e.g. --runs 5, --scenarios fanout-1k
# Installs the peers (npm, cargo), builds the load tool (and with it the omnicast server it
# starts) in release mode, pins every server to core 0 and the load tool to core 1, and writes
# the report to bench/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."

(cd bench/peers && npm ci --no-audit --no-fund --loglevel=error)
(cd bench/peers/socketioxide && cargo build --release --quiet)
(cd bench/peers/yardstick && cargo build --release --quiet)
cargo build --release --quiet -p omnicast-bench

# 10,000 clients and as many server connections need that many descriptors on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

{
  echo "# omnicast fan-out benchmark"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs),"
  echo "$(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r). Servers pinned to core 0, load tool to core 1."
  echo
} > bench/results.md
taskset -c 1 target/release/omnicast-bench --server-core 0 "$@" | tee -a bench/results.md
