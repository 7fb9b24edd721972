//! echo-LANG and chat-LANG, the same checks for every language.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;
use crate::{LANGUAGES, component, serve, toml_path};

per_language!(
    echo_answers_whole_messages_in_utf8_and_binary_and_the_close_code,
    chat_rooms_are_topics_by_path_and_greet_with_the_configured_text,
    a_swap_carries_an_unfinished_message_with_lifecycle_and_replays_connected_without,
);

#[test]
fn every_language_has_its_examples_and_probe() {
    for lang in LANGUAGES {
        for example in ["echo", "chat", "probe"] {
            component(&format!("{example}-{lang}"));
        }
    }
}

/// echo-LANG on `/`, chat-LANG on `/rooms` greeting with `welcome`.
fn tenants(lang: &str, welcome: &str) -> String {
    format!(
        "[[tenant]]\nname = \"echo\"\nfile = {}\nroutes = [\"/\"]\n\n\
         [[tenant]]\nname = \"chat\"\nfile = {}\nroutes = [\"/rooms\"]\n\
         [tenant.config]\n\"chat.welcome\" = \"{welcome}\"\n",
        toml_path(&component(&format!("echo-{lang}"))),
        toml_path(&component(&format!("chat-{lang}"))),
    )
}

async fn start(lang: &str) -> (ServerProcess, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = serve(dir.path(), &tenants(lang, "welcome to"), 2).await;
    (server, admin, dir)
}

/// The next data frame; panics on anything else.
async fn data_frame(c: &mut RawClient) -> ServerFrame {
    let frame = c.read_frame().await.expect("a frame, not the end");
    assert!(frame.fin && frame.rsv == 0, "{frame:?}");
    frame
}

async fn echo_answers_whole_messages_in_utf8_and_binary_and_the_close_code(lang: &str) {
    let (server, _admin, _dir) = start(lang).await;

    // Fragments, split inside a UTF-8 character, with a ping between them:
    // the pong comes at once, the message once whole, as one text frame.
    let mut c = RawClient::connect(server.addr).await;
    let whole = "héllo wörld ✓ 🎉".as_bytes();
    c.send(
        &[
            masked(0x01, &whole[..2]),
            masked(0x00, &whole[2..9]),
            masked(0x89, b"between"),
            masked(0x80, &whole[9..]),
        ]
        .concat(),
    )
    .await;
    let pong = data_frame(&mut c).await;
    assert_eq!((pong.opcode, &pong.payload[..]), (10, &b"between"[..]));
    let echo = data_frame(&mut c).await;
    assert_eq!((echo.opcode, &echo.payload[..]), (1, whole));
    c.send(
        &[
            masked(0x02, &[0, 1]),
            masked(0x00, &[]),
            masked(0x80, &[2, 255]),
        ]
        .concat(),
    )
    .await;
    let echo = data_frame(&mut c).await;
    assert_eq!((echo.opcode, &echo.payload[..]), (2, &[0, 1, 2, 255][..]));

    // The client's close code comes back in the server's close frame.
    let mut payload = 4321u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"done");
    c.send(&masked(0x88, &payload)).await;
    assert_eq!(c.expect_close().await, Some(4321));

    // Text that is not UTF-8 is a protocol error the host answers (1007).
    let mut bad = RawClient::connect(server.addr).await;
    bad.send(&masked(0x81, b"ok \xff")).await;
    assert_eq!(bad.expect_close().await, Some(1007));

    // An independent client: a 256 KiB binary message (more than one
    // outgoing frame at MaxFrameSize 131072) and text in several scripts.
    let mut ws = ws_connect(&server.url).await;
    let big: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    ws.send(Message::binary(big.clone())).await.unwrap();
    match tokio::time::timeout(WAIT, ws.next()).await {
        Ok(Some(Ok(Message::Binary(data)))) => assert!(data[..] == big[..], "256 KiB differs"),
        other => panic!("expected the 256 KiB echo, got {other:?}"),
    }
    let words = "Grüße, 日本語, Ελληνικά, emoji 🦀";
    ws.send(Message::text(words)).await.unwrap();
    assert_eq!(text(&mut ws).await, words);
    ws.close(None).await.unwrap();
}

