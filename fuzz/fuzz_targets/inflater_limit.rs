//! The inflater against a size limit. Arbitrary compressed input, split
//! anywhere: the sink never gets pieces over 16 KiB nor much past the
//! limit, and the heap grows by far less than what a bomb inflates to.
//! Round trip: what the deflater compresses inflates back unchanged.

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wsserver::protocol::deflate::{
    DeflateSettings, Deflater, InflateError, Inflated, Inflater, Negotiated, WindowBits,
};
use wsserver_fuzz::pieces;

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The largest piece the inflater hands out.
const PIECE: usize = 16 * 1024;
/// What one inflating message may hold beyond its output pieces: zlib's
/// state and 32 KiB window, an output buffer, the pool's bookkeeping.
const STATE_BUDGET: usize = 256 * 1024;

/// A 7-byte header, then the compressed bytes (seeds are deflate
/// streams), which the round trip also compresses as a message.
#[derive(Arbitrary, Debug)]
struct Input<'a> {
    client_no_context_takeover: bool,
    limit: u16,
    splits: [u8; 4],
    compressed: &'a [u8],
}

#[derive(Debug, PartialEq)]
struct TooBig;

/// Inflates one message fed in pieces; the output, or why it stopped.
fn inflate(
    inflater: &mut Inflater,
    input: &[u8],
    splits: &[u8],
    limit: usize,
) -> Result<Vec<u8>, InflateError<TooBig>> {
    let mut out = Vec::new();
    let mut ended = false;
    let mut sink = |piece: &[u8], last: bool| {
        assert!(piece.len() <= PIECE, "a piece of {} bytes", piece.len());
        assert!(!ended, "output after the last piece");
        if out.len() + piece.len() > limit {
            return Err(TooBig);
        }
        out.extend_from_slice(piece);
        ended = last;
        Ok(ControlFlow::Continue(()))
    };
    let mut parts = pieces(input, splits).peekable();
    while let Some(part) = parts.next() {
        let end = parts.peek().is_none();
        assert_eq!(inflater.inflate(part, end, &mut sink)?, Inflated::Done);
    }
    assert!(ended, "no last piece");
    Ok(out)
}

fuzz_target!(|input: Input<'_>| {
    let negotiated = Negotiated {
        server_no_context_takeover: input.client_no_context_takeover,
        client_no_context_takeover: input.client_no_context_takeover,
        server_max_window_bits: WindowBits::MAX,
        client_max_window_bits: WindowBits::MAX,
    };
    let limit = usize::from(input.limit);
    let mut inflater = Inflater::new(&negotiated);
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let result = inflate(&mut inflater, input.compressed, &input.splits, limit);
    let grown = PEAK.load(Ordering::Relaxed) - before;
    // The output vector doubles as it grows: while it moves, the old and
    // the new buffer are both live, three times the limit at most.
    assert!(
        grown <= 3 * limit + PIECE + STATE_BUDGET,
        "the heap grew by {grown} bytes for a limit of {limit}"
    );
    if let Ok(out) = &result {
        assert!(out.len() <= limit);
    }
    // A fresh inflater, so the arbitrary stream leaves no history behind.
    let mut inflater = Inflater::new(&negotiated);
    let mut compressor = Deflater::new(&negotiated, &DeflateSettings::default());
    // Twice: the second message may refer back to the first.
    for _ in 0..2 {
        let mut compressed = Vec::new();
        compressor
            .compress(input.compressed, &mut compressed)
            .expect("compresses");
        let back = inflate(&mut inflater, &compressed, &input.splits, usize::MAX);
        assert_eq!(back.as_deref(), Ok(input.compressed), "round trip");
    }
});
