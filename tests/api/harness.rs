//! An in-process `WsServer` whose handler records every event into a
//! channel, with hooks a test sets to answer ConnectionRequest and open
//! requests and to react to DataIn; and waits on those events, bounded by
//! `WAIT`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::{Instant, timeout, timeout_at};
use wsserver::{BoxFuture, ConnectionRequest, LogLevel, LogType};
use wsserver::{
    ClientAuthentication, Connection, ConnectionId, DataFormat, DataIn, Handler, OpenRequest,
    OpenResponse, WsServer,
};

use crate::common::{RawClient, UPGRADE_REQUEST, WAIT, Ws, ws_connect};

/// One handler call, as the handler saw it.
#[derive(Debug, Clone)]
pub enum Event {
    /// `accept` is the verdict the server passed in, before any hook ran.
    ConnectionRequest {
        remote: SocketAddr,
        local: SocketAddr,
        accept: bool,
    },
    OpenRequest(Arc<OpenRequest>),
    Connected(ConnectionId),
    DataIn(ConnectionId, Piece),
    Ping {
        id: ConnectionId,
        payload: Vec<u8>,
        response: bool,
    },
    ReadyToSend(ConnectionId),
    Disconnected {
        id: ConnectionId,
        code: u16,
        description: String,
    },
    Error {
        id: Option<ConnectionId>,
        code: u32,
        description: String,
    },
    Log(LogLine),
    SslStatus {
        id: ConnectionId,
        message: String,
    },
    /// `accept` is the verdict after the hook, if any, ran.
    ClientAuthentication {
        cert_encoded: Vec<u8>,
        subject: String,
        issuer: String,
        status: String,
        accept: bool,
    },
}

/// The arguments of one DataIn event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub format: DataFormat,
    pub data: Vec<u8>,
    pub eom: bool,
    pub eol: bool,
}

impl Piece {
    /// The data as text; panics if it is not UTF-8.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.data).expect("DataIn data is UTF-8")
    }
}

/// The arguments of one Log event.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub id: Option<ConnectionId>,
    pub level: LogLevel,
    pub message: String,
    pub log_type: LogType,
}

