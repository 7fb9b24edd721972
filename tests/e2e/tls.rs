//! `wss://` through the real binary: certificates made here (rcgen) and
//! written to a temporary folder, loaded from every supported store type,
//! and a rustls client that checks what the server negotiated.

use std::io::Write as _;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::ProtocolVersion;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::common::tls::*;
use crate::common::*;

/// A CA, a server certificate for localhost and a folder for the stores.
struct Setup {
    pki: Pki,
    localhost: Identity,
    dir: TempDir,
}

impl Setup {
    fn new() -> Self {
        let pki = Pki::new("wsserver test CA");
        let localhost = pki.server("localhost", &["localhost"]);
        Self {
            pki,
            localhost,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, data: impl AsRef<[u8]>) -> String {
        write_file(self.dir.path(), name, data)
    }

    /// `--set` arguments serving the localhost certificate from a PEM file.
    fn pem_file_args(&self) -> Vec<String> {
        let path = self.write("server.pem", self.pki.pem_bundle(&self.localhost));
        sets(&[
            "UseSSL=True",
            "SSLCertStoreType=PEMKeyFile",
            &format!("SSLCertStore={path}"),
        ])
    }
}

fn sets(settings: &[&str]) -> Vec<String> {
    settings
        .iter()
        .flat_map(|s| ["--set".to_owned(), (*s).to_owned()])
        .collect()
}

async fn start(args: &[String]) -> ServerProcess {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProcess::start(&args).await
}

async fn start_with_toml(text: &str) -> ServerProcess {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    ServerProcess::start(&["--config", &path]).await
}

/// Runs the binary with these settings and expects it to fail at start.
async fn start_error(args: &[String]) -> String {
    let mut all = vec!["--listen", "127.0.0.1:0"];
    all.extend(args.iter().map(String::as_str));
    let out = run_to_exit(&all).await;
    assert!(!out.status.success(), "wsserver started with {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The certificate the client was served.
fn served_certificate(ws: &Wss) -> Vec<u8> {
    session(ws).peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn wss_echoes_and_the_binary_reports_its_certificate() {
    let s = Setup::new();
    let server = start(&s.pem_file_args()).await;
    assert_eq!(server.url, format!("wss://{}", server.addr));
    let mut ws = wss_connect(server.addr, "localhost", s.pki.client_config().build())
        .await
        .unwrap();
    assert_echo(&mut ws, "over TLS").await;
    assert_echo(&mut ws, &"x".repeat(200_000)).await;
    assert_eq!(served_certificate(&ws), s.localhost.cert.to_vec());

    let fingerprint = Sha256::digest(&s.localhost.cert)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let log = server.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("TLS certificate for default"))
        .unwrap_or_else(|| panic!("no certificate line in {log}"));
    assert!(
        line.contains("subject \"O=wsserver tests, CN=localhost\"")
            && line.contains(&format!("SHA-256 {fingerprint}"))
            && line.contains("expires "),
        "{line}"
    );
}

#[tokio::test]
async fn a_plain_client_on_the_wss_port_is_refused_and_others_go_on() {
    let s = Setup::new();
    let server = start(&s.pem_file_args()).await;
    let mut plain = RawClient::tcp(server.addr).await;
    plain.send(UPGRADE_REQUEST.as_bytes()).await;
    assert!(plain.closed_within(WAIT).await);
    let mut ws = wss_connect(server.addr, "localhost", s.pki.client_config().build())
        .await
        .unwrap();
    assert_echo(&mut ws, "still serving").await;
    let log = server.stderr_containing("TLS handshake failed").await;
    assert!(log.contains("TLS handshake failed"), "{log}");
}

#[tokio::test]
async fn every_supported_store_type_serves_its_certificate() {
    let s = Setup::new();
    let pfx = s.pki.pfx(&s.localhost, "s3cret");
    let pfx_path = s.write("server.pfx", &pfx);
    let pem_path = s.write("server.pem", s.pki.pem_bundle(&s.localhost));
    let pem_blob = s.pki.pem_bundle(&s.localhost);
    let configs = [
        format!(
            "[settings]\nUseSSL = true\nSSLCertStoreType = \"PEMKeyBlob\"\nSSLCertStore = '''\n{pem_blob}'''\n"
        ),
        format!(
            "[settings]\nUseSSL = true\nSSLCertStoreType = 2\nSSLCertStore = \"{pfx_path}\"\nSSLCertStorePassword = \"s3cret\"\n"
        ),
        format!(
            "[settings]\nUseSSL = true\nSSLCertStoreType = \"cstPFXBlob\"\nSSLCertStore = \"{}\"\nSSLCertStorePassword = \"s3cret\"\n",
            BASE64.encode(&pfx)
        ),
        // Auto (99) is the default store type.
        format!("[settings]\nUseSSL = true\nSSLCertStore = \"{pem_path}\"\n"),
        format!(
            "[settings]\nUseSSL = true\nSSLCertStoreType = 99\nSSLCertStore = \"{pfx_path}\"\nSSLCertStorePassword = \"s3cret\"\n"
        ),
    ];
    for config in configs {
        let text = format!("listen = \"127.0.0.1:0\"\n{config}");
        let server = start_with_toml(&text).await;
        let mut ws = wss_connect(server.addr, "localhost", s.pki.client_config().build())
            .await
            .unwrap_or_else(|e| panic!("{config}: {e}"));
        assert_eq!(
            served_certificate(&ws),
            s.localhost.cert.to_vec(),
            "{config}"
        );
        assert_echo(&mut ws, "stored").await;
    }
}

#[tokio::test]
async fn a_wrong_pfx_password_fails_the_start_with_271() {
    let s = Setup::new();
    let path = s.write("server.pfx", s.pki.pfx(&s.localhost, "right"));
    let err = start_error(&sets(&[
        "UseSSL=True",
        "SSLCertStoreType=PFXFile",
        &format!("SSLCertStore={path}"),
        "SSLCertStorePassword=wrong",
    ]))
    .await;
    assert!(
        err.contains("TLS error 271") && err.contains("wrong password") && err.contains(&path),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_or_mismatched_key_fails_the_start_with_273() {
    let s = Setup::new();
    let other = s.pki.server("other.test", &["other.test"]);
    let cert_only = s.write("cert.pem", s.localhost.cert_pem());
    let mismatched = s.write(
        "mixed.pem",
        format!("{}{}", other.key_pem(), s.localhost.cert_pem()),
    );
    for (path, says) in [(cert_only, "has no private key"), (mismatched, "matches")] {
        let err = start_error(&sets(&[
            "UseSSL=True",
            "SSLCertStoreType=PEMKeyFile",
            &format!("SSLCertStore={path}"),
        ]))
        .await;
        assert!(
            err.contains("TLS error 273") && err.contains(says) && err.contains("CN=localhost"),
            "{err}"
        );
    }
    let err = start_error(&sets(&["UseSSL=True"])).await;
    assert!(err.contains("TLS error 282"), "{err}");
}

#[tokio::test]
async fn the_subject_rules_choose_among_the_store_certificates() {
    let s = Setup::new();
    let other = s.pki.server("other.test", &["other.test"]);
    let both = s.write(
        "both.pem",
        format!(
            "{}{}",
            s.pki.pem_bundle(&s.localhost),
            s.pki.pem_bundle(&other)
        ),
    );
    let thumbprint = format!("Thumbprint={}", hex::encode(Sha1::digest(&other.cert)));
    for (subject, name, expected) in [
        ("*", "localhost", &s.localhost),
        ("CN=other.test, O=wsserver tests", "other.test", &other),
        ("other", "other.test", &other),
        (thumbprint.as_str(), "other.test", &other),
    ] {
        let server = start(&sets(&[
            "UseSSL=True",
            "SSLCertStoreType=6",
            &format!("SSLCertStore={both}"),
            &format!("SSLCertSubject={subject}"),
        ]))
        .await;
        let ws = wss_connect(server.addr, name, s.pki.client_config().build())
            .await
            .unwrap_or_else(|e| panic!("{subject}: {e}"));
        assert_eq!(served_certificate(&ws), expected.cert.to_vec(), "{subject}");
    }
    let err = start_error(&sets(&[
        "UseSSL=True",
        &format!("SSLCertStore={both}"),
        "SSLCertSubject=CN=nobody",
    ]))
    .await;
    assert!(
        err.contains("TLS error 272") && err.contains("CN=other.test"),
        "{err}"
    );
}

#[tokio::test]
async fn ssl_ca_certs_complete_the_chain_sent() {
    let s = Setup::new();
    let own = s.write(
        "own.pem",
        format!("{}{}", s.localhost.key_pem(), s.localhost.cert_pem()),
    );
    let server = start(&sets(&[
        "UseSSL=True",
        &format!("SSLCertStore={own}"),
        &format!("SSLCACerts={}", s.pki.ca_pem()),
    ]))
    .await;
    let ws = wss_connect(server.addr, "localhost", s.pki.client_config().build())
        .await
        .unwrap();
    let chain = session(&ws).peer_certificates().unwrap();
    assert_eq!(chain, [s.localhost.cert.clone(), s.pki.ca_der()]);
}

#[tokio::test]
async fn mutual_tls_accepts_trusted_clients_and_refuses_others() {
    let s = Setup::new();
    let alice = s.pki.client("alice");
    let mallory = Pki::new("rogue CA").client("mallory");
    let mut args = s.pem_file_args();
    args.extend(sets(&[
        "SSLAuthenticateClients=True",
        &format!("SSLClientCACerts={}", s.pki.ca_pem()),
    ]));
    let server = start(&args).await;

    let trusted = s.pki.client_config().identity(&alice).build();
    let mut ws = wss_connect(server.addr, "localhost", trusted)
        .await
        .unwrap();
    assert_echo(&mut ws, "alice").await;

    for (who, client) in [
        ("rogue", s.pki.client_config().identity(&mallory).build()),
        ("anonymous", s.pki.client_config().build()),
    ] {
        match wss_connect(server.addr, "localhost", client).await {
            Ok(_) => panic!("{who} client got a WebSocket"),
            Err(e) => assert!(!e.contains("no answer"), "{who}: {e}"),
        }
    }
    let mut ws = wss_connect(
        server.addr,
        "localhost",
        s.pki.client_config().identity(&alice).build(),
    )
    .await
    .unwrap();
    assert_echo(&mut ws, "alice again").await;
}

#[tokio::test]
async fn sni_picks_the_certificate_per_host_name() {
    let s = Setup::new();
    let other = s.pki.server("other.test", &["other.test"]);
    let wild = s.pki.server("wild", &["*.wild.test"]);
    let default = s.write("default.pem", s.pki.pem_bundle(&s.localhost));
    let other_pfx = s.write("other.pfx", s.pki.pfx(&other, "pw"));
    let wild_pem = s.write("wild.pem", s.pki.pem_bundle(&wild));
    let server = start_with_toml(&format!(
        "listen = \"127.0.0.1:0\"\n[settings]\nUseSSL = true\nSSLCertStore = \"{default}\"\n\
         \"SSLCertStoreType[other.test]\" = \"PFXFile\"\n\"SSLCertStore[other.test]\" = \"{other_pfx}\"\n\
         \"SSLCertStorePassword[other.test]\" = \"pw\"\n\"SSLCertStore[*.wild.test]\" = \"{wild_pem}\"\n"
    ))
    .await;
    for (name, expected) in [
        ("other.test", &other),
        ("a.wild.test", &wild),
        ("localhost", &s.localhost),
    ] {
        let mut ws = wss_connect(server.addr, name, s.pki.client_config().build())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(served_certificate(&ws), expected.cert.to_vec(), "{name}");
        assert_echo(&mut ws, name).await;
    }
    let log = server.stderr();
    assert!(
        log.contains("TLS certificate for other.test: subject \"O=wsserver tests, CN=other.test\""),
        "{log}"
    );
}

#[tokio::test]
async fn the_protocol_bitmask_is_what_the_client_gets() {
    let s = Setup::new();
    for (mask, version) in [
        ("3072", ProtocolVersion::TLSv1_2),
        ("12288", ProtocolVersion::TLSv1_3),
        ("15360", ProtocolVersion::TLSv1_3),
    ] {
        let mut args = s.pem_file_args();
        args.extend(sets(&[&format!("SSLEnabledProtocols={mask}")]));
        let server = start(&args).await;
        let mut ws = wss_connect(server.addr, "localhost", s.pki.client_config().build())
            .await
            .unwrap();
        assert_eq!(session(&ws).protocol_version(), Some(version), "{mask}");
        assert_echo(&mut ws, mask).await;

        // A client offering only the other version is refused.
        let other = if version == ProtocolVersion::TLSv1_2 {
            &rustls::version::TLS13
        } else {
            &rustls::version::TLS12
        };
        if mask != "15360" {
            let client = s.pki.client_config().versions(&[other]).build();
            let e = wss_connect(server.addr, "localhost", client)
                .await
                .err()
                .unwrap_or_else(|| panic!("{mask}: the other version was accepted"));
            assert!(e.starts_with("TLS handshake"), "{mask}: {e}");
        }
    }
}

#[tokio::test]
async fn enabled_cipher_suites_decide_the_suite() {
    let s = Setup::new();
    let mut args = s.pem_file_args();
    args.extend(sets(&[
        "SSLEnabledCipherSuites=TLS_CHACHA20_POLY1305_SHA256;TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ]));
    let server = start(&args).await;
    for (versions, suite) in [
        (&rustls::version::TLS13, "TLS13_CHACHA20_POLY1305_SHA256"),
        (
            &rustls::version::TLS12,
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ),
    ] {
        let client = s.pki.client_config().versions(&[versions]).build();
        let ws = wss_connect(server.addr, "localhost", client).await.unwrap();
        let negotiated = session(&ws).negotiated_cipher_suite().unwrap();
        assert_eq!(negotiated.suite().as_str(), Some(suite));
    }
}

#[tokio::test]
async fn the_key_log_file_gets_the_session_secrets() {
    let s = Setup::new();
    let log = s.dir.path().join("keys.log");
    let mut args = s.pem_file_args();
    args.extend(sets(&[&format!("SSLKeyLogFile={}", log.display())]));
    let server = start(&args).await;
    let ws = wss_connect(server.addr, "localhost", s.pki.client_config().build())
        .await
        .unwrap();
    drop(ws);
    let text = std::fs::read_to_string(&log).unwrap();
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} in {text}"));
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert!(
            fields[1].len() == 64 && fields[1].chars().all(|c| c.is_ascii_hexdigit()),
            "{line}"
        );
    }
}

#[tokio::test]
async fn a_stalled_handshake_never_blocks_other_connections() {
    let s = Setup::new();
    for timeout_key in ["DefaultConnectionTimeout=1", "HandshakeTimeout=1"] {
        let mut args = s.pem_file_args();
        args.extend(sets(&[timeout_key]));
        let server = start(&args).await;
        // Connected, never says hello.
        let mut silent = RawClient::tcp(server.addr).await;
        let mut ws = wss_connect(server.addr, "localhost", s.pki.client_config().build())
            .await
            .unwrap();
        assert_echo(&mut ws, "not blocked").await;
        assert!(
            silent.closed_within(Duration::from_secs(5)).await,
            "{timeout_key}: the silent client is still connected"
        );
        let log = server.stderr_containing("TLS handshake timed out").await;
        assert!(log.contains("TLS handshake timed out"), "{log}");
        assert_echo(&mut ws, "still open").await;
    }
}

#[tokio::test]
async fn tls_settings_are_listed_and_checked() {
    let out = run_to_exit(&["--list-settings"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    for key in [
        "UseSSL",
        "SSLCertStoreType",
        "SSLEnabledProtocols",
        "SSLClientCACerts",
        "DefaultConnectionTimeout",
    ] {
        assert!(text.contains(key), "{key} missing from {text}");
    }
    let out = run_to_exit(&["--set", "SSLEnabledProtocols=48"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SSLEnabledProtocols") && err.contains("\"48\""),
        "{err}"
    );
    let out = run_to_exit(&["--set", "SSLCertStoreType=JKSFile"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("keytool"), "{err}");
}

#[tokio::test]
async fn clients_over_max_connections_are_closed_without_a_handshake() {
    let s = Setup::new();
    let mut args = s.pem_file_args();
    args.extend(sets(&["MaxConnections=1"]));
    let server = start(&args).await;
    let mut first = wss_connect(server.addr, "localhost", s.pki.client_config().build())
        .await
        .unwrap();
    let refused = wss_connect(server.addr, "localhost", s.pki.client_config().build()).await;
    let e = refused.expect_err("a second connection over MaxConnections=1");
    assert!(e.starts_with("TLS handshake"), "{e}");
    assert_echo(&mut first, "the first one stays").await;
}

/// The next text message, past pings and pongs.
async fn next_text(ws: &mut Wss) -> String {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
        {
            Some(Ok(Message::Text(text))) => return text.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn plugins_see_the_tls_session_and_the_client_certificate() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let s = Setup::new();
    let alice = s.pki.client("alice");
    let probe = plugin_file("probe");
    let mut args = s.pem_file_args();
    args.extend(sets(&[
        "SSLAuthenticateClients=True",
        &format!("SSLClientCACerts={}", s.pki.ca_pem()),
    ]));
    args.extend(["--plugin".to_owned(), format!("/={}", probe.display())]);
    let server = start(&args).await;
    let client = s.pki.client_config().identity(&alice).build();
    let mut ws = wss_connect(server.addr, "localhost", client).await.unwrap();
    let hello = next_text(&mut ws).await;
    assert!(hello.starts_with("event connected "), "{hello}");
    ws.send(Message::text("info")).await.unwrap();
    let info = next_text(&mut ws).await;
    let tls = info
        .split_once(" tls=")
        .map(|(_, tls)| tls)
        .unwrap_or_else(|| panic!("no tls in {info}"));
    assert!(tls.starts_with("TLS1.3 TLS_"), "{tls}");
    assert!(
        tls.ends_with(" sni=localhost client=O=wsserver tests, CN=alice"),
        "{tls}"
    );
}
