//! The server certificate (the seed's SSLCert): a store, a subject rule,
//! and loading the selected certificate with its private key and chain.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::CertificateDer;
use rustls::sign::{CertifiedKey, SigningKey};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::error::TlsError;
use super::info::{CertificateInfo, format_name, name_fields};
use super::store::{self, StoreContents, StoreType};
use super::subject::{Candidate, SubjectQuery};

/// Where a certificate is and which one to take: the seed's
/// SSLCertStoreType, SSLCertStore, SSLCertStorePassword and SSLCertSubject.
#[derive(Clone, PartialEq, Eq)]
pub struct CertSource {
    pub store_type: StoreType,
    /// A path, or the data itself for blob types.
    pub store: String,
    pub password: String,
    pub subject: SubjectQuery,
}

impl Default for CertSource {
    fn default() -> Self {
        Self {
            store_type: StoreType::Auto,
            store: String::new(),
            password: String::new(),
            subject: SubjectQuery::Any,
        }
    }
}

/// Keeps passwords and key blobs out of logs.
impl fmt::Debug for CertSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertSource")
            .field("store_type", &self.store_type)
            .field("store", &store_summary(self))
            .field(
                "password",
                &if self.password.is_empty() { "" } else { "***" },
            )
            .field("subject", &self.subject)
            .finish()
    }
}

/// The store as it may be shown: a path as is, a blob by its size only,
/// since blobs usually carry a private key. An Auto value that is no
/// existing file counts as a blob.
pub fn store_summary(source: &CertSource) -> String {
    if source.is_set() && store::is_blob(source.store_type, &source.store) {
        format!("<blob, {} bytes>", source.store.len())
    } else {
        source.store.clone()
    }
}

impl CertSource {
    /// Whether a store is configured at all.
    pub fn is_set(&self) -> bool {
        !self.store.trim().is_empty()
    }
}

/// A certificate ready to serve, and what it says about itself.
#[derive(Debug, Clone)]
pub struct LoadedCertificate {
    pub certified_key: Arc<CertifiedKey>,
    pub info: CertificateInfo,
}

/// A parsed certificate of a store.
struct Entry<'a> {
    der: &'a CertificateDer<'static>,
    cert: X509Certificate<'a>,
    subject: String,
    fields: Vec<(String, String)>,
}

/// Opens the store, selects the certificate by the subject rule, finds its
/// private key, and builds the chain: the certificate, its issuers found in
/// the store, then `ca_certs` (SSLCACerts) not already present.
pub fn load(
    source: &CertSource,
    ca_certs: &[CertificateDer<'static>],
) -> Result<LoadedCertificate, TlsError> {
    let contents = store::open(source.store_type, &source.store, &source.password)?;
    let entries = parse_entries(&contents)?;
    let candidates: Vec<Candidate<'_>> = entries
        .iter()
        .map(|e| Candidate {
            der: e.der.as_ref(),
            subject: &e.subject,
            fields: &e.fields,
        })
        .collect();
    let matches = source.subject.matches(&candidates);
    let Some(&first) = matches.first() else {
        return Err(TlsError::SubjectNotFound {
            store: contents.label.clone(),
            subject: source.subject.to_string(),
            available: entries.iter().map(|e| e.subject.clone()).collect(),
        });
    };

    let mut key_errors = Vec::new();
    let signers: Vec<Arc<dyn SigningKey>> = contents
        .keys
        .iter()
        .filter_map(|key| {
            any_supported_type(key)
                .map_err(|e| key_errors.push(e.to_string()))
                .ok()
        })
        .collect();
    let chosen = matches.iter().find_map(|&i| {
        let spki = entries[i].cert.public_key().raw;
        signers
            .iter()
            .find(|s| s.public_key().is_some_and(|pk| pk.as_ref() == spki))
            .map(|signer| (i, Arc::clone(signer)))
    });
    let Some((index, signer)) = chosen else {
        let store = contents.label.clone();
        let subject = entries[first].subject.clone();
        return Err(match key_errors.into_iter().next() {
            _ if contents.keys.is_empty() => TlsError::NoPrivateKey { store, subject },
            Some(reason) if signers.is_empty() => TlsError::UnsupportedKey {
                store,
                subject,
                reason,
            },
            _ => TlsError::KeyMismatch { store, subject },
        });
    };

    let chain = build_chain(&entries, index, ca_certs);
    let info = CertificateInfo::from_der(entries[index].der, true).map_err(|e| {
        TlsError::MalformedStore {
            store: contents.label.clone(),
            reason: e.to_string(),
        }
    })?;
    let certified_key = CertifiedKey::new(chain, signer);
    // Matching public keys already proved this; rustls's own check guards
    // against a signer whose public key we could not compare.
    certified_key
        .keys_match()
        .map_err(|_| TlsError::KeyMismatch {
            store: contents.label.clone(),
            subject: info.subject.clone(),
        })?;
    Ok(LoadedCertificate {
        certified_key: Arc::new(certified_key),
        info,
    })
}

/// Every certificate of a store, with whether its key is there too (the
/// seed's Certificate fields for public key stores and diagnostics).
pub fn inspect(source: &CertSource) -> Result<Vec<CertificateInfo>, TlsError> {
    let contents = store::open(source.store_type, &source.store, &source.password)?;
    let public_keys: Vec<Vec<u8>> = contents
        .keys
        .iter()
        .filter_map(|key| any_supported_type(key).ok())
        .filter_map(|signer| signer.public_key().map(|pk| pk.as_ref().to_vec()))
        .collect();
    parse_entries(&contents)?
        .iter()
        .map(|e| {
            let has_key = public_keys.iter().any(|pk| pk == e.cert.public_key().raw);
            CertificateInfo::from_der(e.der, has_key).map_err(|err| TlsError::MalformedStore {
                store: contents.label.clone(),
                reason: err.to_string(),
            })
        })
        .collect()
}

fn parse_entries(contents: &StoreContents) -> Result<Vec<Entry<'_>>, TlsError> {
    if contents.certs.is_empty() {
        return Err(TlsError::EmptyStore {
            store: contents.label.clone(),
        });
    }
    contents
        .certs
        .iter()
        .map(|der| {
            let (_, cert) =
                X509Certificate::from_der(der.as_ref()).map_err(|e| TlsError::MalformedStore {
                    store: contents.label.clone(),
                    reason: format!("not an X.509 certificate: {e}"),
                })?;
            Ok(Entry {
                der,
                subject: format_name(cert.subject()),
                fields: name_fields(cert.subject()),
                cert,
            })
        })
        .collect()
}

fn build_chain(
    entries: &[Entry<'_>],
    leaf: usize,
    ca_certs: &[CertificateDer<'static>],
) -> Vec<CertificateDer<'static>> {
    let mut chain = vec![entries[leaf].der.clone()];
    let mut current = &entries[leaf];
    // Each step adds a new certificate, so the walk ends within the store.
    while current.cert.issuer() != current.cert.subject() {
        let issuer = entries
            .iter()
            .find(|e| e.cert.subject() == current.cert.issuer() && !chain.contains(e.der));
        let Some(issuer) = issuer else { break };
        chain.push(issuer.der.clone());
        current = issuer;
    }
    for ca in ca_certs {
        if !chain.contains(ca) {
            chain.push(ca.clone());
        }
    }
    chain
}
