//! Idle connections parked outside tokio (ParkDelay), through the real
//! binary: they show as parked, and everything a connection does still
//! works while it is parked: echo, a plugin's broadcast, a ping, an admin
//! close, the client's close or a dropped TCP connection, shutdown.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::*;

/// Short, so a test sees its clients park within a second.
const PARK_DELAY: &str = "ParkDelay=100";

async fn start(args: &[&str]) -> (ServerProcess, String) {
    let mut all = vec!["--admin", "127.0.0.1:0", "--set", PARK_DELAY];
    all.extend_from_slice(args);
    let mut server = ServerProcess::start(&all).await;
    let admin = server.admin_url().await;
    (server, admin)
}

/// Waits until `series` reads `want`.
async fn wait_metric(admin: &str, series: &str, want: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = metric(admin, series).await;
        if now == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} stayed at {now:?} (want {want})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn all_parked(admin: &str, n: usize) {
    wait_metric(admin, "wsserver_connections_parked", n as f64).await;
}

/// The next message that is not a pong.
async fn next_data(ws: &mut Ws) -> Message {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("message in time")
            .expect("stream open")
            .expect("message")
        {
            Message::Pong(_) => continue,
            m => return m,
        }
    }
}

async fn expect_close(ws: &mut Ws, want: CloseCode) -> String {
    match next_data(ws).await {
        Message::Close(Some(CloseFrame { code, reason })) => {
            assert_eq!(code, want, "{reason}");
            reason.to_string()
        }
        other => panic!("expected close {want:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn parked_connections_of_the_echo_and_chat_plugins_answer_broadcast_and_close() {
    let (server, admin) = start(&[
        "--plugin",
        "/rooms=builtin:chat",
        "--plugin",
        "/=builtin:echo",
    ])
    .await;
    let mut echo = Vec::new();
    for _ in 0..8 {
        echo.push(ws_connect(&server.url).await);
    }
    let mut room = Vec::new();
    for _ in 0..3 {
        room.push(ws_connect(&format!("{}/rooms/lobby", server.url)).await);
    }
    // A round trip each: every member has joined its room.
    for ws in &mut room {
        ws.send(Message::Ping(Bytes::new())).await.unwrap();
        assert!(matches!(ws.next().await, Some(Ok(Message::Pong(_)))));
    }
    let n = echo.len() + room.len();
    all_parked(&admin, n).await;
    assert_eq!(
        metric(&admin, "wsserver_connections_open").await,
        Some(n as f64)
    );

    // Every parked echo client is answered, and parks again.
    for (i, ws) in echo.iter_mut().enumerate() {
        assert_echo(ws, &format!("hello {i}")).await;
    }
    all_parked(&admin, n).await;

    // The chat plugin's broadcast (a send from the plugin's executor)
    // reaches the parked members.
    room[0].send(Message::text("to the room")).await.unwrap();
    for ws in &mut room[1..] {
        assert_eq!(next_data(ws).await, Message::text("to the room"));
    }
    all_parked(&admin, n).await;

    // A ping to a parked connection gets its pong.
    echo[0]
        .send(Message::Ping(Bytes::from_static(b"are you there")))
        .await
        .unwrap();
    match tokio::time::timeout(WAIT, echo[0].next()).await.unwrap() {
        Some(Ok(Message::Pong(payload))) => assert_eq!(&payload[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    all_parked(&admin, n).await;

    // The admin API's close reaches a parked connection.
    let port = match echo[0].get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.local_addr().unwrap().port(),
        _ => unreachable!("plain ws://"),
    };
    let list = http("GET", &admin, "/connections", None, None).await.json();
    let conns = list["connections"].as_array().unwrap();
    assert_eq!(conns.len(), n, "{list}");
    let id = conns
        .iter()
        .find(|c| c["remote_port"].as_u64() == Some(port.into()))
        .and_then(|c| c["connection_id"].as_u64())
        .expect("the client is listed");
    let reply = http(
        "DELETE",
        &admin,
        &format!("/connections/{id}"),
        None,
        Some(r#"{"code": 4000, "reason": "bye"}"#),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(
        expect_close(&mut echo[0], CloseCode::from(4000)).await,
        "bye"
    );
    drop(echo.remove(0));
    let n = n - 1;
    wait_metric(&admin, "wsserver_connections_open", n as f64).await;
    all_parked(&admin, n).await;

    // The client's close of a parked connection: answered, and the
    // connection leaves (Disconnected: the count and the list).
    let mut leaving = echo.pop().unwrap();
    leaving.close(None).await.unwrap();
    assert!(matches!(
        tokio::time::timeout(WAIT, leaving.next()).await.unwrap(),
        Some(Ok(Message::Close(_))) | None
    ));
    let n = n - 1;
    wait_metric(&admin, "wsserver_connections_open", n as f64).await;
    // A dropped TCP connection is noticed too.
    drop(echo.pop().unwrap());
    let n = n - 1;
    wait_metric(&admin, "wsserver_connections_open", n as f64).await;
    let list: Value = http("GET", &admin, "/connections", None, None).await.json();
    assert_eq!(list["connections"].as_array().unwrap().len(), n, "{list}");
    all_parked(&admin, n).await;

    // Shutdown closes every parked connection with 1001.
    let reply = http("POST", &admin, "/shutdown", None, None).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    for ws in echo.iter_mut().chain(room.iter_mut()) {
        expect_close(ws, CloseCode::Away).await;
    }
    drop((echo, room));
    assert!(server.wait_exit().await.success());
}

#[tokio::test]
async fn parked_connections_of_the_native_echo_answer_and_leave() {
    let (_server, admin) = start(&["--native-echo"]).await;
    let url = format!("ws://{}/", _server.addr);
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(ws_connect(&url).await);
    }
    all_parked(&admin, clients.len()).await;
    for round in 0..2 {
        for (i, ws) in clients.iter_mut().enumerate() {
            assert_echo(ws, &format!("round {round} client {i}")).await;
        }
        all_parked(&admin, clients.len()).await;
    }
    clients.truncate(5);
    wait_metric(&admin, "wsserver_connections_open", 5.0).await;
    all_parked(&admin, 5).await;
}

#[tokio::test]
async fn park_delay_zero_parks_nothing() {
    let (_server, admin) = start(&["--native-echo", "--set", "ParkDelay=0"]).await;
    let url = format!("ws://{}/", _server.addr);
    let mut ws = ws_connect(&url).await;
    assert_echo(&mut ws, "x").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        metric(&admin, "wsserver_connections_parked").await,
        Some(0.0)
    );
    assert_echo(&mut ws, "y").await;
}
