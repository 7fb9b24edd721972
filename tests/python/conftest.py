"""Fixtures: the real wsserver binary, started per test on 127.0.0.1, and
certificates made per test (trustme) for the wss tests."""
import os
import signal
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

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


@dataclass
class TlsFiles:
    """A CA and what it issued, as files the server and clients load."""

    ca: trustme.CA
    server_pem: Path  # private key, certificate and chain: a PEMKeyFile
    server: trustme.LeafCert
    client: trustme.LeafCert

    def server_args(self, *extra):
        return (
            "--set", "UseSSL=True",
            "--set", "SSLCertStoreType=PEMKeyFile",
            "--set", f"SSLCertStore={self.server_pem}",
            *extra,
        )

    def client_context(self, *, with_certificate=False):
        """An OpenSSL client context (the ssl module) trusting the CA."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        if with_certificate:
            self.client.configure_cert(context)
        return context


@pytest.fixture
def tls_files(tmp_path):
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server_pem = tmp_path / "server.pem"
    server.private_key_and_cert_chain_pem.write_to_path(server_pem)
    client = ca.issue_cert("alice@example.test", common_name="alice")
    return TlsFiles(ca=ca, server_pem=server_pem, server=server, client=client)
