//! Sending: Send/SendBytes/SendText and DataFormat, MaxFrameSize,
//! MessageLength, and the send queue (MaxSendQueue, would-block,
//! BytesSent, ReadyToSend).

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use wsserver::MessageKind;
use wsserver::SendFormat;

use crate::common::*;
use crate::harness::*;

/// The next frame as (fin, opcode, payload).
async fn next_frame(c: &mut RawClient) -> (bool, u8, Vec<u8>) {
    let f = c.read_frame().await.expect("a frame");
    (f.fin, f.opcode, f.payload)
}

#[tokio::test]
async fn ready_to_send_fires_right_after_connected() {
    let mut t = server().start().await;
    let _c = RawClient::connect(t.addr).await;
    assert!(matches!(
        t.events.next().await,
        Event::ConnectionRequest { .. }
    ));
    assert!(matches!(t.events.next().await, Event::OpenRequest(_)));
    let Event::Connected(id) = t.events.next().await else {
        panic!("no Connected after the open request");
    };
    assert!(matches!(t.events.next().await, Event::ReadyToSend(r) if r == id));
    assert!(t.conn(id).info().ready_to_send);
}

#[tokio::test]
async fn send_text_and_send_bytes_choose_the_frame_type_and_set_bytes_sent() {
    let mut t = server().start().await;
    let (mut c, id) = t.raw_client().await;
    t.server.send_text(id, "héllo").unwrap();
    assert_eq!(next_frame(&mut c).await, (true, 1, "héllo".into()));
    assert_eq!(t.conn(id).info().bytes_sent, 6);
    t.server.send_bytes(id, &[0, 1, 2]).unwrap();
    assert_eq!(next_frame(&mut c).await, (true, 2, vec![0, 1, 2]));
    assert_eq!(t.conn(id).info().bytes_sent, 3);
    t.server.send_text(id, "").unwrap();
    assert_eq!(next_frame(&mut c).await, (true, 1, vec![]));

    // Whatever DataFormat says.
    let conn = t.conn(id);
    conn.set_data_format(SendFormat::Ping);
    conn.send_text("text").unwrap();
    conn.send_bytes(b"bytes").unwrap();
    assert_eq!(next_frame(&mut c).await, (true, 1, b"text".to_vec()));
    assert_eq!(next_frame(&mut c).await, (true, 2, b"bytes".to_vec()));

    let unknown = t.server.send_text(id + 100, "nobody").unwrap_err();
    assert_eq!(unknown.code(), 126);
}

#[tokio::test]
async fn send_follows_the_connections_data_format() {
    let mut t = server().start().await;
    let (mut c, id) = t.raw_client().await;
    let conn = t.conn(id);
    assert_eq!(conn.info().data_format, SendFormat::Automatic);
    for (format, opcode) in [
        (SendFormat::Automatic, 2),
        (SendFormat::Binary, 2),
        (SendFormat::Text, 1),
        (SendFormat::Ping, 9),
        (SendFormat::Pong, 10),
    ] {
        conn.set_data_format(format);
        assert_eq!(conn.info().data_format, format);
        t.server.send(id, b"data").unwrap();
        assert_eq!(
            next_frame(&mut c).await,
            (true, opcode, b"data".to_vec()),
            "{format:?}"
        );
    }

    conn.set_data_format(SendFormat::Text);
    let refused = conn.send(&[b'o', b'k', 0xFF]).unwrap_err();
    assert_eq!(refused.code(), 10022);
    // Nothing of the refused send went out.
    conn.send(b"next").unwrap();
    assert_eq!(next_frame(&mut c).await, (true, 1, b"next".to_vec()));
}

