//! Round trip: messages a client frames (fragmented anywhere, masked,
//! compressed or not, pings in between) come out of the receiver whole
//! and unchanged, however the bytes are split and paused.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wsserver::MessageKind;
use wsserver::protocol::deflate::{DeflateSettings, Deflater, Inflater, Negotiated, WindowBits};
use wsserver::protocol::receiver::Receiver;
use wsserver_fuzz::{BINARY, CONTINUATION, Event, PING, TEXT, client_frame, feed, pieces};

#[derive(Arbitrary, Debug)]
enum Data {
    Text(String),
    Binary(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Message {
    data: Data,
    compress: bool,
    /// Frame payload sizes, in turn (0: the rest).
    fragments: Vec<u8>,
    /// A ping after the first fragment.
    ping_inside: Option<Vec<u8>>,
    mask: [u8; 4],
}

#[derive(Arbitrary, Debug)]
struct Input {
    deflate: bool,
    client_no_context_takeover: bool,
    messages: Vec<Message>,
    splits: Vec<u8>,
    pause_every: u8,
}

fuzz_target!(|input: Input| {
    let negotiated = Negotiated {
        // The client's compressor, modelled by the server's deflater.
        server_no_context_takeover: input.client_no_context_takeover,
        client_no_context_takeover: input.client_no_context_takeover,
        server_max_window_bits: WindowBits::MAX,
        client_max_window_bits: WindowBits::MAX,
    };
    let mut compressor = Deflater::new(&negotiated, &DeflateSettings::default());
    let (mut wire, mut expected) = (Vec::new(), Vec::new());
    for message in &input.messages {
        let (opcode, kind, data) = match &message.data {
            Data::Text(s) => (TEXT, MessageKind::Text, s.as_bytes()),
            Data::Binary(b) => (BINARY, MessageKind::Binary, b.as_slice()),
        };
        let compress = input.deflate && message.compress;
        let payload = if compress {
            let mut out = Vec::new();
            compressor.compress(data, &mut out).expect("compresses");
            out
        } else {
            data.to_vec()
        };
        let mut parts = pieces(&payload, &message.fragments).peekable();
        let mut first = true;
        while let Some(part) = parts.next() {
            let last = parts.peek().is_none();
            let op = if first { opcode } else { CONTINUATION };
            wire.extend(client_frame(
                op,
                last,
                first && compress,
                message.mask,
                part,
            ));
            if first
                && !last
                && let Some(ping) = &message.ping_inside
            {
                let ping = &ping[..ping.len().min(125)];
                wire.extend(client_frame(PING, true, false, message.mask, ping));
                expected.push(Event::Ping(ping.to_vec()));
            }
            first = false;
        }
        expected.push(Event::Message {
            kind,
            data: data.to_vec(),
        });
    }
    let inflater = input.deflate.then(|| Inflater::new(&negotiated));
    let mut receiver = Receiver::new(0, inflater);
    let record = feed(&mut receiver, &wire, &input.splits, input.pause_every);
    assert_eq!(record.failed, None, "a valid stream failed");
    assert!(record.partial.is_none(), "a message left incomplete");
    assert_eq!(record.events, expected);
});
