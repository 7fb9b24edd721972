//! ChangeLineMode and MaxLineLength[ConnectionId].

use wsserver::DataFormat::{Binary, Continuation, Text};

use crate::common::*;
use crate::harness::*;

/// DataIn pieces of `id` up to EOM, as (text, eol, eom); checks line mode's
/// format 0 on each.
async fn lines(t: &mut TestServer, id: u64) -> Vec<(String, bool, bool)> {
    let pieces = t.events.message(id).await;
    pieces
        .into_iter()
        .map(|p| {
            assert_eq!(p.format, Continuation, "line mode reports format 0");
            (p.text().to_owned(), p.eol, p.eom)
        })
        .collect()
}

fn line(text: &str, eol: bool, eom: bool) -> (String, bool, bool) {
    (text.to_owned(), eol, eom)
}

#[tokio::test]
async fn line_mode_fires_data_in_per_line() {
    let mut t = server().start().await;
    let (mut c, id) = t.raw_client().await;
    assert!(!t.conn(id).info().line_mode);
    t.server.change_line_mode(id, true).unwrap();
    assert!(t.conn(id).info().line_mode);

    c.send(&masked(0x81, b"one\r\ntwo\nthree")).await;
    assert_eq!(
        lines(&mut t, id).await,
        [
            line("one", true, false),
            line("two", true, false),
            line("three", false, true)
        ]
    );
    // A line may span frames.
    c.send(&[masked(0x01, b"fo"), masked(0x80, b"ur\n")].concat())
        .await;
    assert_eq!(lines(&mut t, id).await, [line("four", true, true)]);
    // Binary messages too.
    c.send(&masked(0x82, b"five\nsix")).await;
    assert_eq!(
        lines(&mut t, id).await,
        [line("five", true, false), line("six", false, true)]
    );

    t.server.change_line_mode(id, false).unwrap();
    c.send(&[masked(0x81, b"x\ny"), masked(0x82, b"z\nw")].concat())
        .await;
    let whole = t.events.data_in(id).await;
    assert_eq!(
        (whole.format, whole.text(), whole.eom, whole.eol),
        (Text, "x\ny", true, false)
    );
    let whole = t.events.data_in(id).await;
    assert_eq!(
        (whole.format, whole.text(), whole.eom, whole.eol),
        (Binary, "z\nw", true, false)
    );
}

#[tokio::test]
async fn max_line_length_cuts_long_lines_into_pieces_without_eol() {
    let mut t = server().config("MaxLineLength=16").start().await;
    let (mut c, id) = t.raw_client().await;
    let key = format!("MaxLineLength[{id}]");
    assert_eq!(
        t.server.config(&key).unwrap(),
        "16",
        "starts from MaxLineLength"
    );
    t.server.config(&format!("{key}=4")).unwrap();
    assert_eq!(t.server.config(&key).unwrap(), "4");
    t.server.change_line_mode(id, true).unwrap();

    c.send(&masked(0x81, b"abcdefghij\nxy\n")).await;
    assert_eq!(
        lines(&mut t, id).await,
        [
            line("abcd", false, false),
            line("efgh", false, false),
            line("ij", true, false),
            line("xy", true, true)
        ]
    );
}

#[tokio::test]
async fn a_line_of_exactly_max_line_length_ends_with_eol() {
    let mut t = server().config("MaxLineLength=4").start().await;
    let (mut c, id) = t.raw_client().await;
    t.server.change_line_mode(id, true).unwrap();
    c.send(&masked(0x81, b"wxyz\nabcd")).await;
    assert_eq!(
        lines(&mut t, id).await,
        [line("wxyz", true, false), line("abcd", false, true)]
    );
    // Also when the line's end arrives in a later frame.
    c.send(
        &[
            masked(0x01, b"ab"),
            masked(0x00, b"cd"),
            masked(0x80, b"\n"),
        ]
        .concat(),
    )
    .await;
    assert_eq!(lines(&mut t, id).await, [line("abcd", true, true)]);
}

#[tokio::test]
async fn pausing_on_a_line_holds_the_lines_after_it() {
    let mut t = server()
        .on_data(|conn, data| {
            if data.data == b"pause" {
                conn.pause_data();
            }
        })
        .start()
        .await;
    let (mut c, id) = t.raw_client().await;
    t.server.change_line_mode(id, true).unwrap();
    c.send(&masked(0x81, b"a\npause\nb\nc")).await;
    assert_eq!(t.events.data_in(id).await.text(), "a");
    assert_eq!(t.events.data_in(id).await.text(), "pause");
    t.events
        .none_within(
            std::time::Duration::from_millis(300),
            "DataIn while paused",
            |e| matches!(e, Event::DataIn(..)),
        )
        .await;
    t.conn(id).resume_data();
    assert_eq!(
        lines(&mut t, id).await,
        [line("b", true, false), line("c", false, true)]
    );
}
