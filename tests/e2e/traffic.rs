//! Data flow through the native echo: message types, fragmentation both
//! ways, control frames, size, concurrency, admission and backpressure.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

#[tokio::test]
async fn text_binary_and_empty_messages_are_echoed_with_their_type() {
    let server = ServerProcess::start(&[]).await;
    let mut ws = ws_connect(&server.url).await;
    let messages = [
        Message::text("héllo wörld €𝄞"),
        Message::binary(vec![0u8, 1, 2, 255]),
        Message::text(""),
        Message::binary(Vec::new()),
    ];
    for m in messages {
        ws.send(m.clone()).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), m);
    }
}

#[tokio::test]
async fn fragments_are_reassembled_and_control_frames_may_interleave() {
    let server = ServerProcess::start(&[]).await;
    let mut c = RawClient::connect(server.addr).await;
    let wire = [
        masked(0x01, "frag".as_bytes()),
        masked(0x89, b"mid-ping"),
        masked(0x00, "men".as_bytes()),
        masked(0x80, "ted €".as_bytes()),
    ]
    .concat();
    // Byte by byte, so every split point is crossed.
    for b in wire {
        c.stream.write_all(&[b]).await.unwrap();
    }
    let pong = c.read_frame().await.unwrap();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (10, &b"mid-ping"[..])
    );
    let echo = c.read_frame().await.unwrap();
    assert_eq!((echo.fin, echo.opcode), (true, 1));
    assert_eq!(echo.payload, "fragmented €".as_bytes());
}

#[tokio::test]
async fn pings_get_pongs_with_the_same_payload_and_pongs_get_nothing() {
    let server = ServerProcess::start(&[]).await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(&masked(0x8A, b"unsolicited")).await;
    c.send(&masked(0x89, &[9; 125])).await;
    let pong = c.read_frame().await.unwrap();
    assert_eq!((pong.opcode, pong.payload), (10, vec![9; 125]));
}

