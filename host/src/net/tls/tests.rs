//! Loading certificates made in the test (rcgen, p12-keystore and, when
//! the openssl CLI) and real handshakes on 127.0.0.1 between a
//! tokio-rustls client and [`TlsServerConfig::accept`].

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

use super::*;

const LIMIT: Duration = Duration::from_secs(10);

/// A certificate with its PKCS#8 key.
struct Leaf {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

impl Leaf {
    fn cert_pem(&self) -> String {
        pem_text("CERTIFICATE", &self.cert)
    }
    fn key_pem(&self) -> String {
        pem_text("PRIVATE KEY", &self.key)
    }
}

fn pem_text(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der.to_vec()))
}

/// A CA, server certificates for localhost and other.test, a wildcard
/// certificate, and client certificates from the CA and from a rogue CA.
struct Pki {
    ca: CertificateDer<'static>,
    localhost: Leaf,
    other: Leaf,
    wildcard: Leaf,
    client: Leaf,
    rogue_client: Leaf,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "wsserver tests");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).unwrap();
    Leaf {
        cert: cert.der().clone(),
        key: key.serialize_der(),
    }
}

impl Pki {
    fn new() -> Self {
        let ca = new_ca("wsserver test CA");
        let rogue = new_ca("rogue CA");
        let server = ExtendedKeyUsagePurpose::ServerAuth;
        let client = ExtendedKeyUsagePurpose::ClientAuth;
        Self {
            localhost: leaf(&ca, "localhost", &["localhost"], server.clone()),
            other: leaf(&ca, "other.test", &["other.test"], server.clone()),
            wildcard: leaf(&ca, "wild", &["*.wild.test"], server),
            client: leaf(&ca, "alice", &[], client.clone()),
            rogue_client: leaf(&rogue, "mallory", &[], client),
            ca: ca.der().clone(),
        }
    }

    fn ca_pem(&self) -> String {
        pem_text("CERTIFICATE", &self.ca)
    }

    /// Key, certificate and CA in one PEM text.
    fn pem_bundle(&self, leaf: &Leaf) -> String {
        format!("{}{}{}", leaf.key_pem(), leaf.cert_pem(), self.ca_pem())
    }

    fn pfx(&self, leaf: &Leaf, password: &str) -> Vec<u8> {
        use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
        let chain = PrivateKeyChain::new(
            "key1",
            PrivateKey::from_der(&leaf.key).unwrap(),
            [
                Certificate::from_der(&leaf.cert).unwrap(),
                Certificate::from_der(&self.ca).unwrap(),
            ],
        );
        let mut store = KeyStore::new();
        store.add_entry("server", KeyStoreEntry::PrivateKeyChain(chain));
        store.writer(password).write().unwrap()
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        roots
    }
}

fn source(store_type: StoreType, store: &str, password: &str, subject: &str) -> CertSource {
    CertSource {
        store_type,
        store: store.to_owned(),
        password: password.to_owned(),
        subject: subject::SubjectQuery::parse("SSLCertSubject", subject).unwrap(),
    }
}

fn write(dir: &Path, name: &str, data: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path.display().to_string()
}

fn load(src: &CertSource) -> Result<LoadedCertificate, TlsError> {
    certificate::load(src, &[])
}

fn subject_cn(loaded: &LoadedCertificate) -> &str {
    let subject = &loaded.info.subject;
    subject.rsplit("CN=").next().unwrap()
}

#[test]
fn pem_key_file_and_blob_load_with_their_chain() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let bundle = pki.pem_bundle(&pki.localhost);
    let path = write(dir.path(), "server.pem", &bundle);
    for src in [
        source(StoreType::PemKeyFile, &path, "", "*"),
        source(StoreType::PemKeyBlob, &bundle, "", "*"),
        source(StoreType::PemKeyBlob, &BASE64.encode(&bundle), "", "*"),
        source(StoreType::Auto, &path, "", "*"),
        source(StoreType::Auto, &bundle, "", "*"),
    ] {
        let loaded = load(&src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
        assert_eq!(loaded.info.subject, "O=wsserver tests, CN=localhost");
        assert_eq!(loaded.info.issuer, "CN=wsserver test CA");
        assert!(loaded.info.private_key_available);
        assert_eq!(
            loaded.certified_key.cert,
            [pki.localhost.cert.clone(), pki.ca.clone()]
        );
    }
}

