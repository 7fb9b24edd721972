//! WebSocketOpenRequest: what the handler learns about the upgrade request
//! and how its answer shapes the handshake response the client sees.

use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use wsserver::OpenResponse;

use crate::common::*;
use crate::harness::*;

/// Sends `request` on a new connection; returns the client and the head
/// of the response.
async fn respond_to(t: &TestServer, request: &str) -> (RawClient, String) {
    let mut c = RawClient::tcp(t.addr).await;
    c.send(request.as_bytes()).await;
    let head = c.read_http_head().await;
    (c, head)
}

#[tokio::test]
async fn the_open_request_carries_the_clients_request() {
    let mut t = server().start().await;
    let request = upgrade_request(
        "/chat?room=1",
        &[
            "Origin: http://example.com",
            "Sec-WebSocket-Protocol: chat, superchat",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
            "X-Custom: 42",
        ],
    );
    let (c, head) = respond_to(&t, &request).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let open = t.events.open_request().await;
    let id = t.events.connected().await;
    assert_eq!(open.connection_id, id);
    assert_eq!(open.request_uri(), "/chat?room=1");
    assert_eq!(open.path(), "/chat");
    assert_eq!(open.host(), "127.0.0.1");
    assert_eq!(open.origin(), "http://example.com");
    assert_eq!(
        open.subprotocols().collect::<Vec<_>>(),
        ["chat", "superchat"]
    );
    assert_eq!(
        open.extensions(),
        "permessage-deflate; client_max_window_bits"
    );
    assert_eq!(open.header("x-custom"), Some("42"));
    // RequestHeaders: every header line of the request, as sent.
    let header_lines = request
        .split_once("\r\n")
        .and_then(|(_, rest)| rest.strip_suffix("\r\n"))
        .unwrap();
    assert_eq!(open.request_headers_text(), header_lines);
    assert_eq!(open.remote, c.stream.local_addr().unwrap());
    assert_eq!(open.local, t.addr);

    // Without Origin or subprotocols the fields are empty.
    let (_c, head) = respond_to(&t, UPGRADE_REQUEST).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let open = t.events.open_request().await;
    assert_eq!(
        (
            open.origin(),
            open.subprotocols().count(),
            open.extensions().as_str()
        ),
        ("", 0, "")
    );
}

#[tokio::test]
async fn the_chosen_subprotocol_reaches_the_client() {
    let t = server()
        .on_open(|req| async move {
            let choice = req.subprotocols().last().unwrap_or_default().to_owned();
            OpenResponse::accept().with_subprotocol(choice)
        })
        .start()
        .await;
    let mut request = t.url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("chat, superchat"),
    );
    // tokio-tungstenite checks the answer is one of the offered protocols.
    let (_ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["Sec-WebSocket-Protocol"], "superchat");
}

#[tokio::test]
async fn a_subprotocol_the_client_did_not_offer_is_omitted() {
    let mut t = server()
        .on_open(|_| async { OpenResponse::accept().with_subprotocol("mqtt") })
        .start()
        .await;
    let request = upgrade_request("/", &["Sec-WebSocket-Protocol: chat"]);
    let (_c, head) = respond_to(&t, &request).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("sec-websocket-protocol"),
        "{head}"
    );
    t.events.connected().await;
}

#[tokio::test]
async fn a_rejection_with_401_and_www_authenticate_reaches_the_client() {
    let t = server()
        .on_open(|_| async {
            OpenResponse::reject(401)
                .with_header("WWW-Authenticate", "Basic realm=\"Secure Realm\"")
        })
        .start()
        .await;
    let error = tokio_tungstenite::connect_async(t.url.as_str())
        .await
        .expect_err("the handler refused");
    let tokio_tungstenite::tungstenite::Error::Http(response) = error else {
        panic!("expected an HTTP refusal, got {error:?}");
    };
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["WWW-Authenticate"],
        "Basic realm=\"Secure Realm\""
    );
    assert!(t.server.connections().is_empty());
}

#[tokio::test]
async fn headers_that_would_corrupt_the_response_are_dropped() {
    let mut t = server()
        .on_open(|_| async {
            OpenResponse::accept()
                .with_header("X-Good", "yes")
                .with_header("X-Split", "a\r\nInjected: 1")
                .with_header("X-Bare-LF", "a\nInjected: 2")
                .with_header("Bad Name", "x")
        })
        .start()
        .await;
    let (mut c, head) = respond_to(&t, UPGRADE_REQUEST).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("\r\nX-Good: yes\r\n"), "{head}");
    for dropped in ["Injected", "X-Split", "X-Bare-LF", "Bad Name"] {
        assert!(!head.contains(dropped), "{dropped} in {head}");
    }
    // The handshake stays well-formed: the connection works.
    let id = t.events.connected().await;
    c.send(&masked(0x81, b"after")).await;
    assert_eq!(t.events.data_in(id).await.text(), "after");
}

#[tokio::test]
async fn the_handlers_status_is_the_response_status_and_a_non_http_status_gives_500() {
    // The test asks for a status through the request path: /status/404.
    let t = server()
        .on_open(|req| async move {
            let status = req.path().trim_start_matches("/status/").parse().unwrap();
            OpenResponse::reject(status)
        })
        .start()
        .await;
    for (asked, answered) in [
        (101, 101),
        (403, 403),
        (404, 404),
        (503, 503),
        (0, 500),
        (42, 500),
        (100, 500),
        (600, 500),
        (999, 500),
    ] {
        let request = upgrade_request(&format!("/status/{asked}"), &[]);
        let (_c, head) = respond_to(&t, &request).await;
        assert!(
            head.starts_with(&format!("HTTP/1.1 {answered} ")),
            "asked {asked}: {head}"
        );
    }
}

#[tokio::test]
async fn an_open_request_slower_than_handshake_timeout_ends_the_connection() {
    let mut t = server()
        .config("HandshakeTimeout=1")
        .on_open(|_| std::future::pending())
        .start()
        .await;
    let mut c = RawClient::tcp(t.addr).await;
    c.send(UPGRADE_REQUEST.as_bytes()).await;
    let asked = Instant::now();
    t.events.open_request().await;
    assert_eq!(c.read_http_response().await, "", "no response is sent");
    assert!(asked.elapsed() >= Duration::from_millis(900));
    assert!(t.server.connections().is_empty());
    t.events
        .none_within(Duration::from_millis(200), "Connected", |e| {
            matches!(e, Event::Connected(_))
        })
        .await;
}

#[tokio::test]
async fn an_answer_can_give_its_connection_a_smaller_message_limit() {
    let mut t = server()
        .on_open(|request| async move {
            if request.path() == "/small" {
                OpenResponse::accept().with_max_message_size(10)
            } else {
                OpenResponse::accept()
            }
        })
        .start()
        .await;
    let (mut small, head) = respond_to(&t, &upgrade_request("/small", &[])).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let small_id = t.events.connected().await;
    let (mut other, _) = respond_to(&t, &upgrade_request("/other", &[])).await;
    let other_id = t.events.connected().await;

    small.send(&masked(0x81, b"0123456789")).await;
    assert_eq!(t.events.data_in(small_id).await.text(), "0123456789");
    small.send(&masked(0x81, b"0123456789A")).await;
    assert_eq!(small.expect_close().await, Some(1009));
    // The server's MaxMessageSize still rules the other connection.
    other.send(&masked(0x82, &[7; 100])).await;
    assert_eq!(t.events.data_in(other_id).await.data, [7; 100]);
}
