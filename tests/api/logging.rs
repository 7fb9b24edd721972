//! The Log event at each LogLevel.

use wsserver::{LogLevel, LogType};

use crate::common::*;
use crate::harness::*;

/// A connection's whole life: request, a message, a close. Returns its id
/// once Disconnected has fired, so every log line of it is in `logs`.
async fn one_connection(t: &mut TestServer) -> u64 {
    let mut c = RawClient::tcp(t.addr).await;
    c.send(upgrade_request("/feed?x=1", &["Origin: http://example.com"]).as_bytes())
        .await;
    assert!(c.read_http_head().await.starts_with("HTTP/1.1 101"));
    let id = t.events.connected().await;
    c.send(&masked(0x81, b"hi")).await;
    c.send(&masked(0x88, &1000u16.to_be_bytes())).await;
    t.events.disconnected(id).await;
    id
}

#[tokio::test]
async fn log_level_0_logs_nothing() {
    let mut t = server().config("LogLevel=0").start().await;
    one_connection(&mut t).await;
    assert!(t.events.logs.is_empty(), "{:#?}", t.events.logs);
}

#[tokio::test]
async fn log_level_1_logs_connection_status_as_info() {
    let mut t = server().start().await;
    assert_eq!(t.server.config("LogLevel").unwrap(), "1", "the default");
    let id = one_connection(&mut t).await;
    let logs = &t.events.logs;
    assert!(logs.iter().all(|l| l.level == LogLevel::Info), "{logs:#?}");
    let listening = format!("listening on {}", t.addr);
    assert!(
        logs.iter()
            .any(|l| l.id.is_none() && l.message == listening),
        "{logs:#?}"
    );
    let about_the_connection: Vec<&str> = logs
        .iter()
        .filter(|l| l.id == Some(id))
        .map(|l| l.message.as_str())
        .collect();
    let connected = about_the_connection
        .iter()
        .position(|m| m.starts_with("connected 127.0.0.1:") && m.ends_with(" /feed?x=1"));
    let disconnected = about_the_connection
        .iter()
        .position(|m| m.starts_with("disconnected 127.0.0.1:") && m.contains("1000"));
    assert!(
        matches!((connected, disconnected), (Some(c), Some(d)) if c < d),
        "{logs:#?}"
    );
}

#[tokio::test]
async fn log_level_2_adds_the_open_request() {
    let mut t = server().config("LogLevel=2").start().await;
    let id = one_connection(&mut t).await;
    let verbose: Vec<_> = t
        .events
        .logs
        .iter()
        .filter(|l| l.level == LogLevel::Verbose)
        .collect();
    assert_eq!(verbose.len(), 1, "{:#?}", t.events.logs);
    let request = verbose[0];
    assert_eq!((request.id, request.log_type), (Some(id), LogType::Verbose));
    assert!(
        request.message.contains("GET /feed?x=1 HTTP/1.1\r\n"),
        "{request:?}"
    );
    assert!(
        request.message.contains("Origin: http://example.com\r\n"),
        "{request:?}"
    );
    assert!(
        t.events.logs.iter().any(|l| l.level == LogLevel::Info),
        "info lines are still logged"
    );
}
