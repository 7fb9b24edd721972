"""What an echo plugin costs by the language it is written in, measured in
wasmtime 48 (the host's major version, through its Python bindings, with
the host's engine settings: default Cranelift, epoch interruption):
component size, compile time, instantiate time, first call and resident
memory per live instance. Times are CPU time (compilation runs on several
threads: all of them count), so that a busy machine changes them less
than wall-clock time; compile wall time is printed too.

    python measure.py NAME=FILE.wasm ...

Prints a markdown table; checks nothing about speed. Each component is
compiled once (Python and SpiderMonkey ones take 10-20 s here).
"""

import statistics
import sys
import time
from pathlib import Path

import wasmtime
from wasmtime import component as cm

HOST = "wsserver:plugin/host@0.1.0"
HANDLER = "wsserver:plugin/handler@0.1.0"
INSTANCES = 20  # live together, for the memory figure


def record(**fields):
    value = cm.Record()
    for name, field in fields.items():
        setattr(value, name.replace("_", "-"), field)
    return value


def data_in(connection):
    return cm.Variant(
        "data-in", record(connection=connection, format="text", data=b"x" * 32, eom=True, eol=False)
    )


def link_host(linker):
    """A host whose functions succeed and do nothing: the figures are the
    guest's and wasmtime's."""
    with linker.root() as root:
        with root.add_instance(HOST) as host:
            for name in ("send", "ping", "disconnect", "set-line-mode", "pause-data",
                         "resume-data", "subscribe", "unsubscribe", "publish", "log",
                         "set-attachment", "attachment", "config-get"):
                host.add_func(name, lambda _store, *args: None)
            host.add_func("connection-info", lambda _store, _id: "invalid-connection")
            host.add_func("connections", lambda _store: [])
            host.add_func("subscriber-count", lambda _store, _topic: 0)


def rss_bytes():
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096


class Instance:
    def __init__(self, engine, linker, component):
        self.store = wasmtime.Store(engine)
        self.store.set_wasi(wasmtime.WasiConfig())
        self.store.set_epoch_deadline(1 << 40)
        self.instance = linker.instantiate(self.store, component)
        parent = self.instance.get_export_index(self.store, HANDLER)
        index = self.instance.get_export_index(self.store, "on-events", parent)
        self.on_events = self.instance.get_func(self.store, index)

    def call(self, events):
        return self.on_events(self.store, events)


def measure(name, path):
    config = wasmtime.Config()
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    wasm = Path(path).read_bytes()
    started, started_cpu = time.perf_counter(), time.process_time()
    component = cm.Component(engine, wasm)
    compile_cpu = time.process_time() - started_cpu
    compile_wall = time.perf_counter() - started
    linker = cm.Linker(engine)
    linker.add_wasip2()
    link_host(linker)

    before = rss_bytes()
    instantiate, first_call, live = [], [], []
    for _ in range(INSTANCES):
        started = time.thread_time()
        instance = Instance(engine, linker, component)
        instantiate.append(time.thread_time() - started)
        started = time.thread_time()
        commands = instance.call([cm.Variant("connected", 1), data_in(1)])
        first_call.append(time.thread_time() - started)
        assert len(commands) == 1, f"{name} did not echo"
        live.append(instance)
    per_instance = (rss_bytes() - before) / INSTANCES

    return (
        f"| {name} | {len(wasm) / 1e6:.2f} MB | {compile_cpu:.1f} s ({compile_wall:.1f} s wall) | "
        f"{statistics.median(instantiate) * 1e3:.2f} ms | {statistics.median(first_call) * 1e3:.2f} ms | "
        f"{per_instance / 2**20:.2f} MiB |"
    )


def main():
    print("| plugin | component | compile, CPU | instantiate, CPU (median of 20) | first call, CPU | "
          "RSS per live instance (20 live) |")
    print("|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        name, _, path = arg.partition("=")
        print(measure(name, path), flush=True)


if __name__ == "__main__":
    main()
