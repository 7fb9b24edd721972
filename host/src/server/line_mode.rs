//! Line mode (the seed's ChangeLineMode): DataIn per line instead of per
//! message. Lines end at LF (a CR before it is dropped); a line longer than
//! MaxLineLength is delivered in pieces with EOL false; the end of a message
//! ends the line in progress too, delivered with EOL false. A handler that
//! pauses data on a line holds back the lines after it until it resumes.

use std::ops::ControlFlow;

/// Receives each line as `(line, eol, eom)`; `Break` pauses the splitter.
pub(crate) type EmitLine<'a> = dyn FnMut(&[u8], bool, bool) -> ControlFlow<()> + 'a;

/// The line being assembled across pieces of a message.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    partial: Vec<u8>,
    /// The rest of a piece whose lines were paused, and whether that
    /// piece ended its message.
    held: Vec<u8>,
    held_eom: bool,
}

impl LineSplitter {
    /// Splits a piece of a message into lines, calling `emit` for each.
    /// When `emit` breaks, the rest of the piece is held for
    /// [`resume`](Self::resume).
    pub fn push(&mut self, mut data: &[u8], eom: bool, max_line: usize, emit: &mut EmitLine<'_>) {
        let max_line = max_line.max(1);
        while !data.is_empty() {
            let room = max_line.saturating_sub(self.partial.len());
            // One byte past the room: a line of exactly MaxLineLength
            // bytes still ends at its line break.
            let window = &data[..data.len().min(room + 1)];
            let flow = match window.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let rest_empty = i + 1 == data.len();
                    let flow = self.emit_line(&data[..i], true, eom && rest_empty, emit);
                    data = &data[i + 1..];
                    flow
                }
                // Longer than the room: cut; more data follows the cut.
                None if window.len() > room => {
                    let flow = self.emit_line(&data[..room], false, false, emit);
                    data = &data[room..];
                    flow
                }
                None => {
                    self.partial.extend_from_slice(data);
                    data = &[];
                    ControlFlow::Continue(())
                }
            };
            if flow.is_break() {
                if !data.is_empty() {
                    self.held.extend_from_slice(data);
                    self.held_eom = eom;
                }
                return;
            }
        }
        if eom && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            // Nothing follows the end of the message to hold back.
            let _ = emit(&line, false, true);
        }
    }

    /// Whether lines are held back by a pause.
    pub fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// Holds no part of a line.
    pub fn is_empty(&self) -> bool {
        self.partial.is_empty() && self.held.is_empty()
    }

    /// Delivers the lines a pause held back, until `emit` breaks again.
    pub fn resume(&mut self, max_line: usize, emit: &mut EmitLine<'_>) {
        let held = std::mem::take(&mut self.held);
        self.push(&held, self.held_eom, max_line, emit);
    }

    fn emit_line(
        &mut self,
        tail: &[u8],
        eol: bool,
        eom: bool,
        emit: &mut EmitLine<'_>,
    ) -> ControlFlow<()> {
        if self.partial.is_empty() {
            emit(strip_cr(tail, eol), eol, eom)
        } else {
            self.partial.extend_from_slice(tail);
            let line = std::mem::take(&mut self.partial);
            emit(strip_cr(&line, eol), eol, eom)
        }
    }
}

fn strip_cr(line: &[u8], eol: bool) -> &[u8] {
    match line {
        [rest @ .., b'\r'] if eol => rest,
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pieces: &[(&str, bool)], max: usize) -> Vec<(String, bool, bool)> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for (data, eom) in pieces {
            s.push(data.as_bytes(), *eom, max, &mut |l, eol, eom| {
                out.push((String::from_utf8_lossy(l).into_owned(), eol, eom));
                ControlFlow::Continue(())
            });
        }
        out
    }

    #[test]
    fn lines_across_pieces() {
        let got = split(&[("one\r\ntw", false), ("o\nthree", true)], 100);
        assert_eq!(
            got,
            [
                ("one".into(), true, false),
                ("two".into(), true, false),
                ("three".into(), false, true),
            ]
        );
    }

    #[test]
    fn long_lines_are_cut_at_max_line_length() {
        let got = split(&[("abcdefg\n", true)], 3);
        assert_eq!(
            got,
            [
                ("abc".into(), false, false),
                ("def".into(), false, false),
                ("g".into(), true, true),
            ]
        );
    }

    #[test]
    fn a_line_of_exactly_max_line_length_keeps_its_eol() {
        let got = split(&[("abc\nxyz", true)], 3);
        assert_eq!(
            got,
            [("abc".into(), true, false), ("xyz".into(), false, true)]
        );
        let got = split(&[("ab", false), ("c", false), ("\n", true)], 3);
        assert_eq!(got, [("abc".into(), true, true)]);
    }

    #[test]
    fn a_message_ending_in_a_newline_ends_with_eom_on_that_line() {
        assert_eq!(split(&[("x\n", true)], 10), [("x".into(), true, true)]);
    }

    #[test]
    fn lines_after_a_pause_are_held_until_resumed() {
        type Line = (String, bool, bool);
        fn until_pause(out: &mut Vec<Line>) -> impl FnMut(&[u8], bool, bool) -> ControlFlow<()> {
            |l, eol, eom| {
                out.push((String::from_utf8_lossy(l).into_owned(), eol, eom));
                if l == b"pause" {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }
        }
        let line = |l: &str, eol, eom| (l.to_owned(), eol, eom);
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.push(
            b"a\npause\nb\npause\nc",
            true,
            100,
            &mut until_pause(&mut out),
        );
        assert_eq!(out, [line("a", true, false), line("pause", true, false)]);
        assert!(s.has_held());
        out.clear();
        s.resume(100, &mut until_pause(&mut out));
        assert_eq!(out, [line("b", true, false), line("pause", true, false)]);
        out.clear();
        s.resume(100, &mut until_pause(&mut out));
        assert_eq!(out, [line("c", false, true)]);
        assert!(!s.has_held());
    }
}
