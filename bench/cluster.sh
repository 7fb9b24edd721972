#!/usr/bin/env bash
# Cross-node fan-out: one publisher and SUBSCRIBERS subscribers of one chat
# room spread over three wsserver nodes that share a redis-server, against
# the same load on a single node, interleaved REPEAT times. Prints loadgen's
# summary of each run (deliveries per wsserver CPU-second, p50/p99
# publish-to-receive latency) and the CPU Redis used during each cluster run.
#
#   bench/cluster.sh                          # 1000 subscribers, 100 msg/s, 5 s, 3 repeats
#   SUBSCRIBERS=300 RATE=1000 bench/cluster.sh
#
# Needs redis-server (Debian package redis-server).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
subscribers="${SUBSCRIBERS:-1000}"
rate="${RATE:-100}"
duration="${DURATION:-5}"
repeat="${REPEAT:-3}"
bin="$("$here/build.sh")"
logs="$here/out/cluster-logs"
mkdir -p "$logs"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# CPU seconds a process has used so far.
cpu_of() {
  awk -v tck="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($14 + $15) / tck }' "/proc/$1/stat"
}

# start_node NAME [ARGS...]: starts a chat node; sets node_pid and node_url.
start_node() {
  local name="$1"
  shift
  "$bin/wsserver" --plugin /room=builtin:chat --listen 127.0.0.1:0 \
    --set MaxConnections=19000 --set LogLevel=0 "$@" \
    >"$logs/$name.out" 2>"$logs/$name.err" &
  node_pid=$!
  pids+=("$node_pid")
  for _ in $(seq 100); do
    if grep -q '^listening on ' "$logs/$name.out" 2>/dev/null; then
      node_url="$(sed -n 's/^listening on //p' "$logs/$name.out" | head -1)"
      return
    fi
    sleep 0.1
  done
  echo "cluster.sh: $name did not start; see $logs/$name.err" >&2
  exit 1
}

stop() {
  kill "$@" 2>/dev/null || true
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$logs" >"$logs/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
  sleep 0.1
done
redis="redis://127.0.0.1:$redis_port"

loadgen() {
  "$bin/loadgen" --duration "$duration" --warmup 1 "$@"
}

echo "# fan-out 1 → $subscribers subscribers, $rate msg/s, 32 B, ${duration} s windows, $(date -u +%F)"
for round in $(seq "$repeat"); do
  start_node single
  single="$node_pid"
  echo "one process, round $round:"
  loadgen --url "$node_url" --server-pid "$single" \
    fanout --subscribers "$subscribers" --rate "$rate" --room bench
  stop "$single"

  start_node node1 --redis "$redis"; p1="$node_pid"; u1="$node_url"
  start_node node2 --redis "$redis"; p2="$node_pid"; u2="$node_url"
  start_node node3 --redis "$redis"; p3="$node_pid"; u3="$node_url"
  before="$(cpu_of "$redis_pid")"
  echo "three nodes + redis, round $round:"
  loadgen --url "$u1" --server-pid "$p1" --server-pid "$p2" --server-pid "$p3" \
    fanout --subscribers "$subscribers" --rate "$rate" --room bench \
    --also-url "$u2" --also-url "$u3"
  after="$(cpu_of "$redis_pid")"
  echo "  redis-server CPU during the run (warm-up included): $(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.2f", a - b }') s"
  stop "$p1" "$p2" "$p3"
done
