//! TLS settings addressed by the seed's key names, for `Config("Key=Value")`,
//! `--set Key=Value` and the TOML file. Keys are case-insensitive.
//!
//! Certificates per host name (SNI) use the same keys with the host in
//! brackets, like the seed's per-connection keys:
//! `SSLCertStoreType[chat.example.com]=PEMKeyFile`,
//! `SSLCertStore[chat.example.com]=/etc/wsserver/chat.pem`. In TOML the key
//! needs quotes: `"SSLCertStore[*.example.com]" = "..."`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::certificate::{CertSource, store_summary};
use super::client_auth::ClientAuthPolicy;
use super::error::TlsConfigError;
use super::protocols::{CipherSuites, DEFAULT_PROTOCOLS, parse_protocols};
use super::session::NEGOTIATED_KEYS;
use super::store::StoreType;
use super::subject::SubjectQuery;

/// Every TLS setting of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// UseSSL: negotiate TLS with every client (`wss://`).
    pub use_ssl: bool,
    /// The default certificate (SSLCert).
    pub cert: CertSource,
    /// Certificates by lowercase host name or `*.suffix`, chosen by SNI.
    pub sni_certs: BTreeMap<String, CertSource>,
    /// SSLEnabledProtocols bitmask; see [`DEFAULT_PROTOCOLS`].
    pub enabled_protocols: u32,
    pub cipher_suites: CipherSuites,
    /// SSLCipherStrength: minimum bulk cipher key bits; 0 allows all.
    pub cipher_strength: u32,
    /// SSLCACerts: PEM text or a PEM file path; sent after the certificate.
    pub ca_certs: String,
    /// SSLAuthenticateClients: ask clients for a certificate.
    pub authenticate_clients: bool,
    /// SSLClientCACerts: PEM text or a PEM file path; issuers of client
    /// certificates.
    pub client_ca_certs: String,
    /// Not a seed key: set by the server from whether an
    /// SSLClientAuthentication handler may override the verdict.
    pub client_auth_policy: ClientAuthPolicy,
    /// SSLKeyLogFile; empty for none.
    pub key_log_file: Option<PathBuf>,
    /// DefaultConnectionTimeout: seconds a TLS handshake may take; 0 none.
    pub handshake_timeout: u32,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            use_ssl: false,
            cert: CertSource::default(),
            sni_certs: BTreeMap::new(),
            enabled_protocols: DEFAULT_PROTOCOLS,
            cipher_suites: CipherSuites::All,
            cipher_strength: 0,
            ca_certs: String::new(),
            authenticate_clients: false,
            client_ca_certs: String::new(),
            client_auth_policy: ClientAuthPolicy::Enforce,
            key_log_file: None,
            handshake_timeout: 0,
        }
    }
}

/// The keys [`TlsSettings`] takes, with a summary for help and docs. The
/// SSLCert keys also take `[host]`.
pub const KEYS: &[(&str, &str)] = &[
    ("UseSSL", "negotiate TLS with every client (wss://)"),
    (
        "SSLCertStoreType",
        "2 PFXFile, 3 PFXBlob, 6 PEMKeyFile, 7 PEMKeyBlob, 8 PublicKeyFile, 9 PublicKeyBlob, 99 Auto; [host] for SNI",
    ),
    (
        "SSLCertStore",
        "certificate store: a path, or the data for blob types; [host] for SNI",
    ),
    (
        "SSLCertStorePassword",
        "password of a PFX store or an encrypted PEM key; [host] for SNI",
    ),
    (
        "SSLCertSubject",
        "* (first), a subject (exact or substring) or Thumbprint=<hex>; [host] for SNI",
    ),
    (
        "SSLEnabledProtocols",
        "bitmask: 3072 TLS 1.2, 12288 TLS 1.3 (default 15360: both)",
    ),
    ("SSLEnabledCipherSuites", "* or suite names separated by ;"),
    (
        "SSLCipherStrength",
        "minimum bulk cipher key length in bits",
    ),
    (
        "SSLCACerts",
        "PEM CA certificates (or a PEM file path) sent after the server certificate",
    ),
    ("SSLAuthenticateClients", "ask clients for a certificate"),
    (
        "SSLClientCACerts",
        "PEM CA certificates (or a PEM file path) that issue client certificates",
    ),
    (
        "SSLKeyLogFile",
        "append TLS secrets here in NSS key log format (debugging only)",
    ),
    (
        "DefaultConnectionTimeout",
        "seconds a TLS handshake may take (0: no limit)",
    ),
];

