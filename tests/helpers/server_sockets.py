#!/usr/bin/env python3
"""Print the socket options of a running server's sockets, as JSON.

usage: server_sockets.py PID CLIENT_PORT
Finds the server-side socket whose peer port is CLIENT_PORT (and the
listening socket) by duplicating the server's descriptors with
pidfd_getfd(2), and reports what `ss`/getsockopt would show a user.
"""
import ctypes
import json
import os
import socket
import sys

SYS_PIDFD_GETFD = 438


def main():
    pid, client_port = int(sys.argv[1]), int(sys.argv[2])
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if not target.startswith("socket:"):
            continue
        fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
        if fd < 0:
            continue
        s = socket.socket(fileno=fd)
        try:
            if s.type != socket.SOCK_STREAM or s.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                out["listener"] = {
                    "reuseport": s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT),
                    "family": "ipv6" if s.family == socket.AF_INET6 else "ipv4",
                }
                if s.family == socket.AF_INET6:
                    out["listener"]["v6only"] = s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
                continue
            if s.getpeername()[1] != client_port:
                continue
            out["connection"] = {
                "nodelay": s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                "keepalive": s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                "keepidle": s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                "keepintvl": s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                "rcvbuf": s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                "sndbuf": s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
            }
        except OSError:
            continue
        finally:
            s.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
