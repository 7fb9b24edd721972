//! Certificate choice per host name (SNI): the role of the seed's
//! SSLConnectionRequest event, configured instead of coded. A name may be
//! exact (`chat.example.com`) or one-level wildcard (`*.example.com`);
//! clients that send no name, or an unknown one, get the default.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug, Default)]
pub struct SniResolver {
    /// Lowercase host name or `*.suffix` to its certificate.
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    pub fn new(default: Option<Arc<CertifiedKey>>) -> Self {
        Self {
            by_name: HashMap::new(),
            default,
        }
    }

    pub fn add(&mut self, host: &str, key: Arc<CertifiedKey>) {
        self.by_name.insert(host.to_ascii_lowercase(), key);
    }

    /// The certificate for a host name: exact, then wildcard, then default.
    pub fn lookup(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let named = server_name.and_then(|name| {
            let name = name.to_ascii_lowercase();
            self.by_name.get(&name).or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.by_name.get(&format!("*.{parent}"))
            })
        });
        named.or(self.default.as_ref()).cloned()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(client_hello.server_name())
    }
}
