//! permessage-deflate (RFC 7692) end to end: negotiation of every
//! parameter, compressed traffic both ways checked with an independent
//! DEFLATE implementation (flate2's miniz_oxide backend), the frame rules
//! (RSV1 on a message's first frame only, control frames never
//! compressed), limits on the inflated size, invalid data, and clients
//! that do not offer the extension.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use wsserver::{
    BoxFuture, Connection, DataFormat, DataIn, Handler, MessageKind, OpenRequest, OpenResponse,
    WsServer,
};

use crate::common::*;

/// The bytes a sender removes from the end of each compressed message.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Opens a connection offering `extensions` (one header per item); returns
/// the client and the server's Sec-WebSocket-Extensions answer, if any.
async fn open(addr: SocketAddr, extensions: &[&str]) -> (RawClient, Option<String>) {
    let mut c = RawClient::tcp(addr).await;
    let headers: String = extensions
        .iter()
        .map(|value| format!("Sec-WebSocket-Extensions: {value}\r\n"))
        .collect();
    let request = UPGRADE_REQUEST.replacen("\r\n\r\n", &format!("\r\n{headers}\r\n"), 1);
    c.send(request.as_bytes()).await;
    let head = c.read_http_head().await;
    assert!(head.starts_with("HTTP/1.1 101"), "refused: {head}");
    let answer = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-extensions")
            .then(|| value.trim().to_owned())
    });
    (c, answer)
}

/// A client's compressor: raw DEFLATE, sync flush, tail removed.
struct ClientDeflate(Compress);

impl ClientDeflate {
    fn new() -> Self {
        Self(Compress::new(Compression::default(), false))
    }

    fn best() -> Self {
        Self(Compress::new(Compression::best(), false))
    }

    /// Compresses `data` as (part of) a message; `flush` ends the part.
    fn push(&mut self, data: &[u8], flush: bool, out: &mut Vec<u8>) {
        let mode = if flush {
            FlushCompress::Sync
        } else {
            FlushCompress::None
        };
        let mut read = 0;
        loop {
            out.reserve(64 * 1024);
            let before = self.0.total_in();
            self.0.compress_vec(&data[read..], out, mode).unwrap();
            read += (self.0.total_in() - before) as usize;
            if read == data.len() && out.len() < out.capacity() {
                return;
            }
        }
    }

    fn message(&mut self, message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.push(message, true, &mut out);
        assert!(out.ends_with(&TAIL));
        out.truncate(out.len() - TAIL.len());
        out
    }
}

/// A client's decompressor for the server's messages.
struct ClientInflate(Decompress);

impl ClientInflate {
    fn new() -> Self {
        Self(Decompress::new(false))
    }