#[test]
fn pfx_file_and_blob_load_with_their_chain() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let pfx = pki.pfx(&pki.other, "s3cret");
    let path = write(dir.path(), "server.pfx", &pfx);
    for src in [
        source(StoreType::PfxFile, &path, "s3cret", "*"),
        source(StoreType::PfxBlob, &BASE64.encode(&pfx), "s3cret", "*"),
        source(StoreType::Auto, &path, "s3cret", "CN=other.test"),
        source(StoreType::Auto, &BASE64.encode(&pfx), "s3cret", "other"),
    ] {
        let loaded = load(&src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
        assert_eq!(subject_cn(&loaded), "other.test");
        assert_eq!(
            loaded.certified_key.cert,
            [pki.other.cert.clone(), pki.ca.clone()]
        );
    }
}

#[test]
fn a_wrong_pfx_password_says_so() {
    let pki = Pki::new();
    let blob = BASE64.encode(pki.pfx(&pki.localhost, "right"));
    let e = load(&source(StoreType::PfxBlob, &blob, "wrong", "*")).unwrap_err();
    assert!(matches!(e, TlsError::WrongPassword { .. }), "{e}");
    assert_eq!(e.code(), 271);
    assert!(e.to_string().contains("wrong password"), "{e}");
}

#[test]
fn a_certificate_without_its_key_is_refused() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let cert_only = write(dir.path(), "cert.pem", pki.localhost.cert_pem());
    let der_only = write(dir.path(), "cert.der", &pki.localhost.cert);
    for src in [
        source(StoreType::PemKeyFile, &cert_only, "", "*"),
        source(StoreType::PublicKeyFile, &der_only, "", "*"),
        source(StoreType::Auto, &der_only, "", "*"),
    ] {
        let e = load(&src).unwrap_err();
        assert!(matches!(e, TlsError::NoPrivateKey { .. }), "{src:?}: {e}");
        assert_eq!(e.code(), 273);
        assert!(e.to_string().contains("CN=localhost"), "{e}");
    }
    // The public certificate still shows its fields.
    let infos =
        certificate::inspect(&source(StoreType::PublicKeyFile, &der_only, "", "*")).unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].subject, "O=wsserver tests, CN=localhost");
    assert!(!infos[0].private_key_available);
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let pki = Pki::new();
    let mixed = format!("{}{}", pki.other.key_pem(), pki.localhost.cert_pem());
    let e = load(&source(StoreType::PemKeyBlob, &mixed, "", "*")).unwrap_err();
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
    assert_eq!(e.code(), 273);
    assert!(e.to_string().contains("CN=localhost"), "{e}");
}

#[test]
fn subject_rules_pick_the_certificate() {
    let pki = Pki::new();
    let both = format!(
        "{}{}",
        pki.pem_bundle(&pki.localhost),
        pki.pem_bundle(&pki.other)
    );
    let pick = |subject: &str| load(&source(StoreType::PemKeyBlob, &both, "", subject));
    let cn = |subject: &str| subject_cn(&pick(subject).unwrap()).to_owned();
    assert_eq!(cn("*"), "localhost");
    assert_eq!(cn("CN=other.test, O=wsserver tests"), "other.test");
    assert_eq!(cn("cn=OTHER"), "other.test");
    let der = &pki.other.cert;
    for thumb in [
        hex::encode(md5::Md5::digest(der)),
        hex::encode_upper(Sha1::digest(der)),
        hex::encode(Sha256::digest(der)),
    ] {
        assert_eq!(cn(&format!("Thumbprint={thumb}")), "other.test", "{thumb}");
    }
    let e = pick("CN=nobody").unwrap_err();
    assert_eq!(e.code(), 272);
    let text = e.to_string();
    assert!(
        text.contains("CN=nobody") && text.contains("CN=other.test"),
        "{text}"
    );
    // The CA matches by name, but no key in the store is its own.
    let e = pick("CN=wsserver test CA").unwrap_err();
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
}

