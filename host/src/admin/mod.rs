//! The admin HTTP API and Prometheus metrics, on a listener of their own.
//!
//! Operators list plugins and connections, drop a connection, start and
//! stop listening, shut the process down, read and change settings, and
//! scrape `/metrics`; every endpoint but `/metrics` speaks JSON. With a
//! token configured every request needs `Authorization: Bearer TOKEN`;
//! without one the API only listens on loopback addresses.
//!
//! ```no_run
//! # async fn run(server: wsserver::WsServer) -> Result<(), wsserver::admin::AdminError> {
//! use wsserver::admin::{AdminServer, AdminTarget};
//!
//! let admin = AdminServer::start("127.0.0.1:9090", None, AdminTarget::new(server, None)).await?;
//! println!("admin on http://{}", admin.local_addr());
//! admin.shutdown_requested().await;
//! admin.stop().await;
//! # Ok(()) }
//! ```

// Everything but the request bodies acts on the plugin runtime's tenants:
// without the `plugins` feature (the fuzz build) only those are here.
#[cfg(feature = "plugins")]
mod auth;
#[cfg(feature = "plugins")]
mod dashboard;
#[cfg(feature = "plugins")]
mod error;
#[cfg(feature = "plugins")]
mod http;
#[cfg(feature = "plugins")]
mod metrics;
pub mod request;
#[cfg(feature = "plugins")]
mod routes;
#[cfg(feature = "plugins")]
mod views;

#[cfg(feature = "plugins")]
pub use error::AdminError;
#[cfg(feature = "plugins")]
use {
    crate::cluster::Backplane,
    crate::plugin::PluginRouter,
    crate::server::WsServer,
    auth::Access,
    std::net::SocketAddr,
    std::sync::Arc,
    tokio::net::TcpListener,
    tokio::sync::{Notify, oneshot},
    tokio::task::JoinHandle,
};

/// What the admin API acts on.
#[cfg(feature = "plugins")]
#[derive(Clone)]
pub struct AdminTarget {
    server: WsServer,
    /// The plugin runtime, when the server's handler is one.
    plugins: Option<Arc<PluginRouter>>,
    /// Signalled by `POST /shutdown`.
    shutdown: Arc<Notify>,
    /// The link to the other nodes, when topics span a cluster.
    cluster: Option<Backplane>,
}

#[cfg(feature = "plugins")]
impl AdminTarget {
    pub fn new(server: WsServer, plugins: Option<Arc<PluginRouter>>) -> Self {
        Self {
            server,
            plugins,
            shutdown: Arc::new(Notify::new()),
            cluster: None,
        }
    }

    /// Reports the cluster backplane too (`GET /cluster`, `/metrics`).
    pub fn with_cluster(mut self, cluster: Option<Backplane>) -> Self {
        self.cluster = cluster;
        self
    }
}

/// The admin API's listener and the task serving it.
#[cfg(feature = "plugins")]
pub struct AdminServer {
    addr: SocketAddr,
    shutdown: Arc<Notify>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

#[cfg(feature = "plugins")]
impl AdminServer {
    /// Binds `listen` (`HOST:PORT`, port 0 picks one) and serves the API.
    /// An empty `token` is refused; without a token, so is any address
    /// that is not loopback.
    pub async fn start(
        listen: &str,
        token: Option<String>,
        target: AdminTarget,
    ) -> Result<Self, AdminError> {
        let access = Access::new(token)?;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
            .await
            .map_err(|source| AdminError::Resolve {
                listen: listen.to_owned(),
                source,
            })?
            .collect();
        // Every address the name stands for must pass, not just the first.
        for addr in &addrs {
            access.check_address(*addr)?;
        }
        let first = *addrs.first().ok_or_else(|| AdminError::Resolve {
            listen: listen.to_owned(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        let listener = TcpListener::bind(first)
            .await
            .map_err(|source| AdminError::Bind {
                addr: first,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| AdminError::Bind {
            addr: first,
            source,
        })?;
        let shutdown = target.shutdown.clone();
        let api = Arc::new(routes::Api::new(target, access));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(http::serve(listener, api, stopped));
        Ok(Self {
            addr,
            shutdown,
            stop,
            task,
        })
    }

    /// The address the API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Completes once a client has asked for shutdown (`POST /shutdown`).
    pub async fn shutdown_requested(&self) {
        self.shutdown.notified().await;
    }

    /// Stops accepting and lets requests in flight finish (briefly).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
