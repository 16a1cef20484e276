#!/usr/bin/env bash
# Instructions per request, bare forwarder vs contract forwarder vs zonegate, counted by valgrind's callgrind: unlike req/s or CPU
# time, the program's own share of the count moves little between runs on a noisy machine (a few percent, where CPU time
# moves by 20-50%). The garbage collector's share swings with where collections fall: bench/instruction-split.ts reports it apart.
#   bash bench/instructions.sh [requests=4000] [warmup=30000]       (needs valgrind; ~5 min per target)
# The warm-up matters: V8 still optimises (and re-optimises) hot code for the first ~20,000 requests, and with
# --single-threaded that compiling is counted; after 8,000 requests it was still half of every count.
# Timer-driven work (the access log's 100 ms flush window, memory checks every 10 ms) runs ~100× more often
# per request under valgrind, which slows requests down that much: read differences, not absolute costs.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-4000}
warmup=${2:-30000}
node=node_modules/.bin/node
autocannon=node_modules/.bin/autocannon
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
upstream_port=19801 proxy_port=19802 admin_port=19803

cat > "$work/routes.yaml" <<YAML
gateway: { listen: "127.0.0.1:$proxy_port", admin: "127.0.0.1:$admin_port", zone: sh-a }
topology: { cn-east: { shanghai: [sh-a] } }
discovery: { static: { bench: [ { address: "127.0.0.1:$upstream_port", zone: sh-a } ] } }
routes: [ { name: bench, match: { prefix: / }, service: bench } ]
YAML
# The bare forwarder has no signal handler; callgrind writes its counts only on a clean exit.
echo "process.on('SIGINT', () => process.exit(0));" > "$work/exit-on-sigint.mjs"

$node bench/upstream.ts $upstream_port >/dev/null 2>&1 &

count() { # <name> <node args...>: prints instructions per request
  local name=$1; shift
  valgrind --tool=callgrind --smc-check=all-non-file --instr-atstart=no \
    --callgrind-out-file="$work/$name.%p" $node --single-threaded "$@" >/dev/null 2>"$work/$name.log" &
  local pid=$!
  for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$proxy_port/" && break; sleep 0.5; done
  $autocannon -c 10 -a "$warmup" "http://127.0.0.1:$proxy_port/bench/item" >/dev/null 2>&1
  callgrind_control -i on $pid >/dev/null 2>&1
  $autocannon -c 10 -a "$requests" "http://127.0.0.1:$proxy_port/bench/item" >/dev/null 2>&1
  callgrind_control -d $pid >/dev/null 2>&1
  kill -INT $pid; wait $pid || true
  callgrind_annotate --threshold=100 "$work/$name".*.1 | $node bench/instruction-split.ts "$requests" "$name"
}

count bare --import "$work/exit-on-sigint.mjs" bench/bare-forwarder.ts $proxy_port $upstream_port
count contract --import "$work/exit-on-sigint.mjs" bench/contract-forwarder.ts $proxy_port $upstream_port
# As `zonegate` runs: with the node flags of bin/zonegate.js's first line.
read -ra zonegate_flags <<< "$(head -1 bin/zonegate.js | sed 's/^.*[ /]node//')"
count zonegate "${zonegate_flags[@]}" bin/zonegate.js run --config "$work/routes.yaml"