#[test]
fn ssl_ca_certs_are_sent_after_the_certificate() {
    let pki = Pki::new();
    let own = format!("{}{}", pki.localhost.key_pem(), pki.localhost.cert_pem());
    let mut settings = TlsSettings::default();
    settings.set("SSLCertStoreType", "PEMKeyBlob").unwrap();
    settings.set("SSLCertStore", &own).unwrap();
    settings.set("SSLCACerts", &pki.ca_pem()).unwrap();
    let loaded = certificate::load(
        &settings.cert,
        &store::ca_list("SSLCACerts", &settings.ca_certs).unwrap(),
    )
    .unwrap();
    assert_eq!(
        loaded.certified_key.cert,
        [pki.localhost.cert.clone(), pki.ca.clone()]
    );
    let e = store::ca_list("SSLCACerts", "/nonexistent/ca.pem").unwrap_err();
    assert_eq!(e.code(), 274);
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
}

#[test]
fn without_a_certificate_the_server_cannot_start() {
    let mut settings = TlsSettings::default();
    settings.set("UseSSL", "True").unwrap();
    let e = build_server_config(&settings).unwrap_err();
    assert_eq!(e.code(), 282);
}

#[test]
fn protocols_without_usable_suites_are_rejected() {
    let pki = Pki::new();
    let mut settings = server_settings(&pki);
    settings.set("SSLEnabledProtocols", "12288").unwrap();
    settings
        .set(
            "SSLEnabledCipherSuites",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        )
        .unwrap();
    let e = build_server_config(&settings).unwrap_err();
    assert_eq!(e.code(), 270, "{e}");
}

/// Files made by the openssl CLI (`.ci/run` installs it): an RSA key and
/// certificate, PKCS#12 with OpenSSL 3's defaults (AES-256, PBKDF2,
/// SHA-256 MAC) and with the older 3DES/SHA-1 scheme, and an encrypted
/// PKCS#8 PEM key.
#[test]
fn stores_made_by_openssl_load() {
    assert!(
        Command::new("openssl").arg("version").output().is_ok(),
        "this test needs the openssl command-line tool"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-subj",
        "/C=US/O=Acme, Inc./CN=rsa.test",
    ]);
    let modern = [
        "pkcs12",
        "-export",
        "-in",
        "cert.pem",
        "-inkey",
        "key.pem",
        "-out",
        "modern.pfx",
        "-passout",
        "pass:pw",
    ];
    openssl(&modern);
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        "cert.pem",
        "-inkey",
        "key.pem",
        "-out",
        "old.pfx",
        "-passout",
        "pass:pw",
        "-certpbe",
        "PBE-SHA1-3DES",
        "-keypbe",
        "PBE-SHA1-3DES",
        "-macalg",
        "sha1",
    ]);
    openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        "key.pem",
        "-out",
        "enc.pem",
        "-v2",
        "aes-256-cbc",
        "-passout",
        "pass:pw",
    ]);
    let enc = format!(
        "{}{}",
        std::fs::read_to_string(d.join("enc.pem")).unwrap(),
        std::fs::read_to_string(d.join("cert.pem")).unwrap()
    );
    let enc_path = write(d, "enc_bundle.pem", enc);
    let path = |name: &str| d.join(name).display().to_string();
    for src in [
        source(StoreType::PfxFile, &path("modern.pfx"), "pw", "*"),
        source(StoreType::PfxFile, &path("old.pfx"), "pw", "CN=rsa.test"),
        source(StoreType::PemKeyFile, &enc_path, "pw", "*"),
    ] {
        let loaded = load(&src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
        assert_eq!(loaded.info.subject, "C=US, O=\"Acme, Inc.\", CN=rsa.test");
        assert_eq!(loaded.info.public_key_algorithm, "RSA");
        assert_eq!(loaded.info.public_key_length, 2048);
        assert_eq!(loaded.info.signature_algorithm, "sha256WithRSAEncryption");
    }
    for src in [
        source(StoreType::PfxFile, &path("modern.pfx"), "nope", "*"),
        source(StoreType::PfxFile, &path("old.pfx"), "nope", "*"),
        source(StoreType::PemKeyFile, &enc_path, "nope", "*"),
    ] {
        let e = load(&src).unwrap_err();
        assert!(matches!(e, TlsError::WrongPassword { .. }), "{src:?}: {e}");
    }
}

