//! Certificate stores: the seed's store types that make sense off Windows,
//! and opening one into its certificates and private keys.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

use super::error::{TlsConfigError, TlsError};

/// Where a certificate comes from (the seed's SSLCertStoreType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    /// A PKCS#12 file; the store is its path.
    PfxFile = 2,
    /// A PKCS#12 file's bytes, base64-encoded.
    PfxBlob = 3,
    /// A PEM file with a private key and its certificate chain.
    PemKeyFile = 6,
    /// PEM text (or its base64) with a private key and its certificate chain.
    PemKeyBlob = 7,
    /// A PEM or DER certificate file, without a key.
    PublicKeyFile = 8,
    /// A PEM or DER (base64) certificate, without a key.
    PublicKeyBlob = 9,
    /// Detected from the data: a path or a blob, PEM, DER or PKCS#12.
    Auto = 99,
}

/// (number, name) of every supported type; names also take a `cst` prefix.
const SUPPORTED: &[(u32, &str, StoreType)] = &[
    (2, "PFXFile", StoreType::PfxFile),
    (3, "PFXBlob", StoreType::PfxBlob),
    (6, "PEMKeyFile", StoreType::PemKeyFile),
    (7, "PEMKeyBlob", StoreType::PemKeyBlob),
    (8, "PublicKeyFile", StoreType::PublicKeyFile),
    (9, "PublicKeyBlob", StoreType::PublicKeyBlob),
    (99, "Auto", StoreType::Auto),
];

/// The seed's other store types, with why each does not apply.
const UNSUPPORTED: &[(u32, &str, &str)] = &[
    (0, "User", WINDOWS_STORE),
    (1, "Machine", WINDOWS_STORE),
    (4, "JKSFile", JAVA_STORE),
    (5, "JKSBlob", JAVA_STORE),
    (10, "SSHPublicKeyBlob", NO_X509),
    (11, "P7BFile", NO_KEY),
    (12, "P7BBlob", NO_KEY),
    (13, "SSHPublicKeyFile", NO_X509),
    (14, "PPKFile", NO_X509),
    (15, "PPKBlob", NO_X509),
    (16, "XMLFile", NO_X509),
    (17, "XMLBlob", NO_X509),
    (18, "JWKFile", NO_X509),
    (19, "JWKBlob", NO_X509),
    (21, "BCFKSFile", JAVA_STORE),
    (22, "BCFKSBlob", JAVA_STORE),
    (
        23,
        "PKCS11",
        "security keys are not supported; export the certificate and key to PEM",
    ),
];
const WINDOWS_STORE: &str =
    "Windows certificate stores do not exist here; export the certificate to a PFX or PEM file";
const JAVA_STORE: &str = "Java key stores: convert to PKCS#12 with keytool -importkeystore";
const NO_X509: &str = "this format holds no X.509 certificate for TLS";
const NO_KEY: &str = "PKCS#7 bundles hold no private key; use PEMKeyFile with key and chain";

impl StoreType {
    /// Parses the seed's number (2) or name (PFXFile, cstPFXFile), any case.
    pub fn parse(key: &str, value: &str) -> Result<Self, TlsConfigError> {
        let raw = value.trim();
        let name = raw
            .get(..3)
            .filter(|p| p.eq_ignore_ascii_case("cst"))
            .map_or(raw, |_| &raw[3..]);
        let number: Option<u32> = raw.parse().ok();
        let is = |n: u32, s: &str| number == Some(n) || name.eq_ignore_ascii_case(s);
        if let Some(&(_, _, t)) = SUPPORTED.iter().find(|(n, s, _)| is(*n, s)) {
            return Ok(t);
        }
        if let Some(&(_, _, reason)) = UNSUPPORTED.iter().find(|(n, s, _)| is(*n, s)) {
            return Err(TlsConfigError::UnsupportedStoreType {
                key: key.to_owned(),
                value: raw.to_owned(),
                reason,
            });
        }
        Err(TlsConfigError::InvalidValue {
            key: key.to_owned(),
            value: raw.to_owned(),
            expected: "a store type: 2 PFXFile, 3 PFXBlob, 6 PEMKeyFile, 7 PEMKeyBlob, \
                       8 PublicKeyFile, 9 PublicKeyBlob or 99 Auto"
                .to_owned(),
        })
    }

    /// The seed's name, without the `cst` prefix.
    pub fn name(self) -> &'static str {
        SUPPORTED
            .iter()
            .find(|(_, _, t)| *t == self)
            .map_or("Auto", |(_, name, _)| name)
    }
}

impl fmt::Display for StoreType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", *self as u32, self.name())
    }
}

/// What a store holds, in store order.
#[derive(Debug)]
pub struct StoreContents {
    /// How errors name the store: its path, or "the SSLCertStore blob".
    pub label: String,
    pub certs: Vec<CertificateDer<'static>>,
    pub keys: Vec<PrivateKeyDer<'static>>,
}

