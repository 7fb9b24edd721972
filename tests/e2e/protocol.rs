//! Protocol violations: each gets the close code RFC 6455 requires, and
//! the server goes on serving its other clients.

use crate::common::*;

/// Sends `wire` on a fresh connection and returns the close code the
/// server answers with; checks another client is served meanwhile.
async fn close_code_for(server: &ServerProcess, wire: &[u8]) -> Option<u16> {
    let mut bystander = ws_connect(&server.url).await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(wire).await;
    let code = c.expect_close().await;
    assert!(
        c.closed_within(WAIT).await,
        "server kept the failed connection open"
    );
    assert_echo(&mut bystander, "unaffected").await;
    code
}

#[tokio::test]
async fn framing_violations_close_with_1002() {
    let server = ServerProcess::start(&[]).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked frame", frame(0x81, b"hi", None)),
        ("RSV1 without extension", masked(0xC1, b"hi")),
        ("RSV2", masked(0xA1, b"hi")),
        ("RSV3", masked(0x91, b"hi")),
        ("reserved data opcode", masked(0x83, b"")),
        ("reserved control opcode", masked(0x8B, b"")),
        ("fragmented ping", masked(0x09, b"x")),
        ("ping over 125 bytes", masked(0x89, &[0; 126])),
        ("continuation without a message", masked(0x80, b"x")),
        (
            "new message inside a fragmented one",
            [masked(0x01, b"a"), masked(0x81, b"b")].concat(),
        ),
        ("close payload of one byte", masked(0x88, &[3])),
        ("close code 1005", masked(0x88, &1005u16.to_be_bytes())),
        ("close code 999", masked(0x88, &999u16.to_be_bytes())),
        ("close code 2000", masked(0x88, &2000u16.to_be_bytes())),
        (
            "64-bit length with the top bit",
            vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
        ),
    ];
    for (name, wire) in cases {
        assert_eq!(close_code_for(&server, &wire).await, Some(1002), "{name}");
    }
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007_as_soon_as_it_arrives() {
    let server = ServerProcess::start(&[]).await;
    // The message is never finished: the server must not wait for its end.
    let first_fragment = masked(0x01, &[b'o', b'k', 0xED, 0xA0, 0x80]);
    assert_eq!(close_code_for(&server, &first_fragment).await, Some(1007));
    let bad_reason = masked(0x88, &[0x03, 0xE8, 0xFF, 0xFE]);
    assert_eq!(close_code_for(&server, &bad_reason).await, Some(1007));
    let truncated_char = masked(0x81, &[b'a', 0xE2, 0x82]);
    assert_eq!(close_code_for(&server, &truncated_char).await, Some(1007));
}

#[tokio::test]
async fn a_message_over_max_message_size_closes_with_1009_before_its_payload() {
    let server = ServerProcess::start(&["--set", "MaxMessageSize=1000"]).await;
    // Only the header of a 1 MiB frame: the limit applies on the header.
    let mut header = vec![0x82, 0xFF];
    header.extend_from_slice(&(1u64 << 20).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    assert_eq!(close_code_for(&server, &header).await, Some(1009));
    // Fragments count towards one message.
    let fragments = [masked(0x02, &[0; 600]), masked(0x80, &[0; 600])].concat();
    assert_eq!(close_code_for(&server, &fragments).await, Some(1009));
    // A message at the limit is fine.
    let mut c = RawClient::connect(server.addr).await;
    c.send(&masked(0x82, &[7; 1000])).await;
    assert_eq!(c.read_frame().await.unwrap().payload, vec![7; 1000]);
}

#[tokio::test]
async fn replies_to_messages_before_a_violation_leave_before_the_close() {
    // The default handler is the echo plugin: its reply to the first
    // message is produced on another thread while the violation arrives.
    let server = ServerProcess::start(&[]).await;
    for violation in [
        masked(0xA1, b"rsv2"),
        masked(0x83, b""),
        frame(0x81, b"unmasked", None),
    ] {
        let mut c = RawClient::connect(server.addr).await;
        c.send(&[masked(0x81, b"first"), violation].concat()).await;
        let echo = c.read_frame().await.expect("the echo");
        assert_eq!((echo.opcode, echo.payload.as_slice()), (1, &b"first"[..]));
        assert_eq!(c.expect_close().await, Some(1002));
    }
}
