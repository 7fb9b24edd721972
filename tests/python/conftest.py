"""Fixtures: the real wsserver binary, started per test on 127.0.0.1."""
import os
import signal
import subprocess
import threading

import pytest

READY_TIMEOUT = 10


class Server:
    def __init__(self, *args):
        binary = os.environ.get("WSSERVER_BIN")
        if not binary:
            raise RuntimeError("set WSSERVER_BIN to the wsserver binary (make test does)")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()))
        reader.start()
        reader.join(READY_TIMEOUT)
        if not line or not line[0].startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"wsserver did not start: {line}")
        self.url = line[0].split()[-1]

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(READY_TIMEOUT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def start_server():
    started = []

    def start(*args):
        s = Server(*args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
