//! Per-event cost of crossing into a wasm plugin: the echo plugin's
//! `on-events` called with batches of 1..1024 data-in events of 32 bytes,
//! through both exports the runtime can use: the typed
//! `handler.on-events` (a `list<event>`) and the packed
//! `packed-handler.on-events` (one `list<u8>` each way), with the runtime's
//! engine configuration (epoch deadlines, memory limiter). Each call
//! includes moving the events into guest memory, the guest's work (echo)
//! and reading the returned send commands.
//!
//! `cargo bench -p wsserver --bench dispatch` prints ns per event; it
//! checks nothing about speed.

#[path = "../../tests/common/plugins.rs"]
#[allow(dead_code)] // shared with the tests; this bench uses a part
mod plugins;

use std::hint::black_box;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, ResourceTable, TypedFunc};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wsserver_packed::{Event as PackedEvent, Writer};
use wsserver_plugin_bindings::Plugin;
use wsserver_plugin_bindings::wsserver::plugin::types::{DataFormat, DataIn, Event};

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

const RUN: Duration = Duration::from_millis(800);

fn main() {
    let mut config = Config::new();
    config.epoch_interruption(true);
    let engine = Engine::new(&config).expect("engine");
    let component =
        Component::new(&engine, plugins::embedded_plugin("echo")).expect("echo component");
    let mut linker = Linker::<State>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("wasi");
    let state = State {
        wasi: WasiCtx::builder().build(),
        table: ResourceTable::new(),
        limits: StoreLimitsBuilder::new().memory_size(128 << 20).build(),
    };
    let mut store = Store::new(&engine, state);
    store.limiter(|s| &mut s.limits);
    store.epoch_deadline_trap();
    store.set_epoch_deadline(u64::MAX / 2);
    let plugin = Plugin::instantiate(&mut store, &component, &linker).expect("instantiate");
    let handler = plugin.wsserver_plugin_handler();
    let instance = linker
        .instantiate(&mut store, &component)
        .expect("second instance");
    let packed_index = component
        .get_export_index(None, "wsserver:plugin/packed-handler@0.1.0")
        .and_then(|i| component.get_export_index(Some(&i), "on-events"))
        .expect("the echo plugin exports packed-handler");
    let packed: TypedFunc<(&[u8],), (Vec<u8>,)> = instance
        .get_typed_func(&mut store, packed_index)
        .expect("packed on-events");

    println!("echo plugin, data-in of 32 bytes, one on-events call per batch");
    println!(
        "{:>6} {:>16} {:>16}",
        "batch", "typed ns/event", "packed ns/event"
    );
    for batch in [1usize, 4, 16, 64, 256, 1024] {
        let events: Vec<Event> = (0..batch as u64)
            .map(|i| {
                Event::DataIn(DataIn {
                    connection: i,
                    format: DataFormat::Text,
                    data: vec![b'x'; 32],
                    eom: true,
                    eol: false,
                })
            })
            .collect();
        let mut bytes = Vec::new();
        let mut writer = Writer::new(&mut bytes);
        for i in 0..batch as u64 {
            writer.event(&PackedEvent::DataIn {
                connection: i,
                format: wsserver_packed::TEXT,
                eom: true,
                eol: false,
                data: &[b'x'; 32],
            });
        }
        let typed = per_event(batch, || {
            let commands = handler.call_on_events(&mut store, &events).expect("call");
            assert_eq!(commands.len(), batch);
            black_box(commands);
        });
        let packed = per_event(batch, || {
            let (commands,) = packed.call(&mut store, (&bytes,)).expect("call");
            assert_eq!(wsserver_packed::commands(&commands).count(), batch);
            black_box(commands);
        });
        println!("{batch:>6} {typed:>16.0} {packed:>16.0}");
    }
}

/// Warms up, then times calls for `RUN`; nanoseconds per event.
fn per_event(batch: usize, mut call: impl FnMut()) -> f64 {
    for _ in 0..100 {
        call();
    }
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < RUN {
        for _ in 0..10 {
            call();
        }
        calls += 10;
    }
    start.elapsed().as_nanos() as f64 / (calls as f64 * batch as f64)
}
