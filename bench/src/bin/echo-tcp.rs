//! The floor: after a minimal upgrade, bytes are sent back exactly as they
//! came, with no framing work at all; on `/room/<name>` every chunk read
//! goes to every other member. (With one publisher, as the fan-out mode
//! runs it, each member still receives an intact frame stream.)

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use wsbench::peer::{
    PeerArgs, Rooms, UpgradeError, Upgraded, accept_upgrade, is_abrupt_close, listen, room_name,
};

const READ_LEN: usize = 16 * 1024;

type Outbox = mpsc::UnboundedSender<Bytes>;

fn main() -> io::Result<()> {
    let args = PeerArgs::parse();
    args.runtime()?.block_on(async {
        let listener = listen(args.listen)?;
        let rooms = Arc::new(Rooms::default());
        loop {
            let (stream, _) = listener.accept().await?;
            let rooms = Arc::clone(&rooms);
            tokio::spawn(async move {
                match serve(stream, rooms).await {
                    Err(UpgradeError::Io(error)) if !is_abrupt_close(&error) => {
                        eprintln!("connection ended: {error}");
                    }
                    Err(UpgradeError::Io(_)) | Ok(()) => {}
                    Err(error) => eprintln!("connection ended: {error}"),
                }
            });
        }
    })
}

async fn serve(mut stream: TcpStream, rooms: Arc<Rooms<Outbox>>) -> Result<(), UpgradeError> {
    stream.set_nodelay(true)?;
    let Upgraded { path, early_bytes } = accept_upgrade(&mut stream).await?;
    match room_name(&path) {
        Some(room) => relay(stream, early_bytes, &rooms, room).await?,
        None => echo(stream, early_bytes).await?,
    }
    Ok(())
}

async fn echo(mut stream: TcpStream, early_bytes: Vec<u8>) -> io::Result<()> {
    stream.write_all(&early_bytes).await?;
    // Allocated on first data, so idle connections hold no buffer.
    stream.readable().await?;
    let mut buffer = vec![0; READ_LEN];
    loop {
        match stream.read(&mut buffer).await? {
            0 => return Ok(()),
            read => stream.write_all(&buffer[..read]).await?,
        }
    }
}

async fn relay(
    stream: TcpStream,
    early_bytes: Vec<u8>,
    rooms: &Arc<Rooms<Outbox>>,
    room: &str,
) -> io::Result<()> {
    let (mut reader, mut writer) = stream.into_split();
    let (outbox, mut inbox) = mpsc::unbounded_channel();
    let membership = rooms.join(room, outbox);
    let broadcast = |chunk: Bytes| {
        // A send fails only when that member is leaving: nothing to do.
        membership.for_each_other(|outbox| drop(outbox.send(chunk.clone())));
    };
    let reading = async {
        if !early_bytes.is_empty() {
            broadcast(Bytes::from(early_bytes));
        }
        let mut buffer = vec![0; READ_LEN];
        loop {
            match reader.read(&mut buffer).await? {
                0 => return Ok(()),
                read => broadcast(Bytes::copy_from_slice(&buffer[..read])),
            }
        }
    };
    let writing = async {
        while let Some(chunk) = inbox.recv().await {
            writer.write_all(&chunk).await?;
        }
        Ok::<_, io::Error>(())
    };
    tokio::select! {
        done = reading => done,
        done = writing => done,
    }
}
