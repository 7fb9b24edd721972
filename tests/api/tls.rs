//! TLS through the embedding API: the SSLStatus and SSLClientAuthentication
//! events and their verdicts, the session and client certificate on the
//! connection, SSLNegotiated*[id], SSLCert's fields, and start-up errors.

use wsserver::tls::ClientCertStatus;
use wsserver::{Error, WsServer};

use crate::common::tls::*;
use crate::common::*;
use crate::harness::*;

/// A CA, a localhost certificate served from a PEM blob, and clients.
struct Setup {
    pki: Pki,
    localhost: Identity,
}

impl Setup {
    fn new() -> Self {
        let pki = Pki::new("wsserver test CA");
        let localhost = pki.server("localhost", &["localhost"]);
        Self { pki, localhost }
    }

    /// A TLS server echoing text; `mutual` asks clients for a certificate
    /// of the CA.
    fn server(&self, mutual: bool) -> ServerBuilder {
        let builder = server()
            .on_data(|conn, data| {
                if let Some(text) = data.text() {
                    conn.send_text(text).unwrap();
                }
            })
            .config("UseSSL=True")
            .config("SSLCertStoreType=PEMKeyBlob")
            .config(&format!(
                "SSLCertStore={}",
                self.pki.pem_bundle(&self.localhost)
            ));
        if mutual {
            builder
                .config("SSLAuthenticateClients=True")
                .config(&format!("SSLClientCACerts={}", self.pki.ca_pem()))
        } else {
            builder
        }
    }

    async fn connect(&self, t: &TestServer, identity: Option<&Identity>) -> Result<Wss, String> {
        let mut client = self.pki.client_config();
        if let Some(identity) = identity {
            client = client.identity(identity);
        }
        wss_connect(t.addr, "localhost", client.build()).await
    }
}

impl Events {
    async fn ssl_status(&mut self) -> (u64, String) {
        self.find("SSLStatus", |e| match e {
            Event::SslStatus { id, message } => Some((*id, message.clone())),
            _ => None,
        })
        .await
    }

    /// The next SSLClientAuthentication: subject, status and final verdict.
    async fn client_authentication(&mut self) -> (String, String, bool) {
        self.find("SSLClientAuthentication", |e| match e {
            Event::ClientAuthentication {
                subject,
                status,
                accept,
                ..
            } => Some((subject.clone(), status.clone(), *accept)),
            _ => None,
        })
        .await
    }
}

#[tokio::test]
async fn the_negotiated_session_is_reported_and_kept_on_the_connection() {
    let s = Setup::new();
    let mut t = s.server(false).start().await;
    assert!(t.url.starts_with("wss://"), "{}", t.url);
    let mut ws = s.connect(&t, None).await.unwrap();
    let (status_id, message) = t.events.ssl_status().await;
    let request = t.events.open_request().await;
    let id = t.events.connected().await;
    assert_eq!(status_id, id);
    assert!(
        message.starts_with("TLS1.3 handshake complete: TLS_AES_"),
        "{message}"
    );
    assert_echo(&mut ws, "hello").await;

    let client = session(&ws);
    let suite = client.negotiated_cipher_suite().unwrap().suite();
    let iana = suite.as_str().unwrap().replace("TLS13_", "TLS_");
    assert_eq!(
        t.server
            .config(&format!("SSLNegotiatedCipherSuite[{id}]"))
            .unwrap(),
        iana
    );
    assert_eq!(
        t.server
            .config(&format!("sslnegotiatedversion[{id}]"))
            .unwrap(),
        "TLS1.3"
    );
    let group = client.negotiated_key_exchange_group().unwrap().name();
    assert_eq!(
        t.server
            .config(&format!("SSLNegotiatedKeyExchange[{id}]"))
            .unwrap(),
        group.as_str().unwrap()
    );
    let bits = t
        .server
        .config(&format!("SSLNegotiatedCipherStrength[{id}]"))
        .unwrap();
    assert!(bits == "128" || bits == "256", "{bits}");
    let e = t
        .server
        .config(&format!("SSLNegotiatedCipher[{id}]=RC4"))
        .unwrap_err();
    assert_eq!(e.code(), 10022);
    assert!(e.to_string().contains("read-only"), "{e}");

    let tls = t.conn(id).tls().cloned().expect("a TLS connection");
    assert_eq!(tls.session.version, "TLS1.3");
    assert_eq!(tls.session.server_name.as_deref(), Some("localhost"));
    assert!(tls.client_certificate.is_none());
    assert_eq!(t.conn(id).info().tls, Some(tls.clone()));
    assert_eq!(request.tls, Some(tls));
}

