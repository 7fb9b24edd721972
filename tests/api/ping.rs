//! The Ping event and the Ping method.

use crate::common::*;
use crate::harness::*;

#[tokio::test]
async fn a_client_ping_fires_ping_with_response_false_and_is_answered_automatically() {
    let mut t = server().start().await;
    let (mut c, id) = t.raw_client().await;
    c.send(&masked(0x89, b"are you there")).await;
    assert_eq!(t.events.ping(id).await, (b"are you there".to_vec(), false));
    let pong = c.read_frame().await.unwrap();
    assert_eq!(
        (pong.fin, pong.opcode, pong.payload.as_slice()),
        (true, 10, &b"are you there"[..])
    );
}

#[tokio::test]
async fn the_pong_answering_our_ping_fires_ping_with_response_true() {
    let mut t = server().start().await;
    let (mut c, id) = t.raw_client().await;

    t.server.ping(id).unwrap();
    let ping = c.read_frame().await.unwrap();
    assert_eq!((ping.opcode, ping.payload.len()), (9, 0));
    c.send(&masked(0x8A, b"")).await;
    assert_eq!(t.events.ping(id).await, (Vec::new(), true));

    t.conn(id).ping(b"tick").unwrap();
    let ping = c.read_frame().await.unwrap();
    assert_eq!((ping.opcode, ping.payload.as_slice()), (9, &b"tick"[..]));
    c.send(&masked(0x8A, b"tick")).await;
    assert_eq!(t.events.ping(id).await, (b"tick".to_vec(), true));

    let too_long = t.conn(id).ping(&[0; 126]).unwrap_err();
    assert_eq!(too_long.code(), 10022);
}
