//! ConnectionRequest: what the handler is told about a new TCP connection,
//! and how its verdict admits or refuses it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::*;
use crate::harness::*;

/// The `accept` of a ConnectionRequest event, as the server passed it in.
fn verdict(event: Event) -> bool {
    match event {
        Event::ConnectionRequest { accept, .. } => accept,
        other => panic!("expected ConnectionRequest, got {other:?}"),
    }
}

#[tokio::test]
async fn connection_request_reports_both_addresses_and_accepts_by_default() {
    let mut t = server().start().await;
    let c = RawClient::connect(t.addr).await;
    match t.events.next().await {
        Event::ConnectionRequest {
            remote,
            local,
            accept,
        } => {
            assert_eq!(remote, c.stream.local_addr().unwrap());
            assert_eq!(local, t.addr);
            assert!(accept);
        }
        other => panic!("first event is {other:?}"),
    }
    assert!(matches!(t.events.next().await, Event::OpenRequest(_)));
}

#[tokio::test]
async fn the_client_filters_verdict_arrives_as_accept_false_and_the_handler_may_overrule_it() {
    for filter in ["BlockedClients=127.0.0.1", "AllowedClients=10.*"] {
        let overrule = Arc::new(AtomicBool::new(true));
        let hook = overrule.clone();
        let mut t = server()
            .config(filter)
            .on_connection_request(move |r| r.accept = hook.load(Ordering::SeqCst))
            .start()
            .await;

        let mut admitted = RawClient::connect(t.addr).await;
        assert!(!verdict(t.events.next().await), "{filter}");
        let id = t.events.connected().await;
        admitted.send(&masked(0x81, b"let in")).await;
        assert_eq!(t.events.data_in(id).await.text(), "let in");

        overrule.store(false, Ordering::SeqCst);
        let mut refused = RawClient::tcp(t.addr).await;
        refused.send(UPGRADE_REQUEST.as_bytes()).await;
        assert_eq!(refused.read_http_response().await, "", "{filter}");
        assert!(!verdict(t.events.next().await), "{filter}");
    }
}

#[tokio::test]
async fn a_handler_refusal_closes_tcp_without_a_response_and_no_further_event() {
    let admit = Arc::new(AtomicBool::new(false));
    let hook = admit.clone();
    let mut t = server()
        .on_connection_request(move |r| r.accept = hook.load(Ordering::SeqCst))
        .start()
        .await;
    let mut refused = RawClient::tcp(t.addr).await;
    refused.send(UPGRADE_REQUEST.as_bytes()).await;
    assert_eq!(refused.read_http_response().await, "");
    assert!(t.server.connections().is_empty());

    admit.store(true, Ordering::SeqCst);
    let _admitted = RawClient::connect(t.addr).await;
    // The refused connection produced its ConnectionRequest and nothing
    // else: the next event already belongs to the second client.
    assert!(verdict(t.events.next().await));
    assert!(verdict(t.events.next().await));
    assert!(matches!(t.events.next().await, Event::OpenRequest(_)));
    assert!(matches!(t.events.next().await, Event::Connected(_)));
}
