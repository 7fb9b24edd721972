//! probe-LANG: every event and host function of the SDKs through the real
//! binary, driven by a client with text commands (see plugins/probe-js).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::common::*;
use crate::{DEADLINE_MS, component, serve, toml_path};

per_language!(
    every_event_and_host_function_reaches_the_plugin,
    a_direct_send_meets_would_block_and_ready_to_send_follows,
);

async fn start(lang: &str, settings: &str) -> (ServerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[settings]\n{settings}\n\n[[tenant]]\nname = \"probe\"\nfile = {}\nroutes = [\"/\"]\n\
         deadline_ms = {DEADLINE_MS}\n[tenant.config]\n\"probe.key\" = \"granted\"\n",
        toml_path(&component(&format!("probe-{lang}")))
    );
    let (server, _admin) = serve(dir.path(), &toml, 1).await;
    (server, dir)
}

async fn every_event_and_host_function_reaches_the_plugin(lang: &str) {
    let (server, _dir) = start(lang, "").await;

    // open-request: the plugin's refusal with its status and header.
    let mut refused = RawClient::tcp(server.addr).await;
    refused
        .send(
            UPGRADE_REQUEST
                .replace("GET /", "GET /?reject=403")
                .as_bytes(),
        )
        .await;
    let response = refused.read_http_response().await;
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(response.contains("X-Probe: rejected"), "{response}");

    let (mut a, a_id) = probe_client(&format!("{}/room?x=1", server.url)).await;
    assert_eq!(ask(&mut a, "echo héllo ✓").await, "héllo ✓");

    // Pings both ways, batched and direct; pongs come back as events.
    a.send(Message::Ping(Bytes::from_static(b"from-client")))
        .await
        .unwrap();
    assert_eq!(
        text(&mut a).await,
        "event ping response=false payload=from-client"
    );
    assert_eq!(
        ask(&mut a, "ping batched").await,
        "event ping response=true payload=batched"
    );
    assert_eq!(ask(&mut a, "direct-ping direct").await, "ok");
    assert_eq!(
        text(&mut a).await,
        "event ping response=true payload=direct"
    );

    // connection-info, config-get, log.
    let info = ask(&mut a, "info").await;
    for part in [
        format!("info id={a_id} path=/room uri=/room?x=1 remote=127.0.0.1:"),
        "accept_data=true line_mode=false connected=true tls=none".to_owned(),
    ] {
        assert!(info.contains(&part), "{part} missing from {info}");
    }
    assert_eq!(ask(&mut a, "config probe.key").await, "config granted");
    assert_eq!(ask(&mut a, "config other").await, "config (none)");
    let marker = format!("probe-{lang} was here");
    assert_eq!(ask(&mut a, &format!("log info {marker}")).await, "logged");
    assert!(server.stderr_containing(&marker).await.contains(&marker));

    // Line mode: one data-in per line, raw chunks.
    assert_eq!(ask(&mut a, "line-mode on").await, "line-mode on");
    say(&mut a, "first\nsecond\npartial").await;
    assert_eq!(text(&mut a).await, "line eol=true eom=false first");
    assert_eq!(text(&mut a).await, "line eol=true eom=false second");
    assert_eq!(text(&mut a).await, "line eol=false eom=true partial");
    assert_eq!(
        ask(&mut a, "line-mode off").await,
        "line eol=false eom=true line-mode off"
    );
    assert_eq!(text(&mut a).await, "line-mode off");
    assert_eq!(ask(&mut a, "echo whole again").await, "whole again");

    // connections, topics batched and direct.
    let (mut b, b_id) = probe_client(&server.url).await;
    // The host lists connections in id order.
    let (low, high) = (a_id.min(b_id), a_id.max(b_id));
    assert_eq!(
        ask(&mut a, "connections").await,
        format!("connections {low},{high}")
    );
    // Presence: a watches the topic; b's subscription, then a's own, are
    // reported to it.
    assert_eq!(ask(&mut a, "watch news").await, "ok");
    assert_eq!(ask(&mut b, "subscribe news").await, "subscribed news");
    assert_eq!(
        text(&mut a).await,
        "event presence topic=news joined=true count=1 subscribers=1"
    );
    assert_eq!(ask(&mut a, "direct-subscribe news").await, "ok");
    assert_eq!(
        text(&mut a).await,
        "event presence topic=news joined=true count=1 subscribers=2"
    );
    assert_eq!(ask(&mut a, "subscribers news").await, "subscribers 2");
    say(&mut a, "publish news to all").await;
    assert_eq!(text(&mut a).await, "to all");
    assert_eq!(text(&mut b).await, "to all");
    say(&mut a, "publish-others news not to a").await;
    assert_eq!(text(&mut b).await, "not to a");
    assert_eq!(ask(&mut b, "unsubscribe news").await, "unsubscribed news");
    assert_eq!(
        text(&mut a).await,
        "event presence topic=news joined=false count=1 subscribers=1"
    );
    assert_eq!(ask(&mut a, "direct-publish news direct").await, "direct");
    assert_eq!(text(&mut a).await, "ok");
    // b heard neither the publish excluding a... nor the one after it left.
    assert_eq!(ask(&mut b, "echo b").await, "b");

    // Attachments: kept by the host per connection, readable by id.
    assert_eq!(ask(&mut a, "attachment").await, "attachment (none)");
    assert_eq!(ask(&mut a, "attach room=42 ✓").await, "ok");
    assert_eq!(ask(&mut a, "attachment").await, "attachment room=42 ✓");
    assert_eq!(
        ask(&mut b, &format!("attachment {a_id}")).await,
        "attachment room=42 ✓"
    );
    let too_big = format!("attach {}", "x".repeat(2049));
    assert_eq!(ask(&mut b, &too_big).await, "err invalid-argument");
    assert_eq!(
        ask(&mut b, "attachment 999999").await,
        "err invalid-connection"
    );

    // Failures: batched ones as error events, direct ones as results.
    assert_eq!(
        ask(&mut a, "send-to 999999 x").await,
        "event error code=126 kind=invalid-connection"
    );
    assert_eq!(
        ask(&mut a, "direct-send-to 999999 x").await,
        "err invalid-connection"
    );
    assert_eq!(ask(&mut a, "info 999999").await, "err invalid-connection");
    assert_eq!(
        ask(&mut a, "bad-text").await,
        "event error code=10022 kind=invalid-argument"
    );
    assert_eq!(
        ask(&mut a, &format!("direct-send-to {b_id} to b")).await,
        "ok"
    );
    assert_eq!(text(&mut b).await, "to b");

    // Pause and resume: what a sends while paused waits, then arrives.
    say(&mut a, "pause").await;
    let mut paused = false;
    for _ in 0..100 {
        if ask(&mut b, &format!("info {a_id}"))
            .await
            .contains("accept_data=false")
        {
            paused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(paused, "a never showed AcceptData false");
    say(&mut a, "echo held back").await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), a.next())
            .await
            .is_err(),
        "data arrived while paused"
    );
    say(&mut b, &format!("resume {a_id}")).await;
    assert_eq!(text(&mut a).await, "held back");

    // Disconnect, batched and direct; `disconnected` reaches the plugin.
    assert_eq!(ask(&mut b, "subscribe watch").await, "subscribed watch");
    for (command, (mut ws, id)) in [
        ("close", (a, a_id)),
        ("direct-close", probe_client(&server.url).await),
    ] {
        say(&mut ws, &format!("{command} 4001 bye")).await;
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(
                (frame.code, frame.reason.as_str()),
                (CloseCode::from(4001), "bye")
            ),
            other => panic!("{command}: expected close 4001, got {other:?}"),
        }
        drop(ws);
        assert_eq!(
            text(&mut b).await,
            format!("event disconnected {id} 4001 bye")
        );
    }
}

async fn a_direct_send_meets_would_block_and_ready_to_send_follows(lang: &str) {
    let (server, _dir) = start(lang, "MaxSendQueue = 262144").await;
    let (mut ws, _) = probe_client(&server.url).await;
    say(&mut ws, "flood").await;
    // The 64 KiB blocks queued before the queue was full, then the reply
    // (held by the host until there was room) and `ready-to-send`.
    let mut blocks = 0;
    let mut texts = Vec::new();
    while texts.len() < 2 {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Binary(data)))) => {
                assert_eq!(data.len(), 65536);
                assert!(texts.is_empty(), "a block after the reply");
                blocks += 1;
            }
            Ok(Some(Ok(Message::Text(t)))) => texts.push(t.to_string()),
            other => panic!("after {blocks} blocks and {texts:?}: {other:?}"),
        }
    }
    texts.sort();
    assert_eq!(
        texts,
        [
            "event ready-to-send".to_owned(),
            format!("would-block after {blocks}")
        ]
    );
    // The server writes while the plugin sends, so more than the queue's
    // 256 KiB may go out before it is full; at least one block did.
    assert!(blocks >= 1, "the queue was full before the first block");
}