type ConnectionRequestHook = Box<dyn Fn(&mut ConnectionRequest) + Send + Sync>;
type OpenHook = Box<dyn Fn(Arc<OpenRequest>) -> BoxFuture<OpenResponse> + Send + Sync>;
type DataInHook = Box<dyn Fn(&Connection, &DataIn<'_>) + Send + Sync>;
type DisconnectedHook = Box<dyn Fn(&Connection) + Send + Sync>;
type ClientAuthHook = Box<dyn Fn(&mut ClientAuthentication<'_>) + Send + Sync>;

/// What a test adds to recording.
#[derive(Default)]
struct Hooks {
    on_connection_request: Option<ConnectionRequestHook>,
    on_open: Option<OpenHook>,
    on_data: Option<DataInHook>,
    on_disconnected: Option<DisconnectedHook>,
    on_client_authentication: Option<ClientAuthHook>,
    accept_unverified_clients: bool,
}

/// The handler under test: records, then runs the test's hook if any.
struct Recorder {
    events: UnboundedSender<Event>,
    hooks: Hooks,
}

impl Recorder {
    fn record(&self, event: Event) {
        // The receiver goes away only when the test is over.
        let _ = self.events.send(event);
    }
}

impl Handler for Recorder {
    fn connection_request(&self, request: &mut ConnectionRequest) {
        self.record(Event::ConnectionRequest {
            remote: request.remote,
            local: request.local,
            accept: request.accept,
        });
        if let Some(hook) = &self.hooks.on_connection_request {
            hook(request);
        }
    }

    fn open_request(
        &self,
        _conn: &Connection,
        request: Arc<OpenRequest>,
    ) -> BoxFuture<OpenResponse> {
        self.record(Event::OpenRequest(request.clone()));
        match &self.hooks.on_open {
            Some(hook) => hook(request),
            None => Box::pin(std::future::ready(OpenResponse::accept())),
        }
    }

    fn connected(&self, conn: &Connection) {
        self.record(Event::Connected(conn.id()));
    }

    fn data_in(&self, conn: &Connection, data: &DataIn<'_>) {
        self.record(Event::DataIn(
            conn.id(),
            Piece {
                format: data.format,
                data: data.data.to_vec(),
                eom: data.eom,
                eol: data.eol,
            },
        ));
        if let Some(hook) = &self.hooks.on_data {
            hook(conn, data);
        }
    }

    fn ping(&self, conn: &Connection, payload: &[u8], response: bool) {
        self.record(Event::Ping {
            id: conn.id(),
            payload: payload.to_vec(),
            response,
        });
    }

    fn ready_to_send(&self, conn: &Connection) {
        self.record(Event::ReadyToSend(conn.id()));
    }

    fn disconnected(&self, conn: &Connection, status_code: u16, description: &str) {
        if let Some(hook) = &self.hooks.on_disconnected {
            hook(conn);
        }
        self.record(Event::Disconnected {
            id: conn.id(),
            code: status_code,
            description: description.to_owned(),
        });
    }

    fn error(&self, conn: Option<&Connection>, code: u32, description: &str) {
        self.record(Event::Error {
            id: conn.map(Connection::id),
            code,
            description: description.to_owned(),
        });
    }

    fn ssl_status(&self, conn: &Connection, message: &str) {
        self.record(Event::SslStatus {
            id: conn.id(),
            message: message.to_owned(),
        });
    }

    fn ssl_client_authentication(&self, _conn: &Connection, auth: &mut ClientAuthentication<'_>) {
        if let Some(hook) = &self.hooks.on_client_authentication {
            hook(auth);
        }
        self.record(Event::ClientAuthentication {
            cert_encoded: auth.cert_encoded().to_vec(),
            subject: auth.cert_subject().to_owned(),
            issuer: auth.cert_issuer().to_owned(),
            status: auth.status.to_owned(),
            accept: auth.accept,
        });
    }

    fn may_accept_unverified_clients(&self) -> bool {
        self.hooks.accept_unverified_clients
    }

    fn log(&self, conn: Option<&Connection>, level: LogLevel, message: &str, log_type: LogType) {
        self.record(Event::Log(LogLine {
            id: conn.map(Connection::id),
            level,
            message: message.to_owned(),
            log_type,
        }));
    }
}

/// Settings and hooks for a [`TestServer`].
#[derive(Default)]
pub struct ServerBuilder {
    settings: Vec<String>,
    hooks: Hooks,
}

/// A server on 127.0.0.1 with a system-chosen port, configured further
/// by the builder.
pub fn server() -> ServerBuilder {
    ServerBuilder::default()
}

impl ServerBuilder {
    /// A `Key=Value` passed to `WsServer::config` before listening.
    pub fn config(mut self, setting: &str) -> Self {
        self.settings.push(setting.to_owned());
        self
    }

    /// Decides ConnectionRequest (after it is recorded).
    pub fn on_connection_request(
        mut self,
        hook: impl Fn(&mut ConnectionRequest) + Send + Sync + 'static,
    ) -> Self {
        self.hooks.on_connection_request = Some(Box::new(hook));
        self
    }

    /// Answers open requests (the default accepts).
    pub fn on_open<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Arc<OpenRequest>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = OpenResponse> + Send + 'static,
    {
        self.hooks.on_open = Some(Box::new(move |request| Box::pin(hook(request))));
        self
    }

    /// Reacts to DataIn (after it is recorded).
    pub fn on_data(
        mut self,
        hook: impl Fn(&Connection, &DataIn<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.hooks.on_data = Some(Box::new(hook));
        self
    }

    /// Runs inside Disconnected, before it is recorded.
    pub fn on_disconnected(mut self, hook: impl Fn(&Connection) + Send + Sync + 'static) -> Self {
        self.hooks.on_disconnected = Some(Box::new(hook));
        self
    }

    /// Decides SSLClientAuthentication (before it is recorded).
    pub fn on_client_authentication(
        mut self,
        hook: impl Fn(&mut ClientAuthentication<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.hooks.on_client_authentication = Some(Box::new(hook));
        self
    }

    /// Lets SSLClientAuthentication accept clients that fail verification.
    pub fn accept_unverified_clients(mut self) -> Self {
        self.hooks.accept_unverified_clients = true;
        self
    }

    pub async fn start(self) -> TestServer {
        let (tx, rx) = unbounded_channel();
        let server = WsServer::new(Recorder {
            events: tx,
            hooks: self.hooks,
        });
        server.config("LocalHost=127.0.0.1").unwrap();
        server.config("LocalPort=0").unwrap();
        for setting in &self.settings {
            server
                .config(setting)
                .unwrap_or_else(|e| panic!("config {setting:?}: {e}"));
        }
        server.start_listening().await.expect("start listening");
        let addr = server.local_addr().expect("listening address");
        let scheme = if server.settings().tls.use_ssl {
            "wss"
        } else {
            "ws"
        };
        TestServer {
            server,
            events: Events {
                rx,
                logs: Vec::new(),
            },
            addr,
            url: format!("{scheme}://{addr}"),
        }
    }
}

/// A listening server and the events its handler received.
pub struct TestServer {
    pub server: WsServer,
    pub events: Events,
    pub addr: SocketAddr,
    pub url: String,
}

impl TestServer {
    /// A raw client past the opening handshake, and its connection id.
    pub async fn raw_client(&mut self) -> (RawClient, ConnectionId) {
        let client = RawClient::connect(self.addr).await;
        (client, self.events.connected().await)
    }

    /// A tokio-tungstenite client, and its connection id.
    pub async fn ws_client(&mut self) -> (Ws, ConnectionId) {
        let ws = ws_connect(&self.url).await;
        (ws, self.events.connected().await)
    }

    /// The open connection `id`.
    pub fn conn(&self, id: ConnectionId) -> Connection {
        self.server
            .connection(id)
            .unwrap_or_else(|e| panic!("connection {id}: {e}"))
    }
}

/// The recorded events, read in order. Log events are set aside in `logs`
/// as they go by, so the other waits need not skip them.
pub struct Events {
    rx: UnboundedReceiver<Event>,
    pub logs: Vec<LogLine>,
}

impl Events {
    /// The next event other than Log.
    pub async fn next(&mut self) -> Event {
        match timeout(WAIT, self.next_unbounded()).await {
            Ok(event) => event,
            Err(_) => panic!("no event within {WAIT:?}"),
        }
    }

    async fn next_unbounded(&mut self) -> Event {
        loop {
            let event = self.rx.recv().await.expect("the server holds the handler");
            if let Some(event) = self.set_logs_aside(event) {
                return event;
            }
        }
    }

    fn set_logs_aside(&mut self, event: Event) -> Option<Event> {
        match event {
            Event::Log(line) => {
                self.logs.push(line);
                None
            }
            event => Some(event),
        }
    }

    /// Skips events until `pick` accepts one; panics after `WAIT`, listing
    /// what was skipped.
    pub async fn find<T>(&mut self, what: &str, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        let mut skipped = Vec::new();
        loop {
            match timeout_at(deadline, self.next_unbounded()).await {
                Ok(event) => match pick(&event) {
                    Some(found) => return found,
                    None => skipped.push(event),
                },
                Err(_) => panic!("no {what} within {WAIT:?}; skipped {skipped:#?}"),
            }
        }
    }

    /// Asserts that no event `matches` within `window` (events meanwhile
    /// are consumed).
    pub async fn none_within(
        &mut self,
        window: Duration,
        what: &str,
        matches: impl Fn(&Event) -> bool,
    ) {
        let deadline = Instant::now() + window;
        while let Ok(event) = timeout_at(deadline, self.next_unbounded()).await {
            assert!(!matches(&event), "unexpected {what}: {event:?}");
        }
    }

    /// Every event already recorded, without waiting.
    pub fn recorded(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(event) = self.rx.try_recv() {
            out.extend(self.set_logs_aside(event));
        }
        out
    }

    pub async fn connected(&mut self) -> ConnectionId {
        self.find("Connected", |e| match e {
            Event::Connected(id) => Some(*id),
            _ => None,
        })
        .await
    }

    pub async fn open_request(&mut self) -> Arc<OpenRequest> {
        self.find("WebSocketOpenRequest", |e| match e {
            Event::OpenRequest(r) => Some(r.clone()),
            _ => None,
        })
        .await
    }

    /// The next DataIn of connection `id`.
    pub async fn data_in(&mut self, id: ConnectionId) -> Piece {
        self.find("DataIn", |e| match e {
            Event::DataIn(from, piece) if *from == id => Some(piece.clone()),
            _ => None,
        })
        .await
    }

    /// DataIn pieces of connection `id` up to and including the one with
    /// EOM.
    pub async fn message(&mut self, id: ConnectionId) -> Vec<Piece> {
        let mut pieces = Vec::new();
        loop {
            let piece = self.data_in(id).await;
            let eom = piece.eom;
            pieces.push(piece);
            if eom {
                return pieces;
            }
        }
    }

    /// The next Ping event of connection `id`: payload and response flag.
    pub async fn ping(&mut self, id: ConnectionId) -> (Vec<u8>, bool) {
        self.find("Ping", |e| match e {
            Event::Ping {
                id: from,
                payload,
                response,
            } if *from == id => Some((payload.clone(), *response)),
            _ => None,
        })
        .await
    }

    pub async fn ready_to_send(&mut self, id: ConnectionId) {
        self.find("ReadyToSend", |e| {
            matches!(e, Event::ReadyToSend(from) if *from == id).then_some(())
        })
        .await
    }

    /// The Disconnected event of connection `id`: code and description.
    pub async fn disconnected(&mut self, id: ConnectionId) -> (u16, String) {
        self.find("Disconnected", |e| match e {
            Event::Disconnected {
                id: from,
                code,
                description,
            } if *from == id => Some((*code, description.clone())),
            _ => None,
        })
        .await
    }
}

/// An upgrade request for `uri` with extra header lines (`Name: value`).
pub fn upgrade_request(uri: &str, extra_headers: &[&str]) -> String {
    let head = UPGRADE_REQUEST
        .strip_suffix("\r\n")
        .expect("a request head ends with an empty line")
        .replacen("GET / ", &format!("GET {uri} "), 1);
    let extra: String = extra_headers.iter().map(|h| format!("{h}\r\n")).collect();
    format!("{head}{extra}\r\n")
}
