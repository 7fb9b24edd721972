//! Disconnected and Error events, the Disconnect method with
//! DisconnectStatusCode/Description, and sends after the end.

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::*;
use crate::harness::*;

/// A close frame from the client with `code` and `reason`.
fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    masked(0x88, &[&code.to_be_bytes()[..], reason.as_bytes()].concat())
}

#[tokio::test]
async fn disconnected_reports_the_clients_close_code_and_reason() {
    let mut t = server().start().await;
    let (mut c, id) = t.raw_client().await;
    c.send(&close_frame(4001, "bye now")).await;
    assert_eq!(c.expect_close().await, Some(4001));
    assert_eq!(t.events.disconnected(id).await, (4001, "bye now".into()));
    assert!(t.server.connections().is_empty());
}

#[tokio::test]
async fn a_close_without_code_is_reported_as_1005() {
    let mut t = server().start().await;
    let (mut c, id) = t.raw_client().await;
    c.send(&masked(0x88, b"")).await;
    assert_eq!(c.expect_close().await, None);
    assert_eq!(t.events.disconnected(id).await.0, 1005);
}

#[tokio::test]
async fn a_tcp_connection_ending_without_close_is_reported_as_1006() {
    let mut t = server().start().await;
    let (c, id) = t.raw_client().await;
    drop(c);
    assert_eq!(t.events.disconnected(id).await.0, 1006);
}

#[tokio::test]
async fn after_a_protocol_error_disconnected_reports_our_close_code() {
    let mut t = server().start().await;
    let (mut c, id) = t.raw_client().await;
    c.send(&frame(0x81, b"unmasked", None)).await;
    assert_eq!(c.expect_close().await, Some(1002));
    drop(c);
    assert_eq!(t.events.disconnected(id).await.0, 1002);
}

#[tokio::test]
async fn a_reset_while_sending_fires_error_with_a_winsock_style_code() {
    let mut t = server()
        .config("OutBufferSize=65536")
        .config("MaxSendQueue=4194304")
        .start()
        .await;
    let (c, id) = t.raw_client().await;
    // Far more than the socket buffers hold, while the client reads
    // nothing, so the server is still writing when the client resets.
    let conn = t.conn(id);
    for _ in 0..32 {
        conn.send_bytes(&[1; 64 * 1024]).unwrap();
    }
    tokio::task::yield_now().await;
    c.stream.set_zero_linger().unwrap();
    drop(c);
    let (conn_of_error, code, description) = t
        .events
        .find("Error", |e| match e {
            Event::Error {
                id,
                code,
                description,
            } => Some((*id, *code, description.clone())),
            _ => None,
        })
        .await;
    assert_eq!(conn_of_error, Some(id));
    assert!(
        [10053, 10054, 10058].contains(&code),
        "error code {code}: {description}"
    );
    assert!(!description.is_empty());
    assert_eq!(t.events.disconnected(id).await.0, 1006);
}

#[tokio::test]
async fn disconnect_sends_1000_and_the_standard_text_by_default() {
    let mut t = server().start().await;
    let (mut ws, id) = t.ws_client().await;
    t.server.disconnect(id).unwrap();
    let close = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    let Some(Ok(Message::Close(Some(frame)))) = close else {
        panic!("expected a close frame, got {close:?}");
    };
    assert_eq!(frame.code, CloseCode::Normal);
    assert_eq!(frame.reason.as_str(), "Normal closure");
    // tokio-tungstenite answers the close; the handshake completes.
    assert!(
        tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(t.events.disconnected(id).await.0, 1000);
}

#[tokio::test]
async fn disconnect_sends_disconnect_status_code_and_description() {
    let mut t = server().start().await;
    // Settings read when Disconnect is called, so they may change while
    // listening.
    t.server.config("DisconnectStatusCode=4000").unwrap();
    t.server
        .config("DisconnectStatusDescription=down for maintenance")
        .unwrap();
    let (mut c, id) = t.raw_client().await;
    t.conn(id).disconnect().unwrap();
    let close = c.read_frame().await.unwrap();
    assert_eq!(close.close_code(), Some(4000));
    assert_eq!(&close.payload[2..], b"down for maintenance");
    c.send(&close_frame(4000, "")).await;
    assert!(c.closed_within(WAIT).await);
    assert_eq!(t.events.disconnected(id).await.0, 4000);

    // Only the code set: its standard description.
    t.server.config("DisconnectStatusDescription=").unwrap();
    t.server.config("DisconnectStatusCode=1001").unwrap();
    let (mut c, id) = t.raw_client().await;
    t.server.disconnect(id).unwrap();
    let close = c.read_frame().await.unwrap();
    assert_eq!(close.close_code(), Some(1001));
    assert_eq!(&close.payload[2..], b"Going away");
}

#[tokio::test]
async fn close_sends_the_given_code_and_reason() {
    let mut t = server().start().await;
    let (mut c, id) = t.raw_client().await;
    let conn = t.conn(id);
    for reserved in [1005, 1006, 999] {
        assert_eq!(conn.close(reserved, "").unwrap_err().code(), 10022);
    }
    conn.close(4321, "see you").unwrap();
    let close = c.read_frame().await.unwrap();
    assert_eq!(close.close_code(), Some(4321));
    assert_eq!(&close.payload[2..], b"see you");
    assert_eq!(
        conn.send_text("late").unwrap_err().code(),
        4202,
        "nothing is sent after the close"
    );
    c.send(&close_frame(4321, "")).await;
    assert!(c.closed_within(WAIT).await);
    assert_eq!(t.events.disconnected(id).await.0, 4321);
}

#[tokio::test]
async fn sends_after_the_end_are_refused() {
    let mut t = server().start().await;
    let (mut c, id) = t.raw_client().await;
    let conn = t.conn(id);
    c.send(&close_frame(1000, "")).await;
    t.events.disconnected(id).await;
    assert!(!conn.info().connected);
    assert_eq!(conn.send_text("late").unwrap_err().code(), 4202);
    assert_eq!(t.server.send_text(id, "late").unwrap_err().code(), 126);
    assert_eq!(t.server.disconnect(id).unwrap_err().code(), 126);
}
