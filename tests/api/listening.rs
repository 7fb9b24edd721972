//! StartListening, StopListening, Listening and LocalPort.

use tokio::net::TcpStream;

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
