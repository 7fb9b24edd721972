#!/usr/bin/env bash
# User-space instructions per echoed message, counted by callgrind (Ir)
# over a window of `loadgen echo` load: unlike CPU time on these shared
# machines, the count repeats within a few percent, so a change of 3% in
# the host's or the plugin's code shows. Kernel time is not counted, and
# copies done with `rep movsb` count one per byte.
#
#   bench/instructions.sh LOADGEN BIN SIZE DEPTH [server args...]
#   e.g. bench/instructions.sh target/release/loadgen wsserver 32 32 --native-echo
#
# BIN must be a release build with two edits, or it measures something
# else under valgrind:
# - plugin/deadline.rs `thread_cpu_time`: any clock but rustix's (rustix
#   reads the vDSO itself and crashes under valgrind);
# - plugin/instance.rs `INLINE_MAX`: far above 1 ms, or the built-in
#   echo's turns (50 times slower here) move to the executors.
# Needs valgrind (Debian) and curl; uses ports 9130 and 9131.
set -euo pipefail
loadgen="$1" bin="$2" size="$3" depth="$4"
shift 4
out=$(mktemp -d)
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.%p" --instr-atstart=no \
  --dump-instr=no --cache-sim=no \
  "$bin" --listen 127.0.0.1:9130 --admin 127.0.0.1:9131 --set LogLevel=0 \
  --set MaxConnections=19000 "$@" >"$out/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 400); do
  curl -sf -o /dev/null http://127.0.0.1:9131/metrics && break
  sleep 1
done
received() {
  curl -s http://127.0.0.1:9131/metrics | awk '/^wsserver_messages_received_total /{print $2}'
}
"$loadgen" --url ws://127.0.0.1:9130/echo echo --connections "${CONNECTIONS:-100}" \
  --size "$size" --depth "$depth" --duration 12 --warmup 2 >"$out/load.txt" 2>&1 &
load=$!
# Past the connections' opening and the first turns: count 6 s of load.
sleep 6
before=$(received)
callgrind_control -i on $server >/dev/null
sleep 6
callgrind_control -i off $server >/dev/null
after=$(received)
callgrind_control -d $server >/dev/null
wait $load
ir=$(cat "$out"/callgrind.* | awk '/^summary:/{s+=$2} /^totals:/{t+=$2} END{print (s>0?s:t)}')
messages=$((after - before))
echo "$messages messages, $ir instructions, $((ir / messages)) per message (profile in $out)"
