//! The seed's SSLCertSubject rules: `*` (first certificate), an exact
//! distinguished name, a substring of one, or `Thumbprint=<hex>` (MD5,
//! SHA-1 or SHA-256 of the certificate, told apart by length).

use std::fmt;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::error::TlsConfigError;

/// A parsed SSLCertSubject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectQuery {
    /// `*` or empty: the first certificate of the store.
    Any,
    /// A hash of the DER certificate.
    Thumbprint(Vec<u8>),
    /// A distinguished name, matched exactly (fields in any order, case
    /// ignored) and, failing that, as a case-insensitive substring.
    Name(String),
}

/// One certificate as the rules see it.
pub struct Candidate<'a> {
    pub der: &'a [u8],
    /// The subject formatted as the seed does.
    pub subject: &'a str,
    /// The subject's (short name, value) pairs.
    pub fields: &'a [(String, String)],
}

impl SubjectQuery {
    pub fn parse(key: &str, value: &str) -> Result<Self, TlsConfigError> {
        let value = value.trim();
        if value.is_empty() || value == "*" {
            return Ok(Self::Any);
        }
        let Some((prefix, hex)) = value.split_once('=') else {
            return Ok(Self::Name(value.to_owned()));
        };
        if !prefix.trim().eq_ignore_ascii_case("thumbprint") {
            return Ok(Self::Name(value.to_owned()));
        }
        let digits: String = hex
            .chars()
            .filter(|c| !matches!(c, ':' | ' ' | '-'))
            .collect();
        let bytes = hex::decode(&digits)
            .ok()
            .filter(|b| matches!(b.len(), 16 | 20 | 32));
        bytes
            .map(Self::Thumbprint)
            .ok_or_else(|| TlsConfigError::InvalidValue {
                key: key.to_owned(),
                value: value.to_owned(),
                expected: "Thumbprint= followed by the hex MD5 (32 digits), SHA-1 (40) or \
                       SHA-256 (64) of the certificate"
                    .to_owned(),
            })
    }

    /// Indexes of the candidates this query selects, best first: for a
    /// name, exact matches come before substring matches.
    pub fn matches(&self, candidates: &[Candidate<'_>]) -> Vec<usize> {
        let all = 0..candidates.len();
        match self {
            Self::Any => all.collect(),
            Self::Thumbprint(hash) => all
                .filter(|&i| thumbprint(candidates[i].der, hash.len()) == *hash)
                .collect(),
            Self::Name(name) => {
                let wanted = normalized_fields(&parse_fields(name));
                let needle = name.to_lowercase();
                let exact = all
                    .clone()
                    .filter(|&i| normalized_fields(candidates[i].fields) == wanted);
                let partial = all.filter(|&i| {
                    normalized_fields(candidates[i].fields) != wanted
                        && candidates[i].subject.to_lowercase().contains(&needle)
                });
                exact.chain(partial).collect()
            }
        }
    }
}

/// The query as SSLCertSubject reads back.
impl fmt::Display for SubjectQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Thumbprint(hash) => write!(f, "Thumbprint={}", hex::encode_upper(hash)),
            Self::Name(name) => f.write_str(name),
        }
    }
}

fn thumbprint(der: &[u8], len: usize) -> Vec<u8> {
    match len {
        16 => Md5::digest(der).to_vec(),
        20 => Sha1::digest(der).to_vec(),
        _ => Sha256::digest(der).to_vec(),
    }
}

/// Splits "CN=a, O=\"b, c\"" into fields, honouring double quotes (a
/// doubled quote inside quotes is a literal quote).
fn parse_fields(dn: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = dn.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    fields.push(current);
    fields
        .iter()
        .filter_map(|field| {
            let (key, value) = field.split_once('=')?;
            Some((key.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// Fields in a canonical form for comparison: keys uppercased with the
/// usual aliases folded, values lowercased, order ignored.
fn normalized_fields(fields: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<_> = fields
        .iter()
        .map(|(key, value)| {
            let key = match key.to_ascii_uppercase().as_str() {
                "ST" => "S".to_owned(),
                "EMAIL" | "EMAILADDRESS" => "E".to_owned(),
                other => other.to_owned(),
            };
            (key, value.to_lowercase())
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_the_forms_of_the_seed() {
        assert_eq!(SubjectQuery::parse("K", "*"), Ok(SubjectQuery::Any));
        assert_eq!(SubjectQuery::parse("K", ""), Ok(SubjectQuery::Any));
        assert_eq!(
            SubjectQuery::parse("K", "CN=a, O=b"),
            Ok(SubjectQuery::Name("CN=a, O=b".into()))
        );
        let sha1 = "30:7b:fa:38:65:83:ff:da:b4:4e:07:3f:17:b8:a4:ed:80:be:ff:84";
        assert_eq!(
            SubjectQuery::parse("K", &format!("Thumbprint={sha1}")),
            Ok(SubjectQuery::Thumbprint(
                hex::decode(sha1.replace(':', "")).unwrap()
            ))
        );
        let e = SubjectQuery::parse("SSLCertSubject", "thumbprint=abcd").unwrap_err();
        assert!(e.to_string().contains("SSLCertSubject"), "{e}");
    }

    #[test]
    fn exact_matches_come_before_substring_matches() {
        let server = fields(&[("C", "US"), ("CN", "server")]);
        let server2 = fields(&[("CN", "server2")]);
        let candidates = [
            Candidate {
                der: b"a",
                subject: "CN=server2",
                fields: &server2,
            },
            Candidate {
                der: b"b",
                subject: "C=US, CN=server",
                fields: &server,
            },
        ];
        let q = SubjectQuery::parse("K", "cn=SERVER, C=us").unwrap();
        assert_eq!(q.matches(&candidates), [1]);
        let q = SubjectQuery::parse("K", "CN=server").unwrap();
        assert_eq!(q.matches(&candidates), [0, 1]);
        let q = SubjectQuery::parse("K", "nobody").unwrap();
        assert!(q.matches(&candidates).is_empty());
        assert_eq!(SubjectQuery::Any.matches(&candidates), [0, 1]);
    }

    #[test]
    fn quoted_values_may_hold_commas() {
        assert_eq!(
            parse_fields("O=\"Acme, Inc.\", CN=x"),
            fields(&[("O", "Acme, Inc."), ("CN", "x")])
        );
    }

    #[test]
    fn thumbprints_select_by_any_hash() {
        let candidates = [
            Candidate {
                der: b"one",
                subject: "CN=one",
                fields: &[],
            },
            Candidate {
                der: b"two",
                subject: "CN=two",
                fields: &[],
            },
        ];
        for hash in [
            Md5::digest(b"two").to_vec(),
            Sha1::digest(b"two").to_vec(),
            Sha256::digest(b"two").to_vec(),
        ] {
            assert_eq!(SubjectQuery::Thumbprint(hash).matches(&candidates), [1]);
        }
    }
}