/// SSL settings of the seed that do not apply, with the reason.
pub const NOT_APPLICABLE: &[(&str, &str)] = &[
    (
        "LogSSLPackets",
        "rustls exposes no packet hook; SSLKeyLogFile with a capture tool shows the same",
    ),
    (
        "ReuseSSLSession",
        "client-side setting; the server always offers session resumption",
    ),
    (
        "SSLCheckCRL",
        "checks a server's certificate; client-side only",
    ),
    (
        "SSLCheckOCSP",
        "checks a server's certificate; client-side only",
    ),
    (
        "SSLEnableRenegotiation",
        "rustls never renegotiates (renegotiation is gone in TLS 1.3)",
    ),
    (
        "SSLIncludeCertChain",
        "concerns the client-side SSLServerAuthentication event",
    ),
    (
        "SSLSecurityFlags",
        "client-side checks of a server certificate; a deferred SSLClientAuthentication handler may accept any client certificate instead",
    ),
    (
        "SSLServerCACerts",
        "verifies a server's certificate; client-side only",
    ),
    (
        "TLS12SignatureAlgorithms",
        "restricts a server's certificate; client-side only",
    ),
    (
        "TLS13SignatureAlgorithms",
        "restricts a server's certificate; client-side only",
    ),
    (
        "TLS13KeyShareGroups",
        "pregenerated client key shares; client-side only",
    ),
    (
        "TLS12SupportedGroups",
        "rustls with ring offers X25519, P-256 and P-384 for both versions",
    ),
    (
        "TLS13SupportedGroups",
        "rustls with ring offers X25519, P-256 and P-384 for both versions",
    ),
    (
        "SSLCertEncoded",
        "give the certificate and key together as a PEMKeyBlob instead",
    ),
];

/// Splits `Key[index]` into the key and the index.
fn split_index(key: &str) -> (&str, Option<&str>) {
    match key.trim().strip_suffix(']').and_then(|k| k.split_once('[')) {
        Some((name, index)) => (name.trim(), Some(index.trim())),
        None => (key.trim(), None),
    }
}

fn canonical(name: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|(k, _)| *k)
        .find(|k| k.eq_ignore_ascii_case(name))
}

/// Whether a key (any case, without the index) takes `[host]`: the SSLCert
/// keys, for SNI certificates.
pub fn takes_host_index(name: &str) -> bool {
    canonical(name.trim()).is_some_and(is_cert_key)
}

fn is_cert_key(name: &str) -> bool {
    matches!(
        name,
        "SSLCertStoreType" | "SSLCertStore" | "SSLCertStorePassword" | "SSLCertSubject"
    )
}