    fn message(&mut self, payload: &[u8]) -> Vec<u8> {
        let input = [payload, &TAIL].concat();
        let mut out = Vec::new();
        let mut read = 0;
        loop {
            out.reserve(64 * 1024);
            let before = self.0.total_in();
            self.0
                .decompress_vec(&input[read..], &mut out, FlushDecompress::Sync)
                .expect("the server's compressed data inflates");
            read += (self.0.total_in() - before) as usize;
            if read == input.len() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

/// One message from the server, checked frame by frame.
#[derive(Debug)]
struct Received {
    opcode: u8,
    compressed: bool,
    frames: usize,
    /// The payloads joined, as on the wire.
    payload: Vec<u8>,
}

impl Received {
    /// The message's data, inflated if it was compressed.
    fn data(&self, inflater: &mut ClientInflate) -> Vec<u8> {
        if self.compressed {
            inflater.message(&self.payload)
        } else {
            self.payload.clone()
        }
    }
}

/// Reads one data message: RSV1 may be set on its first frame only, and
/// only when compressed; control frames never carry it.
async fn read_message(c: &mut RawClient) -> Received {
    let mut message: Option<Received> = None;
    loop {
        let f = c.read_frame().await.expect("a frame");
        if f.opcode >= 8 {
            assert_eq!(f.rsv, 0, "control frame with RSV bits: {f:?}");
            assert_ne!(f.opcode, 8, "closed: {:?}", f.close_code());
            continue;
        }
        match message.as_mut() {
            None => {
                assert!(f.opcode == 1 || f.opcode == 2, "{f:?}");
                assert!(f.rsv == 0 || f.rsv == 4, "RSV2/RSV3 set: {f:?}");
                message = Some(Received {
                    opcode: f.opcode,
                    compressed: f.rsv == 4,
                    frames: 0,
                    payload: Vec::new(),
                });
            }
            Some(_) => {
                assert_eq!(f.opcode, 0, "{f:?}");
                assert_eq!(f.rsv, 0, "RSV1 on a continuation frame");
            }
        }
        let m = message.as_mut().expect("started");
        m.frames += 1;
        m.payload.extend_from_slice(&f.payload);
        if f.fin {
            return message.expect("started");
        }
    }
}

/// Reads until the close frame; returns its code. Compressed data frames
/// before it are fine.
async fn close_code(c: &mut RawClient) -> Option<u16> {
    loop {
        let f = c
            .read_frame()
            .await
            .expect("server closed the connection without a close frame");
        if f.opcode == 8 {
            assert_eq!(f.rsv, 0, "close frame with RSV bits");
            return f.close_code();
        }
    }
}

/// Compressible text: JSON-like records with varying numbers.
fn json(records: usize) -> Vec<u8> {
    let mut out = String::from("[");
    for i in 0..records {
        out.push_str(&format!(
            r#"{{"id":{i},"user":"user{}","text":"message number {} in the room é€"}},"#,
            i % 17,
            i * 7919 % 1000
        ));
    }
    out.push(']');
    out.into_bytes()
}

#[tokio::test]
async fn negotiation_answers_each_offer_as_rfc_7692_says() {
    let shared = ServerProcess::start(&[]).await;
    let dedicated = ServerProcess::start(&["--set", "DeflateMemoryMode=Dedicated"]).await;
    let limited = ServerProcess::start(&[
        "--set",
        "DeflateMemoryMode=Dedicated",
        "--set",
        "DeflateClientMaxWindowBits=10",
        "--set",
        "DeflateServerMaxWindowBits=12",
    ])
    .await;
    let disabled = ServerProcess::start(&["--set", "EnablePermessageDeflate=False"]).await;
    let pmd = "permessage-deflate";
    let cases: Vec<(&ServerProcess, Vec<&str>, Option<&str>)> = vec![
        // The default memory mode keeps no state: no takeover either way.
        (
            &shared,
            vec![pmd],
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ),
        (&dedicated, vec![pmd], Some(pmd)),
        (
            &dedicated,
            vec!["permessage-deflate; server_no_context_takeover"],
            Some("permessage-deflate; server_no_context_takeover"),
        ),
        (
            &dedicated,
            vec!["permessage-deflate; client_no_context_takeover"],
            Some("permessage-deflate; client_no_context_takeover"),
        ),
        // server_max_window_bits: a value is required and honoured.
        (
            &dedicated,
            vec!["permessage-deflate; server_max_window_bits=10"],
            Some("permessage-deflate; server_max_window_bits=10"),
        ),
        (
            &dedicated,
            vec!["permessage-deflate; server_max_window_bits"],
            None,
        ),
        (
            &dedicated,
            vec!["permessage-deflate; server_max_window_bits=16"],
            None,
        ),
        (
            &limited,
            vec!["permessage-deflate; server_max_window_bits=14"],
            Some("permessage-deflate; server_max_window_bits=12"),
        ),
        // The server announces its smaller window unasked.
        (
            &limited,
            vec![pmd],
            Some("permessage-deflate; server_max_window_bits=12"),
        ),
        // client_max_window_bits: without a value the server may choose.
        (
            &dedicated,
            vec!["permessage-deflate; client_max_window_bits"],
            Some(pmd),
        ),
        (
            &limited,
            vec!["permessage-deflate; client_max_window_bits"],
            Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=10"),
        ),
        (
            &dedicated,
            vec!["permessage-deflate; client_max_window_bits=9"],
            Some("permessage-deflate; client_max_window_bits=9"),
        ),
        (
            &limited,
            vec!["permessage-deflate; client_max_window_bits=15"],
            Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=10"),
        ),
        // A client that did not offer it cannot be limited.
        (
            &limited,
            vec!["permessage-deflate; server_max_window_bits=9"],
            Some("permessage-deflate; server_max_window_bits=9"),
        ),
        // Unknown or repeated parameters decline that offer only.
        (&dedicated, vec!["permessage-deflate; foo"], None),
        (
            &dedicated,
            vec!["permessage-deflate; client_no_context_takeover; client_no_context_takeover"],
            None,
        ),
        (
            &dedicated,
            vec!["permessage-deflate; mux=1, permessage-deflate; server_max_window_bits=11"],
            Some("permessage-deflate; server_max_window_bits=11"),
        ),
        (
            &dedicated,
            vec![
                "x-webkit-deflate-frame",
                "permessage-deflate; foo=bar",
                "permessage-deflate; client_no_context_takeover",
            ],
            Some("permessage-deflate; client_no_context_takeover"),
        ),
        (&dedicated, vec!["x-webkit-deflate-frame"], None),
        (&dedicated, vec![], None),
        (&disabled, vec![pmd], None),
    ];
    for (server, offers, expected) in cases {
        let (mut c, answer) = open(server.addr, &offers).await;
        assert_eq!(answer.as_deref(), expected, "offers {offers:?}");
        // Whatever was agreed, traffic flows: a compressed message when
        // agreed, a plain one otherwise.
        let message = json(200);
        let mut inflater = ClientInflate::new();
        if answer.is_some() {
            c.send(&masked(0xC1, &ClientDeflate::new().message(&message)))
                .await;
            let echo = read_message(&mut c).await;
            assert!(echo.compressed, "offers {offers:?}");
            assert_eq!(echo.data(&mut inflater), message, "offers {offers:?}");
        } else {
            c.send(&masked(0x81, &message)).await;
            let echo = read_message(&mut c).await;
            assert!(!echo.compressed, "offers {offers:?}");
            assert_eq!(echo.payload, message, "offers {offers:?}");
        }
    }
}

#[tokio::test]
async fn the_settings_are_listed_and_taken_from_the_toml_file() {
    let out = run_to_exit(&["--list-settings"]).await;
    let listed = String::from_utf8_lossy(&out.stdout);
    for key in [
        "EnablePermessageDeflate",
        "DeflateThreshold",
        "DeflateCompressionLevel",
        "DeflateMemLevel",
        "DeflateServerMaxWindowBits",
        "DeflateClientMaxWindowBits",
        "DeflateServerNoContextTakeover",
        "DeflateClientNoContextTakeover",
        "DeflateMemoryMode",
    ] {
        assert!(
            listed.lines().any(|line| line.starts_with(key)),
            "{key} missing from {listed}"
        );
    }
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::io::Write::write_all(
        &mut file,
        b"[settings]\nDeflateMemoryMode = \"Dedicated\"\nDeflateServerMaxWindowBits = 11\n",
    )
    .unwrap();
    let path = file.path().to_str().unwrap();
    let server = ServerProcess::start(&["--config", path]).await;
    let (_, answer) = open(server.addr, &["permessage-deflate"]).await;
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; server_max_window_bits=11")
    );
    let out = run_to_exit(&["--set", "DeflateMemoryMode=pooled"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("DeflateMemoryMode") && err.contains("\"pooled\""),
        "{err}"
    );
}

#[tokio::test]
async fn compressed_traffic_round_trips_with_context_takeover_both_ways() {
    let server = ServerProcess::start(&[
        "--set",
        "DeflateMemoryMode=Dedicated",
        "--set",
        "MaxFrameSize=500",
    ])
    .await;
    let (mut c, answer) = open(server.addr, &["permessage-deflate"]).await;
    assert_eq!(answer.as_deref(), Some("permessage-deflate"));
    let mut deflater = ClientDeflate::new();
    let mut inflater = ClientInflate::new();
    let message = json(300);

    // One compressed frame in; compressed frames of at most MaxFrameSize
    // out, RSV1 on the first.
    let once = deflater.message(&message);
    c.send(&masked(0xC1, &once)).await;
    let first = read_message(&mut c).await;
    assert!(first.compressed && first.opcode == 1);
    assert!(first.frames > 1, "compressed {} bytes", first.payload.len());
    assert!(first.payload.len() < message.len() / 3);
    assert_eq!(first.data(&mut inflater), message);

    // The same message again: both sides refer back to the first copy.
    let again = deflater.message(&message);
    assert!(
        again.len() * 4 < once.len(),
        "client: {}, {}",
        again.len(),
        once.len()
    );
    c.send(&masked(0xC1, &again)).await;
    let second = read_message(&mut c).await;
    assert!(
        second.payload.len() * 4 < first.payload.len(),
        "server: {}, {}",
        second.payload.len(),
        first.payload.len()
    );
    assert_eq!(second.data(&mut inflater), message);

    // A compressed message in three fragments, RSV1 on the first only,
    // with a ping between them.
    let binary: Vec<u8> = json(100).iter().rev().copied().collect();
    let compressed = deflater.message(&binary);
    let (a, rest) = compressed.split_at(compressed.len() / 3);
    let (b, d) = rest.split_at(rest.len() / 2);
    let wire = [
        masked(0x42, a),
        masked(0x00, b),
        masked(0x89, b"between"),
        masked(0x80, d),
    ]
    .concat();
    c.send(&wire).await;
    let pong = c.read_frame().await.unwrap();
    assert_eq!((pong.opcode, pong.rsv), (10, 0));
    assert_eq!(pong.payload, b"between");
    let echo = read_message(&mut c).await;
    assert_eq!(echo.opcode, 2);
    assert_eq!(echo.data(&mut inflater), binary);

    // An uncompressed message in the middle of a compressed stream.
    c.send(&masked(0x81, b"plain")).await;
    let plain = read_message(&mut c).await;
    assert_eq!(
        (plain.compressed, plain.payload.as_slice()),
        (false, &b"plain"[..])
    );

    c.send(&masked(0x88, &1000u16.to_be_bytes())).await;
    assert_eq!(close_code(&mut c).await, Some(1000));
}

#[tokio::test]
async fn messages_below_the_threshold_go_out_uncompressed() {
    for echo in [&[][..], &["--native-echo"][..]] {
        let args = [&["--set", "DeflateThreshold=1000"], echo].concat();
        let server = ServerProcess::start(&args).await;
        let (mut c, _) = open(server.addr, &["permessage-deflate"]).await;
        let mut inflater = ClientInflate::new();
        for (len, compressed) in [(0, false), (999, false), (1000, true), (5000, true)] {
            let message = vec![b'a'; len];
            // The server decides for itself, whether the client compressed
            // the message or not. Twice in one write: a read of several
            // frames is answered from the connection's own turn.
            for sent in [
                masked(0xC2, &ClientDeflate::new().message(&message)),
                masked(0x82, &message),
            ] {
                c.send(&sent.repeat(2)).await;
                for _ in 0..2 {
                    let echo = read_message(&mut c).await;
                    assert_eq!(echo.compressed, compressed, "{len} bytes, {args:?}");
                    assert_eq!(echo.data(&mut inflater), message, "{len} bytes, {args:?}");
                }
            }
        }
    }
    // Threshold 0: even an empty message is compressed.
    let server = ServerProcess::start(&["--set", "DeflateThreshold=0"]).await;
    let (mut c, _) = open(server.addr, &["permessage-deflate"]).await;
    c.send(&masked(0x81, b"")).await;
    let echo = read_message(&mut c).await;
    assert!(echo.compressed);
    assert_eq!(echo.data(&mut ClientInflate::new()), b"");
}

#[tokio::test]
async fn rsv1_where_rfc_7692_forbids_it_closes_with_1002() {
    let server = ServerProcess::start(&[]).await;
    let compressed = ClientDeflate::new().message(b"hello hello hello");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("ping", masked(0xC9, b"x")),
        ("pong", masked(0xCA, b"")),
        ("close", masked(0xC8, &1000u16.to_be_bytes())),
        (
            "continuation",
            [
                masked(0x41, &compressed[..3]),
                masked(0xC0, &compressed[3..]),
            ]
            .concat(),
        ),
        (
            "continuation of a plain message",
            [masked(0x01, b"a"), masked(0xC0, b"b")].concat(),
        ),
    ];
    for (what, wire) in cases {
        let (mut c, answer) = open(server.addr, &["permessage-deflate"]).await;
        assert!(answer.is_some());
        c.send(&wire).await;
        assert_eq!(close_code(&mut c).await, Some(1002), "RSV1 on {what}");
    }
    // Without the extension, RSV1 is never allowed.
    let (mut c, answer) = open(server.addr, &[]).await;
    assert_eq!(answer, None);
    c.send(&masked(0xC1, &compressed)).await;
    assert_eq!(close_code(&mut c).await, Some(1002));
    let disabled = ServerProcess::start(&["--set", "EnablePermessageDeflate=False"]).await;
    let (mut c, answer) = open(disabled.addr, &["permessage-deflate"]).await;
    assert_eq!(answer, None);
    c.send(&masked(0xC1, &compressed)).await;
    assert_eq!(close_code(&mut c).await, Some(1002));
}

#[tokio::test]
async fn a_decompression_bomb_gets_1009_early_and_costs_bounded_memory() {
    let server = ServerProcess::start(&["--set", "MaxMessageSize=1048576"]).await;
    // 256 MiB of zeros, compressed to about 256 KB: within the limit on the
    // wire, 256 times over it inflated.
    let mut bomb = Vec::new();
    let mut deflater = ClientDeflate::best();
    let zeros = vec![0u8; 1 << 20];
    for i in 0..256 {
        deflater.push(&zeros, i == 255, &mut bomb);
    }
    bomb.truncate(bomb.len() - TAIL.len());
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let rss_before = server.rss_kib();

    let (mut c, _) = open(server.addr, &["permessage-deflate"]).await;
    let wire = masked(0xC2, &bomb);
    // Only the header and the first 16 KB: the limit is reached long
    // before the payload's end, and the server does not wait for it.
    let header_len = wire.len() - bomb.len();
    c.send(&wire[..header_len + 16 * 1024]).await;
    assert_eq!(close_code(&mut c).await, Some(1009));
    let growth = server.rss_kib().saturating_sub(rss_before);
    assert!(growth < 16 * 1024, "RSS grew by {growth} KiB");

    // A message inflating to exactly the limit is fine.
    let (mut c, _) = open(server.addr, &["permessage-deflate"]).await;
    let at_limit = vec![0u8; 1 << 20];
    c.send(&masked(0xC2, &ClientDeflate::new().message(&at_limit)))
        .await;
    let echo = read_message(&mut c).await;
    assert_eq!(echo.data(&mut ClientInflate::new()), at_limit);
}

#[tokio::test]
async fn invalid_compressed_data_closes_with_1007() {
    let server = ServerProcess::start(&[]).await;
    let mut deflater = ClientDeflate::new();
    let first = deflater.message(&json(50));
    // Refers back into a message the server never saw.
    let dependent = deflater.message(&json(50));
    let cases: [(&str, Vec<u8>); 3] = [
        ("reserved block type", vec![0xff, 0xff, 0xff]),
        (
            "stored length mismatch",
            vec![0x00, 0x05, 0x00, 0x00, 0x00, b'H'],
        ),
        ("distance too far back", dependent),
    ];
    for (what, payload) in cases {
        let (mut c, _) = open(server.addr, &["permessage-deflate"]).await;
        c.send(&masked(0xC2, &payload)).await;
        assert_eq!(close_code(&mut c).await, Some(1007), "{what}");
    }
    // Invalid UTF-8 inside compressed text is 1007 too.
    let (mut c, _) = open(server.addr, &["permessage-deflate"]).await;
    let bad = ClientDeflate::new().message(&[b'o', b'k', 0xED, 0xA0, 0x80]);
    c.send(&masked(0xC1, &bad)).await;
    assert_eq!(close_code(&mut c).await, Some(1007));
    // And the valid first message alone was fine.
    let (mut c, _) = open(server.addr, &["permessage-deflate"]).await;
    c.send(&masked(0xC1, &first)).await;
    assert_eq!(
        read_message(&mut c).await.data(&mut ClientInflate::new()),
        json(50)
    );
}

#[tokio::test]
async fn tokio_tungstenite_without_deflate_gets_plain_frames() {
    let server = ServerProcess::start(&["--set", "DeflateThreshold=0"]).await;
    let (mut ws, response) = tokio_tungstenite::connect_async(&server.url)
        .await
        .expect("connect");
    assert!(
        response.headers().get("sec-websocket-extensions").is_none(),
        "{response:?}"
    );
    // tungstenite fails on any RSV1 frame, so each echo arriving proves it
    // was sent uncompressed.
    let messages = [
        Message::text(String::from_utf8(json(500)).unwrap()),
        Message::binary(vec![7u8; 300_000]),
        Message::text(""),
    ];
    for m in messages {
        ws.send(m.clone()).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), m);
    }
}

