//! The URL a started wsserver prints once it listens, for the benches that
//! run the binary.

use std::io::{BufRead, BufReader};
use std::process::Child;

/// Reads the child's `listening on URL` line (its stdout must be piped)
/// and returns the URL.
pub fn listening_url(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("ready line {line:?}"))
        .to_owned()
}