#[tokio::test]
async fn max_frame_size_fragments_outgoing_messages() {
    for echo in [&[][..], &["--native-echo"][..]] {
        let server = ServerProcess::start(&[&["--set", "MaxFrameSize=10"], echo].concat()).await;
        let mut c = RawClient::connect(server.addr).await;
        let message: Vec<u8> = (0..25).collect();
        // Alone in a read, and two in one (answered from the connection's
        // own turn).
        for count in [1, 2] {
            c.send(&masked(0x82, &message).repeat(count)).await;
            for _ in 0..count {
                let mut frames = Vec::new();
                for _ in 0..3 {
                    frames.push(c.read_frame().await.unwrap());
                }
                let shape: Vec<(bool, u8, usize)> = frames
                    .iter()
                    .map(|f| (f.fin, f.opcode, f.payload.len()))
                    .collect();
                assert_eq!(
                    shape,
                    [(false, 2, 10), (false, 0, 10), (true, 0, 5)],
                    "{echo:?}"
                );
                let echoed: Vec<u8> = frames.iter().flat_map(|f| f.payload.clone()).collect();
                assert_eq!(echoed, message, "{echo:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_16_mib_message_round_trips() {
    // Through the echo plugin. The deadline counts CPU time, so waiting for
    // a core does not end the call, but a debug build on a busy machine
    // spends up to ~210 ms of CPU on one 16 MiB batch (measured: 214 ms,
    // with 1.8 s waiting for a core), so this tenant gets 2 s.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("echo.toml");
    std::fs::write(
        &config,
        "[[tenant]]\nname = \"echo\"\nfile = \"builtin:echo\"\nroute = \"/\"\ndeadline_ms = 2000\n",
    )
    .unwrap();
    let server = ServerProcess::start(&["--config", &config.display().to_string()]).await;
    let mut ws = ws_connect(&server.url).await;
    let big: Vec<u8> = (0..16 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(30), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(reply.into_data() == big);
}

#[tokio::test]
async fn many_concurrent_clients_each_get_their_own_echoes_in_order() {
    let server = ServerProcess::start(&[]).await;
    let mut tasks = Vec::new();
    for client in 0..50 {
        let url = server.url.clone();
        tasks.push(tokio::spawn(async move {
            let mut ws = ws_connect(&url).await;
            for i in 0..40 {
                ws.send(Message::text(format!("{client}:{i}")))
                    .await
                    .unwrap();
            }
            for i in 0..40 {
                let m = ws.next().await.unwrap().unwrap();
                assert_eq!(m, Message::text(format!("{client}:{i}")));
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(WAIT, t)
            .await
            .expect("in time")
            .unwrap();
    }
}

#[tokio::test]
async fn max_connections_refuses_extra_clients_with_503() {
    let server = ServerProcess::start(&["--set", "MaxConnections=2"]).await;
    let _a = RawClient::connect(server.addr).await;
    let mut b = RawClient::connect(server.addr).await;
    let mut c = RawClient::tcp(server.addr).await;
    c.send(UPGRADE_REQUEST.as_bytes()).await;
    let response = c.read_http_response().await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    // A slot frees when a client leaves.
    b.send(&masked(0x88, &1000u16.to_be_bytes())).await;
    assert!(b.closed_within(WAIT).await);
    let mut ws = ws_connect(&server.url).await;
    assert_echo(&mut ws, "my turn").await;
}

#[tokio::test]
async fn allowed_and_blocked_clients_filter_by_address() {
    for args in [
        &["--set", "AllowedClients=10.*"][..],
        &["--set", "BlockedClients=127.0.0.*"][..],
    ] {
        let server = ServerProcess::start(args).await;
        let mut c = RawClient::tcp(server.addr).await;
        c.send(UPGRADE_REQUEST.as_bytes()).await;
        assert_eq!(
            c.read_http_response().await,
            "",
            "{args:?}: refused clients get no response"
        );
    }
    let server = ServerProcess::start(&[
        "--set",
        "AllowedClients=10.0.0.0/8, 127.0.0.*",
        "--set",
        "BlockedClients=127.0.0.2",
    ])
    .await;
    let mut ws = ws_connect(&server.url).await;
    assert_echo(&mut ws, "allowed").await;
}

#[tokio::test]
async fn a_client_that_never_reads_costs_bounded_memory_and_loses_nothing() {
    let server = ServerProcess::start(&["--set", "MaxSendQueue=262144"]).await;
    let (mut hog, _) = tokio_tungstenite::connect_async(&server.url).await.unwrap();
    let before = server.rss_kib();
    // 64 MiB of echo traffic while not reading any reply.
    let payload = vec![7u8; 64 * 1024];
    let sent = tokio::time::timeout(Duration::from_secs(3), async {
        let mut n = 0usize;
        loop {
            hog.send(Message::binary(payload.clone())).await.unwrap();
            n += 1;
            if n == 1024 {
                return n;
            }
        }
    })
    .await
    .unwrap_or(0);
    assert_eq!(
        sent, 0,
        "the server kept reading although the client never reads"
    );
    let grown = server.rss_kib().saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "server grew by {grown} KiB for one stalled client"
    );
    // Others are served meanwhile.
    let mut other = ws_connect(&server.url).await;
    assert_echo(&mut other, "unaffected").await;
}

#[tokio::test]
async fn a_slow_reader_gets_every_echo_in_order() {
    let server = ServerProcess::start(&["--set", "MaxSendQueue=65536"]).await;
    let ws = ws_connect(&server.url).await;
    let (mut tx, mut rx) = ws.split();
    const COUNT: usize = 300;
    let writer = tokio::spawn(async move {
        for i in 0..COUNT {
            let mut m = vec![(i % 256) as u8; 16 * 1024];
            m[..8].copy_from_slice(&(i as u64).to_be_bytes());
            tx.send(Message::binary(m)).await.unwrap();
        }
        tx
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..COUNT {
        let m = tokio::time::timeout(WAIT, rx.next())
            .await
            .expect("echo in time")
            .unwrap()
            .unwrap();
        let data = m.into_data();
        assert_eq!(u64::from_be_bytes(data[..8].try_into().unwrap()), i as u64);
        assert_eq!(data.len(), 16 * 1024);
    }
    drop(writer.await.unwrap());
}

/// Replies of many sizes (below, at and above the sizes where the server
/// gathers small frames and where it frames larger ones on their own),
/// pipelined and read late, so some wait in the server's queue: byte for
/// byte and in order.
#[tokio::test]
async fn echoes_of_every_size_come_back_byte_for_byte_when_read_late() {
    for echo in [&[][..], &["--native-echo"][..]] {
        let server = ServerProcess::start(&[&["--set", "MaxSendQueue=65536"], echo].concat()).await;
        let ws = ws_connect(&server.url).await;
        let (mut tx, mut rx) = ws.split();
        let sizes = [1usize, 2047, 2048, 4096, 16_383, 16_384, 65_536, 100];
        let messages: Vec<Vec<u8>> = (0..64)
            .map(|i| {
                let size = sizes[i % sizes.len()];
                (0..size).map(|b| (b * 7 + i) as u8).collect()
            })
            .collect();
        let sent = messages.clone();
        let writer = tokio::spawn(async move {
            for m in sent {
                tx.send(Message::binary(m)).await.unwrap();
            }
            tx
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        for (i, expected) in messages.iter().enumerate() {
            let m = tokio::time::timeout(WAIT, rx.next())
                .await
                .expect("echo in time")
                .unwrap()
                .unwrap();
            assert!(m.into_data() == expected[..], "echo {i} differs, {echo:?}");
        }
        drop(writer.await.unwrap());
    }
}

/// Small messages in one write with a close frame after them, on several
/// connections at once: every echo comes back in order on its own
/// connection, before the close reply (the plugin handles its events after
/// the session has read the close frame). Bursts of 64 make one read whose
/// replies wait for the other connections ready at the same time; parking
/// is off, so no periodic wake-up of idle connections can stand in for the
/// connection's own.
#[tokio::test]
async fn messages_pipelined_in_one_write_are_echoed_in_order_before_the_close() {
    let plugin = ["--set", "ParkDelay=0"];
    let native = ["--set", "ParkDelay=0", "--native-echo"];
    for args in [&plugin[..], &native[..]] {
        let server = ServerProcess::start(args).await;
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(RawClient::connect(server.addr).await);
        }
        let burst = |client: usize| -> Vec<Vec<u8>> {
            (0..[3, 64][client % 2])
                .map(|i| format!("{client}:{i}").into_bytes())
                .collect()
        };
        for (c, client) in clients.iter_mut().enumerate() {
            let mut bytes: Vec<u8> = burst(c).iter().flat_map(|m| masked(0x82, m)).collect();
            bytes.extend(masked(0x88, &1000u16.to_be_bytes()));
            client.send(&bytes).await;
        }
        for (c, client) in clients.iter_mut().enumerate() {
            for expected in burst(c) {
                let frame = client.read_frame().await.expect("an echo");
                assert_eq!((frame.opcode, frame.payload), (2, expected), "{args:?}");
            }
            assert_eq!(client.expect_close().await, Some(1000), "{args:?}");
        }
    }
}