/// The encodings a store's bytes can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Pkcs12,
    Pem,
    /// PEM or a single DER certificate.
    Certificate,
    /// Decided by looking at the bytes.
    Sniff,
}

/// Opens a store: reads the file or decodes the blob, then parses it.
pub fn open(store_type: StoreType, store: &str, password: &str) -> Result<StoreContents, TlsError> {
    let (label, bytes) = read(store_type, store)?;
    let format = match store_type {
        StoreType::PfxFile | StoreType::PfxBlob => Format::Pkcs12,
        StoreType::PemKeyFile | StoreType::PemKeyBlob => Format::Pem,
        StoreType::PublicKeyFile | StoreType::PublicKeyBlob => Format::Certificate,
        StoreType::Auto => Format::Sniff,
    };
    let malformed = |reason: String| TlsError::MalformedStore {
        store: label.clone(),
        reason,
    };
    let (certs, keys) = match resolve_format(format, &bytes) {
        Format::Pkcs12 => read_pkcs12(&bytes, password, &label)?,
        Format::Pem => read_pem(&bytes, password, &label)?,
        _ => (vec![CertificateDer::from(bytes)], Vec::new()),
    };
    if certs.is_empty() && keys.is_empty() {
        return Err(malformed(
            "no certificate or private key found (expected PEM, DER or PKCS#12)".into(),
        ));
    }
    Ok(StoreContents { label, certs, keys })
}

/// The store's label and bytes. File types read the path; blob types take
/// PEM text as is and decode anything else as base64. Auto treats a value
/// that is PEM text or not an existing file as a blob.
fn read(store_type: StoreType, store: &str) -> Result<(String, Vec<u8>), TlsError> {
    if !is_blob(store_type, store) {
        let bytes = std::fs::read(store).map_err(|source| TlsError::UnreadableStore {
            path: store.into(),
            source,
        })?;
        return Ok((store.to_owned(), bytes));
    }
    let label = "the SSLCertStore blob".to_owned();
    if is_pem(store.as_bytes()) {
        return Ok((label, store.as_bytes().to_vec()));
    }
    let compact: String = store.split_ascii_whitespace().collect();
    match BASE64.decode(compact) {
        Ok(bytes) if !bytes.is_empty() => Ok((label, bytes)),
        _ if store_type == StoreType::Auto => Err(TlsError::UnreadableStore {
            path: store.into(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file, and not a PEM or base64 certificate blob",
            ),
        }),
        _ => Err(TlsError::MalformedStore {
            store: label,
            reason: "a blob must be PEM text or base64".into(),
        }),
    }
}

/// Whether the store value is the data itself rather than a path.
pub fn is_blob(store_type: StoreType, store: &str) -> bool {
    match store_type {
        StoreType::PfxFile | StoreType::PemKeyFile | StoreType::PublicKeyFile => false,
        StoreType::PfxBlob | StoreType::PemKeyBlob | StoreType::PublicKeyBlob => true,
        StoreType::Auto => is_pem(store.as_bytes()) || !Path::new(store).is_file(),
    }
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Decides what PEM-or-DER and sniffed data are, from the bytes.
fn resolve_format(format: Format, bytes: &[u8]) -> Format {
    match format {
        Format::Certificate | Format::Sniff if is_pem(bytes) => Format::Pem,
        Format::Sniff if x509_parser::parse_x509_certificate(bytes).is_ok() => Format::Certificate,
        Format::Sniff => Format::Pkcs12,
        other => other,
    }
}

type Parsed = (Vec<CertificateDer<'static>>, Vec<PrivateKeyDer<'static>>);

fn read_pkcs12(bytes: &[u8], password: &str, label: &str) -> Result<Parsed, TlsError> {
    use p12_keystore::error::Error as P12Error;
    let archive =
        p12_keystore::Pkcs12Archive::from_pkcs12(bytes, password).map_err(|e| match e {
            // The MAC is keyed by the password; without a MAC, decryption fails
            // on the padding instead.
            P12Error::MacError(_) | P12Error::UnpadError => TlsError::WrongPassword {
                store: label.to_owned(),
            },
            other => TlsError::MalformedStore {
                store: label.to_owned(),
                reason: format!("not a readable PKCS#12 (PFX) file: {other}"),
            },
        })?;
    let certs = archive
        .certs
        .iter()
        .map(|bag| CertificateDer::from(bag.cert.as_der().to_vec()))
        .collect();
    let keys = archive
        .keys
        .iter()
        .map(|bag| PrivatePkcs8KeyDer::from(bag.key.as_der().to_vec()).into())
        .collect();
    Ok((certs, keys))
}

/// Certificates and keys of PEM text; an encrypted PKCS#8 key is decrypted
/// with the store password.
fn read_pem(bytes: &[u8], password: &str, label: &str) -> Result<Parsed, TlsError> {
    let malformed = |reason: String| TlsError::MalformedStore {
        store: label.to_owned(),
        reason,
    };
    let sections = pem::parse_many(bytes).map_err(|e| malformed(format!("bad PEM: {e}")))?;
    let mut certs = Vec::new();
    let mut keys = Vec::new();
    for section in sections {
        if section.headers().get("Proc-Type").is_some() {
            return Err(malformed(
                "legacy encrypted PEM keys (Proc-Type) are not supported; convert with \
                 `openssl pkcs8 -topk8` to an ENCRYPTED PRIVATE KEY"
                    .into(),
            ));
        }
        let der = section.contents().to_vec();
        match section.tag() {
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                certs.push(CertificateDer::from(der))
            }
            "PRIVATE KEY" => keys.push(PrivatePkcs8KeyDer::from(der).into()),
            "RSA PRIVATE KEY" => keys.push(PrivatePkcs1KeyDer::from(der).into()),
            "EC PRIVATE KEY" => keys.push(PrivateSec1KeyDer::from(der).into()),
            "ENCRYPTED PRIVATE KEY" => keys.push(decrypt_pkcs8(&der, password, label)?),
            // Parameters, CSRs and the like are not part of a server identity.
            _ => {}
        }
    }
    Ok((certs, keys))
}

