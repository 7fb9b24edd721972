//! Peer: echo and rooms on fastwebsockets behind hyper's upgrade, as its
//! documentation shows: one frame read, one frame written.

use std::io;
use std::sync::Arc;

use clap::Parser;
use fastwebsockets::upgrade::{UpgradeFut, upgrade};
use fastwebsockets::{
    FragmentCollector, FragmentCollectorRead, Frame, OpCode, Payload, WebSocketError,
};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use wsbench::peer::{PeerArgs, Rooms, is_abrupt_close, listen, room_name};

type Outbox = mpsc::UnboundedSender<(OpCode, Bytes)>;

fn main() -> io::Result<()> {
    let args = PeerArgs::parse();
    args.runtime()?.block_on(async {
        let listener = listen(args.listen)?;
        let rooms = Arc::new(Rooms::default());
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let rooms = Arc::clone(&rooms);
            tokio::spawn(async move {
                let service = service_fn(move |request| accept(request, Arc::clone(&rooms)));
                let connection = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                match connection.await {
                    Err(error) if !error.is_incomplete_message() => {
                        eprintln!("connection ended: {error}");
                    }
                    _ => {}
                }
            });
        }
    })
}

async fn accept(
    mut request: Request<Incoming>,
    rooms: Arc<Rooms<Outbox>>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let path = request.uri().path().to_owned();
    let (response, upgraded) = upgrade(&mut request)?;
    tokio::spawn(async move {
        let served = match room_name(&path) {
            Some(room) => relay(upgraded, &rooms, room).await,
            None => echo(upgraded).await,
        };
        match served {
            Ok(()) | Err(WebSocketError::ConnectionClosed | WebSocketError::UnexpectedEOF) => {}
            Err(WebSocketError::IoError(error)) if is_abrupt_close(&error) => {}
            Err(error) => eprintln!("connection ended: {error}"),
        }
    });
    Ok(response)
}

async fn echo(upgraded: UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(upgraded.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn relay(
    upgraded: UpgradeFut,
    rooms: &Arc<Rooms<Outbox>>,
    room: &str,
) -> Result<(), WebSocketError> {
    let (reader, mut writer) = upgraded.await?.split(tokio::io::split);
    let mut reader = FragmentCollectorRead::new(reader);
    let (outbox, mut inbox) = mpsc::unbounded_channel();
    // Pongs and the close reply the reader owes go out through our own outbox.
    let obligations = outbox.clone();
    let membership = rooms.join(room, outbox);
    let reading = async {
        loop {
            let frame = reader
                .read_frame(&mut |frame: Frame<'_>| {
                    let sent =
                        obligations.send((frame.opcode, Bytes::copy_from_slice(&frame.payload)));
                    std::future::ready(sent.map_err(|_| WebSocketError::ConnectionClosed))
                })
                .await?;
            match frame.opcode {
                OpCode::Close => return Ok(()),
                OpCode::Text | OpCode::Binary => {
                    let payload = Bytes::copy_from_slice(&frame.payload);
                    // A send fails only when that member is leaving.
                    membership.for_each_other(|outbox| {
                        drop(outbox.send((frame.opcode, payload.clone())))
                    });
                }
                _ => {}
            }
        }
    };
    let writing = async {
        while let Some((opcode, payload)) = inbox.recv().await {
            writer
                .write_frame(Frame::new(true, opcode, None, Payload::Borrowed(&payload)))
                .await?;
        }
        Ok(())
    };
    tokio::select! {
        done = reading => done,
        done = writing => done,
    }
}
