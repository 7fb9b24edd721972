"""Runs the built plugin components in wasmtime (the Python bindings of the
same wasmtime major version as the host) against a scripted fake host, to
check each plugin's behaviour at the component boundary: what it returns
from `on-events` and `on-open-request`, and which host functions it calls.

The components are built (or found up to date) once per session with the
same cargo command the host's build script runs.
"""

import os
import subprocess
import threading
from pathlib import Path

import pytest
import wasmtime
from wasmtime import component as cm

PLUGINS_DIR = Path(__file__).resolve().parent.parent
TARGET_DIR = Path(os.environ.get("CARGO_TARGET_DIR", PLUGINS_DIR / "target"))
WASM_DIR = TARGET_DIR / "wasm32-wasip2" / "release"

HOST = "wsserver:plugin/host@0.1.0"
HANDLER = "wsserver:plugin/handler@0.1.0"
LIFECYCLE = "wsserver:plugin/lifecycle@0.1.0"


def record(**fields):
    """A WIT record value: Python names with `_` become WIT names with `-`."""
    value = cm.Record()
    for name, field in fields.items():
        setattr(value, name.replace("_", "-"), field)
    return value


def fields(value):
    """A record returned by a component, as a dict keyed by WIT names."""
    return dict(value.__dict__)


class FakeHost:
    """Implements the `host` interface in memory and records every call."""

    def __init__(self):
        self.calls = []
        self.config = {}
        self.connections = {}  # id -> request-uri
        self.attachments = {}  # id -> bytes
        self.sends_before_full = None  # None: the queue never fills

    def connection_record(self, connection):
        uri = self.connections[connection]
        return record(
            id=connection, accept_data=True, bytes_sent=0, connected=True,
            host="127.0.0.1", line_mode=False, local_address="127.0.0.1",
            origin=None, ready_to_send=True, remote_host="127.0.0.1",
            remote_port=40000, request_headers=[], request_uri=uri,
            subprotocols=[], subprotocol=None, timeout_seconds=0, tls=None,
        )

    def link(self, linker):
        def call(name, result=None):
            def record_call(_store, *args):
                self.calls.append((name, *args))
                return result(*args) if result else None
            return record_call

        def send(connection, _format, _data):
            if connection not in self.connections:
                return "invalid-connection"
            if self.sends_before_full is not None:
                if self.sends_before_full == 0:
                    return "would-block"
                self.sends_before_full -= 1
            return None

        def connection_info(connection):
            if connection not in self.connections:
                return "invalid-connection"
            return self.connection_record(connection)

        def set_attachment(connection, data):
            if connection not in self.connections:
                return "invalid-connection"
            self.attachments[connection] = bytes(data)
            return None

        def attachment(connection):
            if connection not in self.connections:
                return "invalid-connection"
            return self.attachments.get(connection)

        ok = lambda *_: None  # noqa: E731
        with linker.root() as root:
            with root.add_instance(HOST) as host:
                host.add_func("send", call("send", send))
                for name in ("ping", "disconnect", "set-line-mode", "pause-data",
                             "resume-data", "subscribe", "unsubscribe", "publish"):
                    host.add_func(name, call(name, ok))
                host.add_func("connection-info", call("connection-info", connection_info))
                host.add_func("connections", call("connections", lambda: list(self.connections)))
                host.add_func("config-get", call("config-get", self.config.get))
                host.add_func("log", call("log"))
                host.add_func("set-attachment", call("set-attachment", set_attachment))
                host.add_func("attachment", call("attachment", attachment))

    def sent(self):
        return [call[1:] for call in self.calls if call[0] == "send"]


class Plugin:
    """One instance of a plugin component, called like the host calls it."""

    def __init__(self, name, host=None, memory_limit=None):
        config = wasmtime.Config()
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        component = cm.Component.from_file(self.engine, str(WASM_DIR / f"{name}.wasm"))
        linker = cm.Linker(self.engine)
        linker.add_wasip2()
        self.host = host or FakeHost()
        self.host.link(linker)
        self.store = wasmtime.Store(self.engine)
        self.store.set_wasi(wasmtime.WasiConfig())
        if memory_limit is not None:
            self.store.set_limits(memory_size=memory_limit)
        self.store.set_epoch_deadline(1)
        self.instance = linker.instantiate(self.store, component)

    def exports(self, interface):
        return self.instance.get_export_index(self.store, interface) is not None

    def _func(self, interface, name):
        parent = self.instance.get_export_index(self.store, interface)
        index = self.instance.get_export_index(self.store, name, parent)
        return self.instance.get_func(self.store, index)

    def _call(self, interface, name, *args, deadline_seconds=5.0):
        # The host's CPU deadline: an epoch tick after the deadline traps
        # the guest.
        self.store.set_epoch_deadline(1)
        ticker = threading.Timer(deadline_seconds, self.engine.increment_epoch)
        ticker.start()
        try:
            return self._func(interface, name)(self.store, *args)
        finally:
            ticker.cancel()

    def open_request(self, request, **kw):
        return fields(self._call(HANDLER, "on-open-request", request, **kw))

    def on_events(self, events, **kw):
        return [(command.tag, fields(command.payload) if hasattr(command.payload, "__dict__")
                 else command.payload)
                for command in self._call(HANDLER, "on-events", events, **kw)]

    def snapshot(self):
        return self._call(LIFECYCLE, "snapshot")

    def restore(self, state):
        return self._call(LIFECYCLE, "restore", state)


def connected(connection):
    return cm.Variant("connected", connection)


def data_in(connection, data, format="text", eom=True):
    if isinstance(data, str):
        data = data.encode()
    return cm.Variant("data-in", record(connection=connection, format=format, data=data,
                                        eom=eom, eol=False))


def disconnected(connection, code=1000):
    return cm.Variant("disconnected", record(connection=connection, code=code, description=""))


def ready_to_send(connection):
    return cm.Variant("ready-to-send", connection)


def open_request(uri="/", headers=(), subprotocols=()):
    return record(
        connection=1, request_uri=uri, host="127.0.0.1", origin=None,
        subprotocols=list(subprotocols), extensions="",
        headers=[record(name=n, value=v) for n, v in headers],
        remote_address="127.0.0.1", remote_port=40000, local_address="127.0.0.1",
        tls=None,
    )


def send(connection, data, format="text"):
    if isinstance(data, str):
        data = data.encode()
    return ("send", {"connection": connection, "format": format, "data": data})


@pytest.fixture(scope="session", autouse=True)
def built_plugins():
    subprocess.run(
        ["cargo", "build", "--release", "--target", "wasm32-wasip2",
         "--manifest-path", str(PLUGINS_DIR / "Cargo.toml")],
        check=True, env={**os.environ, "CARGO_TARGET_DIR": str(TARGET_DIR)},
    )
