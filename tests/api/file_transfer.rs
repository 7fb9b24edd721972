//! SendFile and Interrupt.

use std::io::Write;

use tokio::io::AsyncWriteExt;

use tempfile::NamedTempFile;

use crate::common::*;
use crate::harness::*;

/// A temporary file of `len` bytes in a pattern that shows misordering.
fn file_of(len: usize) -> (NamedTempFile, Vec<u8>) {
    let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut file = NamedTempFile::new().unwrap();
    file.write_all(&content).unwrap();
    file.flush().unwrap();
    (file, content)
}

/// Reads frames up to the end of one message; checks the first opens a
/// binary message and the rest continue it. Returns the payload sizes and
/// the message.
async fn read_binary_message(c: &mut RawClient) -> (Vec<usize>, Vec<u8>) {
    let mut sizes = Vec::new();
    let mut message = Vec::new();
    loop {
        let f = c.read_frame().await.expect("a frame");
        let expected = if sizes.is_empty() { 2 } else { 0 };
        assert_eq!(f.opcode, expected, "frame {} of the file", sizes.len());
        sizes.push(f.payload.len());
        message.extend_from_slice(&f.payload);
        if f.fin {
            return (sizes, message);
        }
    }
}

#[tokio::test]
async fn send_file_sends_one_binary_message_in_max_frame_size_frames() {
    let mut t = server().config("MaxFrameSize=4096").start().await;
    let (mut c, id) = t.raw_client().await;
    let (file, content) = file_of(10_000);
    assert_eq!(t.server.send_file(id, file.path()).await.unwrap(), 10_000);
    let (sizes, message) = read_binary_message(&mut c).await;
    assert!(message == content, "the message differs from the file");
    assert_eq!(sizes, [4096, 4096, 1808]);

    let (empty, _) = file_of(0);
    assert_eq!(t.server.send_file(id, empty.path()).await.unwrap(), 0);
    assert_eq!(read_binary_message(&mut c).await, (vec![0], vec![]));

    let missing = t
        .server
        .send_file(id, "/nonexistent/wsserver-test-file")
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("/nonexistent"), "{missing}");
}

#[tokio::test]
async fn interrupt_ends_a_file_transfer_with_a_shorter_complete_message() {
    let mut t = server()
        .config("MaxFrameSize=65536")
        .config("OutBufferSize=65536")
        .start()
        .await;
    let (mut c, id) = t.raw_client().await;
    const LEN: usize = 16 * 1024 * 1024;
    let (file, content) = file_of(LEN);
    let conn = t.conn(id);
    let path = file.path().to_owned();
    let transfer = tokio::spawn(async move { conn.send_file(path).await });

    // The first frame arrives: the transfer is under way.
    let first = c.read_frame().await.unwrap();
    assert_eq!(
        (first.fin, first.opcode, first.payload.len()),
        (false, 2, 65536)
    );
    let conn = t.conn(id);
    assert_eq!(
        conn.send_text("meanwhile").unwrap_err().code(),
        10035,
        "other sends wait for the transfer"
    );
    t.server.interrupt(id).unwrap();
    let result = tokio::time::timeout(WAIT, transfer).await.unwrap().unwrap();
    assert_eq!(result.unwrap_err().code(), 10004);

    let mut message = first.payload;
    loop {
        let f = c.read_frame().await.unwrap();
        assert_eq!(f.opcode, 0, "the file's message continues");
        message.extend_from_slice(&f.payload);
        if f.fin {
            break;
        }
    }
    assert!(message.len() < LEN, "the whole file was sent");
    assert!(message == content[..message.len()], "not the file's start");
    // The send refused during the transfer gets its ReadyToSend.
    t.events.ready_to_send(id).await;

    // The connection carries on.
    conn.send_text("after").unwrap();
    let after = c.read_frame().await.unwrap();
    assert_eq!((after.opcode, after.payload.as_slice()), (1, &b"after"[..]));
    assert_eq!(
        conn.interrupt().unwrap_err().code(),
        10022,
        "nothing to interrupt"
    );
}

#[tokio::test]
async fn interrupt_before_the_first_frame_still_sends_a_valid_message() {
    let mut t = server().start().await;
    let (mut c, id) = t.raw_client().await;
    // A named pipe stands for a slow disk: the transfer's first read waits
    // until the test writes.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("slow");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success(), "mkfifo");
    let conn = t.conn(id);
    let path = fifo.clone();
    let transfer = tokio::spawn(async move { conn.send_file(path).await });
    let mut writer = tokio::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .await
        .unwrap();
    let conn = t.conn(id);
    let interrupted = async {
        while conn.interrupt().is_err() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, interrupted)
        .await
        .expect("the transfer started");
    writer.write_all(b"too late").await.unwrap();
    drop(writer);
    let result = tokio::time::timeout(WAIT, transfer).await.unwrap().unwrap();
    assert_eq!(result.unwrap_err().code(), 10004);

    // One complete message, empty.
    let frame = c.read_frame().await.unwrap();
    assert_eq!((frame.fin, frame.opcode, frame.payload.len()), (true, 2, 0));
    conn.send_text("after").unwrap();
    let after = c.read_frame().await.unwrap();
    assert_eq!((after.opcode, after.payload.as_slice()), (1, &b"after"[..]));
}

#[tokio::test]
async fn a_positive_timeout_bounds_how_long_send_file_waits_for_a_stalled_client() {
    let mut t = server()
        .config("MaxFrameSize=65536")
        .config("OutBufferSize=65536")
        .config("MaxSendQueue=131072")
        .config("DefaultTimeout=1")
        .start()
        .await;
    // The client never reads: the queue stays full.
    let (_c, id) = t.raw_client().await;
    let (file, _) = file_of(32 * 1024 * 1024);
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(WAIT, t.server.send_file(id, file.path()))
        .await
        .expect("SendFile gives up within the wait")
        .unwrap_err();
    assert_eq!(err.code(), 10060, "{err}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
}
