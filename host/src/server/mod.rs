//! The server: connection tasks, the connection table, outbound queues and
//! backpressure, and the embedding API ([`WsServer`], [`Handler`]).

mod acceptor;
mod activation;
mod conn_state;
mod connection;
mod cores;
mod dispatch;
pub mod echo;
mod error;
mod events;
mod handler;
mod line_mode;
mod metrics;
mod outbound;
mod owner_turn;
mod send_file;
mod session;
pub mod settings;
pub mod static_files;
mod table;
mod tls;
mod upgrade;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use connection::{Connection, ConnectionInfo, SendFormat};
pub use error::{Error, Result, WOULD_BLOCK, io_error_code};
pub use events::{
    BoxFuture, ClientAuthentication, ConnectionId, ConnectionRequest, DataFormat, DataIn, LogLevel,
    LogType, OpenRequest, OpenResponse, TlsInfo,
};
pub use handler::Handler;
pub use metrics::{RefusalCounts, RefusalReason, ServerMetrics};
pub use settings::{ConfigError, IpMode, Settings};

use crate::net::listener;
use crate::net::tls::{CertificateInfo, ClientAuthPolicy, TlsServerConfig, build_server_config};
use crate::protocol::close::GOING_AWAY;
use acceptor::Placement;
use cores::Cores;
use metrics::MetricsRecorder;
use table::ConnectionTable;

/// A WebSocket server (the seed's WSServer component). Cheap to clone:
/// clones share one server.
#[derive(Clone)]
pub struct WsServer {
    pub(crate) shared: Arc<ServerShared>,
}

impl std::fmt::Debug for WsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsServer")
            .field("listening", &self.listening())
            .field("connections", &self.shared.table.admitted())
            .finish()
    }
}

pub(crate) struct ServerShared {
    pub handler: Arc<dyn Handler>,
    settings: RwLock<Arc<Settings>>,
    /// LogLevel, read on every log call without the settings lock.
    log_level: AtomicU8,
    pub table: ConnectionTable,
    next_id: AtomicU64,
    listener: Mutex<Option<ActiveListener>>,
    /// The extra threads serving connections (Settings::io_threads), made
    /// at the first StartListening.
    cores: OnceLock<Cores>,
    pub metrics: MetricsRecorder,
}

impl std::fmt::Debug for ServerShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerShared").finish_non_exhaustive()
    }
}

struct ActiveListener {
    addr: SocketAddr,
    /// Built from the settings at StartListening when UseSSL is on.
    tls: Option<Arc<TlsServerConfig>>,
    /// The accept loop, and the activation's sampler with AdaptiveCores.
    tasks: Vec<JoinHandle<()>>,
}

impl ServerShared {
    /// The current settings; connections keep the snapshot they opened with.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The runtimes of the extra cores, started on first use.
    fn cores(&self, io_threads: usize) -> Result<&Cores> {
        if let Some(cores) = self.cores.get() {
            return Ok(cores);
        }
        let cores = Cores::start(io_threads.saturating_sub(1))
            .map_err(|e| Error::io("cannot start the connection threads", e))?;
        // A concurrent StartListening may have won; its pool serves.
        Ok(self.cores.get_or_init(|| cores))
    }

    fn listener(&self) -> MutexGuard<'_, Option<ActiveListener>> {
        self.listener.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn next_connection_id(&self) -> ConnectionId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether LogLevel lets `level` through.
    pub fn logs(&self, level: LogLevel) -> bool {
        (level as u8) <= self.log_level.load(Ordering::Relaxed)
    }

    /// Fires the Log event if `level` is within LogLevel; the message is
    /// formatted only then.
    pub fn log(
        &self,
        conn: Option<&Connection>,
        level: LogLevel,
        log_type: LogType,
        message: fmt::Arguments<'_>,
    ) {
        if self.logs(level) {
            self.handler
                .log(conn, level, &message.to_string(), log_type);
        }
    }

    /// Counts a refused connection by `reason` and logs why, at Info.
    pub fn refused(
        &self,
        conn: Option<&Connection>,
        reason: RefusalReason,
        log_type: LogType,
        message: fmt::Arguments<'_>,
    ) {
        self.metrics.connection_refused(reason);
        self.log(conn, LogLevel::Info, log_type, message);
    }
}

