#!/usr/bin/env bash
# User-space instructions per echoed message (or per handshake), counted
# by callgrind (Ir) over a window of `loadgen echo` (`loadgen handshake`)
# load: unlike CPU time on these shared machines, the count repeats
# within a few percent, so a change of 3% in the host's or the plugin's
# code shows. Kernel time is not counted, copies done with `rep movsb`
# count one per byte, and SHA-1 runs without SHA-NI (valgrind hides it:
# about 2,800 of a handshake's instructions are that).
#
#   bench/instructions.sh LOADGEN BIN SIZE DEPTH [server args...]
#   bench/instructions.sh LOADGEN BIN handshake CONCURRENCY [server args...]
#   e.g. bench/instructions.sh target/release/loadgen wsserver 32 32 --native-echo
#
# BIN must be a release build with two edits, or it measures something
# else under valgrind:
# - plugin/deadline.rs `thread_cpu_time`: any clock but rustix's (rustix
#   reads the vDSO itself and crashes under valgrind);
# - plugin/instance/mod.rs `INLINE_MAX`: far above 1 ms, or the built-in
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
# The admin API can answer before the listener does, and the echo's route
# answers 503 until its component is compiled (minutes under valgrind):
# wait for a 101.
upgrade() {
  curl -s -o /dev/null -m 2 -w '%{http_code}' -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
    -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
    http://127.0.0.1:9130/echo || true
}
for _ in $(seq 400); do
  [ "$(upgrade)" = 101 ] && break
  sleep 1
done
if [ "$size" = handshake ]; then
  counted=wsserver_connections_accepted_total unit=handshake
  load_args=(handshake --concurrency "$depth")
else
  counted=wsserver_messages_received_total unit=message
  load_args=(echo --connections "${CONNECTIONS:-100}" --size "$size" --depth "$depth")
fi
received() {
  curl -s http://127.0.0.1:9131/metrics | awk -v name="$counted" '$1 == name {print $2}'
}
"$loadgen" --url ws://127.0.0.1:9130/echo "${load_args[@]}" --duration 12 --warmup 2 \
  >"$out/load.txt" 2>&1 &
load=$!
# Past the connections' opening and the first turns: count 6 s of load.
sleep 6
before=$(received)
callgrind_control -i on $server >/dev/null
sleep 6
callgrind_control -i off $server >/dev/null
after=$(received)
callgrind_control -d $server >/dev/null
wait $load || { echo "loadgen failed: $(tail -1 "$out/load.txt")" >&2; exit 1; }
ir=$(cat "$out"/callgrind.* | awk '/^summary:/{s+=$2} /^totals:/{t+=$2} END{print (s>0?s:t)}')
events=$((after - before))
echo "$events ${unit}s, $ir instructions, $((ir / events)) per $unit (profile in $out)"
