//! Per-event cost of crossing into a wasm plugin: the echo plugin's
//! `on-events` called with batches of 1..1024 data-in events of 32 bytes,
//! as the plugin runtime calls it (same engine configuration: epoch
//! deadlines on, memory limiter on). Each call includes lowering the
//! events into guest memory, the guest's work (echo), and lifting the
//! returned send commands.
//!
//! `cargo bench -p wsserver --bench dispatch` prints ns per event; it
//! checks nothing about speed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
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
    let component = Component::new(&engine, wsserver::plugin::ECHO).expect("echo component");
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

    println!("echo plugin, data-in of 32 bytes, one on-events call per batch");
    println!("{:>6} {:>14} {:>14}", "batch", "ns/event", "calls/s");
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
        // Warm up, then time whole calls until RUN has passed.
        for _ in 0..100 {
            black_box(handler.call_on_events(&mut store, &events).expect("call"));
        }
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < RUN {
            for _ in 0..10 {
                let commands = handler.call_on_events(&mut store, &events).expect("call");
                assert_eq!(commands.len(), batch);
                black_box(commands);
            }
            calls += 10;
        }
        let elapsed = start.elapsed();
        let per_event = elapsed.as_nanos() as f64 / (calls as f64 * batch as f64);
        println!(
            "{batch:>6} {per_event:>14.0} {:>14.0}",
            calls as f64 / elapsed.as_secs_f64()
        );
    }
}
