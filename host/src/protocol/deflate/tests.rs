//! Compression and decompression tests: round trips, interop with an
//! independent DEFLATE implementation (flate2's miniz_oxide backend), RFC
//! 7692's examples, fragmentation, bombs and invalid data.

use std::convert::Infallible;
use std::ops::ControlFlow;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

use super::pool::{self, OUTPUT_CHUNK};
use super::*;

fn negotiated(context_takeover: bool, server_bits: u8) -> Negotiated {
    Negotiated {
        server_no_context_takeover: !context_takeover,
        client_no_context_takeover: !context_takeover,
        server_max_window_bits: WindowBits::new(server_bits).unwrap(),
        client_max_window_bits: WindowBits::MAX,
    }
}

fn deflater(context_takeover: bool) -> Deflater {
    Deflater::new(
        &negotiated(context_takeover, 15),
        &DeflateSettings::default(),
    )
}

fn inflater(context_takeover: bool) -> Inflater {
    Inflater::new(&negotiated(context_takeover, 15))
}

fn compress(deflater: &mut Deflater, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    deflater.compress(message, &mut out).unwrap();
    out
}

/// Inflates one message given as its frames' payloads (none: a frame with
/// RSV1 and an empty payload).
fn inflate(inflater: &mut Inflater, frames: &[&[u8]]) -> Result<Vec<u8>, InflateError<Infallible>> {
    let mut message = Vec::new();
    let mut ended = false;
    let mut sink = |piece: &[u8], last: bool| {
        assert!(!ended, "a piece after the last one");
        message.extend_from_slice(piece);
        ended = last;
        Ok(ControlFlow::Continue(()))
    };
    let last_frame = frames.len().saturating_sub(1);
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(
            inflater.inflate(frame, i == last_frame, &mut sink)?,
            Inflated::Done
        );
    }
    if frames.is_empty() {
        inflater.inflate(&[], true, &mut sink)?;
    }
    assert!(ended, "the message's last piece was flagged");
    Ok(message)
}

/// Inflates the first part of a message (not its end).
fn inflate_part(inflater: &mut Inflater, part: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    inflater
        .inflate(part, false, &mut |piece: &[u8], last: bool| {
            assert!(!last);
            out.extend_from_slice(piece);
            Ok::<_, Infallible>(ControlFlow::Continue(()))
        })
        .unwrap();
    out
}

/// Chat-like JSON messages: compressible, and alike from one to the next.
fn json_messages(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let users = ["alice", "bob", "carol", "dave"];
    let vocabulary: Vec<String> = (0..300)
        .map(|_| (0..rng.usize(2..9)).map(|_| rng.lowercase()).collect())
        .collect();
    (0..count)
        .map(|i| {
            let words: Vec<&str> = (0..rng.usize(5..200))
                .map(|_| vocabulary[rng.usize(..vocabulary.len())].as_str())
                .collect();
            format!(
                r#"{{"type":"message","id":{i},"user":"{}","room":"general","text":"{}"}}"#,
                users[rng.usize(..users.len())],
                words.join(" ")
            )
            .into_bytes()
        })
        .collect()
}

/// flate2 (miniz_oxide) decompressing a stream of messages as a peer would.
struct ReferenceInflater(Decompress);

impl ReferenceInflater {
    fn new() -> Self {
        Self(Decompress::new(false))
    }

