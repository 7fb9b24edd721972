//! The README's embedding example: authorization in the open request and a
//! relay of every message to every connection. Run with
//! `cargo run -p wsserver --example relay`.

use std::sync::Arc;
use wsserver::{BoxFuture, Connection, DataIn, Handler, OpenRequest, OpenResponse, WsServer};

struct Chat;

impl Handler for Chat {
    fn open_request(&self, _conn: &Connection, req: Arc<OpenRequest>) -> BoxFuture<OpenResponse> {
        let authorized = req.header("Authorization") == Some("Bearer secret");
        Box::pin(async move {
            if authorized {
                OpenResponse::accept()
            } else {
                OpenResponse::reject(401).with_header("WWW-Authenticate", "Bearer")
            }
        })
    }

    fn data_in(&self, conn: &Connection, data: &DataIn<'_>) {
        // Relay each piece of data to every open connection.
        let server = conn.server();
        for other in server.connections() {
            let _ = server.send(other.connection_id, data.data);
        }
    }
}

#[tokio::main]
async fn main() -> wsserver::Result<()> {
    let server = WsServer::new(Chat);
    server.config("LocalHost=127.0.0.1")?;
    server.config("LocalPort=0")?;
    server.start_listening().await?;
    println!("listening on port {}", server.local_port());
    tokio::signal::ctrl_c().await.ok();
    server.shutdown().await;
    Ok(())
}
