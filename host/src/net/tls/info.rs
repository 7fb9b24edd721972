//! The seed's Certificate type: the read-only fields of an X.509
//! certificate, computed from its DER encoding.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::Md5;
use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid_registry, oid2abbrev, oid2sn};
use x509_parser::oid_registry::{
    OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS,
    OID_PKCS9_EMAIL_ADDRESS, OID_SIG_ED448, OID_SIG_ED25519, OID_X509_STATE_OR_PROVINCE_NAME,
};
use x509_parser::prelude::{FromDer, X509Name};

/// The read-only fields of the seed's Certificate type. Dates are UTC in
/// the seed's format ("23-Jan-2000 15:00:00"): a server's clock zone says
/// nothing useful about a certificate, and logs elsewhere are UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    /// Hex digits, two per byte, most significant first.
    pub serial_number: String,
    pub effective_date: String,
    pub expiration_date: String,
    /// Colon-separated lowercase hex of the MD5 of the DER certificate.
    pub fingerprint: String,
    #[serde(rename = "FingerprintSHA1")]
    pub fingerprint_sha1: String,
    #[serde(rename = "FingerprintSHA256")]
    pub fingerprint_sha256: String,
    /// Uppercase hex without separators, as `Thumbprint=` accepts.
    #[serde(rename = "ThumbprintMD5")]
    pub thumbprint_md5: String,
    #[serde(rename = "ThumbprintSHA1")]
    pub thumbprint_sha1: String,
    #[serde(rename = "ThumbprintSHA256")]
    pub thumbprint_sha256: String,
    /// "DNS:host, IP:addr, email:..., URI:..." in certificate order.
    pub subject_alt_names: String,
    /// RSA, RSA-PSS, EC, Ed25519, Ed448, or the algorithm's OID.
    pub public_key_algorithm: String,
    pub public_key_length: u32,
    /// Base64 of the DER SubjectPublicKeyInfo.
    pub public_key: String,
    /// For example sha256WithRSAEncryption or ecdsa-with-SHA256.
    pub signature_algorithm: String,
    /// Text of `usage_flags`: "Digital Signature, Key Encipherment".
    pub usage: String,
    /// Key usage bits: 0x80 Digital Signature ... 0x01 Encipher Only, and
    /// 0x8000 Decipher Only (the second byte of the bit string).
    pub usage_flags: u32,
    /// Comma-separated OIDs of the extended key usage extension.
    pub extended_key_usage: String,
    /// "V1", "V2" or "V3".
    pub version: String,
    /// Whether the store had the certificate's private key.
    pub private_key_available: bool,
    /// Base64 of the DER certificate.
    pub encoded: String,
}

/// The seed's usage flags and their names, in the seed's order.
const USAGES: &[(u32, &str)] = &[
    (0x80, "Digital Signature"),
    (0x40, "Non-Repudiation"),
    (0x20, "Key Encipherment"),
    (0x10, "Data Encipherment"),
    (0x08, "Key Agreement"),
    (0x04, "Certificate Signing"),
    (0x02, "CRL Signing"),
    (0x01, "Encipher Only"),
    (0x8000, "Decipher Only"),
];

/// Extended key usages x509-parser reports as flags, with their OIDs.
const EKU_OIDS: [&str; 7] = [
    "2.5.29.37.0",
    "1.3.6.1.5.5.7.3.1",
    "1.3.6.1.5.5.7.3.2",
    "1.3.6.1.5.5.7.3.3",
    "1.3.6.1.5.5.7.3.4",
    "1.3.6.1.5.5.7.3.8",
    "1.3.6.1.5.5.7.3.9",
];

/// A DER certificate that x509-parser cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an X.509 certificate: {0}")]
pub struct BadCertificate(String);

