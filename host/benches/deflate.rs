//! permessage-deflate figures: compress and inflate throughput for typical
//! payloads, and the heap a connection holds in each memory mode.
//!
//! `cargo bench --bench deflate` prints figures and checks nothing about speed.

use std::alloc::System;
use std::convert::Infallible;
use std::hint::black_box;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use wsserver::protocol::deflate::{
    CompressionLevel, DeflateSettings, Deflater, Inflater, MemLevel, MemoryMode, Negotiated,
    WindowBits, negotiate,
};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// How long each throughput figure runs.
const RUN: Duration = Duration::from_millis(600);
/// Connections measured per memory figure.
const CONNECTIONS: usize = 300;

fn main() {
    println!("== throughput (MB/s of uncompressed payload, one core) ==");
    println!(
        "{:<34} {:>10} {:>7} {:>11} {:>11}",
        "payload", "mode", "level", "compress", "inflate"
    );
    let payloads = payloads();
    for (name, messages) in &payloads {
        for (mode, takeover) in [("takeover", true), ("reset", false)] {
            for level in [1, 2, 6] {
                let settings = DeflateSettings {
                    compression_level: CompressionLevel::new(level).expect("0..=9"),
                    memory_mode: if takeover {
                        MemoryMode::Dedicated
                    } else {
                        MemoryMode::Shared
                    },
                    threshold: 0,
                    ..DeflateSettings::default()
                };
                let (compress_rate, ratio) = compress_rate(messages, &settings);
                let inflate_rate = inflate_rate(messages, &settings);
                println!(
                    "{:<34} {:>10} {:>7} {:>7.0} MB/s {:>7.0} MB/s   (compressed to {:.0}%)",
                    name,
                    mode,
                    level,
                    compress_rate,
                    inflate_rate,
                    ratio * 100.0
                );
            }
        }
    }

    println!();
    println!(
        "== heap held per connection ({CONNECTIONS} connections, after one 2 KB message each way) =="
    );
    println!(
        "(per-thread pools, filled beforehand, are not counted: at most 4 idle states of each kind)"
    );
    let message = &payloads[1].1[0];
    let dedicated = |bits: u8, mem_level: u8| DeflateSettings {
        memory_mode: MemoryMode::Dedicated,
        server_max_window_bits: WindowBits::new(bits).expect("8..=15"),
        mem_level: MemLevel::new(mem_level).expect("1..=9"),
        threshold: 0,
        ..DeflateSettings::default()
    };
    let configs = [
        (
            "Shared (default)",
            DeflateSettings {
                threshold: 0,
                ..DeflateSettings::default()
            },
        ),
        ("Dedicated, window 15, memLevel 8", dedicated(15, 8)),
        ("Dedicated, window 12, memLevel 5", dedicated(12, 5)),
        ("Dedicated, window 9, memLevel 1", dedicated(9, 1)),
    ];
    for (name, settings) in configs {
        let (idle, active) = held_per_connection(message, &settings);
        println!(
            "{name:<34} before any message {idle:>6} B   after {:>8.1} KiB   (10k connections: {:.0} MiB)",
            active as f64 / 1024.0,
            active as f64 * 10_000.0 / (1024.0 * 1024.0)
        );
    }
    println!(
        "(struct sizes: Deflater {} B, Inflater {} B, held inline by the connection)",
        std::mem::size_of::<Deflater>(),
        std::mem::size_of::<Inflater>()
    );
}

/// Messages of a kind a server echoes: chat JSON, bigger JSON documents,
/// and incompressible binary.
fn payloads() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let mut rng = fastrand::Rng::with_seed(1);
    let vocabulary: Vec<String> = (0..500)
        .map(|_| (0..rng.usize(2..10)).map(|_| rng.lowercase()).collect())
        .collect();
    let mut json = |target: usize| -> Vec<u8> {
        let mut out = String::from("[");
        while out.len() < target {
            let words: Vec<&str> = (0..rng.usize(3..20))
                .map(|_| vocabulary[rng.usize(..vocabulary.len())].as_str())
                .collect();
            out.push_str(&format!(
                r#"{{"id":{},"user":"{}","ts":{},"text":"{}"}},"#,
                rng.u32(..),
                vocabulary[rng.usize(..50)],
                1_700_000_000 + rng.u32(..1_000_000),
                words.join(" ")
            ));
        }
        out.push(']');
        out.into_bytes()
    };
    // Enough distinct messages that a 32 KiB window cannot hold them all.
    let small: Vec<Vec<u8>> = (0..1000).map(|_| json(150)).collect();
    let medium: Vec<Vec<u8>> = (0..100).map(|_| json(2_000)).collect();
    let large: Vec<Vec<u8>> = (0..8).map(|_| json(64 * 1024)).collect();
    let mut rng = fastrand::Rng::with_seed(2);
    let binary: Vec<Vec<u8>> = (0..8)
        .map(|_| {
            let mut data = vec![0; 16 * 1024];
            rng.fill(&mut data);
            data
        })
        .collect();
    vec![
        ("chat JSON ~200 B", small),
        ("JSON ~2 KB", medium),
        ("JSON 64 KB", large),
        ("random binary 16 KB", binary),
    ]
}

