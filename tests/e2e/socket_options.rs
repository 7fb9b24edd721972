//! TCP settings, checked on the server's real sockets the way an operator
//! would (getsockopt on the server's descriptors, `ss` for the backlog).

use std::path::Path;

use serde_json::Value;
use tokio::process::Command;

use crate::common::*;

/// The options of the server-side socket of `client` and of the listener.
async fn server_sockets(server: &ServerProcess, client: &RawClient) -> Value {
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/helpers/server_sockets.py");
    let port = client.stream.local_addr().unwrap().port();
    let out = Command::new("python3")
        .arg(helper)
        .arg(server.pid().to_string())
        .arg(port.to_string())
        .output()
        .await
        .expect("run server_sockets.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[tokio::test]
async fn tcp_no_delay_is_on_by_default_and_can_be_turned_off() {
    let server = ServerProcess::start(&[]).await;
    let c = RawClient::connect(server.addr).await;
    assert_eq!(
        server_sockets(&server, &c).await["connection"]["nodelay"],
        1
    );

    let server = ServerProcess::start(&["--set", "TcpNoDelay=False"]).await;
    let c = RawClient::connect(server.addr).await;
    assert_eq!(
        server_sockets(&server, &c).await["connection"]["nodelay"],
        0
    );
}

#[tokio::test]
async fn keep_alive_settings_reach_accepted_sockets() {
    let server = ServerProcess::start(&[
        "--set",
        "KeepAliveTime=5000",
        "--set",
        "KeepAliveInterval=2000",
    ])
    .await;
    let c = RawClient::connect(server.addr).await;
    let s = &server_sockets(&server, &c).await["connection"];
    assert_eq!(
        (
            s["keepalive"].as_i64(),
            s["keepidle"].as_i64(),
            s["keepintvl"].as_i64()
        ),
        (Some(1), Some(5), Some(2))
    );

    let server = ServerProcess::start(&[]).await;
    let c = RawClient::connect(server.addr).await;
    assert_eq!(
        server_sockets(&server, &c).await["connection"]["keepalive"],
        0
    );
}

#[tokio::test]
async fn buffer_sizes_reach_accepted_sockets() {
    let server = ServerProcess::start(&[
        "--set",
        "InBufferSize=65536",
        "--set",
        "OutBufferSize=98304",
    ])
    .await;
    let c = RawClient::connect(server.addr).await;
    let s = &server_sockets(&server, &c).await["connection"];
    // Linux reports twice the size asked for (it counts its bookkeeping).
    assert_eq!(s["rcvbuf"], 2 * 65536);
    assert_eq!(s["sndbuf"], 2 * 98304);
}

#[tokio::test]
async fn connection_backlog_sets_the_listen_queue() {
    let server = ServerProcess::start(&["--set", "ConnectionBacklog=77"]).await;
    let out = Command::new("ss")
        .args(["-Htln", &format!("sport = :{}", server.addr.port())])
        .output()
        .await
        .expect("run ss (iproute2)");
    let line = String::from_utf8_lossy(&out.stdout);
    let send_q: Vec<&str> = line.split_whitespace().collect();
    // For a listening socket ss shows the backlog as Send-Q.
    assert_eq!(send_q.get(2), Some(&"77"), "ss said {line:?}");
}

#[tokio::test]
async fn bind_exclusively_decides_whether_the_port_can_be_shared() {
    let first = ServerProcess::start(&[]).await;
    let listen = first.addr.to_string();
    let second = run_to_exit(&["--listen", &listen]).await;
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&listen) && stderr.to_lowercase().contains("in use"),
        "{stderr}"
    );

    let shared_a = ServerProcess::start(&["--set", "BindExclusively=False"]).await;
    let listen = shared_a.addr.to_string();
    let shared_b =
        ServerProcess::start_exact(&["--listen", &listen, "--set", "BindExclusively=False"]).await;
    assert_eq!(shared_b.addr, shared_a.addr);
    let c = RawClient::connect(shared_b.addr).await;
    assert_eq!(
        server_sockets(&shared_b, &c).await["listener"]["reuseport"],
        1
    );
}

#[tokio::test]
async fn use_ipv6_selects_the_address_families() {
    let v6 = ServerProcess::start_exact(&["--listen", "[::1]:0"]).await;
    assert!(v6.url.starts_with("ws://[::1]:"), "{}", v6.url);
    let mut ws = ws_connect(&v6.url).await;
    assert_echo(&mut ws, "over ipv6").await;

    // Dual stack on every interface; only loopback clients connect.
    let dual = ServerProcess::start_exact(&["--listen", "[::]:0", "--set", "UseIPv6=2"]).await;
    let port = dual.addr.port();
    let c = RawClient::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
    assert_eq!(server_sockets(&dual, &c).await["listener"]["v6only"], 0);
    let mut ws = ws_connect(&format!("ws://[::1]:{port}")).await;
    assert_echo(&mut ws, "both families").await;

    let v6_only = ServerProcess::start_exact(&["--listen", "[::]:0", "--set", "UseIPv6=1"]).await;
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", v6_only.addr.port())).await;
    assert!(
        refused.is_err(),
        "IPv4 client reached an IPv6-only listener"
    );
}
