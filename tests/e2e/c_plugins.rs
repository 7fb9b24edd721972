//! Plugins written in C with the C SDK (`sdk/c`), built by the tests with
//! the real toolchain (clang for wasm32-wasi, wasi-libc, wasm-component-ld)
//! and served by the real binary: the protocol checks every echo must pass,
//! the chat example (topics), and configuration, logging and lifecycle
//! across a hot swap.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

/// Builds `plugins/NAME/` with `sdk/c/build.sh` once per test run and
/// returns the component's path.
pub fn c_plugin(name: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("c-plugins/{name}.wasm"));
    let result = std::process::Command::new(repo.join("sdk/c/build.sh"))
        .arg(repo.join("plugins").join(name))
        .arg(&out)
        .output()
        .expect("run sdk/c/build.sh");
    assert!(
        result.status.success(),
        "building {name} failed (the C toolchain: sdk/c/install-toolchain.sh):\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    built.insert(name.to_owned(), out.clone());
    out
}

/// Protocol checks any echo plugin must pass, whatever its language, with
/// a raw client so that the frames are exactly those written here:
/// fragmented messages come back whole, a 256 KiB binary message, UTF-8
/// split across fragments, empty messages, and the close codes of a normal
/// close and of invalid UTF-8.
pub async fn echo_protocol_checks(addr: std::net::SocketAddr) {
    let mut client = RawClient::connect(addr).await;

    // A text message in three fragments, with a ping between two of them.
    client.send(&masked(0x01, b"frag")).await;
    client.send(&masked(0x00, b"men")).await;
    client.send(&masked(0x89, b"p")).await;
    client.send(&masked(0x80, b"ted")).await;
    let mut replies = Vec::new();
    while replies.len() < 2 {
        let frame = client.read_frame().await.expect("a frame");
        replies.push((frame.opcode, frame.fin, frame.payload));
    }
    assert!(replies.contains(&(0xA, true, b"p".to_vec())), "{replies:?}");
    assert!(
        replies.contains(&(0x1, true, b"fragmented".to_vec())),
        "a fragmented message comes back whole: {replies:?}"
    );

    // 256 KiB of binary in 4 fragments; the server may fragment its answer
    // (MaxFrameSize), so join what comes back.
    let big: Vec<u8> = (0..256 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    for (i, piece) in big.chunks(64 * 1024).enumerate() {
        let opcode = if i == 0 { 0x02 } else { 0x00 };
        let fin = if i == 3 { 0x80 } else { 0 };
        client.send(&masked(fin | opcode, piece)).await;
    }
    let mut echoed = Vec::new();
    loop {
        let frame = client.read_frame().await.expect("the big echo");
        assert!(
            echoed.is_empty() == (frame.opcode == 0x2),
            "{}",
            frame.opcode
        );
        echoed.extend_from_slice(&frame.payload);
        if frame.fin {
            break;
        }
    }
    assert!(echoed == big, "256 KiB binary echoed byte for byte");

    // UTF-8: a four-byte character split between two fragments.
    let text = "snow ☃ and 𝄞 clef";
    let split = text.find('𝄞').unwrap() + 2;
    client.send(&masked(0x01, &text.as_bytes()[..split])).await;
    client.send(&masked(0x80, &text.as_bytes()[split..])).await;
    let frame = client.read_frame().await.expect("the UTF-8 echo");
    assert_eq!(
        (frame.opcode, frame.payload),
        (0x1, text.as_bytes().to_vec())
    );

    // Empty messages, whole and fragmented.
    client.send(&masked(0x81, b"")).await;
    client.send(&masked(0x02, b"")).await;
    client.send(&masked(0x80, b"")).await;
    for opcode in [0x1, 0x2] {
        let frame = client.read_frame().await.expect("an empty echo");
        assert_eq!(
            (frame.opcode, frame.fin, frame.payload.len()),
            (opcode, true, 0)
        );
    }

    // A normal close is answered with the same code.
    client.send(&masked(0x88, &4000u16.to_be_bytes())).await;
    assert_eq!(client.expect_close().await, Some(4000));

    // Invalid UTF-8 in a text message: 1007.
    let mut client = RawClient::connect(addr).await;
    client.send(&masked(0x81, &[b'a', 0xC3, 0x28])).await;
    assert_eq!(client.expect_close().await, Some(1007));
}

#[tokio::test]
async fn echo_c_passes_the_protocol_checks() {
    let echo = c_plugin("echo-c");
    let server = ServerProcess::start(&["--plugin", &format!("/={}", echo.display())]).await;
    echo_protocol_checks(server.addr).await;
    // Through a real client too, text and binary keep their format.
    let mut ws = ws_connect(&server.url).await;
    assert_echo(&mut ws, "héllo").await;
    ws.send(Message::binary(vec![0u8, 255, 1])).await.unwrap();
    let reply = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert_eq!(reply.unwrap().unwrap(), Message::binary(vec![0u8, 255, 1]));
}

/// The next data message, skipping pongs.
async fn next_data(ws: &mut Ws) -> Message {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Pong(_)))) => continue,
            Ok(Some(Ok(m))) => return m,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// Nothing but pongs arrives within a moment.
