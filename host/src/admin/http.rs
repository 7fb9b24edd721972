//! Serving the admin API over HTTP/1.1 (hyper): accept, one task per
//! client connection, and a graceful stop that lets answers in flight (the
//! answer to `POST /shutdown` among them) reach their clients.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::routes::Api;

/// How long a stop waits for requests in flight.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Clients that send their request head this slowly are dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts admin clients until `stop` fires, then finishes what is in
/// flight (within [`STOP_GRACE`]).
pub(super) async fn serve(listener: TcpListener, api: Arc<Api>, mut stop: oneshot::Receiver<()>) {
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("admin API: accept failed: {e}");
                    // Out of file descriptors and the like: back off.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let api = api.clone();
        let service = service_fn(move |request| {
            let api = api.clone();
            async move { Ok::<_, std::convert::Infallible>(api.handle(request).await) }
        });
        let connection = http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("admin API connection: {e}");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(STOP_GRACE, graceful.shutdown()).await;
}