// ---- handshakes on 127.0.0.1 ----

fn server_settings(pki: &Pki) -> TlsSettings {
    let mut settings = TlsSettings::default();
    settings.set("UseSSL", "True").unwrap();
    settings.set("SSLCertStoreType", "PEMKeyBlob").unwrap();
    settings
        .set("SSLCertStore", &pki.pem_bundle(&pki.localhost))
        .unwrap();
    settings
}

fn client_config(pki: &Pki, identity: Option<&Leaf>) -> ClientConfig {
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(pki.roots());
    match identity {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.cert.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key.clone())),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}

/// What each side saw of one handshake.
struct Outcome {
    /// Version and the server certificate, as the client saw them.
    client: Result<(ProtocolVersion, CertificateDer<'static>), String>,
    server: Result<(NegotiatedSession, Option<ClientCertificate>), TlsError>,
}

/// One connection: the client connects to `name`, sends "ping" and expects
/// it echoed; the server side reports the session and client certificate.
async fn handshake(server: &TlsServerConfig, client: ClientConfig, name: &str) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = server.clone();
    let server_side = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = server.accept(tcp).await?;
        let (_, conn) = tls.get_ref();
        let session = NegotiatedSession::of(conn).unwrap();
        let client_cert = server.client_certificate(conn);
        let mut buf = [0u8; 4];
        if tls.read_exact(&mut buf).await.is_ok() {
            let _ = tls.write_all(&buf).await;
            let _ = tls.shutdown().await;
        }
        Ok((session, client_cert))
    });
    let client_side = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let mut tls = TlsConnector::from(Arc::new(client))
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut echoed = [0u8; 4];
        // TLS 1.3 client auth failures arrive after the client's handshake.
        tls.read_exact(&mut echoed)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(&echoed, b"ping");
        let (_, conn) = tls.get_ref();
        Ok((
            conn.protocol_version().unwrap(),
            conn.peer_certificates().unwrap()[0].clone(),
        ))
    };
    let client = tokio::time::timeout(LIMIT, client_side).await.unwrap();
    let server = tokio::time::timeout(LIMIT, server_side)
        .await
        .unwrap()
        .unwrap();
    Outcome { client, server }
}

#[tokio::test]
async fn protocol_bitmask_limits_what_the_client_sees() {
    let pki = Pki::new();
    for (mask, version, name) in [
        ("3072", ProtocolVersion::TLSv1_2, "TLS1.2"),
        ("12288", ProtocolVersion::TLSv1_3, "TLS1.3"),
        ("15360", ProtocolVersion::TLSv1_3, "TLS1.3"),
    ] {
        let mut settings = server_settings(&pki);
        settings.set("SSLEnabledProtocols", mask).unwrap();
        let server = build_server_config(&settings).unwrap();
        let out = handshake(&server, client_config(&pki, None), "localhost").await;
        let (seen, cert) = out.client.unwrap();
        assert_eq!(seen, version, "mask {mask}");
        assert_eq!(cert, pki.localhost.cert);
        let (session, client_cert) = out.server.unwrap();
        assert_eq!(session.version, name);
        assert_eq!(session.get("SSLNegotiatedVersion").as_deref(), Some(name));
        assert!(!session.key_exchange.is_empty());
        assert!(client_cert.is_none());
    }
}

#[tokio::test]
async fn enabled_cipher_suites_decide_the_suite() {
    let pki = Pki::new();
    for (suite, cipher, bits) in [
        ("TLS_CHACHA20_POLY1305_SHA256", "CHACHA20_POLY1305", "256"),
        (
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "AES_128_GCM",
            "128",
        ),
    ] {
        let mut settings = server_settings(&pki);
        settings.set("SSLEnabledCipherSuites", suite).unwrap();
        let server = build_server_config(&settings).unwrap();
        let out = handshake(&server, client_config(&pki, None), "localhost").await;
        out.client.unwrap();
        let (session, _) = out.server.unwrap();
        assert_eq!(
            session.get("SSLNegotiatedCipherSuite").as_deref(),
            Some(suite)
        );
        assert_eq!(session.get("sslnegotiatedcipher").as_deref(), Some(cipher));
        assert_eq!(
            session.get("SSLNegotiatedCipherStrength").as_deref(),
            Some(bits)
        );
        assert!(session.status_message().contains(suite));
    }
}