impl WsServer {
    /// A server with default settings, serving events to `handler`.
    pub fn new(handler: impl Handler) -> Self {
        Self::with_settings(Arc::new(handler), Settings::default())
    }

    pub fn with_settings(handler: Arc<dyn Handler>, settings: Settings) -> Self {
        Self {
            shared: Arc::new(ServerShared {
                handler,
                log_level: AtomicU8::new(settings.log_level),
                settings: RwLock::new(Arc::new(settings)),
                table: ConnectionTable::default(),
                next_id: AtomicU64::new(1),
                listener: Mutex::new(None),
                cores: OnceLock::new(),
                metrics: MetricsRecorder::default(),
            }),
        }
    }

    /// A copy of the current settings.
    pub fn settings(&self) -> Settings {
        (*self.shared.settings()).clone()
    }

    fn update_settings(&self, f: impl FnOnce(&mut Settings) -> Result<()>) -> Result<()> {
        let mut guard = self
            .shared
            .settings
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let mut next = (**guard).clone();
        f(&mut next)?;
        self.shared
            .log_level
            .store(next.log_level, Ordering::Relaxed);
        *guard = Arc::new(next);
        Ok(())
    }

    /// The LocalHost property.
    pub fn local_host(&self) -> String {
        self.shared.settings().local_host.clone()
    }

    pub fn set_local_host(&self, host: &str) -> Result<()> {
        self.config_set("LocalHost", host)
    }

    /// The LocalPort property: the real port while listening.
    pub fn local_port(&self) -> u16 {
        match self.shared.listener().as_ref() {
            Some(l) => l.addr.port(),
            None => self.shared.settings().local_port,
        }
    }

    pub fn set_local_port(&self, port: u16) -> Result<()> {
        self.config_set("LocalPort", &port.to_string())
    }