/// Sends each message back in three parts as one MessageLength message,
/// and once more through `send_shared` (the broadcast path). Keeps the
/// Extensions each open request showed.
#[derive(Default)]
struct PartsEcho {
    extensions: Mutex<Vec<String>>,
}

impl Handler for PartsEcho {
    fn open_request(
        &self,
        _conn: &Connection,
        request: Arc<OpenRequest>,
    ) -> BoxFuture<OpenResponse> {
        self.extensions.lock().unwrap().push(request.extensions());
        Box::pin(std::future::ready(OpenResponse::accept()))
    }

    fn data_in(&self, conn: &Connection, data: &DataIn<'_>) {
        assert!(data.eom && data.format == DataFormat::Text);
        let text = data.data;
        let server = conn.server();
        server
            .config(&format!("MessageLength[{}]={}", conn.id(), text.len()))
            .unwrap();
        let third = text.len() / 3;
        for part in [&text[..third], &text[third..2 * third], &text[2 * third..]] {
            conn.send_text(std::str::from_utf8(part).unwrap()).unwrap();
        }
        conn.send_shared(MessageKind::Text, Bytes::copy_from_slice(text))
            .unwrap();
    }
}

#[tokio::test]
async fn message_length_parts_form_one_compressed_message_and_broadcasts_stay_plain() {
    let handler = Arc::new(PartsEcho::default());
    let server = WsServer::with_settings(handler.clone(), Default::default());
    server.config("LocalHost=127.0.0.1").unwrap();
    server.config("LocalPort=0").unwrap();
    server.config("DeflateThreshold=1500").unwrap();
    server.start_listening().await.unwrap();
    let addr = server.local_addr().unwrap();
    let offers = [
        "x-custom; p=1",
        "permessage-deflate; client_max_window_bits",
    ];
    let (mut c, answer) = open(addr, &offers).await;
    assert!(answer.is_some());
    // The handler saw the client's offer as sent, not what was agreed.
    assert_eq!(
        *handler.extensions.lock().unwrap(),
        ["x-custom; p=1, permessage-deflate; client_max_window_bits"]
    );
    let mut inflater = ClientInflate::new();
    // Parts of 1000 bytes, a message of 3000: compressed, as the whole
    // message reaches the threshold.
    let message = vec![b'm'; 3000];
    c.send(&masked(0x81, &message)).await;
    let parts = read_message(&mut c).await;
    assert!(parts.compressed, "{parts:?}");
    assert_eq!(parts.frames, 3);
    assert_eq!(parts.data(&mut inflater), message);
    let shared = read_message(&mut c).await;
    assert!(!shared.compressed);
    assert_eq!(shared.payload, message);
    // A message below the threshold stays plain in parts too.
    let small = vec![b's'; 1200];
    c.send(&masked(0x81, &small)).await;
    let parts = read_message(&mut c).await;
    assert!(!parts.compressed && parts.frames == 3);
    assert_eq!(parts.payload, small);
    let _ = read_message(&mut c).await;
    server.shutdown().await;
}