#[tokio::test]
async fn max_frame_size_fragments_sent_messages() {
    let mut t = server().config("MaxFrameSize=10").start().await;
    let (mut c, id) = t.raw_client().await;
    t.server.send_bytes(id, &[7; 25]).unwrap();
    assert_eq!(next_frame(&mut c).await, (false, 2, vec![7; 10]));
    assert_eq!(next_frame(&mut c).await, (false, 0, vec![7; 10]));
    assert_eq!(next_frame(&mut c).await, (true, 0, vec![7; 5]));
    t.server.send_text(id, "twelve chars").unwrap();
    assert_eq!(next_frame(&mut c).await, (false, 1, b"twelve cha".to_vec()));
    assert_eq!(next_frame(&mut c).await, (true, 0, b"rs".to_vec()));
    t.server.send_text(id, "ten bytes!").unwrap();
    assert_eq!(next_frame(&mut c).await, (true, 1, b"ten bytes!".to_vec()));
}

#[tokio::test]
async fn send_shared_sends_one_payload_to_many_connections() {
    let mut t = server().config("MaxFrameSize=65536").start().await;
    let (mut a, a_id) = t.raw_client().await;
    let (mut b, b_id) = t.raw_client().await;
    let small = Bytes::from_static(b"hello all");
    let medium = Bytes::from(vec![5u8; 30_000]);
    let large = Bytes::from(vec![6u8; 100_000]);
    for id in [a_id, b_id] {
        let conn = t.conn(id);
        conn.send_shared(MessageKind::Text, small.clone()).unwrap();
        conn.send_shared(MessageKind::Binary, medium.clone())
            .unwrap();
        conn.send_shared(MessageKind::Binary, large.clone())
            .unwrap();
        assert_eq!(conn.info().bytes_sent, 100_000);
    }
    for c in [&mut a, &mut b] {
        assert_eq!(next_frame(c).await, (true, 1, small.to_vec()));
        assert_eq!(next_frame(c).await, (true, 2, medium.to_vec()));
        // Past MaxFrameSize, fragmented like any other message.
        assert_eq!(next_frame(c).await, (false, 2, vec![6; 65536]));
        assert_eq!(next_frame(c).await, (true, 0, vec![6; 100_000 - 65536]));
    }

    // A pending MessageLength makes shared sends parts of one message.
    t.server
        .config(&format!("MessageLength[{a_id}]=18"))
        .unwrap();
    let conn = t.conn(a_id);
    conn.send_shared(MessageKind::Text, small.clone()).unwrap();
    conn.send_shared(MessageKind::Text, small.clone()).unwrap();
    assert_eq!(next_frame(&mut a).await, (false, 1, small.to_vec()));
    assert_eq!(next_frame(&mut a).await, (true, 0, small.to_vec()));
}

#[tokio::test]
async fn message_length_makes_several_sends_one_message() {
    let mut t = server().start().await;
    let (mut ws, id) = t.ws_client().await;
    let key = format!("MessageLength[{id}]");
    t.server.config(&format!("{key}=9")).unwrap();
    assert_eq!(t.server.config(&key).unwrap(), "9");
    for _ in 0..3 {
        t.server.send_text(id, "abc").unwrap();
    }
    let received = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert_eq!(received.unwrap().unwrap(), Message::text("abcabcabc"));
    assert_eq!(t.server.config(&key).unwrap(), "0", "applies once");

    t.server.config(&format!("{key}=4")).unwrap();
    t.server.send_text(id, "abc").unwrap();
    assert_eq!(t.server.config(&key).unwrap(), "1", "bytes still expected");
    let past_the_end = t.server.send_text(id, "abc").unwrap_err();
    assert_eq!(past_the_end.code(), 10022);
    let mid_message = t.server.config(&format!("{key}=10")).unwrap_err();
    assert_eq!(mid_message.code(), 10022);
    t.server.send_text(id, "d").unwrap();
    let received = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert_eq!(received.unwrap().unwrap(), Message::text("abcd"));

    // Back to one message per send.
    t.server.send_text(id, "single").unwrap();
    let received = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert_eq!(received.unwrap().unwrap(), Message::text("single"));
}