impl CertificateInfo {
    pub fn from_der(der: &[u8], private_key_available: bool) -> Result<Self, BadCertificate> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| BadCertificate(e.to_string()))?;
        let md5 = Md5::digest(der);
        let sha1 = Sha1::digest(der);
        let sha256 = Sha256::digest(der);
        let spki = cert.public_key();
        let usage_flags = cert
            .key_usage()
            .ok()
            .flatten()
            .map_or(0, |ku| usage_bits(ku.value.flags));
        Ok(Self {
            subject: format_name(cert.subject()),
            issuer: format_name(cert.issuer()),
            serial_number: serial_hex(cert.raw_serial()),
            effective_date: format_date(cert.validity().not_before.to_datetime()),
            expiration_date: format_date(cert.validity().not_after.to_datetime()),
            fingerprint: colon_hex(&md5),
            fingerprint_sha1: colon_hex(&sha1),
            fingerprint_sha256: colon_hex(&sha256),
            thumbprint_md5: hex::encode_upper(md5),
            thumbprint_sha1: hex::encode_upper(sha1),
            thumbprint_sha256: hex::encode_upper(sha256),
            subject_alt_names: subject_alt_names(&cert),
            public_key_algorithm: key_algorithm_name(&cert),
            public_key_length: public_key_bits(&cert),
            public_key: BASE64.encode(spki.raw),
            signature_algorithm: oid2sn(&cert.signature_algorithm.algorithm, oid_registry())
                .map_or_else(
                    |_| cert.signature_algorithm.algorithm.to_id_string(),
                    str::to_owned,
                ),
            usage: USAGES
                .iter()
                .filter(|(bit, _)| usage_flags & bit != 0)
                .map(|(_, name)| *name)
                .collect::<Vec<_>>()
                .join(", "),
            usage_flags,
            extended_key_usage: extended_key_usage(&cert),
            version: format!("V{}", cert.version().0 + 1),
            private_key_available,
            encoded: BASE64.encode(der),
        })
    }
}

