//! Unmasking speed: `apply_mask` over payloads of 32 B to 64 KiB, as the
//! receiver calls it on every client frame. Prints ns per payload and
//! GB/s; it checks nothing about speed.
//!
//! `cargo bench -p wsserver --bench mask`

use std::hint::black_box;
use std::time::{Duration, Instant};

use wsserver::protocol::mask::apply_mask;

const SIZES: [usize; 6] = [32, 125, 256, 1024, 4096, 65536];
const ROUND: Duration = Duration::from_millis(300);

fn main() {
    println!("apply_mask, median of 5 rounds of {ROUND:?}");
    for size in SIZES {
        let mut payload = vec![0x5au8; size];
        let mut rounds: Vec<f64> = (0..5)
            .map(|round| {
                let mask = [0x37, 0xfa, 0x21, round as u8];
                let start = Instant::now();
                let mut calls = 0u64;
                while start.elapsed() < ROUND {
                    for _ in 0..64 {
                        apply_mask(black_box(&mut payload), mask, 0);
                    }
                    calls += 64;
                }
                start.elapsed().as_nanos() as f64 / calls as f64
            })
            .collect();
        rounds.sort_by(f64::total_cmp);
        let ns = rounds[2];
        println!(
            "{size:>6} B: {ns:>8.1} ns per payload, {:>5.1} GB/s",
            size as f64 / ns
        );
    }
}
