//! The Connections property and the WSConnection fields.

use wsserver::{ConnectionInfo, SendFormat};

use crate::common::*;
use crate::harness::*;

#[tokio::test]
async fn connection_info_carries_every_wsconnection_field() {
    let mut t = server().config("DefaultTimeout=30").start().await;
    let request = upgrade_request(
        "/room/7?user=ann",
        &[
            "Origin: https://app.example",
            "Sec-WebSocket-Protocol: chat, json",
        ],
    );
    let mut c = RawClient::tcp(t.addr).await;
    c.send(request.as_bytes()).await;
    assert!(c.read_http_head().await.starts_with("HTTP/1.1 101"));
    let id = t.events.connected().await;
    let client = c.stream.local_addr().unwrap();
    t.server.send_text(id, "hello").unwrap();
    assert_eq!(c.read_frame().await.unwrap().payload, b"hello");

    let header_lines = request
        .split_once("\r\n")
        .and_then(|(_, rest)| rest.strip_suffix("\r\n"))
        .unwrap();
    let expected = ConnectionInfo {
        accept_data: true,
        bytes_sent: 5,
        connected: true,
        connection_id: id,
        data_format: SendFormat::Automatic,
        host: "127.0.0.1".into(),
        line_mode: false,
        local_address: "127.0.0.1".into(),
        origin: "https://app.example".into(),
        ready_to_send: true,
        remote_host: client.ip().to_string(),
        remote_port: client.port(),
        request_headers: header_lines.into(),
        request_uri: "/room/7?user=ann".into(),
        subprotocols: "chat, json".into(),
        timeout: 30,
        tls: None,
    };
    assert_eq!(t.conn(id).info(), expected);
    assert_eq!(t.server.connections(), [expected]);

    // Fields that follow the methods.
    let conn = t.conn(id);
    t.server.change_line_mode(id, true).unwrap();
    conn.pause_data();
    conn.set_data_format(SendFormat::Text);
    conn.set_timeout(5);
    let changed = conn.info();
    assert_eq!(
        (
            changed.line_mode,
            changed.accept_data,
            changed.data_format,
            changed.timeout
        ),
        (true, false, SendFormat::Text, 5)
    );
}

#[tokio::test]
async fn connections_lists_open_connections_in_id_order() {
    let mut t = server().start().await;
    assert!(t.server.connections().is_empty());
    let (_a, a) = t.raw_client().await;
    let (mut b, b_id) = t.raw_client().await;
    let (_c, c) = t.raw_client().await;
    let ids = |t: &TestServer| -> Vec<u64> {
        t.server
            .connections()
            .iter()
            .map(|i| i.connection_id)
            .collect()
    };
    assert_eq!(ids(&t), [a, b_id, c]);
    assert!(a < b_id && b_id < c);
    b.send(&masked(0x88, &1000u16.to_be_bytes())).await;
    t.events.disconnected(b_id).await;
    assert_eq!(ids(&t), [a, c]);
    assert_eq!(t.server.connection(b_id).unwrap_err().code(), 126);
}

#[tokio::test]
async fn a_connection_handle_knows_its_addresses_request_and_server() {
    let mut t = server().start().await;
    let (c, id) = t.raw_client().await;
    let conn = t.conn(id);
    assert_eq!(conn.id(), id);
    assert_eq!(conn.remote_addr(), c.stream.local_addr().unwrap());
    assert_eq!(conn.local_addr(), t.addr);
    assert_eq!(conn.request().unwrap().request_uri(), "/");
    let server = conn.server();
    assert_eq!(server.local_addr(), Some(t.addr), "the same server");
    assert_eq!(server.connections()[0].connection_id, id);
}