/// A distinguished name as the seed writes it: "CN=host, O=Org, C=US", in
/// certificate order, with seed short names (S for state, E for email) and
/// values holding a comma or quote in double quotes.
pub fn format_name(name: &X509Name<'_>) -> String {
    name_fields(name)
        .iter()
        .map(|(key, value)| {
            if value.contains([',', '"', '+', ';']) || value.trim() != value {
                format!("{key}=\"{}\"", value.replace('"', "\"\""))
            } else {
                format!("{key}={value}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The (short name, value) pairs of a name, in certificate order.
pub fn name_fields(name: &X509Name<'_>) -> Vec<(String, String)> {
    name.iter_attributes()
        .map(|attr| {
            let oid = attr.attr_type();
            let key = if *oid == OID_X509_STATE_OR_PROVINCE_NAME {
                "S".to_owned()
            } else if *oid == OID_PKCS9_EMAIL_ADDRESS {
                "E".to_owned()
            } else {
                oid2abbrev(oid, oid_registry()).map_or_else(|_| oid.to_id_string(), str::to_owned)
            };
            let value = attr.as_str().map_or_else(
                |_| format!("#{}", hex::encode_upper(attr.as_slice())),
                str::to_owned,
            );
            (key, value)
        })
        .collect()
}

fn format_date(t: OffsetDateTime) -> String {
    let format = format_description!("[day]-[month repr:short]-[year] [hour]:[minute]:[second]");
    t.format(&format).unwrap_or_default()
}

/// The serial's magnitude: DER adds a 00 byte before a high first byte.
fn serial_hex(raw: &[u8]) -> String {
    let magnitude = match raw {
        [0, rest @ ..] if !rest.is_empty() => rest,
        all => all,
    };
    hex::encode_upper(magnitude)
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// KeyUsage's bit string as the seed's flags: its first byte as is, and
/// decipherOnly (bit 8) in the second byte.
fn usage_bits(flags: u16) -> u32 {
    // x509-parser numbers bit n of the bit string as 1 << n.
    (0..9)
        .filter(|n| flags & (1 << n) != 0)
        .fold(0, |acc, n| acc | if n < 8 { 0x80 >> n } else { 0x8000 })
}

fn subject_alt_names(cert: &X509Certificate<'_>) -> String {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return String::new();
    };
    san.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(host) => format!("DNS:{host}"),
            GeneralName::IPAddress(bytes) => format!("IP:{}", ip_text(bytes)),
            GeneralName::RFC822Name(mail) => format!("email:{mail}"),
            GeneralName::URI(uri) => format!("URI:{uri}"),
            GeneralName::DirectoryName(dn) => format!("DirName:{}", format_name(dn)),
            other => format!("{other:?}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        _ => hex::encode_upper(bytes),
    }
}

fn key_algorithm_name(cert: &X509Certificate<'_>) -> String {
    let oid = &cert.public_key().algorithm.algorithm;
    let name = if *oid == OID_PKCS1_RSAENCRYPTION {
        "RSA"
    } else if *oid == OID_PKCS1_RSASSAPSS {
        "RSA-PSS"
    } else if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        "EC"
    } else if *oid == OID_SIG_ED25519 {
        "Ed25519"
    } else if *oid == OID_SIG_ED448 {
        "Ed448"
    } else {
        return oid.to_id_string();
    };
    name.to_owned()
}

fn public_key_bits(cert: &X509Certificate<'_>) -> u32 {
    let oid = &cert.public_key().algorithm.algorithm;
    if *oid == OID_SIG_ED25519 {
        return 256;
    }
    if *oid == OID_SIG_ED448 {
        return 456;
    }
    cert.public_key()
        .parsed()
        .map_or(0, |key| u32::try_from(key.key_size()).unwrap_or(0))
}

fn extended_key_usage(cert: &X509Certificate<'_>) -> String {
    let Ok(Some(eku)) = cert.extended_key_usage() else {
        return String::new();
    };
    let eku = eku.value;
    let flags = [
        eku.any,
        eku.server_auth,
        eku.client_auth,
        eku.code_signing,
        eku.email_protection,
        eku.time_stamping,
        eku.ocsp_signing,
    ];
    EKU_OIDS
        .iter()
        .zip(flags)
        .filter(|(_, set)| *set)
        .map(|(oid, _)| (*oid).to_owned())
        .chain(eku.other.iter().map(|oid| oid.to_id_string()))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
        KeyUsagePurpose, PublicKeyData, SanType,
    };

    fn sample() -> (Vec<u8>, KeyPair) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(vec!["example.test".into()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "US");
        dn.push(DnType::OrganizationName, "Acme, Inc.");
        dn.push(DnType::CommonName, "example.test");
        params.distinguished_name = dn;
        params.serial_number = Some(vec![0x8a, 0x01, 0x02].into());
        params.not_before = rcgen::date_time_ymd(2000, 1, 23);
        params.not_after = rcgen::date_time_ymd(2031, 2, 3);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.self_signed(&key).unwrap();
        (cert.der().to_vec(), key)
    }

    #[test]
    fn fields_follow_the_seed_formats() {
        let (der, key) = sample();
        let info = CertificateInfo::from_der(&der, true).unwrap();
        assert_eq!(info.subject, "C=US, O=\"Acme, Inc.\", CN=example.test");
        assert_eq!(info.issuer, info.subject);
        assert_eq!(info.serial_number, "8A0102");
        assert_eq!(info.effective_date, "23-Jan-2000 00:00:00");
        assert_eq!(info.expiration_date, "03-Feb-2031 00:00:00");
        assert_eq!(info.subject_alt_names, "DNS:example.test, IP:127.0.0.1");
        assert_eq!(info.public_key_algorithm, "EC");
        assert_eq!(info.public_key_length, 256);
        assert_eq!(
            BASE64.decode(&info.public_key).unwrap(),
            key.subject_public_key_info()
        );
        assert_eq!(info.signature_algorithm, "ecdsa-with-SHA256");
        assert_eq!(info.usage_flags, 0x80 | 0x20);
        assert_eq!(info.usage, "Digital Signature, Key Encipherment");
        assert_eq!(
            info.extended_key_usage,
            "1.3.6.1.5.5.7.3.1,1.3.6.1.5.5.7.3.2"
        );
        assert_eq!(info.version, "V3");
        assert!(info.private_key_available);
        assert_eq!(BASE64.decode(&info.encoded).unwrap(), der);
    }

    #[test]
    fn fingerprints_and_thumbprints_hash_the_der_certificate() {
        let (der, _) = sample();
        let info = CertificateInfo::from_der(&der, false).unwrap();
        let sha256 = Sha256::digest(&der);
        assert_eq!(info.thumbprint_sha256, hex::encode_upper(sha256));
        assert_eq!(
            info.fingerprint_sha256.replace(':', ""),
            info.thumbprint_sha256.to_lowercase()
        );
        assert_eq!(info.fingerprint.len(), 16 * 3 - 1);
        assert_eq!(info.fingerprint_sha1.len(), 20 * 3 - 1);
        assert_eq!(info.thumbprint_md5, hex::encode_upper(Md5::digest(&der)));
        assert_eq!(info.thumbprint_sha1, hex::encode_upper(Sha1::digest(&der)));
    }

    #[test]
    fn serializes_with_the_seed_field_names() {
        let (der, _) = sample();
        let info = CertificateInfo::from_der(&der, false).unwrap();
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["Subject"], info.subject.as_str());
        assert_eq!(json["FingerprintSHA256"], info.fingerprint_sha256.as_str());
        assert_eq!(json["ThumbprintMD5"], info.thumbprint_md5.as_str());
        assert_eq!(json["UsageFlags"], 0xa0);
    }

    #[test]
    fn rejects_bytes_that_are_not_a_certificate() {
        assert!(CertificateInfo::from_der(b"junk", false).is_err());
    }

    #[test]
    fn usage_bits_map_to_the_seed_flags() {
        assert_eq!(usage_bits(1), 0x80); // digitalSignature
        assert_eq!(usage_bits(1 << 5), 0x04); // keyCertSign
        assert_eq!(usage_bits(1 << 7), 0x01); // encipherOnly
        assert_eq!(usage_bits(1 << 8), 0x8000); // decipherOnly
    }
}