async fn chat_rooms_are_topics_by_path_and_greet_with_the_configured_text(lang: &str) {
    let (server, admin, _dir) = start(lang).await;
    let join = |room: &'static str| {
        let url = format!("{}/rooms/{room}?member=1", server.url);
        async move {
            let mut ws = ws_connect(&url).await;
            // config-get: the greeting the operator configured.
            assert_eq!(text(&mut ws).await, format!("welcome to /rooms/{room}"));
            ws
        }
    };
    let mut a1 = join("a").await;
    let mut a2 = join("a").await;
    let mut b1 = join("b").await;
    let mut b2 = join("b").await;

    a1.send(Message::text("hi from a1")).await.unwrap();
    assert_eq!(text(&mut a2).await, "hi from a1");
    a2.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    match tokio::time::timeout(WAIT, a1.next()).await {
        Ok(Some(Ok(Message::Binary(data)))) => assert_eq!(&data[..], [1, 2, 3]),
        other => panic!("expected the binary message, got {other:?}"),
    }
    // Room b heard nothing of room a, and a1 not its own message: the next
    // thing each receives is what was sent after.
    b2.send(Message::text("for b")).await.unwrap();
    assert_eq!(text(&mut b1).await, "for b");
    a2.send(Message::text("for a")).await.unwrap();
    assert_eq!(text(&mut a1).await, "for a");

    // A hot swap to a new configuration: chat has no `lifecycle`, so the new
    // instance sees each member connect again and greets it with the new
    // text; the subscriptions, held by the host, never stopped.
    let swapped = http(
        "POST",
        &admin,
        "/tenants/chat/swap",
        None,
        Some(r#"{"config": {"chat.welcome": "now serving"}}"#),
    )
    .await;
    assert_eq!(swapped.status, 200, "{}", swapped.body);
    let swapped = swapped.json();
    assert_eq!(
        (
            swapped["changed"].as_bool(),
            swapped["state_carried"].as_bool()
        ),
        (Some(true), Some(false)),
        "{swapped}"
    );
    for (ws, room) in [
        (&mut a1, "a"),
        (&mut a2, "a"),
        (&mut b1, "b"),
        (&mut b2, "b"),
    ] {
        assert_eq!(text(ws).await, format!("now serving /rooms/{room}"));
    }
    a1.send(Message::text("after the swap")).await.unwrap();
    assert_eq!(text(&mut a2).await, "after the swap");
    b1.send(Message::text("b too")).await.unwrap();
    assert_eq!(text(&mut b2).await, "b too");
}

async fn a_swap_carries_an_unfinished_message_with_lifecycle_and_replays_connected_without(
    lang: &str,
) {
    let (server, admin, _dir) = start(lang).await;
    // Start-up said which tenant it compiled and how long that took.
    let log = server.stderr_containing("tenant chat: sha256:").await;
    for tenant in ["echo", "chat"] {
        assert!(
            log.contains(&format!("tenant {tenant}: loading sha256:"))
                && log.contains(" compiled and linked in "),
            "no progress for {tenant} in:\n{log}"
        );
    }

    let mut c = RawClient::connect(server.addr).await;
    c.send(&masked(0x01, b"started before the swap, ")).await;
    // Let the old version receive the first fragment (an echo on another
    // connection of the same instance comes back after it).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut other = ws_connect(&server.url).await;
    other.send(Message::text("barrier")).await.unwrap();
    assert_eq!(text(&mut other).await, "barrier");

    let swapped = http(
        "POST",
        &admin,
        "/tenants/echo/swap",
        None,
        Some(r#"{"config": {"any": "change"}}"#),
    )
    .await;
    assert_eq!(swapped.status, 200, "{}", swapped.body);
    assert_eq!(swapped.json()["state_carried"].as_bool(), Some(true));

    // The new version restored the first fragment from the old one's
    // snapshot: the message comes back whole.
    c.send(&masked(0x80, b"finished after it")).await;
    let echo = data_frame(&mut c).await;
    assert_eq!(
        (echo.opcode, String::from_utf8_lossy(&echo.payload)),
        (1, "started before the swap, finished after it".into())
    );
}