fn decrypt_pkcs8(
    der: &[u8],
    password: &str,
    label: &str,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let info =
        pkcs8::EncryptedPrivateKeyInfoRef::try_from(der).map_err(|e| TlsError::MalformedStore {
            store: label.to_owned(),
            reason: format!("bad ENCRYPTED PRIVATE KEY: {e}"),
        })?;
    // A wrong password decrypts to garbage that fails the padding or the
    // DER check; both mean the password is wrong for a well-formed key.
    let plain = info
        .decrypt(password)
        .map_err(|_| TlsError::WrongPassword {
            store: label.to_owned(),
        })?;
    Ok(PrivatePkcs8KeyDer::from(plain.as_bytes().to_vec()).into())
}

/// SSLCACerts and SSLClientCACerts: PEM text, or the path of a PEM file.
/// Empty gives no certificates.
pub fn ca_list(key: &'static str, value: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(Vec::new());
    }
    let bad = |reason: String| TlsError::BadCaCertificates { key, reason };
    let text = if is_pem(value.as_bytes()) {
        value.as_bytes().to_vec()
    } else {
        std::fs::read(value).map_err(|e| bad(format!("cannot read {value}: {e}")))?
    };
    let sections = pem::parse_many(&text).map_err(|e| bad(format!("bad PEM: {e}")))?;
    let certs: Vec<CertificateDer<'static>> = sections
        .into_iter()
        .filter(|s| s.tag() == "CERTIFICATE")
        .map(|s| CertificateDer::from(s.into_contents()))
        .collect();
    if certs.is_empty() {
        return Err(bad("no PEM CERTIFICATE found".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_types_parse_from_numbers_and_names() {
        for (value, expected) in [
            ("2", StoreType::PfxFile),
            ("PFXFile", StoreType::PfxFile),
            ("cstPFXFile", StoreType::PfxFile),
            ("cstpfxblob", StoreType::PfxBlob),
            ("6", StoreType::PemKeyFile),
            ("PEMKeyBlob", StoreType::PemKeyBlob),
            ("8", StoreType::PublicKeyFile),
            ("cstPublicKeyBlob", StoreType::PublicKeyBlob),
            ("99", StoreType::Auto),
            ("cstAuto", StoreType::Auto),
        ] {
            assert_eq!(
                StoreType::parse("SSLCertStoreType", value),
                Ok(expected),
                "{value}"
            );
        }
    }

    #[test]
    fn unsupported_store_types_say_why() {
        let e = StoreType::parse("SSLCertStoreType", "cstUser").unwrap_err();
        assert!(e.to_string().contains("Windows"), "{e}");
        let e = StoreType::parse("SSLCertStoreType", "4").unwrap_err();
        assert!(e.to_string().contains("keytool"), "{e}");
        let e = StoreType::parse("SSLCertStoreType", "42").unwrap_err();
        assert!(
            e.to_string().contains("\"42\"") && e.to_string().contains("SSLCertStoreType"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_file_is_named_in_the_error() {
        let e = open(StoreType::PemKeyFile, "/nonexistent/server.pem", "").unwrap_err();
        assert_eq!(e.code(), 271);
        assert!(e.to_string().contains("/nonexistent/server.pem"), "{e}");
        let e = open(StoreType::Auto, "/nonexistent/server.pfx", "").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/server.pfx"), "{e}");
    }

    #[test]
    fn a_blob_that_is_neither_pem_nor_base64_is_malformed() {
        let e = open(StoreType::PfxBlob, "not base64!", "").unwrap_err();
        assert!(matches!(e, TlsError::MalformedStore { .. }), "{e}");
        let e = open(StoreType::PfxBlob, "aGVsbG8=", "").unwrap_err();
        assert!(e.to_string().contains("PKCS#12"), "{e}");
    }
}
