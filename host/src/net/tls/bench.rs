//! Figures, not assertions: handshakes per second and bulk throughput of
//! TLS against plain TCP on 127.0.0.1. Run with
//! `cargo test --release -p wsserver --lib tls::bench -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

use super::*;

const HANDSHAKES: u32 = 300;
const BULK_BYTES: usize = 256 << 20;
const CHUNK: usize = 64 << 10;
const LIMIT: Duration = Duration::from_secs(120);

fn server_and_client(protocols: &str) -> (TlsServerConfig, Arc<ClientConfig>) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let mut settings = TlsSettings::default();
    settings.set("SSLCertStoreType", "PEMKeyBlob").unwrap();
    settings
        .set(
            "SSLCertStore",
            &format!("{}{}", key.serialize_pem(), cert.pem()),
        )
        .unwrap();
    settings.set("SSLEnabledProtocols", protocols).unwrap();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert.der().to_vec()))
        .unwrap();
    let mut client =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    // Every handshake full: no session resumption.
    client.resumption = rustls::client::Resumption::disabled();
    (build_server_config(&settings).unwrap(), Arc::new(client))
}

/// Full handshakes (no resumption), one after another on fresh connections.
async fn handshakes_per_second(protocols: &str) -> f64 {
    let (server, client) = server_and_client(protocols);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepting = tokio::spawn(async move {
        for _ in 0..HANDSHAKES {
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let mut tls = server.accept(tcp).await.unwrap();
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.unwrap();
        }
    });
    let start = Instant::now();
    for _ in 0..HANDSHAKES {
        let connector = TlsConnector::from(Arc::clone(&client));
        let tcp = TcpStream::connect(addr).await.unwrap();
        // As the server's TcpNoDelay default; Nagle would add stalls.
        tcp.set_nodelay(true).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(b"x").await.unwrap();
        tls.flush().await.unwrap();
    }
    accepting.await.unwrap();
    f64::from(HANDSHAKES) / start.elapsed().as_secs_f64()
}

/// Sends BULK_BYTES one way and returns MB/s.
async fn pump<W, R>(mut writer: W, mut reader: R) -> f64
where
    W: AsyncWrite + Unpin + Send + 'static,
    R: AsyncRead + Unpin,
{
    let start = Instant::now();
    let sending = tokio::spawn(async move {
        let chunk = vec![0x5a; CHUNK];
        for _ in 0..BULK_BYTES / CHUNK {
            writer.write_all(&chunk).await.unwrap();
        }
        writer.flush().await.unwrap();
        writer
    });
    let mut buf = vec![0u8; CHUNK];
    let mut received = 0;
    while received < BULK_BYTES {
        let n = reader.read(&mut buf).await.unwrap();
        assert!(n > 0, "stream ended early");
        received += n;
    }
    drop(sending.await.unwrap());
    BULK_BYTES as f64 / 1e6 / start.elapsed().as_secs_f64()
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

async fn tls_throughput(protocols: &str) -> f64 {
    let (server, client) = server_and_client(protocols);
    let (client_tcp, server_tcp) = tcp_pair().await;
    let accepting = tokio::spawn(async move { server.accept(server_tcp).await.unwrap() });
    let name = ServerName::try_from("localhost").unwrap();
    let client_tls = TlsConnector::from(client)
        .connect(name, client_tcp)
        .await
        .unwrap();
    let server_tls = accepting.await.unwrap();
    pump(client_tls, server_tls).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures"]
async fn tls_figures() {
    let run = async {
        for (name, mask) in [("TLS 1.3", "12288"), ("TLS 1.2", "3072")] {
            let rate = handshakes_per_second(mask).await;
            println!(
                "{name}: {rate:.0} full handshakes/s (ECDSA P-256, client and server in one process)"
            );
        }
        let (client, server) = tcp_pair().await;
        let plain = pump(client, server).await;
        println!("plain TCP: {plain:.0} MB/s one way, {CHUNK}-byte writes");
        for (name, mask) in [("TLS 1.3", "12288"), ("TLS 1.2", "3072")] {
            let tls = tls_throughput(mask).await;
            println!(
                "{name}: {tls:.0} MB/s one way ({:.0}% of plain TCP)",
                tls / plain * 100.0
            );
        }
    };
    tokio::time::timeout(LIMIT, run).await.unwrap();
}