async fn hears_nothing(ws: &mut Ws) {
    loop {
        match tokio::time::timeout(Duration::from_millis(300), ws.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Pong(_)))) => continue,
            Ok(other) => panic!("unexpected {other:?}"),
        }
    }
}

/// Serves chat-c on /rooms as tenant `chat` (with extra tenant keys), and
/// the admin API; returns the server and the admin URL.
async fn start_chat(dir: &Path, welcome: &str, extra: &str) -> (ServerProcess, String) {
    let config = dir.join("chat.toml");
    std::fs::write(
        &config,
        format!(
            "[[tenant]]\nname = \"chat\"\nfile = \"{}\"\nroutes = [\"/rooms\"]\n{extra}\n\
             [tenant.config]\n\"chat.welcome\" = \"{welcome}\"\n",
            c_plugin("chat-c").display()
        ),
    )
    .unwrap();
    ServerProcess::start_config_with_admin(&config).await
}

#[tokio::test]
async fn chat_c_counts_the_members_of_a_room_and_reports_who_comes_and_goes() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _admin) = start_chat(dir.path(), "hi", "").await;
    let room = format!("{}/rooms/lobby", server.url);
    let mut alice = join(&room, "hi").await;
    alice.send(Message::text("/watch")).await.unwrap();
    assert_eq!(text(&mut alice).await, "watching");
    alice.send(Message::text("/members")).await.unwrap();
    assert_eq!(text(&mut alice).await, "members 1");
    let mut bob = join(&room, "hi").await;
    let joined = text(&mut alice).await;
    let bob_id = joined
        .strip_prefix("presence joined ")
        .and_then(|rest| rest.strip_suffix(" 1 2"))
        .unwrap_or_else(|| panic!("{joined}"));
    bob.send(Message::text("/members")).await.unwrap();
    assert_eq!(text(&mut bob).await, "members 2");
    bob.close(None).await.unwrap();
    assert_eq!(
        text(&mut alice).await,
        format!("presence left {bob_id} 1 1")
    );
}

/// A member of a room, welcomed (which proves it has joined).
async fn join(url: &str, welcome: &str) -> Ws {
    let mut ws = ws_connect(url).await;
    assert_eq!(text(&mut ws).await, welcome);
    ws
}

