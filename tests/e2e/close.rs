//! The closing handshake from either side, timeouts, and what the client
//! sees in each case.

use std::time::Duration;

use crate::common::*;

#[tokio::test]
async fn the_server_echoes_the_clients_close_code_and_closes_tcp() {
    let server = ServerProcess::start(&[]).await;
    for code in [1000u16, 1001, 3000, 4999] {
        let mut c = RawClient::connect(server.addr).await;
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        c.send(&masked(0x88, &payload)).await;
        assert_eq!(c.expect_close().await, Some(code));
        assert!(c.closed_within(WAIT).await);
    }
}

#[tokio::test]
async fn a_close_without_code_is_answered_without_code() {
    let server = ServerProcess::start(&[]).await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(&masked(0x88, b"")).await;
    let close = c.read_frame().await.unwrap();
    assert_eq!((close.opcode, close.payload.len()), (8, 0));
}

#[tokio::test]
async fn nothing_after_the_clients_close_is_processed() {
    let server = ServerProcess::start(&[]).await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(&[masked(0x88, &1000u16.to_be_bytes()), masked(0x81, b"late")].concat())
        .await;
    let reply = c.read_frame().await.unwrap();
    assert_eq!(reply.opcode, 8, "got {reply:?} instead of the close reply");
    assert!(c.read_frame().await.is_none(), "frame after close");
}

#[tokio::test]
async fn idle_timeout_closes_a_silent_client_with_1001() {
    let server = ServerProcess::start(&["--set", "IdleTimeout=1"]).await;
    let mut idle = RawClient::connect(server.addr).await;
    let mut busy = RawClient::connect(server.addr).await;
    let started = std::time::Instant::now();
    // The busy client keeps talking past the timeout and stays open.
    for _ in 0..6 {
        busy.send(&masked(0x89, b"")).await;
        assert_eq!(busy.read_frame().await.unwrap().opcode, 10);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(idle.expect_close().await, Some(1001));
    assert!(started.elapsed() >= Duration::from_millis(900));
    busy.send(&masked(0x81, b"alive")).await;
    assert_eq!(busy.read_frame().await.unwrap().payload, b"alive");
}

#[tokio::test]
async fn wait_for_close_response_keeps_tcp_open_until_the_client_answers() {
    let server =
        ServerProcess::start(&["--set", "IdleTimeout=1", "--set", "CloseTimeout=30"]).await;
    let mut c = RawClient::connect(server.addr).await;
    assert_eq!(c.expect_close().await, Some(1001));
    assert!(
        !c.closed_within(Duration::from_millis(500)).await,
        "closed before our answer"
    );
    c.send(&masked(0x88, &1001u16.to_be_bytes())).await;
    assert!(c.closed_within(WAIT).await);
}

#[tokio::test]
async fn without_wait_for_close_response_tcp_closes_right_after_the_close_frame() {
    let server = ServerProcess::start(&[
        "--set",
        "IdleTimeout=1",
        "--set",
        "WaitForCloseResponse=False",
    ])
    .await;
    let mut c = RawClient::connect(server.addr).await;
    assert_eq!(c.expect_close().await, Some(1001));
    assert!(c.closed_within(Duration::from_millis(500)).await);
}

#[tokio::test]
async fn close_timeout_ends_a_connection_whose_client_never_answers() {
    let server = ServerProcess::start(&["--set", "IdleTimeout=1", "--set", "CloseTimeout=1"]).await;
    let mut c = RawClient::connect(server.addr).await;
    assert_eq!(c.expect_close().await, Some(1001));
    let waited = std::time::Instant::now();
    assert!(c.closed_within(Duration::from_secs(5)).await);
    assert!(waited.elapsed() >= Duration::from_millis(700));
}
