#!/usr/bin/env bash
# The kernel's own memory per idle WebSocket connection, to add to a
# server's RSS per connection: slab objects (the TCP socket, its inode,
# file, dentry and epoll item) and socket buffers (/proc/net/sockstat),
# sampled while `loadgen idle` holds the connections open. On loopback both
# ends are sockets of this kernel, so the growth is halved. Needs root (for
# /proc/slabinfo) and a running server.
#
#   bench/kernel-memory.sh LOADGEN URL [CONNECTIONS]
set -euo pipefail
loadgen="$1" url="$2" connections="${3:-10000}"

snapshot() {
  python3 - <<'PY'
caches = {"TCP", "TCPv6", "sock_inode_cache", "filp", "dentry", "eventpoll_epi", "eventpoll_pwq"}
total = 0
with open("/proc/slabinfo") as f:
    for line in f:
        parts = line.split()
        if parts and parts[0] in caches:
            total += int(parts[1]) * int(parts[3])  # active objects x size
with open("/proc/net/sockstat") as f:
    for line in f:
        if line.startswith("TCP:"):
            fields = line.split()
            pages = int(fields[fields.index("mem") + 1])
import os
print(total, pages * os.sysconf("SC_PAGE_SIZE"))
PY
}

read -r slab_before buf_before < <(snapshot)
"$loadgen" --url "$url" idle --connections "$connections" --settle 6 >/dev/null &
gen=$!
# Sample once every connection is open and settled (the generator opens
# them in a few seconds, then holds them for --settle).
sleep 5
best=0 buf_at=0
for _ in 1 2 3 4; do
  read -r slab buf < <(snapshot)
  if (( slab > best )); then best=$slab buf_at=$buf; fi
  sleep 1
done
wait "$gen"
python3 -c "
n = $connections
slab = ($best - $slab_before) / 2 / n
buf = ($buf_at - $buf_before) / 2 / n
print(f'kernel per idle connection (one end): slab {slab:.0f} B, socket buffers {buf:.0f} B, total {slab + buf:.0f} B')
"
