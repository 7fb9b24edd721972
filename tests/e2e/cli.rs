//! The command line and the TOML file: settings reach the server, errors
//! name the key and the value, signals close connections with 1001.

use std::io::Write;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::*;

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[tokio::test]
async fn port_zero_prints_the_real_port() {
    let server = ServerProcess::start(&[]).await;
    assert_ne!(server.addr.port(), 0);
    assert_eq!(server.url, format!("ws://127.0.0.1:{}", server.addr.port()));
    let mut ws = ws_connect(&server.url).await;
    assert_echo(&mut ws, "hello").await;
}

#[tokio::test]
async fn the_toml_file_sets_listen_and_settings_and_set_overrides_it() {
    let file = config_file("listen = \"127.0.0.1:0\"\n[settings]\nMaxMessageSize = 10\n");
    let path = file.path().to_str().unwrap();
    let server = ServerProcess::start_exact(&["--config", path]).await;
    let mut c = RawClient::connect(server.addr).await;
    c.send(&masked(0x81, b"eleven byte")).await;
    assert_eq!(c.expect_close().await, Some(1009));

    let server =
        ServerProcess::start_exact(&["--config", path, "--set", "MaxMessageSize=100"]).await;
    let mut ws = ws_connect(&server.url).await;
    assert_echo(&mut ws, "eleven byte").await;
}

#[tokio::test]
async fn configuration_errors_name_the_key_and_the_value() {
    let out = run_to_exit(&["--set", "MaxConnections=lots"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MaxConnections") && err.contains("\"lots\""),
        "{err}"
    );

    let out = run_to_exit(&["--set", "NoSuchSetting=1"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NoSuchSetting"));

    let file = config_file("[settings]\nUseIPv6 = 7\n");
    let out = run_to_exit(&["--config", file.path().to_str().unwrap()]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("UseIPv6") && err.contains("\"7\""), "{err}");

    let out = run_to_exit(&["--listen", "nowhere"]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOST:PORT"));
}

#[tokio::test]
async fn list_settings_shows_every_key() {
    let out = run_to_exit(&["--list-settings"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    for key in [
        "MaxConnections",
        "BufferMessage",
        "UseIPv6",
        "MaxMessageSize",
        "IdleTimeout",
    ] {
        assert!(text.contains(key), "{key} missing from {text}");
    }
}

#[tokio::test]
async fn sigterm_closes_every_connection_with_1001_and_exits_cleanly() {
    let server = ServerProcess::start(&[]).await;
    let mut a = ws_connect(&server.url).await;
    let mut b = ws_connect(&server.url).await;
    assert_echo(&mut a, "before").await;
    let exit = tokio::spawn(server.terminate());
    for ws in [&mut a, &mut b] {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
            other => panic!("expected close 1001, got {other:?}"),
        }
    }
    drop((a, b));
    assert!(exit.await.unwrap().success());
}

#[tokio::test]
async fn log_level_controls_the_log_events() {
    let quiet = ServerProcess::start(&["--set", "LogLevel=0"]).await;
    let verbose = ServerProcess::start(&["--set", "LogLevel=2"]).await;
    for server in [&quiet, &verbose] {
        let mut ws = ws_connect(&server.url).await;
        assert_echo(&mut ws, "x").await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !quiet.stderr().contains("connected 127.0.0.1"),
        "{}",
        quiet.stderr()
    );
    let log = verbose.stderr();
    assert!(log.contains("connected 127.0.0.1"), "{log}");
    assert!(log.contains("open request"), "{log}");
}