#[tokio::test]
async fn a_plain_connection_has_no_tls_session() {
    let mut t = server().start().await;
    let (_ws, id) = t.ws_client().await;
    assert!(t.conn(id).tls().is_none());
    assert_eq!(t.conn(id).info().tls, None);
    assert_eq!(
        t.server
            .config(&format!("SSLNegotiatedVersion[{id}]"))
            .unwrap(),
        ""
    );
    assert!(t.server.ssl_cert().is_none());
}

#[tokio::test]
async fn ssl_cert_shows_the_loaded_certificate_while_listening() {
    let s = Setup::new();
    let t = s.server(false).start().await;
    let cert = t.server.ssl_cert().expect("the served certificate");
    assert_eq!(cert.subject, "O=wsserver tests, CN=localhost");
    assert_eq!(cert.issuer, "CN=wsserver test CA");
    assert_eq!(cert.subject_alt_names, "DNS:localhost");
    assert!(cert.private_key_available);
    use sha2::{Digest, Sha256};
    assert_eq!(
        cert.thumbprint_sha256,
        hex::encode_upper(Sha256::digest(&s.localhost.cert))
    );
    assert!(t.server.ssl_sni_certs().is_empty());
    t.server.stop_listening().await;
    assert!(t.server.ssl_cert().is_none());
}

#[tokio::test]
async fn a_failed_handshake_is_an_ssl_status_and_opens_nothing() {
    let s = Setup::new();
    let mut t = s.server(false).start().await;
    let mut plain = RawClient::tcp(t.addr).await;
    plain.send(UPGRADE_REQUEST.as_bytes()).await;
    let (_, message) = t.events.ssl_status().await;
    assert!(message.starts_with("TLS handshake failed"), "{message}");
    assert!(plain.closed_within(WAIT).await);
    assert!(
        !t.events
            .recorded()
            .iter()
            .any(|e| matches!(e, Event::OpenRequest(_) | Event::Connected(_))),
    );
}

#[tokio::test]
async fn client_authentication_carries_the_verified_certificate() {
    let s = Setup::new();
    let alice = s.pki.client("alice");
    let mut t = s.server(true).start().await;
    let mut ws = s.connect(&t, Some(&alice)).await.unwrap();
    let (event_der, issuer) = t
        .events
        .find("SSLClientAuthentication", |e| match e {
            Event::ClientAuthentication {
                cert_encoded,
                subject,
                status,
                accept,
                issuer,
                ..
            } => {
                assert_eq!(subject, "O=wsserver tests, CN=alice");
                assert_eq!((status.as_str(), *accept), ("OK", true));
                Some((cert_encoded.clone(), issuer.clone()))
            }
            _ => None,
        })
        .await;
    assert_eq!(event_der, alice.cert.to_vec());
    assert_eq!(issuer, "CN=wsserver test CA");
    let request = t.events.open_request().await;
    let client = request
        .tls
        .as_ref()
        .and_then(|tls| tls.client_certificate.as_ref())
        .expect("the client certificate in the open request");
    assert_eq!(client.info.subject, "O=wsserver tests, CN=alice");
    assert_eq!(client.status, ClientCertStatus::Trusted);
    assert_echo(&mut ws, "alice").await;
}