    /// The address being listened on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.listener().as_ref().map(|l| l.addr)
    }

    /// The Listening property.
    pub fn listening(&self) -> bool {
        self.shared.listener().is_some()
    }

    /// The ConnectionBacklog property.
    pub fn connection_backlog(&self) -> u32 {
        self.shared.settings().connection_backlog
    }

    pub fn set_connection_backlog(&self, backlog: u32) -> Result<()> {
        self.config_set("ConnectionBacklog", &backlog.to_string())
    }

    /// The DefaultTimeout property (seconds).
    pub fn default_timeout(&self) -> u32 {
        self.shared.settings().default_timeout
    }

    pub fn set_default_timeout(&self, seconds: u32) -> Result<()> {
        self.config_set("DefaultTimeout", &seconds.to_string())
    }

    /// The Connections property: every connection that has sent its open
    /// request, in id order.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.shared
            .table
            .all()
            .into_iter()
            .filter(|c| c.has_request())
            .map(|c| c.info())
            .collect()
    }

    /// The server's counters since it was created.
    pub fn metrics(&self) -> ServerMetrics {
        self.shared.metrics.snapshot()
    }

    /// The connection with `id`.
    pub fn connection(&self, id: ConnectionId) -> Result<Connection> {
        self.shared
            .table
            .get(id)
            .ok_or(Error::InvalidConnectionId(id))
    }

    /// SSLCert: the fields of the certificate served by default, while
    /// listening with UseSSL (None when only SNI host names have one).
    pub fn ssl_cert(&self) -> Option<CertificateInfo> {
        let listener = self.shared.listener();
        listener.as_ref()?.tls.as_ref()?.certificate().cloned()
    }

    /// The certificates served per SNI host name (`SSLCertStore[host]`),
    /// while listening with UseSSL.
    pub fn ssl_sni_certs(&self) -> BTreeMap<String, CertificateInfo> {
        let listener = self.shared.listener();
        listener
            .as_ref()
            .and_then(|l| l.tls.as_ref())
            .map(|tls| tls.sni_certificates().clone())
            .unwrap_or_default()
    }

    /// StartListening: binds LocalHost:LocalPort and accepts connections.
    /// With UseSSL the certificates are loaded first: a bad store, password
    /// or key fails here with its code (270-284).
    pub async fn start_listening(&self) -> Result<()> {
        if self.listening() {
            return Err(Error::AlreadyListening);
        }
        let settings = self.shared.settings();
        let tls = self.tls_config(&settings)?;
        let addr =
            listener::listen_address(&settings.local_host, settings.local_port, settings.use_ipv6)
                .await
                .map_err(|e| {
                    Error::io(
                        format!("cannot resolve LocalHost {:?}", settings.local_host),
                        e,
                    )
                })?;
        let cores = self.shared.cores(settings.io_threads)?;
        let socket = listener::bind(addr, &settings.listen_options())
            .map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
        let addr = socket
            .local_addr()
            .map_err(|e| Error::io("cannot read the listening address", e))?;
        let socket = TcpListener::from_std(socket)
            .map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
        let activation = activation::for_cores(&settings, cores);
        let accepting = if activation.is_some() {
            1
        } else {
            1 + cores.handles().len()
        };
        let placement = Placement::new(
            acceptor::cores(&self.shared, &settings, cores, tls.is_some()).await,
            accepting,
        );
        let mut slot = self.shared.listener();
        if slot.is_some() {
            return Err(Error::AlreadyListening);
        }
        self.shared.metrics.cores_accepting(accepting);
        let mut tasks = Vec::with_capacity(2);
        if let Some((activation, sampler)) = activation {
            tasks.push(tokio::spawn(activation::run(
                activation,
                sampler,
                placement.accepting.clone(),
                self.shared.clone(),
            )));
        }
        tasks.push(tokio::spawn(acceptor::accept_loop(
            self.shared.clone(),
            socket,
            tls.clone(),
            placement,
        )));
        let with_tls = if tls.is_some() { " with TLS" } else { "" };
        *slot = Some(ActiveListener { addr, tls, tasks });
        drop(slot);
        self.shared.log(
            None,
            LogLevel::Info,
            LogType::Info,
            format_args!("listening on {addr}{with_tls}"),
        );
        Ok(())
    }

    /// The rustls configuration UseSSL asks for; None without it.
    fn tls_config(&self, settings: &Settings) -> Result<Option<Arc<TlsServerConfig>>> {
        if !settings.tls.use_ssl {
            return Ok(None);
        }
        let mut tls = settings.tls.clone();
        // Whether unverified clients may finish the handshake is the
        // handler's to say: it alone can accept them afterwards.
        tls.client_auth_policy = if self.shared.handler.may_accept_unverified_clients() {
            ClientAuthPolicy::Defer
        } else {
            ClientAuthPolicy::Enforce
        };
        Ok(Some(Arc::new(build_server_config(&tls)?)))
    }

    /// StopListening: closes the listening socket; connections stay open.
    pub async fn stop_listening(&self) {
        let active = self.shared.listener().take();
        if let Some(active) = active {
            for task in &active.tasks {
                task.abort();
            }
            for task in active.tasks {
                let _ = task.await;
            }
            self.shared.metrics.cores_accepting(0);
        }
    }

    /// Shutdown: stops listening, closes every connection with 1001 and
    /// waits (up to CloseTimeout plus a second) for them to end.
    pub async fn shutdown(&self) {
        self.stop_listening().await;
        for conn in self.shared.table.all() {
            let _ = conn.close(GOING_AWAY, "server shutting down");
        }
        let grace = Duration::from_secs(u64::from(self.shared.settings().close_timeout) + 1);
        let _ = tokio::time::timeout(grace, self.shared.table.wait_empty()).await;
    }

    /// Disconnect with DisconnectStatusCode/Description.
    pub fn disconnect(&self, id: ConnectionId) -> Result<()> {
        self.connection(id)?.disconnect()
    }

    /// Send: bytes framed per the connection's DataFormat.
    pub fn send(&self, id: ConnectionId, data: &[u8]) -> Result<()> {
        self.connection(id)?.send(data)
    }

    /// SendBytes: a binary message.
    pub fn send_bytes(&self, id: ConnectionId, data: &[u8]) -> Result<()> {
        self.connection(id)?.send_bytes(data)
    }

    /// SendText: a text message.
    pub fn send_text(&self, id: ConnectionId, text: &str) -> Result<()> {
        self.connection(id)?.send_text(text)
    }

    /// SendFile: the file as one binary message; returns the bytes sent.
    pub async fn send_file(&self, id: ConnectionId, path: impl AsRef<Path>) -> Result<u64> {
        self.connection(id)?.send_file(path).await
    }

    /// Interrupt: stops a SendFile in progress on the connection.
    pub fn interrupt(&self, id: ConnectionId) -> Result<()> {
        self.connection(id)?.interrupt()
    }

    /// Ping: sends an empty ping; the pong arrives as a Ping event.
    pub fn ping(&self, id: ConnectionId) -> Result<()> {
        self.connection(id)?.ping(&[])
    }

    /// ChangeLineMode.
    pub fn change_line_mode(&self, id: ConnectionId, line_mode: bool) -> Result<()> {
        self.connection(id)?.change_line_mode(line_mode);
        Ok(())
    }

    /// Config: `"Key=Value"` sets and returns an empty string; `"Key"`
    /// returns the value. Per-connection keys take the id in brackets:
    /// `MaxLineLength[5]=80`, `MessageLength[5]`.
    pub fn config(&self, setting: &str) -> Result<String> {
        let (key, value) = match setting.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v)),
            None => (setting.trim(), None),
        };
        // SSLCert keys take a host name, not a connection id.
        if let Some((name, index)) = indexed_key(key)
            && !crate::net::tls::settings::takes_host_index(name)
        {
            return self.config_connection(name, index, value);
        }
        match value {
            Some(v) => self.config_set(key, v).map(|()| String::new()),
            None => self.config_get(key),
        }
    }

    fn config_get(&self, key: &str) -> Result<String> {
        if key.eq_ignore_ascii_case("LocalPort") {
            return Ok(self.local_port().to_string());
        }
        Ok(self.shared.settings().get(key)?)
    }

    fn config_set(&self, key: &str, value: &str) -> Result<()> {
        if self.listening() {
            match settings::canonical_key(key) {
                Some("LocalPort") => return Err(Error::LocalPortLocked),
                Some("LocalHost") => return Err(Error::LocalHostLocked),
                Some("MaxConnections") => return Err(Error::MaxConnectionsLocked),
                _ => {}
            }
        }
        self.update_settings(|s| Ok(s.set(key, value)?))
    }

    fn config_connection(&self, name: &str, index: &str, value: Option<&str>) -> Result<String> {
        let parse = |v: &str, key: &str| {
            v.trim().parse::<u64>().map_err(|_| {
                Error::Config(ConfigError::InvalidValue {
                    key: key.to_owned(),
                    value: v.to_owned(),
                    expected: "a number of bytes".into(),
                })
            })
        };
        // The key first: an unknown key is the error, whatever the id.
        let Some(key) = settings::canonical_connection_key(name) else {
            return Err(ConfigError::UnknownKey(format!("{name}[{index}]")).into());
        };
        let id = parse(index, key)?;
        let conn = self.connection(id)?;
        match (key, value) {
            ("MaxLineLength", Some(v)) => conn.set_max_line_length(parse(v, key)? as usize),
            ("MaxLineLength", None) => return Ok(conn.max_line_length().to_string()),
            ("MessageLength", Some(v)) => conn.set_message_length(parse(v, key)?)?,
            ("MessageLength", None) => return Ok(conn.message_length().to_string()),
            // The SSLNegotiated* keys; empty on a plain connection.
            (_, Some(_)) => {
                return Err(ConfigError::ReadOnly {
                    key: key.to_owned(),
                }
                .into());
            }
            (_, None) => {
                return Ok(conn
                    .tls()
                    .and_then(|tls| tls.session.get(key))
                    .unwrap_or_default());
            }
        }
        Ok(String::new())
    }
}

/// Splits `Name[index]`.
fn indexed_key(key: &str) -> Option<(&str, &str)> {
    let (name, rest) = key.split_once('[')?;
    Some((name.trim(), rest.strip_suffix(']')?))
}