    fn message(&mut self, payload: &[u8]) -> Vec<u8> {
        let input = [payload, &SYNC_FLUSH_TAIL].concat();
        let mut out = Vec::with_capacity(1024);
        let mut read = 0;
        loop {
            out.reserve(64 * 1024);
            let before = self.0.total_in();
            self.0
                .decompress_vec(&input[read..], &mut out, FlushDecompress::Sync)
                .unwrap();
            read += (self.0.total_in() - before) as usize;
            if read == input.len() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

/// flate2 (miniz_oxide) compressing a message as a peer would.
fn reference_compress(compress: &mut Compress, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut read = 0;
    loop {
        out.reserve(64 * 1024);
        let before = compress.total_in();
        compress
            .compress_vec(&message[read..], &mut out, FlushCompress::Sync)
            .unwrap();
        read += (compress.total_in() - before) as usize;
        if read == message.len() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(out.ends_with(&SYNC_FLUSH_TAIL));
    out.truncate(out.len() - SYNC_FLUSH_TAIL.len());
    out
}

#[test]
fn inflates_the_rfc_7692_examples() {
    let hello = b"Hello".as_slice();
    // §7.2.3.1: one message.
    let mut receiver = inflater(false);
    assert_eq!(
        inflate(
            &mut receiver,
            &[&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]]
        )
        .unwrap(),
        hello
    );
    // §7.2.3.2: the second "Hello" refers back into the first.
    let mut receiver = inflater(true);
    assert_eq!(
        inflate(
            &mut receiver,
            &[&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]]
        )
        .unwrap(),
        hello
    );
    assert_eq!(
        inflate(&mut receiver, &[&[0xf2, 0x00, 0x11, 0x00, 0x00]]).unwrap(),
        hello
    );
    // §7.2.3.3: a stored block.
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(inflate(&mut inflater(true), &[&stored]).unwrap(), hello);
    // §7.2.3.4: a block with BFINAL set; the stream starts afresh after it.
    let mut receiver = inflater(true);
    let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(inflate(&mut receiver, &[&bfinal]).unwrap(), hello);
    assert_eq!(inflate(&mut receiver, &[&bfinal]).unwrap(), hello);
}

#[test]
fn round_trips_many_messages_with_context_takeover() {
    let messages = json_messages(300, 1);
    let mut sender = deflater(true);
    let mut receiver = inflater(true);
    let mut compressed_total = 0;
    for message in &messages {
        let compressed = compress(&mut sender, message);
        compressed_total += compressed.len();
        assert_eq!(&inflate(&mut receiver, &[&compressed]).unwrap(), message);
    }
    let original_total: usize = messages.iter().map(Vec::len).sum();
    assert!(
        compressed_total * 2 < original_total,
        "{compressed_total} of {original_total}"
    );
    assert!(sender.holds_state() && receiver.holds_state());

    // Takeover at work: a repeated message becomes a few bytes of reference.
    let repeated = compress(&mut sender, &messages[299]);
    assert!(repeated.len() < 16, "{} bytes", repeated.len());
    assert_eq!(inflate(&mut receiver, &[&repeated]).unwrap(), messages[299]);
}

#[test]
fn without_context_takeover_each_message_stands_alone() {
    let messages = json_messages(20, 2);
    let mut sender = deflater(false);
    let mut receiver = inflater(false);
    for message in &messages {
        let compressed = compress(&mut sender, message);
        assert!(!sender.holds_state(), "state released after each message");
        // Any fresh receiver can read it: nothing refers to earlier messages.
        assert_eq!(
            &inflate(&mut inflater(false), &[&compressed]).unwrap(),
            message
        );
        assert_eq!(&inflate(&mut receiver, &[&compressed]).unwrap(), message);
        assert!(!receiver.holds_state());
        // The same message compresses the same way every time.
        assert_eq!(compress(&mut sender, message), compressed);
    }
    let (idle_deflaters, idle_inflaters) = pool::idle_counts();
    assert!((1..=4).contains(&idle_deflaters) && (1..=4).contains(&idle_inflaters));
}

#[test]
fn zlib_state_is_created_lazily() {
    let sender = deflater(true);
    let receiver = inflater(true);
    assert!(!sender.holds_state() && !receiver.holds_state());
    assert!(std::mem::size_of::<Deflater>() + std::mem::size_of::<Inflater>() <= 64);
}

#[test]
fn empty_messages_round_trip() {
    for takeover in [true, false] {
        let mut sender = deflater(takeover);
        let mut receiver = inflater(takeover);
        for _ in 0..3 {
            let compressed = compress(&mut sender, b"");
            assert!(compressed.len() <= 2, "{compressed:?}");
            assert_eq!(inflate(&mut receiver, &[&compressed]).unwrap(), b"");
            // A frame with RSV1 and no payload at all is an empty message too.
            assert_eq!(inflate(&mut receiver, &[]).unwrap(), b"");
        }
    }
}

#[test]
fn our_output_inflates_with_an_independent_implementation() {
    for (takeover, level) in [(true, 1), (true, 9), (false, 6), (false, 0)] {
        let settings = DeflateSettings {
            compression_level: CompressionLevel::new(level).unwrap(),
            ..DeflateSettings::default()
        };
        let mut sender = Deflater::new(&negotiated(takeover, 15), &settings);
        let mut peer = ReferenceInflater::new();
        let mut incompressible = vec![0; 300_000];
        fastrand::Rng::with_seed(3).fill(&mut incompressible);
        let mut messages = json_messages(50, 3);
        messages.push(incompressible);
        messages.push(vec![b'x'; 1 << 20]);
        for message in &messages {
            if !takeover {
                peer = ReferenceInflater::new();
            }
            let compressed = compress(&mut sender, message);
            assert_eq!(
                &peer.message(&compressed),
                message,
                "takeover {takeover}, level {level}"
            );
        }
    }
}

#[test]
fn inflates_an_independent_implementations_output() {
    let mut peer = Compress::new(Compression::new(6), false);
    let mut receiver = inflater(true);
    let mut messages = json_messages(50, 4);
    messages.push(vec![b'y'; 1 << 20]);
    for message in &messages {
        let compressed = reference_compress(&mut peer, message);
        assert_eq!(&inflate(&mut receiver, &[&compressed]).unwrap(), message);
    }
}

#[test]
fn compressed_frames_split_at_every_byte_inflate_the_same() {
    let messages = json_messages(3, 5);
    let mut sender = deflater(true);
    let first = compress(&mut sender, &messages[0]);
    let second = compress(&mut sender, &messages[1]);
    for split in 0..=second.len() {
        // A receiver that already has the first message in its window.
        let mut receiver = inflater(true);
        assert_eq!(inflate(&mut receiver, &[&first]).unwrap(), messages[0]);
        let (head, tail) = second.split_at(split);
        assert_eq!(
            inflate(&mut receiver, &[head, tail]).unwrap(),
            messages[1],
            "split at {split}"
        );
    }
    // One byte per frame.
    let mut receiver = inflater(true);
    assert_eq!(inflate(&mut receiver, &[&first]).unwrap(), messages[0]);
    let bytes: Vec<&[u8]> = second.chunks(1).collect();
    assert_eq!(inflate(&mut receiver, &bytes).unwrap(), messages[1]);
}

#[test]
fn messages_sent_in_parts_inflate_whole() {
    let message = json_messages(1, 6).remove(0);
    for takeover in [true, false] {
        let mut sender = deflater(takeover);
        let mut receiver = inflater(takeover);
        for split in [0, 1, message.len() / 3, message.len() - 1, message.len()] {
            let (head, tail) = message.split_at(split);
            let mut first_frame = Vec::new();
            let mut last_frame = Vec::new();
            sender
                .compress_fragment(head, false, &mut first_frame)
                .unwrap();
            assert!(sender.holds_state(), "held across the parts of a message");
            sender
                .compress_fragment(tail, true, &mut last_frame)
                .unwrap();
            assert_eq!(sender.holds_state(), takeover);
            assert_eq!(
                inflate(&mut receiver, &[&first_frame, &last_frame]).unwrap(),
                message
            );
            if !takeover {
                // The first part leaves in full: it alone inflates to `head`.
                assert_eq!(inflate_part(&mut inflater(false), &first_frame), head);
            }
        }
    }
}

#[test]
fn output_reaches_the_sink_in_bounded_pieces_the_last_one_flagged() {
    // Sizes on both sides of a whole number of pieces: an exact multiple
    // must not end with an extra empty piece.
    for len in [
        1,
        OUTPUT_CHUNK - 1,
        OUTPUT_CHUNK,
        OUTPUT_CHUNK + 1,
        5 * OUTPUT_CHUNK,
        5 * OUTPUT_CHUNK + 7,
    ] {
        let message: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let compressed = compress(&mut deflater(false), &message);
        let mut pieces = Vec::new();
        let done = inflater(false)
            .inflate(&compressed, true, &mut |piece: &[u8], last: bool| {
                pieces.push((piece.to_vec(), last));
                Ok::<_, Infallible>(ControlFlow::Continue(()))
            })
            .unwrap();
        assert_eq!(done, Inflated::Done);
        assert_eq!(pieces.len(), len.div_ceil(OUTPUT_CHUNK), "len {len}");
        assert!(
            pieces
                .iter()
                .all(|(piece, _)| !piece.is_empty() && piece.len() <= OUTPUT_CHUNK)
        );
        let flags: Vec<bool> = pieces.iter().map(|(_, last)| *last).collect();
        assert_eq!(flags.iter().filter(|&&last| last).count(), 1, "len {len}");
        assert_eq!(flags.last(), Some(&true), "len {len}");
        assert_eq!(joined(&pieces), message, "len {len}");
    }
}

/// Joins inflated pieces.
fn joined(pieces: &[(Vec<u8>, bool)]) -> Vec<u8> {
    pieces
        .iter()
        .flat_map(|(piece, _)| piece.iter().copied())
        .collect()
}

#[test]
fn a_paused_inflater_resumes_where_it_stopped() {
    let messages = json_messages(4, 11);
    let big: Vec<u8> = messages.concat().repeat(100);
    let mut sender = deflater(true);
    let first = compress(&mut sender, &big);
    let second = compress(&mut sender, &messages[0]);
    let mut receiver = inflater(true);
    for (message, compressed) in [(&big, &first), (&messages[0], &second)] {
        // The message comes in two frames; the sink pauses after every piece.
        let (head, tail) = compressed.split_at(compressed.len() / 2);
        let mut pieces: Vec<(Vec<u8>, bool)> = Vec::new();
        for (frame, end) in [(head, false), (tail, true)] {
            let mut rest = frame;
            loop {
                let before = pieces.len();
                let inflated = receiver
                    .inflate(rest, end, &mut |piece: &[u8], last: bool| {
                        pieces.push((piece.to_vec(), last));
                        Ok::<_, Infallible>(ControlFlow::Break(()))
                    })
                    .unwrap();
                assert!(pieces.len() <= before + 1, "a piece after Break");
                match inflated {
                    Inflated::Done => break,
                    Inflated::Paused { consumed } => rest = &rest[consumed..],
                }
            }
        }
        assert!(pieces.iter().all(|(piece, _)| piece.len() <= OUTPUT_CHUNK));
        assert_eq!(pieces.iter().filter(|(_, last)| *last).count(), 1);
        assert!(pieces.last().unwrap().1);
        assert_eq!(&joined(&pieces), message);
    }
    assert!(big.len() > 10 * OUTPUT_CHUNK, "the test pauses many times");
}

#[test]
fn a_pause_may_leave_output_after_all_input_is_used() {
    // One byte more than a piece: the last piece's byte is inflated ahead
    // while the whole input is read, so it waits for a call with no input.
    let message = vec![0u8; OUTPUT_CHUNK + 1];
    let compressed = compress(&mut deflater(false), &message);
    let mut receiver = inflater(false);
    let mut pieces = Vec::new();
    let paused = receiver
        .inflate(&compressed, true, &mut |piece: &[u8], last: bool| {
            pieces.push((piece.to_vec(), last));
            Ok::<_, Infallible>(ControlFlow::Break(()))
        })
        .unwrap();
    assert_eq!(
        paused,
        Inflated::Paused {
            consumed: compressed.len()
        }
    );
    let done = receiver
        .inflate(&[], true, &mut |piece: &[u8], last: bool| {
            pieces.push((piece.to_vec(), last));
            Ok::<_, Infallible>(ControlFlow::Continue(()))
        })
        .unwrap();
    assert_eq!(done, Inflated::Done);
    assert_eq!(
        pieces
            .iter()
            .map(|(p, last)| (p.len(), *last))
            .collect::<Vec<_>>(),
        [(OUTPUT_CHUNK, false), (1, true)]
    );
    assert_eq!(joined(&pieces), message);
}

#[derive(Debug, PartialEq)]
struct TooBig;

#[test]
fn a_decompression_bomb_stops_at_the_limit() {
    // 1 GiB of zeros, compressed to about 1 MiB.
    let zeros = vec![0; 1 << 20];
    let best = DeflateSettings {
        compression_level: CompressionLevel::new(9).unwrap(),
        ..DeflateSettings::default()
    };
    let mut sender = Deflater::new(&negotiated(false, 15), &best);
    let mut bomb = Vec::new();
    for part in 0..1024 {
        sender
            .compress_fragment(&zeros, part == 1023, &mut bomb)
            .unwrap();
    }
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());

    let limit = 1 << 20;
    let mut receiver = inflater(false);
    let mut inflated = 0;
    let mut sink_calls = 0;
    let mut sink = |piece: &[u8], _last: bool| {
        sink_calls += 1;
        inflated += piece.len();
        if inflated > limit {
            Err(TooBig)
        } else {
            Ok(ControlFlow::Continue(()))
        }
    };
    let mut result = Ok(Inflated::Done);
    for frame in bomb.chunks(64 * 1024) {
        result = receiver.inflate(frame, false, &mut sink);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(InflateError::Sink(TooBig)));
    // Work stopped right after the limit: no more output, no more calls.
    assert!(inflated <= limit + OUTPUT_CHUNK, "{inflated}");
    assert!(sink_calls <= limit / OUTPUT_CHUNK + 1, "{sink_calls}");
    assert!(
        !receiver.holds_state(),
        "aborted state is dropped, not reused"
    );
}

#[test]
fn invalid_data_is_reported_as_such() {
    let mut sender = deflater(true);
    let message = json_messages(1, 7).remove(0);
    compress(&mut sender, &message);
    // Refers back into a message this receiver never saw.
    let dependent = compress(&mut sender, &message);
    let cases: [(&str, &[u8]); 4] = [
        ("reserved block type", &[0xff, 0xff, 0xff]),
        (
            "stored length mismatch",
            &[0x00, 0x05, 0x00, 0x00, 0x00, b'H'],
        ),
        ("distance too far back", &dependent),
        ("garbage", b"\x1f\x8b this is not deflate at all"),
    ];
    for (what, data) in cases {
        let mut receiver = inflater(true);
        let error = inflate(&mut receiver, &[data]).unwrap_err();
        assert!(
            matches!(error, InflateError::InvalidData(_)),
            "{what}: {error:?}"
        );
        assert!(!receiver.holds_state(), "{what}");
    }
}

#[test]
fn data_after_the_end_of_the_stream_is_ignored() {
    // A message ending in a BFINAL block, with trailing bytes after it.
    let mut receiver = inflater(false);
    let bfinal_hello = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(
        inflate(&mut receiver, &[&bfinal_hello, b"junk"]).unwrap(),
        b"Hello"
    );
    assert_eq!(inflate(&mut receiver, &[&bfinal_hello]).unwrap(), b"Hello");
}

/// Inflates with miniz_oxide keeping only the last `2^bits` bytes (a
/// wrapping window), which refuses any distance longer than that.
fn inflate_in_window(bits: u8, compressed: &[u8]) -> Result<Vec<u8>, String> {
    use miniz_oxide::inflate::TINFLStatus;
    use miniz_oxide::inflate::core::inflate_flags::TINFL_FLAG_HAS_MORE_INPUT;
    use miniz_oxide::inflate::core::{DecompressorOxide, decompress};

    let input = [compressed, &SYNC_FLUSH_TAIL].concat();
    let mut window = vec![0; 1 << bits];
    let mut decompressor = DecompressorOxide::new();
    let (mut read, mut position, mut out) = (0, 0, Vec::new());
    loop {
        let (status, consumed, written) = decompress(
            &mut decompressor,
            &input[read..],
            &mut window,
            position,
            TINFL_FLAG_HAS_MORE_INPUT,
        );
        out.extend_from_slice(&window[position..position + written]);
        read += consumed;
        position = (position + written) % window.len();
        match status {
            TINFLStatus::HasMoreOutput => {}
            TINFLStatus::NeedsMoreInput if read == input.len() => return Ok(out),
            other => return Err(format!("{other:?} after {} bytes", out.len())),
        }
    }
}

#[test]
fn window_bits_8_output_fits_a_256_byte_window() {
    // Repeats at distances from 200 to 600 bytes tempt a matcher to reach
    // past 256 bytes back.
    let mut rng = fastrand::Rng::with_seed(8);
    let mut message: Vec<u8> = (0..600).map(|_| rng.alphanumeric() as u8).collect();
    for _ in 0..200 {
        let distance = rng.usize(200..600);
        let start = message.len() - distance;
        let piece = message[start..start + 40].to_vec();
        message.extend_from_slice(&piece);
        message.extend((0..rng.usize(1..8)).map(|_| rng.alphanumeric() as u8));
    }
    for takeover in [true, false] {
        let mut sender = Deflater::new(&negotiated(takeover, 8), &DeflateSettings::default());
        let compressed = compress(&mut sender, &message);
        assert!(compressed.len() < message.len(), "it did compress");
        assert_eq!(inflate_in_window(8, &compressed).unwrap(), message);
    }
    // The check is real: output from a 10-bit window breaks a 256-byte one.
    let mut wide = Deflater::new(&negotiated(false, 10), &DeflateSettings::default());
    assert!(inflate_in_window(8, &compress(&mut wide, &message)).is_err());
    assert_eq!(
        inflate_in_window(10, &compress(&mut wide, &message)).unwrap(),
        message
    );
}

#[test]
fn smaller_windows_and_mem_levels_round_trip() {
    let messages = json_messages(40, 9);
    for (bits, mem_level) in [(9, 1), (12, 5), (15, 9)] {
        let settings = DeflateSettings {
            mem_level: MemLevel::new(mem_level).unwrap(),
            ..DeflateSettings::default()
        };
        let mut sender = Deflater::new(&negotiated(true, bits), &settings);
        let mut peer = ReferenceInflater::new();
        for message in &messages {
            assert_eq!(&peer.message(&compress(&mut sender, message)), message);
        }
    }
}

#[test]
fn arbitrary_input_never_panics() {
    let mut rng = fastrand::Rng::with_seed(10);
    let expected = json_messages(1, 10).remove(0);
    let valid = compress(&mut deflater(false), &expected);
    let mut receiver = inflater(false);
    for round in 0..2_000 {
        let mut data = if round % 2 == 0 {
            valid.clone()
        } else {
            (0..rng.usize(0..300)).map(|_| rng.u8(..)).collect()
        };
        // Flip a few bits of the valid stream.
        for _ in 0..rng.usize(1..4) {
            if let Some(byte) = data.get_mut(rng.usize(..valid.len())) {
                *byte ^= 1 << rng.u8(..8);
            }
        }
        let split = rng.usize(..=data.len());
        let _ = inflate(&mut receiver, &[&data[..split], &data[split..]]);
        // Whatever happened, the next message inflates.
        assert_eq!(inflate(&mut receiver, &[&valid]).unwrap(), expected);
    }
}
