"""Serves {{name}}.wasm with wsserver and checks, as a client would, that it
echoes a text message and a binary one. Python's standard library only.

    python3 test_plugin.py        # WSSERVER=/path/to/wsserver to pick one
"""

import os
import socket
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def frame(opcode, payload):
    """One masked client frame."""
    mask = os.urandom(4)
    header = bytes([0x80 | opcode])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError("the server closed the connection")
        data += chunk
    return data


def read_frame(sock):
    first, second = read_exact(sock, 2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack(">H", read_exact(sock, 2))[0]
    elif length == 127:
        length = struct.unpack(">Q", read_exact(sock, 8))[0]
    return first & 0x0F, read_exact(sock, length)


def main():
    wsserver = os.environ.get("WSSERVER", "wsserver")
    wasm = os.path.join(HERE, "{{name}}.wasm")
    server = subprocess.Popen(
        [wsserver, "--listen", "127.0.0.1:0", "--plugin", "/=" + wasm],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = server.stdout.readline().strip()
        assert ready.startswith("listening on ws://"), f"wsserver did not start: {ready!r}"
        host, port = ready.removeprefix("listening on ws://").rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=30)
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += read_exact(sock, 1)
        assert head.startswith(b"HTTP/1.1 101"), head.decode(errors="replace")
        for opcode, payload in [(1, "hello, {{name}}".encode()), (2, bytes(range(256)))]:
            sock.sendall(frame(opcode, payload))
            assert read_frame(sock) == (opcode, payload), "not echoed"
        sock.sendall(frame(8, struct.pack(">H", 1000)))
        assert read_frame(sock)[0] == 8
        print("ok: {{name}}.wasm echoes text and binary messages")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
