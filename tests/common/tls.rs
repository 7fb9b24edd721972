//! TLS for the tests: a certificate authority and certificates made in the
//! test with rcgen, the PEM and PKCS#12 stores the server loads, and a
//! rustls client (tokio-rustls under tokio-tungstenite) whose settings and
//! view of the session the tests control.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls::client::ClientConnection;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;

use super::WAIT;

/// A WebSocket over a rustls client connection.
pub type Wss = WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// A certificate with its PKCS#8 private key.
pub struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: Vec<u8>,
}

impl Identity {
    pub fn cert_pem(&self) -> String {
        pem_text("CERTIFICATE", &self.cert)
    }

    pub fn key_pem(&self) -> String {
        pem_text("PRIVATE KEY", &self.key)
    }
}

pub fn pem_text(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der.to_vec()))
}

/// A certificate authority that issues server and client certificates.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    pub fn new(ca_name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, ca_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Self {
            ca: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A server certificate, subject "O=wsserver tests, CN=`cn`", for the
    /// DNS names given.
    pub fn server(&self, cn: &str, names: &[&str]) -> Identity {
        self.issue(cn, names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate, subject "O=wsserver tests, CN=`cn`".
    pub fn client(&self, cn: &str) -> Identity {
        self.issue(cn, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, cn: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Identity {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "wsserver tests");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        Identity {
            cert: params.signed_by(&key, &self.ca).unwrap().der().clone(),
            key: key.serialize_der(),
        }
    }

    /// Key, certificate and CA certificate in one PEM text (PEMKeyFile/Blob).
    pub fn pem_bundle(&self, identity: &Identity) -> String {
        format!(
            "{}{}{}",
            identity.key_pem(),
            identity.cert_pem(),
            self.ca_pem()
        )
    }

    /// A PKCS#12 (PFX) store with the key, the certificate and the CA.
    pub fn pfx(&self, identity: &Identity, password: &str) -> Vec<u8> {
        use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
        let chain = PrivateKeyChain::new(
            "key1",
            PrivateKey::from_der(&identity.key).unwrap(),
            [
                Certificate::from_der(&identity.cert).unwrap(),
                Certificate::from_der(self.ca.der()).unwrap(),
            ],
        );
        let mut store = KeyStore::new();
        store.add_entry("server", KeyStoreEntry::PrivateKeyChain(chain));
        store.writer(password).write().unwrap()
    }

    /// A client trusting this CA, TLS 1.2 and 1.3, without a certificate.
    pub fn client_config(&self) -> ClientBuilder {
        ClientBuilder {
            roots: vec![self.ca_der()],
            versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
            identity: None,
        }
    }
}

/// Writes `data` to `dir/name` and returns the path as text.
pub fn write_file(dir: &Path, name: &str, data: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path.display().to_string()
}

/// The client side of a test: what it trusts, offers and presents.
pub struct ClientBuilder {
    roots: Vec<CertificateDer<'static>>,
    versions: Vec<&'static SupportedProtocolVersion>,
    identity: Option<(CertificateDer<'static>, Vec<u8>)>,
}

impl ClientBuilder {
    /// Offers only these TLS versions.
    pub fn versions(mut self, versions: &[&'static SupportedProtocolVersion]) -> Self {
        self.versions = versions.to_vec();
        self
    }

    /// Presents this certificate when the server asks.
    pub fn identity(mut self, identity: &Identity) -> Self {
        self.identity = Some((identity.cert.clone(), identity.key.clone()));
        self
    }

    pub fn build(self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for ca in self.roots {
            roots.add(ca).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&self.versions)
            .unwrap()
            .with_root_certificates(roots);
        let config = match self.identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![cert],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        Arc::new(config)
    }
}

/// Connects over TLS to `addr`, asking for `server_name` (SNI and
/// certificate check), and opens a WebSocket. Errors are the client's
/// view, as text: a refused handshake or a connection closed before the
/// WebSocket opened.
pub async fn wss_connect(
    addr: SocketAddr,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> Result<Wss, String> {
    let connecting = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
        let tls = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let url = format!("wss://{server_name}:{}/", addr.port());
        let (ws, _) = tokio_tungstenite::client_async(url, tls)
            .await
            .map_err(|e| format!("WebSocket handshake: {e}"))?;
        Ok(ws)
    };
    timeout(WAIT, connecting)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {WAIT:?}")))
}

/// The client's view of the TLS session under a WebSocket.
pub fn session(ws: &Wss) -> &ClientConnection {
    ws.get_ref().get_ref().1
}