/// Holds data back after every piece and lets it flow again a moment
/// later, as a handler waiting on something would; echoes whole messages.
#[derive(Default)]
struct Stutter {
    message: Mutex<Vec<u8>>,
    pieces: Mutex<usize>,
}

impl Handler for Stutter {
    fn data_in(&self, conn: &Connection, data: &DataIn<'_>) {
        *self.pieces.lock().unwrap() += 1;
        let mut message = self.message.lock().unwrap();
        message.extend_from_slice(data.data);
        if data.eom {
            conn.send_bytes(&message).unwrap();
            message.clear();
        }
        conn.pause_data();
        let conn = conn.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            conn.resume_data();
        });
    }
}

#[tokio::test]
async fn data_held_back_mid_message_resumes_where_it_stopped() {
    let handler = Arc::new(Stutter::default());
    let server = WsServer::with_settings(handler.clone(), Default::default());
    server.config("LocalHost=127.0.0.1").unwrap();
    server.config("LocalPort=0").unwrap();
    server.start_listening().await.unwrap();
    let (mut c, _) = open(server.local_addr().unwrap(), &["permessage-deflate"]).await;
    // A big message pauses after each of its pieces. Then messages one
    // byte longer than an inflated piece (16 KiB), all in one write: when
    // the handler pauses after the first piece of the last one, all input
    // is read and its last byte waits in the inflater, which must go on
    // with no more input.
    let mut messages = vec![json(3000)];
    messages.extend((1..=3u8).map(|i| vec![i; 16 * 1024 + 1]));
    let wire: Vec<u8> = messages
        .iter()
        .flat_map(|m| masked(0xC2, &ClientDeflate::new().message(m)))
        .collect();
    c.send(&wire).await;
    let mut inflater = ClientInflate::new();
    for message in &messages {
        assert_eq!(&read_message(&mut c).await.data(&mut inflater), message);
    }
    let pieces = *handler.pieces.lock().unwrap();
    assert!(pieces >= 3 * 2 + 13, "{pieces} pieces");
    server.shutdown().await;
}