impl TlsSettings {
    /// Applies `key=value`. Ok(false) means the key is not a TLS key, so
    /// the caller can try its own; errors name the key and the value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, TlsConfigError> {
        let (name, index) = split_index(key);
        let Some(name) = canonical(name) else {
            return self.refuse(name);
        };
        let invalid = |expected: &str| TlsConfigError::InvalidValue {
            key: key.trim().to_owned(),
            value: value.trim().to_owned(),
            expected: expected.to_owned(),
        };
        if let Some(host) = index {
            if !is_cert_key(name) || host.is_empty() {
                return Err(invalid("no [index]: only the SSLCert keys take [host]"));
            }
            let source = self.sni_certs.entry(host.to_ascii_lowercase()).or_default();
            set_cert_key(source, name, key, value)?;
            return Ok(true);
        }
        let boolean = || match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(invalid("True, False, 1, 0, Yes or No")),
        };
        let number = |max: u32, expected: &str| {
            value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| invalid(expected))
        };
        match name {
            "UseSSL" => self.use_ssl = boolean()?,
            "SSLEnabledProtocols" => self.enabled_protocols = parse_protocols(key, value)?,
            "SSLEnabledCipherSuites" => self.cipher_suites = CipherSuites::parse(key, value)?,
            "SSLCipherStrength" => self.cipher_strength = number(256, "0 to 256 bits")?,
            "SSLCACerts" => self.ca_certs = value.trim().to_owned(),
            "SSLAuthenticateClients" => self.authenticate_clients = boolean()?,
            "SSLClientCACerts" => self.client_ca_certs = value.trim().to_owned(),
            "SSLKeyLogFile" => {
                let path = value.trim();
                self.key_log_file = (!path.is_empty()).then(|| PathBuf::from(path));
            }
            "DefaultConnectionTimeout" => {
                self.handshake_timeout = number(86_400, "0 to 86400 seconds")?
            }
            cert_key => set_cert_key(&mut self.cert, cert_key, key, value)?,
        }
        Ok(true)
    }

    /// Reads a TLS setting in the form `set` accepts; None if the key is
    /// not one. Passwords and blobs read back masked, since settings are
    /// shown by the admin API.
    pub fn get(&self, key: &str) -> Option<String> {
        let (name, index) = split_index(key);
        let name = canonical(name)?;
        if let Some(host) = index {
            let source = self.sni_certs.get(&host.to_ascii_lowercase());
            return is_cert_key(name)
                .then(|| source.map_or_else(String::new, |s| get_cert_key(s, name)));
        }
        let yes_no = |b: bool| if b { "True" } else { "False" }.to_owned();
        Some(match name {
            "UseSSL" => yes_no(self.use_ssl),
            "SSLEnabledProtocols" => self.enabled_protocols.to_string(),
            "SSLEnabledCipherSuites" => self.cipher_suites.to_string(),
            "SSLCipherStrength" => self.cipher_strength.to_string(),
            "SSLCACerts" => self.ca_certs.clone(),
            "SSLAuthenticateClients" => yes_no(self.authenticate_clients),
            "SSLClientCACerts" => self.client_ca_certs.clone(),
            "SSLKeyLogFile" => self
                .key_log_file
                .as_ref()
                .map_or_else(String::new, |p| p.display().to_string()),
            "DefaultConnectionTimeout" => self.handshake_timeout.to_string(),
            cert_key => get_cert_key(&self.cert, cert_key),
        })
    }

    /// Errors for seed keys that exist but cannot be set here; Ok(false)
    /// for keys that are not TLS keys at all.
    fn refuse(&self, name: &str) -> Result<bool, TlsConfigError> {
        if let Some(key) = NEGOTIATED_KEYS
            .iter()
            .find(|k| k.eq_ignore_ascii_case(name))
        {
            return Err(TlsConfigError::ReadOnly {
                key: (*key).to_owned(),
            });
        }
        match NOT_APPLICABLE
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some((key, reason)) => Err(TlsConfigError::NotApplicable {
                key: (*key).to_owned(),
                reason,
            }),
            None => Ok(false),
        }
    }
}

fn set_cert_key(
    source: &mut CertSource,
    name: &str,
    key: &str,
    value: &str,
) -> Result<(), TlsConfigError> {
    match name {
        "SSLCertStoreType" => source.store_type = StoreType::parse(key, value)?,
        // Blobs keep their line breaks; paths lose surrounding blanks.
        "SSLCertStore" => source.store = value.trim().to_owned(),
        "SSLCertStorePassword" => source.password = value.to_owned(),
        _ => source.subject = SubjectQuery::parse(key, value)?,
    }
    Ok(())
}

