//! DataIn: formats and EOM of message pieces, whole characters in text
//! pieces, BufferMessage, and pausing data with AcceptData.

use std::time::Duration;

use wsserver::DataFormat::{Binary, Continuation, Text};

use crate::common::*;
use crate::harness::*;

#[tokio::test]
async fn the_first_piece_carries_the_messages_format_later_pieces_0_and_the_last_eom() {
    let mut t = server().start().await;
    let (mut c, id) = t.raw_client().await;
    for (opening, format) in [(0x01, Text), (0x02, Binary)] {
        let mut pieces = Vec::new();
        for (first_byte, payload) in [(opening, "ab"), (0x00, "cd"), (0x80, "ef")] {
            // One frame at a time, so each is one piece.
            c.send(&masked(first_byte, payload.as_bytes())).await;
            let p = t.events.data_in(id).await;
            pieces.push((p.format, p.text().to_owned(), p.eom, p.eol));
        }
        assert_eq!(
            pieces,
            [
                (format, "ab".to_owned(), false, false),
                (Continuation, "cd".to_owned(), false, false),
                (Continuation, "ef".to_owned(), true, false),
            ]
        );
    }
    c.send(&masked(0x82, &[0, 255])).await;
    assert_eq!(
        t.events.data_in(id).await,
        Piece {
            format: Binary,
            data: vec![0, 255],
            eom: true,
            eol: false
        }
    );
}

#[tokio::test]
async fn text_pieces_are_whole_characters_when_the_client_splits_one_across_frames() {
    let mut t = server().start().await;
    let (mut c, id) = t.raw_client().await;
    // "x𝄞€" with the 4-byte and the 3-byte character cut across frames.
    let frames: [(u8, &[u8]); 4] = [
        (0x01, b"x\xF0"),
        (0x00, b"\x9D\x84"),
        (0x00, b"\x9E\xE2"),
        (0x80, b"\x82\xAC"),
    ];
    for (first_byte, payload) in frames {
        c.send(&masked(first_byte, payload)).await;
    }
    let pieces = t.events.message(id).await;
    let mut text = String::new();
    for (i, p) in pieces.iter().enumerate() {
        let expected = if i == 0 { Text } else { Continuation };
        assert_eq!(p.format, expected, "piece {i}: {pieces:?}");
        text.push_str(
            std::str::from_utf8(&p.data)
                .unwrap_or_else(|e| panic!("piece {i} is not UTF-8 ({e}): {pieces:?}")),
        );
    }
    assert_eq!(text, "x𝄞€");
}

#[tokio::test]
async fn buffer_message_delivers_a_fragmented_message_as_one_data_in() {
    let mut t = server().config("BufferMessage=True").start().await;
    let (mut c, id) = t.raw_client().await;
    c.send(&masked(0x01, b"ab")).await;
    c.send(&masked(0x89, b"between")).await;
    // The ping after the first fragment is reported, but no DataIn: the
    // fragment was read and kept.
    t.events
        .find("Ping", |e| {
            assert!(!matches!(e, Event::DataIn(..)), "{e:?} before the end");
            matches!(e, Event::Ping { .. }).then_some(())
        })
        .await;
    c.send(&[masked(0x00, b"cd"), masked(0x80, b"ef")].concat())
        .await;
    assert_eq!(
        t.events.data_in(id).await,
        Piece {
            format: Text,
            data: b"abcdef".to_vec(),
            eom: true,
            eol: false
        }
    );
    c.send(&masked(0x82, b"next")).await;
    let next = t.events.data_in(id).await;
    assert_eq!((next.format, next.text(), next.eom), (Binary, "next", true));
}

#[tokio::test]
async fn paused_data_is_held_and_delivered_in_order_on_resume() {
    let mut t = server()
        .on_data(|conn, data| {
            if data.data == b"pause" {
                conn.pause_data();
            }
        })
        .start()
        .await;
    let (mut c, id) = t.raw_client().await;
    let mut wire = [masked(0x81, b"1"), masked(0x81, b"pause")].concat();
    for i in 0..100 {
        wire.extend(masked(0x81, format!("m{i}").as_bytes()));
    }
    c.send(&wire).await;
    assert_eq!(t.events.data_in(id).await.text(), "1");
    assert_eq!(t.events.data_in(id).await.text(), "pause");
    t.events
        .none_within(Duration::from_millis(300), "DataIn while paused", |e| {
            matches!(e, Event::DataIn(..))
        })
        .await;
    let conn = t.conn(id);
    assert!(!conn.info().accept_data);
    assert!(!conn.accepting_data());

    conn.resume_data();
    assert!(conn.info().accept_data);
    for i in 0..100 {
        assert_eq!(t.events.data_in(id).await.text(), format!("m{i}"));
    }
}

#[tokio::test]
async fn data_arriving_while_paused_by_the_application_waits_for_resume() {
    let mut t = server().start().await;
    let (mut c, id) = t.raw_client().await;
    let conn = t.conn(id);
    conn.pause_data();
    c.send(&masked(0x81, b"held")).await;
    t.events
        .none_within(Duration::from_millis(300), "DataIn while paused", |e| {
            matches!(e, Event::DataIn(..))
        })
        .await;
    conn.resume_data();
    assert_eq!(t.events.data_in(id).await.text(), "held");
}