/// A compressing connection at rest parks (see tests/e2e/parking.rs) when
/// it keeps no compression context (`Shared`, the default) and comes back
/// compressing; with context takeover (`Dedicated`) it keeps its zlib state
/// and never parks.
#[tokio::test]
async fn a_compressing_connection_parks_only_without_a_context_to_keep() {
    for (mode, parks) in [("Shared", 1.0), ("Dedicated", 0.0)] {
        let mut server = ServerProcess::start(&[
            "--admin",
            "127.0.0.1:0",
            "--set",
            "ParkDelay=100",
            "--set",
            &format!("DeflateMemoryMode={mode}"),
        ])
        .await;
        let admin = server.admin_url().await;
        let (mut c, answer) = open(server.addr, &["permessage-deflate"]).await;
        assert!(answer.is_some(), "{mode}: not negotiated");
        let message = json(50);
        let mut inflater = ClientInflate::new();
        for round in 0..3 {
            c.send(&masked(0xC1, &ClientDeflate::new().message(&message)))
                .await;
            let echo = read_message(&mut c).await;
            assert!(echo.compressed, "{mode}, round {round}");
            assert_eq!(echo.data(&mut inflater), message, "{mode}, round {round}");
            // Six ticks of ParkDelay: parked by then, if it parks at all.
            tokio::time::sleep(std::time::Duration::from_millis(600)).await;
            assert_eq!(
                metric(&admin, "wsserver_connections_parked").await,
                Some(parks),
                "{mode}, round {round}"
            );
        }
    }
}
