//! AllowedClients / BlockedClients: comma-separated address patterns.
//!
//! A pattern is an IP address in which `*` matches any run of characters and
//! `?` any one character (`192.168.*`, `10.0.0.?`, `*`), a CIDR block
//! (`10.0.0.0/8`, `fd00::/8`), or `localhost` for the loopback addresses.
//! Patterns match the client's address as text; IPv4 clients reaching a
//! dual-stack listener are matched in their IPv4 form. Other host names are
//! not resolved: reverse DNS is slow and the client controls its answer.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// `*` (or `**`...): every address, without writing it as text.
    Any,
    Glob(String),
    Cidr(IpAddr, u8),
    Loopback,
}

/// A parsed client list; an empty list matches nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientFilter {
    patterns: Vec<Pattern>,
    text: String,
}

/// A pattern that is neither a glob over address characters, a CIDR block
/// nor `localhost`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPattern(pub String);

impl fmt::Display for InvalidPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\"{}\" is not an address pattern (e.g. 192.168.*, 10.0.0.0/8, ::1, localhost)",
            self.0
        )
    }
}

impl FromStr for ClientFilter {
    type Err = InvalidPattern;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let patterns = text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(parse_pattern)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            patterns,
            text: text.trim().to_owned(),
        })
    }
}

fn parse_pattern(p: &str) -> Result<Pattern, InvalidPattern> {
    if p.eq_ignore_ascii_case("localhost") {
        return Ok(Pattern::Loopback);
    }
    if let Some((addr, bits)) = p.split_once('/') {
        let addr: IpAddr = addr.parse().map_err(|_| InvalidPattern(p.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        return match bits.parse::<u8>() {
            Ok(b) if b <= max => Ok(Pattern::Cidr(addr, b)),
            _ => Err(InvalidPattern(p.to_owned())),
        };
    }
    if p.bytes().all(|c| c == b'*') {
        return Ok(Pattern::Any);
    }
    let address_chars = p
        .chars()
        .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '*' | '?'));
    if address_chars {
        Ok(Pattern::Glob(p.to_ascii_lowercase()))
    } else {
        Err(InvalidPattern(p.to_owned()))
    }
}

impl ClientFilter {
    /// `*`: every client.
    pub fn any() -> Self {
        Self {
            patterns: vec![Pattern::Any],
            text: "*".to_owned(),
        }
    }

    /// The list as it was given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        // Checked for every connection: the text is written on the stack,
        // and only when a glob needs it.
        let mut text = None;
        self.patterns.iter().any(|p| match p {
            Pattern::Any => true,
            Pattern::Loopback => addr.is_loopback(),
            Pattern::Glob(g) => glob_match(
                g.as_bytes(),
                text.get_or_insert_with(|| AddrText::of(addr)).as_bytes(),
            ),
            Pattern::Cidr(net, bits) => in_cidr(addr, *net, *bits),
        })
    }
}

/// An address as text, without an allocation.
struct AddrText {
    /// The longest IPv6 text (`ffff:…:255.255.255.255`) is 45 bytes.
    buf: [u8; 48],
    len: usize,
}

impl AddrText {
    fn of(addr: IpAddr) -> Self {
        use std::io::Write;
        let mut buf = [0; 48];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        // Cannot fail: every address fits.
        let _ = write!(cursor, "{addr}");
        let len = cursor.position() as usize;
        Self { buf, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn in_cidr(addr: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `*` matches any run, `?` any one character.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((bp, bt)) => {
                    p = bp + 1;
                    t = bt + 1;
                    backtrack = Some((bp, bt + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(s: &str) -> ClientFilter {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn wildcards() {
        let f = filter("192.168.*, 10.0.0.?");
        assert!(f.matches(ip("192.168.1.20")));
        assert!(f.matches(ip("10.0.0.7")));
        assert!(!f.matches(ip("10.0.0.70")));
        assert!(!f.matches(ip("127.0.0.1")));
        assert!(filter("*").matches(ip("::1")));
        assert_eq!(filter("*"), ClientFilter::any());
        assert!(filter("10.0.0.1, **").matches(ip("192.0.2.1")));
        assert!(!filter("").matches(ip("127.0.0.1")));
    }

    #[test]
    fn cidr_and_localhost() {
        let f = filter("10.0.0.0/8,fd00::/8");
        assert!(f.matches(ip("10.200.3.4")));
        assert!(!f.matches(ip("11.0.0.1")));
        assert!(f.matches(ip("fd12::1")));
        let l = filter("localhost");
        assert!(l.matches(ip("127.0.0.5")) && l.matches(ip("::1")));
        assert!(!l.matches(ip("10.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_clients_match_ipv4_patterns() {
        assert!(filter("127.0.0.1").matches(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn the_longest_ipv6_text_is_matched_whole() {
        let long = ip("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.254");
        assert!(filter("ffff:*:fffe").matches(long));
        assert!(!filter("ffff:*:ffff").matches(long));
    }

    #[test]
    fn bad_patterns_are_named() {
        let err = "10.0.0.*, evil host".parse::<ClientFilter>().unwrap_err();
        assert_eq!(err.0, "evil host");
        assert!("1.2.3.4/40".parse::<ClientFilter>().is_err());
    }
}