#[tokio::test]
async fn a_full_send_queue_would_block_until_the_client_reads_then_ready_to_send_fires() {
    let mut t = server()
        // Several times what the socket buffers hold, so the queue cannot
        // drain while the client reads nothing.
        .config("MaxSendQueue=1048576")
        .config("OutBufferSize=65536")
        .start()
        .await;
    let (mut c, id) = t.raw_client().await;
    t.events.ready_to_send(id).await;
    let conn = t.conn(id);

    // The client reads nothing: sends succeed until the socket buffers and
    // then the queue are full.
    const CHUNK: usize = 16 * 1024;
    let mut accepted = 0u64;
    let blocked = loop {
        assert!(accepted < 10_000, "the queue never filled");
        let mut payload = vec![accepted as u8; CHUNK];
        payload[..8].copy_from_slice(&accepted.to_be_bytes());
        match conn.send_bytes(&payload) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        // Let the connection's task write what it can.
        tokio::task::yield_now().await;
    };
    assert_eq!(blocked.code(), 10035, "{blocked}");
    let info = conn.info();
    assert_eq!((info.bytes_sent, info.ready_to_send), (0, false));
    t.events
        .none_within(Duration::from_millis(300), "ReadyToSend", |e| {
            matches!(e, Event::ReadyToSend(_))
        })
        .await;

    for i in 0..accepted {
        let (fin, opcode, payload) = next_frame(&mut c).await;
        assert_eq!((fin, opcode, payload.len()), (true, 2, CHUNK));
        assert_eq!(u64::from_be_bytes(payload[..8].try_into().unwrap()), i);
    }
    t.events.ready_to_send(id).await;
    assert!(conn.info().ready_to_send);
    conn.send_text("room again").unwrap();
    assert_eq!(conn.info().bytes_sent, 10);
    assert_eq!(next_frame(&mut c).await, (true, 1, b"room again".to_vec()));
}

/// Replies sent from inside DataIn (the connection's own task queues them
/// without the connection's lock) and sends from another thread at the
/// same time all arrive whole, each sender's in the order it sent them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_from_inside_data_in_and_another_threads_sends_all_arrive_in_order() {
    const N: usize = 2000;
    const BIG: usize = 20 * 1024;
    let mut t = server()
        .on_data(|conn, data| {
            let n = std::str::from_utf8(data.data).expect("the client sends numbers");
            conn.send_text(&format!("e{n}")).expect("room for a reply");
        })
        .start()
        .await;
    let (mut c, id) = t.raw_client().await;
    let conn = t.conn(id);
    let other = std::thread::spawn(move || {
        // Large shared payloads are queued as a chunk of their own.
        let big = Bytes::from(vec![7u8; BIG]);
        for k in 0..N {
            conn.send_text(&format!("t{k}")).expect("room for a send");
            if k % 100 == 0 {
                conn.send_shared(MessageKind::Binary, big.clone())
                    .expect("room for a shared send");
            }
        }
    });
    // Many messages per write, so one read dispatches many of them.
    let mut batch = Vec::new();
    for n in 0..N {
        batch.extend(frame(0x81, n.to_string().as_bytes(), Some([1, 2, 3, 4])));
        if batch.len() > 4096 {
            c.send(&batch).await;
            batch.clear();
        }
    }
    c.send(&batch).await;
    let (mut echoes, mut others, mut bigs) = (0, 0, 0);
    while echoes < N || others < N || bigs < N / 100 {
        let (fin, opcode, payload) = next_frame(&mut c).await;
        assert!(fin, "every message is one frame");
        if opcode == 2 {
            assert_eq!(payload, vec![7u8; BIG]);
            bigs += 1;
            continue;
        }
        let text = String::from_utf8(payload).expect("text frames carry UTF-8");
        let (counter, expected) = match text.as_bytes()[0] {
            b'e' => (&mut echoes, "e"),
            _ => (&mut others, "t"),
        };
        assert_eq!(text, format!("{expected}{counter}"), "out of order");
        *counter += 1;
    }
    other.join().expect("the sending thread");
}