#[tokio::test]
async fn mutual_tls_accepts_trusted_clients_and_rejects_others() {
    let pki = Pki::new();
    let mut settings = server_settings(&pki);
    settings.set("SSLAuthenticateClients", "True").unwrap();
    settings.set("SSLClientCACerts", &pki.ca_pem()).unwrap();
    let server = build_server_config(&settings).unwrap();

    let out = handshake(&server, client_config(&pki, Some(&pki.client)), "localhost").await;
    out.client.unwrap();
    let (_, client_cert) = out.server.unwrap();
    let client_cert = client_cert.expect("client certificate");
    assert_eq!(client_cert.status.as_str(), "OK");
    assert_eq!(client_cert.info.subject, "O=wsserver tests, CN=alice");
    assert_eq!(client_cert.info.issuer, "CN=wsserver test CA");
    assert_eq!(client_cert.chain[0], pki.client.cert);

    for identity in [Some(&pki.rogue_client), None] {
        let out = handshake(&server, client_config(&pki, identity), "localhost").await;
        assert!(out.client.is_err(), "client side should fail");
        let e = out.server.expect_err("server side should fail");
        assert_eq!(e.code(), 276);
    }
}

#[tokio::test]
async fn deferred_client_auth_reports_the_status_instead_of_failing() {
    let pki = Pki::new();
    let mut settings = server_settings(&pki);
    settings.set("SSLAuthenticateClients", "True").unwrap();
    settings.set("SSLClientCACerts", &pki.ca_pem()).unwrap();
    settings.client_auth_policy = ClientAuthPolicy::Defer;
    let server = build_server_config(&settings).unwrap();

    let out = handshake(
        &server,
        client_config(&pki, Some(&pki.rogue_client)),
        "localhost",
    )
    .await;
    out.client.unwrap();
    let rogue = out.server.unwrap().1.expect("client certificate");
    assert!(!rogue.status.is_trusted());
    assert!(
        rogue.status.as_str().contains("not trusted"),
        "{}",
        rogue.status.as_str()
    );
    assert_eq!(rogue.info.subject, "O=wsserver tests, CN=mallory");

    let out = handshake(&server, client_config(&pki, Some(&pki.client)), "localhost").await;
    let alice = out.server.unwrap().1.expect("client certificate");
    assert_eq!(alice.status, ClientCertStatus::Trusted);

    let out = handshake(&server, client_config(&pki, None), "localhost").await;
    out.client.unwrap();
    assert!(out.server.unwrap().1.is_none());
}

#[tokio::test]
async fn sni_chooses_the_certificate_per_host_name() {
    let pki = Pki::new();
    let mut settings = server_settings(&pki);
    settings
        .set("SSLCertStoreType[other.test]", "PFXBlob")
        .unwrap();
    settings
        .set(
            "SSLCertStore[other.test]",
            &BASE64.encode(pki.pfx(&pki.other, "pw")),
        )
        .unwrap();
    settings
        .set("SSLCertStorePassword[other.test]", "pw")
        .unwrap();
    settings
        .set("SSLCertStoreType[*.wild.test]", "PEMKeyBlob")
        .unwrap();
    settings
        .set("SSLCertStore[*.wild.test]", &pki.pem_bundle(&pki.wildcard))
        .unwrap();
    let server = build_server_config(&settings).unwrap();
    assert_eq!(
        server.sni_certificates()["other.test"].subject,
        "O=wsserver tests, CN=other.test"
    );
    assert_eq!(
        server.certificate().unwrap().subject,
        "O=wsserver tests, CN=localhost"
    );

    for (name, expected) in [
        ("other.test", &pki.other.cert),
        ("a.wild.test", &pki.wildcard.cert),
        ("localhost", &pki.localhost.cert),
    ] {
        let out = handshake(&server, client_config(&pki, None), name).await;
        let (_, cert) = out.client.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&cert, expected, "{name}");
        assert_eq!(out.server.unwrap().0.server_name.as_deref(), Some(name));
    }
}

