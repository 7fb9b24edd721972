//! Every load-generator mode against every bench peer, on 127.0.0.1 with
//! short windows: the figures a user reads must be there and consistent.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wsbench::client::Target;
use wsbench::loadgen::{
    EchoPlan, FanoutPlan, HandshakePlan, IdlePlan, Setup, run_echo, run_fanout, run_handshakes,
    run_idle,
};

const PEERS: [&str; 3] = [
    env!("CARGO_BIN_EXE_echo-tcp"),
    env!("CARGO_BIN_EXE_echo-tungstenite"),
    env!("CARGO_BIN_EXE_echo-fastwebsockets"),
];

/// A peer process, killed when dropped.
struct Peer {
    child: Child,
    url: String,
}

impl Peer {
    fn start(program: &str) -> Self {
        let mut child = Command::new(program)
            .args(["--listen", "127.0.0.1:0", "--threads", "1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("peer starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{program} announced {line:?}"))
            .to_owned();
        assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
        Self { child, url }
    }

    fn setup(&self) -> Setup {
        Setup {
            target: Target::parse(&self.url).unwrap(),
            server_pids: vec![self.child.id() as i32],
            threads: 2,
            source_ips: Vec::new(),
            connect_concurrency: 16,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(500),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn echo_counts_messages_bytes_latency_and_cpu() {
    for program in PEERS {
        let peer = Peer::start(program);
        for (size, depth) in [(32, 8), (4096, 4), (70_000, 1), (4, 1)] {
            let plan = EchoPlan {
                connections: 4,
                size,
                depth,
            };
            let report = run_echo(&peer.setup(), &plan).unwrap();
            assert!(report.events > 0, "{program} {size}: {report}");
            assert_eq!(report.payload_bytes, report.events * size as u64);
            assert!((0.45..0.55).contains(&report.window_secs));
            assert!(report.server_cpu_secs.unwrap() > 0.0, "{program}: {report}");
            // Payloads shorter than a stamp cannot time themselves.
            assert_eq!(report.latency.is_some(), size >= 8, "{program} {size}");
            if let Some(latency) = report.latency {
                assert!(latency.p50_us <= latency.p99_us && latency.p99_us <= latency.max_us);
            }
        }
    }
}

#[test]
fn idle_connections_are_weighed_and_all_answer() {
    for program in PEERS {
        let peer = Peer::start(program);
        let plan = IdlePlan {
            connections: 300,
            settle: Duration::from_millis(200),
            answer_timeout: Duration::from_secs(10),
        };
        let report = run_idle(&peer.setup(), &plan).unwrap();
        assert_eq!(report.answering, Some(300), "{program}: {report}");
        let rss = report.rss_per_connection.unwrap();
        assert!(rss > 0.0 && rss < 1e6, "{program}: {rss} B/connection");
    }
}

#[test]
fn handshakes_complete_and_close() {
    for program in PEERS {
        let peer = Peer::start(program);
        let report = run_handshakes(&peer.setup(), &HandshakePlan { concurrency: 4 }).unwrap();
        assert!(report.events > 10, "{program}: {report}");
        assert!(report.latency.is_some());
    }
}

#[test]
fn handshakes_can_come_from_several_loopback_addresses() {
    let peer = Peer::start(PEERS[0]);
    let setup = Setup {
        source_ips: wsbench::loadgen::loopback_sources(4),
        ..peer.setup()
    };
    let report = run_handshakes(&setup, &HandshakePlan { concurrency: 4 }).unwrap();
    assert!(report.events > 10, "{report}");
}

#[test]
fn fanout_spreads_subscribers_over_the_nodes_given() {
    // Two unconnected servers: only the publisher's node delivers, to the
    // half of the subscribers that joined there; CPU is both servers'.
    let program = PEERS[1];
    let (first, second) = (Peer::start(program), Peer::start(program));
    let setup = Setup {
        duration: Duration::from_secs(1),
        server_pids: vec![first.child.id() as i32, second.child.id() as i32],
        ..first.setup()
    };
    let plan = FanoutPlan {
        subscribers: 6,
        size: 32,
        rate: 200,
        room: "spread".to_owned(),
        other_nodes: vec![Target::parse(&second.url).unwrap()],
    };
    let report = run_fanout(&setup, &plan).unwrap();
    let per_message = report.events as f64 / report.published.unwrap() as f64;
    assert!((2.5..=3.5).contains(&per_message), "{report}");
    assert!(report.server_cpu_secs.is_some(), "{report}");
}

#[test]
fn fanout_delivers_each_message_to_every_subscriber() {
    for program in PEERS {
        let peer = Peer::start(program);
        let setup = Setup {
            duration: Duration::from_secs(1),
            ..peer.setup()
        };
        let plan = FanoutPlan {
            subscribers: 5,
            size: 32,
            rate: 200,
            room: "test".to_owned(),
            other_nodes: Vec::new(),
        };
        let report = run_fanout(&setup, &plan).unwrap();
        let published = report.published.unwrap();
        assert!((150..=250).contains(&published), "{program}: {report}");
        // Messages straddle the window's edges, so allow a few either way.
        let per_message = report.events as f64 / published as f64;
        assert!((4.5..=5.5).contains(&per_message), "{program}: {report}");
    }
}

#[test]
fn a_refused_connection_is_an_error_not_a_result() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", unused.local_addr().unwrap());
    drop(unused);
    let setup = Setup {
        target: Target::parse(&url).unwrap(),
        server_pids: Vec::new(),
        threads: 1,
        source_ips: Vec::new(),
        connect_concurrency: 1,
        warmup: Duration::ZERO,
        duration: Duration::from_millis(100),
    };
    let plan = EchoPlan {
        connections: 1,
        size: 32,
        depth: 1,
    };
    assert!(run_echo(&setup, &plan).is_err());
}