#[tokio::test]
async fn the_handler_may_refuse_a_verified_certificate() {
    let s = Setup::new();
    let (alice, bob) = (s.pki.client("alice"), s.pki.client("bob"));
    let mut t = s
        .server(true)
        .on_client_authentication(|auth| {
            if auth.cert_subject().ends_with("CN=alice") {
                auth.accept = false;
            }
        })
        .start()
        .await;
    assert!(s.connect(&t, Some(&alice)).await.is_err());
    let (subject, _, accept) = t.events.client_authentication().await;
    assert_eq!(
        (subject.as_str(), accept),
        ("O=wsserver tests, CN=alice", false)
    );
    let mut ws = s.connect(&t, Some(&bob)).await.unwrap();
    assert_echo(&mut ws, "bob").await;
    let (subject, _, accept) = t.events.client_authentication().await;
    assert_eq!(
        (subject.as_str(), accept),
        ("O=wsserver tests, CN=bob", true)
    );
    assert_eq!(t.server.connections().len(), 1);
}

#[tokio::test]
async fn a_handler_that_does_nothing_keeps_the_safe_verdict() {
    let s = Setup::new();
    let mallory = Pki::new("rogue CA").client("mallory");
    let alice = s.pki.client("alice");
    let mut t = s.server(true).accept_unverified_clients().start().await;
    assert!(s.connect(&t, Some(&mallory)).await.is_err());
    let (subject, status, accept) = t.events.client_authentication().await;
    assert_eq!(subject, "O=wsserver tests, CN=mallory");
    assert!(status.contains("not trusted") && !accept, "{status}");
    assert!(s.connect(&t, None).await.is_err());
    let (_, status, accept) = t.events.client_authentication().await;
    assert_eq!((status.as_str(), accept), ("no client certificate", false));
    let mut ws = s.connect(&t, Some(&alice)).await.unwrap();
    assert_echo(&mut ws, "alice").await;
}

#[tokio::test]
async fn a_handler_may_accept_an_unverified_certificate() {
    let s = Setup::new();
    let mallory = Pki::new("rogue CA").client("mallory");
    let mut t = s
        .server(true)
        .accept_unverified_clients()
        .on_client_authentication(|auth| {
            auth.accept = auth.cert_subject().ends_with("CN=mallory");
        })
        .start()
        .await;
    let mut ws = s.connect(&t, Some(&mallory)).await.unwrap();
    assert_echo(&mut ws, "let in by the handler").await;
    let request = t.events.open_request().await;
    let client = request
        .tls
        .as_ref()
        .and_then(|tls| tls.client_certificate.as_ref())
        .expect("the client certificate");
    assert_eq!(client.info.issuer, "CN=rogue CA");
    assert!(!client.status.is_trusted());
}

#[tokio::test]
async fn tls_errors_fail_start_listening_with_their_code() {
    let s = Setup::new();
    let pfx = s.pki.pfx(&s.localhost, "right");
    let server = WsServer::new(wsserver::EchoHandler::new());
    for setting in [
        "LocalHost=127.0.0.1",
        "LocalPort=0",
        "UseSSL=True",
        "SSLCertStoreType=PFXBlob",
        "SSLCertStorePassword=wrong",
    ] {
        server.config(setting).unwrap();
    }
    use base64::Engine as _;
    let blob = base64::engine::general_purpose::STANDARD.encode(&pfx);
    server.config(&format!("SSLCertStore={blob}")).unwrap();
    let e = server.start_listening().await.unwrap_err();
    assert!(matches!(e, Error::Tls(_)), "{e}");
    assert_eq!(e.code(), 271);
    assert!(!server.listening());
    assert_eq!(server.config("SSLCertStorePassword").unwrap(), "********");

    server.config("SSLCertStorePassword=right").unwrap();
    server.start_listening().await.unwrap();
    assert_eq!(
        server.ssl_cert().unwrap().subject,
        "O=wsserver tests, CN=localhost"
    );
}
