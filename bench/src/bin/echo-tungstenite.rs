//! Peer: echo and rooms on tokio-tungstenite, written the way its users
//! would: `forward` from the stream half to the sink half, which batches
//! writes and flushes only when no more input is ready.

use std::io;
use std::sync::Arc;

use clap::Parser;
use futures_util::{SinkExt, StreamExt, TryStreamExt, future};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{WebSocketStream, accept_hdr_async};
use wsbench::peer::{PeerArgs, Rooms, is_abrupt_close, listen, room_name};

type Outbox = mpsc::UnboundedSender<Message>;

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
                    Ok(())
                    | Err(Error::ConnectionClosed | Error::AlreadyClosed)
                    | Err(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {}
                    Err(Error::Io(error)) if is_abrupt_close(&error) => {}
                    Err(error) => eprintln!("connection ended: {error}"),
                }
            });
        }
    })
}

// The callback's signature, large error and all, is tungstenite's.
#[allow(clippy::result_large_err)]
async fn serve(stream: TcpStream, rooms: Arc<Rooms<Outbox>>) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    let mut path = String::new();
    let ws = accept_hdr_async(stream, |request: &Request, response: Response| {
        path = request.uri().path().to_owned();
        Ok(response)
    })
    .await?;
    match room_name(&path) {
        Some(room) => relay(ws, &rooms, room).await,
        None => echo(ws).await,
    }
}

fn is_data(message: &Message) -> bool {
    message.is_text() || message.is_binary()
}

async fn echo(ws: WebSocketStream<TcpStream>) -> Result<(), Error> {
    let (sink, stream) = ws.split();
    stream
        .try_filter(|message| future::ready(is_data(message)))
        .forward(sink)
        .await
}

async fn relay(
    ws: WebSocketStream<TcpStream>,
    rooms: &Arc<Rooms<Outbox>>,
    room: &str,
) -> Result<(), Error> {
    let (mut sink, mut stream) = ws.split();
    let (outbox, mut inbox) = mpsc::unbounded_channel();
    let membership = rooms.join(room, outbox);
    let reading = async {
        while let Some(message) = stream.try_next().await? {
            if is_data(&message) {
                // A send fails only when that member is leaving.
                membership.for_each_other(|outbox| drop(outbox.send(message.clone())));
            }
        }
        Ok(())
    };
    let writing = async {
        while let Some(message) = inbox.recv().await {
            sink.feed(message).await?;
            while let Ok(message) = inbox.try_recv() {
                sink.feed(message).await?;
            }
            sink.flush().await?;
        }
        Ok(())
    };
    tokio::select! {
        done = reading => done,
        done = writing => done,
    }
}