#[tokio::test]
async fn chat_c_relays_within_a_room_reads_its_config_and_keeps_state_across_a_swap() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = start_chat(dir.path(), "welcome v1", "").await;
    let room = |name: &str| format!("{}/rooms/{name}?ignored=1", server.url);
    let mut alice = join(&room("lobby"), "welcome v1").await;
    let mut bob = join(&room("lobby"), "welcome v1").await;
    let mut carol = join(&room("other"), "welcome v1").await;

    // Topics: a message goes to the other members of the room only.
    alice.send(Message::text("hi all")).await.unwrap();
    assert_eq!(next_data(&mut bob).await, Message::text("hi all"));
    bob.send(Message::binary(vec![1u8, 2])).await.unwrap();
    assert_eq!(next_data(&mut alice).await, Message::binary(vec![1u8, 2]));
    hears_nothing(&mut carol).await;
    // host.connections through the SDK.
    carol.send(Message::text("/online")).await.unwrap();
    assert_eq!(text(&mut carol).await, "online 3");

    // Half a message, then a hot swap to a new configuration: the SDK's
    // snapshot carries the unfinished message and the plugin's own count.
    use tokio_tungstenite::tungstenite::protocol::frame::{Frame, coding::Data, coding::OpCode};
    let first = Frame::message(b"hel".to_vec(), OpCode::Data(Data::Text), false);
    alice.send(Message::Frame(first)).await.unwrap();
    // The pong proves the server has read the fragment; the plugin gets
    // it within a moment (were it still queued, the new version would).
    alice.send(Message::Ping(Default::default())).await.unwrap();
    assert!(matches!(
        tokio::time::timeout(WAIT, alice.next()).await,
        Ok(Some(Ok(Message::Pong(_))))
    ));
    bob.send(Message::text("/count")).await.unwrap();
    assert_eq!(text(&mut bob).await, "count 2");
    let swapped = http(
        "POST",
        &admin,
        "/tenants/chat/swap",
        None,
        Some(r#"{"config": {"chat.welcome": "welcome v2"}}"#),
    )
    .await;
    assert_eq!(swapped.status, 200, "{}", swapped.body);
    assert_eq!(swapped.json()["state_carried"], true, "{}", swapped.body);
    let rest = Frame::message(b"lo".to_vec(), OpCode::Data(Data::Continue), true);
    alice.send(Message::Frame(rest)).await.unwrap();
    assert_eq!(next_data(&mut bob).await, Message::text("hello"));
    bob.send(Message::text("/count")).await.unwrap();
    assert_eq!(text(&mut bob).await, "count 3");
    // The room stored as an attachment at connect is the host's: still there.
    alice.send(Message::text("/room")).await.unwrap();
    assert_eq!(text(&mut alice).await, "room /rooms/lobby");
    // The new configuration greets newcomers; the room still works.
    let mut dave = join(&room("lobby"), "welcome v2").await;
    dave.send(Message::text("from dave")).await.unwrap();
    assert_eq!(next_data(&mut alice).await, Message::text("from dave"));
    assert_eq!(next_data(&mut bob).await, Message::text("from dave"));
    // host.log through the SDK reaches the server log.
    crate::author_tools::logged(&server, "joined /rooms/lobby").await;
}

#[tokio::test]
async fn chat_c_state_and_attachments_survive_hibernation() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = start_chat(dir.path(), "hi", "hibernate_after_ms = 100").await;
    let room = format!("{}/rooms/quiet", server.url);
    let mut alice = join(&room, "hi").await;
    let mut bob = join(&room, "hi").await;
    alice.send(Message::text("before")).await.unwrap();
    assert_eq!(next_data(&mut bob).await, Message::text("before"));
    // Quiet for longer than hibernate_after: the instance is dropped (its
    // snapshot taken) while both stay connected; the next message wakes a
    // new one (restored), which finds the room in the attachment.
    let asleep = crate::runtime::wait_accounting(&admin, "chat", "instances_hibernated", 1).await;
    assert_eq!(asleep["instances_live"], 0, "{asleep}");
    bob.send(Message::text("after")).await.unwrap();
    assert_eq!(next_data(&mut alice).await, Message::text("after"));
    bob.send(Message::text("/count")).await.unwrap();
    assert_eq!(text(&mut bob).await, "count 2");
    alice.send(Message::text("/room")).await.unwrap();
    assert_eq!(text(&mut alice).await, "room /rooms/quiet");
}

#[tokio::test]
async fn the_c_sdk_meets_would_block_and_ready_to_send() {
    let probe = c_plugin("probe-c");
    let server = ServerProcess::start(&["--plugin", &format!("/={}", probe.display())]).await;
    let mut ws = ws_connect(&server.url).await;
    assert!(text(&mut ws).await.starts_with("event connected "));
    // Direct sends until the host answers would-block (the client reads
    // nothing meanwhile); the reply, queued behind them, waits for the
    // client to read.
    ws.send(Message::text("flood")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut blocks = 0;
    let flooded = loop {
        match next_data(&mut ws).await {
            Message::Binary(b) => {
                assert_eq!(b.len(), 16 * 1024);
                blocks += 1;
            }
            Message::Text(t) => break t.to_string(),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(flooded, format!("flooded {blocks}"));
    assert!(
        blocks > 1,
        "the queue held {blocks} blocks before would-block"
    );
    // Read, the queue drained: the plugin hears ready-to-send.
    assert_eq!(text(&mut ws).await, "event ready-to-send");
}