fn agreed(settings: &DeflateSettings) -> Negotiated {
    negotiate(&["permessage-deflate; client_max_window_bits"], settings)
        .map(|agreement| agreement.params)
        .expect("the offer is acceptable")
}

/// Compression rate in MB/s of input, and the compressed/original ratio.
fn compress_rate(messages: &[Vec<u8>], settings: &DeflateSettings) -> (f64, f64) {
    let mut deflater = Deflater::new(&agreed(settings), settings);
    let mut out = Vec::with_capacity(256 * 1024);
    let (mut bytes_in, mut bytes_out) = (0usize, 0usize);
    let start = Instant::now();
    while start.elapsed() < RUN {
        for message in messages {
            out.clear();
            deflater
                .compress(message, &mut out)
                .expect("in-memory deflate works");
            bytes_in += message.len();
            bytes_out += out.len();
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    (
        bytes_in as f64 / seconds / 1e6,
        bytes_out as f64 / bytes_in as f64,
    )
}

/// Inflation rate in MB/s of output, over the messages as a client would
/// send them (compressed in order, one stream).
fn inflate_rate(messages: &[Vec<u8>], settings: &DeflateSettings) -> f64 {
    let params = agreed(settings);
    // The client compresses with the same takeover rule the server asked for.
    let client_view = Negotiated {
        server_no_context_takeover: params.client_no_context_takeover,
        server_max_window_bits: params.client_max_window_bits,
        ..params
    };
    let mut client = Deflater::new(&client_view, settings);
    let compressed: Vec<Vec<u8>> = messages
        .iter()
        .map(|message| {
            let mut out = Vec::new();
            client
                .compress(message, &mut out)
                .expect("in-memory deflate works");
            out
        })
        .collect();
    let mut bytes_out = 0usize;
    let mut sink = |piece: &[u8], _last: bool| {
        bytes_out += black_box(piece).len();
        Ok::<_, Infallible>(ControlFlow::Continue(()))
    };
    let start = Instant::now();
    while start.elapsed() < RUN {
        // A fresh receiver per pass: the stream starts over.
        let mut inflater = Inflater::new(&params);
        for payload in &compressed {
            inflater
                .inflate(payload, true, &mut sink)
                .expect("in-memory deflate works");
        }
    }
    bytes_out as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// Heap bytes per connection: right after the handshake, and after one
/// message each way.
fn held_per_connection(message: &[u8], settings: &DeflateSettings) -> (usize, usize) {
    let params = agreed(settings);
    let client_view = Negotiated {
        server_no_context_takeover: params.client_no_context_takeover,
        server_max_window_bits: params.client_max_window_bits,
        ..params
    };
    let mut from_client = Vec::new();
    Deflater::new(&client_view, settings)
        .compress(message, &mut from_client)
        .expect("in-memory deflate works");
    let mut out = Vec::with_capacity(64 * 1024);
    let exchange = |(deflater, inflater): &mut (Deflater, Inflater), out: &mut Vec<u8>| {
        out.clear();
        deflater
            .compress(message, out)
            .expect("in-memory deflate works");
        let mut sink = |piece: &[u8], _last: bool| {
            black_box(piece);
            Ok::<_, Infallible>(ControlFlow::Continue(()))
        };
        inflater
            .inflate(&from_client, true, &mut sink)
            .expect("in-memory deflate works");
    };
    // Fill this thread's pools first: they are per thread, not per connection.
    exchange(
        &mut (Deflater::new(&params, settings), Inflater::new(&params)),
        &mut out,
    );
    let mut connections = Vec::with_capacity(CONNECTIONS);

    let region = Region::new(GLOBAL);
    for _ in 0..CONNECTIONS {
        connections.push((Deflater::new(&params, settings), Inflater::new(&params)));
    }
    let idle = net_bytes(&region) / CONNECTIONS;
    for connection in &mut connections {
        exchange(connection, &mut out);
    }
    let active = net_bytes(&region) / CONNECTIONS;
    (idle, active)
}

fn net_bytes(region: &Region<'_, System>) -> usize {
    let change = region.change();
    change
        .bytes_allocated
        .saturating_sub(change.bytes_deallocated)
}
