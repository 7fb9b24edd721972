//! The opening handshake: RFC 6455 §4.2 answers to good and bad requests.

use crate::common::*;

async fn response_to(server: &ServerProcess, request: &str) -> String {
    let mut c = RawClient::tcp(server.addr).await;
    c.send(request.as_bytes()).await;
    c.read_http_response().await
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or_default()
}

#[tokio::test]
async fn a_valid_upgrade_gets_101_with_the_rfc_accept_key() {
    let server = ServerProcess::start(&[]).await;
    let mut c = RawClient::tcp(server.addr).await;
    c.send(UPGRADE_REQUEST.as_bytes()).await;
    let head = c.read_http_head().await;
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
}

#[tokio::test]
async fn bad_requests_get_the_right_http_error_and_the_server_keeps_serving() {
    let server = ServerProcess::start(&[]).await;
    let cases = [
        ("GARBAGE\r\n\r\n".to_owned(), "400", ""),
        (UPGRADE_REQUEST.replace("GET", "POST"), "405", "Allow: GET"),
        (
            UPGRADE_REQUEST.replace("Version: 13", "Version: 8"),
            "426",
            "Sec-WebSocket-Version: 13",
        ),
        (
            UPGRADE_REQUEST.replace("Upgrade: websocket\r\n", ""),
            "426",
            "Upgrade: websocket",
        ),
        (UPGRADE_REQUEST.replace("HTTP/1.1", "HTTP/1.0"), "400", ""),
        (
            UPGRADE_REQUEST.replace("Host: 127.0.0.1\r\n", ""),
            "400",
            "",
        ),
        (
            UPGRADE_REQUEST.replace("dGhlIHNhbXBsZSBub25jZQ==", "not-base64"),
            "400",
            "",
        ),
        (
            UPGRADE_REQUEST.replace("Connection: Upgrade", "Connection: close"),
            "400",
            "",
        ),
    ];
    for (request, status, header) in cases {
        let response = response_to(&server, &request).await;
        assert!(
            status_line(&response).starts_with(&format!("HTTP/1.1 {status} ")),
            "request {request:?} got {response:?}"
        );
        assert!(response.contains(header), "{response:?} lacks {header:?}");
    }
    let mut ws = ws_connect(&server.url).await;
    assert_echo(&mut ws, "still serving").await;
}

#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let server = ServerProcess::start(&["--set", "MaxRequestHeaderSize=1024"]).await;
    let padding = format!("X-Padding: {}\r\n", "a".repeat(2000));
    let request = UPGRADE_REQUEST.replacen("\r\n", &format!("\r\n{padding}"), 1);
    let response = response_to(&server, &request).await;
    assert!(status_line(&response).contains("431"), "{response}");
    // A normal request still fits.
    let mut ws = ws_connect(&server.url).await;
    assert_echo(&mut ws, "ok").await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_is_dropped_after_handshake_timeout() {
    let server = ServerProcess::start(&["--set", "HandshakeTimeout=1"]).await;
    let mut c = RawClient::tcp(server.addr).await;
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n").await;
    assert!(c.closed_within(std::time::Duration::from_secs(5)).await);
}

#[tokio::test]
async fn frames_sent_right_after_the_request_are_not_lost() {
    let server = ServerProcess::start(&[]).await;
    let mut c = RawClient::tcp(server.addr).await;
    let mut bytes = UPGRADE_REQUEST.as_bytes().to_vec();
    bytes.extend(masked(0x81, b"early"));
    c.send(&bytes).await;
    assert!(c.read_http_head().await.starts_with("HTTP/1.1 101"));
    let echo = c.read_frame().await.unwrap();
    assert_eq!((echo.opcode, echo.payload.as_slice()), (1, &b"early"[..]));
}
