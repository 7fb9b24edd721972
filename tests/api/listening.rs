//! StartListening, StopListening, Shutdown, Listening and LocalPort.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::*;
use crate::harness::*;

#[tokio::test]
async fn start_listening_picks_a_port_for_0_and_refuses_a_second_start() {
    let t = server().start().await;
    assert!(t.server.listening());
    let port = t.addr.port();
    assert_ne!(port, 0);
    assert_eq!(t.server.local_port(), port);
    assert_eq!(t.server.config("LocalPort").unwrap(), port.to_string());
    assert_eq!(t.server.config("LocalHost").unwrap(), "127.0.0.1");

    let again = t.server.start_listening().await.unwrap_err();
    assert_eq!(again.code(), 104);
    assert_eq!(t.server.local_port(), port, "still on the first port");
}

#[tokio::test]
async fn stop_listening_refuses_new_clients_and_keeps_existing_ones() {
    let mut t = server().start().await;
    let (mut c, id) = t.raw_client().await;
    t.server.stop_listening().await;
    assert!(!t.server.listening());
    let refused = tokio::time::timeout(WAIT, TcpStream::connect(t.addr))
        .await
        .expect("connect answers in time");
    assert_eq!(
        refused.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );

    c.send(&masked(0x81, b"still here")).await;
    assert_eq!(t.events.data_in(id).await.text(), "still here");
    t.server.send_text(id, "so am I").unwrap();
    assert_eq!(c.read_frame().await.unwrap().payload, b"so am I");

    // Listening resumes on a port of the system's choice.
    t.server.start_listening().await.unwrap();
    let addr = t.server.local_addr().unwrap();
    let _newcomer = RawClient::connect(addr).await;
    t.events.connected().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_client_with_1001_and_waits_for_them() {
    let mut t = server()
        // A handler that takes its time over Disconnected: Shutdown
        // returns only after it.
        .on_disconnected(|_| std::thread::sleep(Duration::from_millis(200)))
        .start()
        .await;
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (mut ws, id) = t.ws_client().await;
        ids.push(id);
        // Each client reads until the end, answering the close.
        clients.push(tokio::spawn(async move {
            let mut close_code = None;
            while let Some(Ok(message)) = ws.next().await {
                if let Message::Close(Some(frame)) = message {
                    close_code = Some(frame.code);
                }
            }
            close_code
        }));
    }

    tokio::time::timeout(WAIT, t.server.shutdown())
        .await
        .expect("shutdown ends once the clients are gone");
    assert!(!t.server.listening());
    assert!(t.server.connections().is_empty());
    let mut disconnected: Vec<_> = t
        .events
        .recorded()
        .into_iter()
        .filter_map(|e| match e {
            Event::Disconnected { id, code, .. } => Some((id, code)),
            _ => None,
        })
        .collect();
    disconnected.sort();
    // Compared as sets: the clients end in any order.
    let mut expected: Vec<_> = ids.iter().map(|id| (*id, 1001)).collect();
    expected.sort();
    assert_eq!(
        disconnected, expected,
        "every Disconnected fired before Shutdown returned"
    );
    for client in clients {
        let code = tokio::time::timeout(WAIT, client).await.unwrap().unwrap();
        assert_eq!(code, Some(CloseCode::Away));
    }
}
