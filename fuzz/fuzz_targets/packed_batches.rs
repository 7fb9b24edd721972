//! The packed batch decoders on what a hostile guest returns (commands)
//! and what the host hands a guest (events). Decoding never reads past the
//! batch; a malformed record is reported at a record start within it and
//! ends the batch; re-encoding the records read gives bytes that decode
//! to the same records (byte for byte, but for a publish's ignored
//! exclude id).

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsserver_packed::{self as packed, Command, Event, Malformed, Writer};

/// Every record before the first malformed one, and the malformed one.
fn read<T, I: Iterator<Item = Result<T, Malformed>>>(records: I) -> (Vec<T>, Option<Malformed>) {
    let mut good = Vec::new();
    for record in records {
        match record {
            Ok(r) => good.push(r),
            // The iterator must stop after it.
            Err(e) => return (good, Some(e)),
        }
    }
    (good, None)
}

fn check_error(batch: &[u8], reencoded_len: usize, error: &Option<Malformed>) {
    match error {
        // The bad record starts where the good ones end.
        Some(e) => assert_eq!(e.offset, reencoded_len, "{e}"),
        None => assert!(reencoded_len <= batch.len()),
    }
}

fuzz_target!(|batch: &[u8]| {
    let (commands, error) = read(packed::commands(batch));
    let mut again = Vec::new();
    for command in &commands {
        Writer::new(&mut again).command(command);
    }
    check_error(batch, again.len(), &error);
    let canonical = commands.iter().all(|c| match c {
        Command::Publish { exclude, .. } => exclude.is_some(),
        _ => true,
    });
    if canonical {
        assert_eq!(
            again,
            batch[..again.len()],
            "commands re-encode differently"
        );
    }
    let (decoded, none) = read(packed::commands(&again));
    assert_eq!((decoded, none), (commands, None));

    let (events, error) = read(packed::events(batch));
    let mut again = Vec::new();
    for event in &events {
        Writer::new(&mut again).event(event);
    }
    check_error(batch, again.len(), &error);
    assert_eq!(again, batch[..again.len()], "events re-encode differently");
    let (decoded, none): (Vec<Event<'_>>, _) = read(packed::events(&again));
    assert_eq!((decoded, none), (events, None));
});