#[tokio::test]
async fn key_log_file_gets_nss_lines_appended() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("keys.log");
    let mut settings = server_settings(&pki);
    settings
        .set("SSLKeyLogFile", &log.display().to_string())
        .unwrap();
    let server = build_server_config(&settings).unwrap();

    handshake(&server, client_config(&pki, None), "localhost")
        .await
        .client
        .unwrap();
    let first = std::fs::read_to_string(&log).unwrap();
    assert!(
        first.contains("CLIENT_HANDSHAKE_TRAFFIC_SECRET "),
        "{first}"
    );
    assert!(first.contains("SERVER_TRAFFIC_SECRET_0 "), "{first}");
    for line in first.lines() {
        let fields: Vec<_> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert_eq!(fields[1].len(), 64, "client random in hex: {line}");
    }

    settings.set("SSLEnabledProtocols", "3072").unwrap();
    let server = build_server_config(&settings).unwrap();
    handshake(&server, client_config(&pki, None), "localhost")
        .await
        .client
        .unwrap();
    let both = std::fs::read_to_string(&log).unwrap();
    assert!(both.starts_with(&first), "earlier lines are kept");
    assert!(both[first.len()..].starts_with("CLIENT_RANDOM "), "{both}");
}

#[tokio::test]
async fn a_stalled_handshake_times_out_without_holding_up_others() {
    let pki = Pki::new();
    let mut settings = server_settings(&pki);
    // Long enough that the good handshake below surely ends first.
    settings.set("DefaultConnectionTimeout", "3").unwrap();
    let server = build_server_config(&settings).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // A client that connects and never says hello.
    let _silent = TcpStream::connect(addr).await.unwrap();
    let (stalled_tcp, _) = listener.accept().await.unwrap();
    let stalled_server = server.clone();
    let stalled = tokio::spawn(async move { stalled_server.accept(stalled_tcp).await });

    let out = handshake(&server, client_config(&pki, None), "localhost").await;
    out.client.unwrap();
    assert!(
        !stalled.is_finished(),
        "a good handshake finished meanwhile"
    );

    let result = tokio::time::timeout(LIMIT, stalled).await.unwrap().unwrap();
    let e = result.expect_err("the silent client must time out");
    assert!(matches!(e, TlsError::HandshakeTimeout(3)), "{e}");
    assert_eq!(e.code(), 276);
}

/// An OpenSSL client (the `openssl s_client` CLI, when installed) verifies
/// the chain of a PFX-loaded SNI certificate and gets its data echoed.
#[tokio::test]
async fn an_openssl_client_verifies_the_chain_and_is_echoed() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("openssl CLI not installed; skipping");
        return;
    }
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write(dir.path(), "ca.pem", pki.ca_pem());
    let mut settings = server_settings(&pki);
    settings
        .set("SSLCertStoreType[other.test]", "PFXBlob")
        .unwrap();
    settings
        .set(
            "SSLCertStore[other.test]",
            &BASE64.encode(pki.pfx(&pki.other, "pw")),
        )
        .unwrap();
    settings
        .set("SSLCertStorePassword[other.test]", "pw")
        .unwrap();
    let server = build_server_config(&settings).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = server.accept(tcp).await.unwrap();
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).await.unwrap();
        tls.write_all(&buf).await.unwrap();
        tls.shutdown().await.unwrap();
        NegotiatedSession::of(tls.get_ref().1).unwrap()
    });
    let client = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &addr.to_string(),
                "-servername",
                "other.test",
            ])
            .args([
                "-CAfile",
                &ca_file,
                "-verify_return_error",
                "-brief",
                "-ign_eof",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(b"ping\n").unwrap();
        child.wait_with_output().unwrap()
    });
    let output = tokio::time::timeout(LIMIT, client).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Verification: OK"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("ping"),
        "{stderr}"
    );
    let session = tokio::time::timeout(LIMIT, serving).await.unwrap().unwrap();
    assert_eq!(session.server_name.as_deref(), Some("other.test"));
    assert_eq!(session.version, "TLS1.3");
}