fn get_cert_key(source: &CertSource, name: &str) -> String {
    match name {
        "SSLCertStoreType" => (source.store_type as u32).to_string(),
        "SSLCertStore" => store_summary(source),
        "SSLCertStorePassword" if source.password.is_empty() => String::new(),
        "SSLCertStorePassword" => "********".to_owned(),
        _ => source.subject.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_in_any_case() {
        let mut s = TlsSettings::default();
        assert_eq!(s.set("usessl", "true"), Ok(true));
        assert_eq!(s.get("UseSSL").as_deref(), Some("True"));
        s.set("SSLCERTSTORETYPE", "cstPFXFile").unwrap();
        assert_eq!(s.get("SSLCertStoreType").as_deref(), Some("2"));
        s.set("SSLCertStore", " /etc/wsserver/server.pfx ").unwrap();
        assert_eq!(
            s.get("sslcertstore").as_deref(),
            Some("/etc/wsserver/server.pfx")
        );
        s.set("SSLCertSubject", "CN=server").unwrap();
        assert_eq!(s.get("SSLCertSubject").as_deref(), Some("CN=server"));
        s.set("SSLEnabledProtocols", "12288").unwrap();
        assert_eq!(s.get("SSLEnabledProtocols").as_deref(), Some("12288"));
        s.set("SSLEnabledCipherSuites", "TLS_AES_256_GCM_SHA384")
            .unwrap();
        assert_eq!(
            s.get("SSLEnabledCipherSuites").as_deref(),
            Some("TLS_AES_256_GCM_SHA384")
        );
        s.set("SSLKeyLogFile", "/tmp/keys.log").unwrap();
        assert_eq!(s.get("SSLKeyLogFile").as_deref(), Some("/tmp/keys.log"));
        s.set("DefaultConnectionTimeout", "7").unwrap();
        assert_eq!(s.handshake_timeout, 7);
    }

    #[test]
    fn defaults_enable_tls12_and_tls13_and_all_suites() {
        let s = TlsSettings::default();
        assert_eq!(s.get("SSLEnabledProtocols").as_deref(), Some("15360"));
        assert_eq!(s.get("SSLEnabledCipherSuites").as_deref(), Some("*"));
        assert_eq!(s.get("UseSSL").as_deref(), Some("False"));
        assert_eq!(s.get("SSLCertStoreType").as_deref(), Some("99"));
        assert_eq!(s.get("SSLCertSubject").as_deref(), Some("*"));
        for (key, _) in KEYS {
            assert!(s.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn unknown_keys_are_left_to_the_caller() {
        let mut s = TlsSettings::default();
        assert_eq!(s.set("MaxConnections", "5"), Ok(false));
        assert_eq!(s.get("MaxConnections"), None);
        assert_eq!(s, TlsSettings::default());
    }

    #[test]
    fn errors_name_the_key_and_the_value() {
        let mut s = TlsSettings::default();
        let e = s.set("UseSSL", "maybe").unwrap_err().to_string();
        assert!(e.contains("UseSSL") && e.contains("\"maybe\""), "{e}");
        let e = s
            .set("SSLCertStoreType", "JKSFile")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("SSLCertStoreType") && e.contains("JKSFile"),
            "{e}"
        );
        let e = s.set("SSLEnabledProtocols", "48").unwrap_err().to_string();
        assert!(
            e.contains("SSLEnabledProtocols") && e.contains("\"48\""),
            "{e}"
        );
        let e = s
            .set("SSLEnabledCipherSuites", "RC4")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("SSLEnabledCipherSuites") && e.contains("RC4"),
            "{e}"
        );
        assert!(matches!(
            s.set("SSLNegotiatedCipher", "x"),
            Err(TlsConfigError::ReadOnly { .. })
        ));
        assert!(matches!(
            s.set("sslcheckcrl", "1"),
            Err(TlsConfigError::NotApplicable { .. })
        ));
        let e = s.set("UseSSL[x]", "true").unwrap_err().to_string();
        assert!(e.contains("UseSSL[x]"), "{e}");
    }

    #[test]
    fn host_indexed_cert_keys_fill_the_sni_table() {
        let mut s = TlsSettings::default();
        s.set("SSLCertStoreType[Chat.Example.com]", "6").unwrap();
        s.set("SSLCertStore[chat.example.com]", "/etc/chat.pem")
            .unwrap();
        s.set("SSLCertSubject[*.example.com]", "CN=wild").unwrap();
        let chat = &s.sni_certs["chat.example.com"];
        assert_eq!(chat.store_type, StoreType::PemKeyFile);
        assert_eq!(chat.store, "/etc/chat.pem");
        assert_eq!(
            s.get("SSLCertSubject[*.EXAMPLE.com]").as_deref(),
            Some("CN=wild")
        );
        assert_eq!(s.get("SSLCertStore[other.test]").as_deref(), Some(""));
        assert!(!s.cert.is_set());
    }

    #[test]
    fn secrets_read_back_masked() {
        let mut s = TlsSettings::default();
        s.set("SSLCertStorePassword", "hunter2").unwrap();
        s.set("SSLCertStoreType", "PEMKeyBlob").unwrap();
        s.set(
            "SSLCertStore",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        )
        .unwrap();
        assert_eq!(s.get("SSLCertStorePassword").as_deref(), Some("********"));
        let store = s.get("SSLCertStore").unwrap();
        assert!(!store.contains("PRIVATE"), "{store}");
        s.set("SSLCertStoreType", "Auto").unwrap();
        let store = s.get("SSLCertStore").unwrap();
        assert!(!store.contains("PRIVATE"), "auto blob: {store}");
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("PRIVATE"),
            "{debug}"
        );
    }
}
