//! The admin endpoints: which resource a request names, and what each
//! method does to it.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::AdminTarget;
use super::auth::Access;
use super::dashboard;
use super::error::ApiError;
use super::metrics;
use super::request::{
    Closing, ConfigRequest, DisconnectRequest, ListeningRequest, PublishRequest, SwapRequest,
    parse_json, parse_json_or_default,
};
use super::views::{
    ClusterView, ConfigView, ConnectionList, ConnectionView, Disconnecting, ErrorView,
    ListeningView, PluginList, PluginView, PublishView, ShuttingDown, SwapView, TenantList,
    TenantView, TopicList, TopicView,
};
use crate::plugin::{PluginRouter, SwapOutcome, Update};
use crate::server::{ConnectionId, Error};

/// Request bodies are small JSON objects...
const MAX_BODY: usize = 64 * 1024;
/// ...or a component to swap in (compiled Python and JavaScript ones run to
/// tens of megabytes).
const MAX_COMPONENT: usize = 256 << 20;
/// The `Content-Type` of a component uploaded for a swap.
const WASM: &str = "application/wasm";

type Reply = Response<Full<Bytes>>;

/// What a request path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource<'a> {
    Plugins,
    Tenants,
    Tenant(&'a str),
    Swap(&'a str),
    Rollback(&'a str),
    Publish(&'a str),
    Topics(&'a str),
    Cluster,
    Connections,
    Connection(&'a str),
    Listening,
    Shutdown,
    Config(&'a str),
    Metrics,
}

impl<'a> Resource<'a> {
    fn parse(path: &'a str) -> Option<Self> {
        let path = path.strip_prefix('/')?;
        let path = path.strip_suffix('/').unwrap_or(path);
        Some(match path.split_once('/') {
            None => match path {
                "plugins" => Self::Plugins,
                "tenants" => Self::Tenants,
                "connections" => Self::Connections,
                "listening" => Self::Listening,
                "shutdown" => Self::Shutdown,
                "metrics" => Self::Metrics,
                "cluster" => Self::Cluster,
                _ => return None,
            },
            Some(("connections", id)) if !id.contains('/') => Self::Connection(id),
            Some(("tenants", rest)) => match rest.split_once('/') {
                None => Self::Tenant(rest),
                Some((name, "swap")) => Self::Swap(name),
                Some((name, "rollback")) => Self::Rollback(name),
                Some((name, "publish")) => Self::Publish(name),
                Some((name, "topics")) => Self::Topics(name),
                Some(_) => return None,
            },
            Some(("config", key)) if !key.contains('/') => Self::Config(key),
            Some(_) => return None,
        })
    }

    /// For the `Allow` header of a 405.
    fn methods(self) -> &'static str {
        match self {
            Self::Plugins
            | Self::Tenants
            | Self::Tenant(_)
            | Self::Topics(_)
            | Self::Connections
            | Self::Metrics
            | Self::Cluster => "GET",
            Self::Swap(_) | Self::Rollback(_) | Self::Publish(_) => "POST",
            Self::Connection(_) => "GET, DELETE",
            Self::Listening => "GET, POST",
            Self::Shutdown => "POST",
            Self::Config(_) => "GET, PUT",
        }
    }
}

/// The admin API: what it acts on and who may use it.
pub(super) struct Api {
    target: AdminTarget,
    access: Access,
}

impl Api {
    pub fn new(target: AdminTarget, access: Access) -> Self {
        Self { target, access }
    }

    /// Answers one request; failures become JSON errors.
    pub async fn handle(&self, request: Request<Incoming>) -> Reply {
        if let Some(page) = dashboard::page(&request) {
            return page;
        }
        if !self.access.allows(request.headers()) {
            let mut reply = error_reply(&ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this admin API needs the header Authorization: Bearer <token>",
            ));
            reply
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return reply;
        }
        self.route(request)
            .await
            .unwrap_or_else(|e| error_reply(&e))
    }

    async fn route(&self, request: Request<Incoming>) -> Result<Reply, ApiError> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let resource = Resource::parse(&path)
            .ok_or_else(|| ApiError::not_found(format!("no such endpoint: {method} {path}")))?;
        let server = &self.target.server;
        match (resource, method) {
            (Resource::Plugins, Method::GET) => Ok(self.plugins()),
            (Resource::Tenants, Method::GET) => {
                let tenants = self.tenants().into_iter().map(TenantView::from).collect();
                Ok(json(StatusCode::OK, &TenantList { tenants }))
            }
            (Resource::Tenant(name), Method::GET) => {
                let name = tenant_name(name)?;
                let tenant = self
                    .tenants()
                    .into_iter()
                    .find(|t| t.name == name)
                    .ok_or_else(|| ApiError::not_found(format!("no tenant named {name:?}")))?;
                Ok(json(StatusCode::OK, &TenantView::from(tenant)))
            }
            (Resource::Swap(name), Method::POST) => {
                let name = tenant_name(name)?;
                let outcome = logged("swap", &name, self.swap(&name, request).await)?;
                Ok(json(StatusCode::OK, &SwapView::new(name, outcome)))
            }
            (Resource::Rollback(name), Method::POST) => {
                let name = tenant_name(name)?;
                let router = self.router()?;
                let tenant = name.clone();
                let outcome = blocking(move || router.rollback(&tenant)).await;
                let outcome = logged("rollback", &name, outcome)?;
                Ok(json(StatusCode::OK, &SwapView::new(name, outcome)))
            }
            (Resource::Publish(name), Method::POST) => {
                let name = tenant_name(name)?;
                let body: PublishRequest = read_json(request).await?;
                self.publish(name, body)
            }
            (Resource::Topics(name), Method::GET) => {
                let tenant = tenant_name(name)?;
                let topics = self.router()?.topics(&tenant)?;
                let topics = topics.into_iter().map(TopicView::from).collect();
                Ok(json(StatusCode::OK, &TopicList { tenant, topics }))
            }
            (Resource::Cluster, Method::GET) => {
                let status = self.target.cluster.as_ref().map(|c| c.status().into());
                let view = ClusterView {
                    enabled: status.is_some(),
                    status,
                };
                Ok(json(StatusCode::OK, &view))
            }
            (Resource::Connections, Method::GET) => {
                let connections = server
                    .connections()
                    .into_iter()
                    .map(ConnectionView::from)
                    .collect();
                Ok(json(StatusCode::OK, &ConnectionList { connections }))
            }
            (Resource::Connection(id), Method::GET) => {
                let info = server.connection(connection_id(id)?)?.info();
                Ok(json(StatusCode::OK, &ConnectionView::from(info)))
            }
            (Resource::Connection(id), Method::DELETE) => {
                let id = connection_id(id)?;
                let body = read_json_or_default(request).await?;
                self.disconnect(id, body)
            }
            (Resource::Listening, Method::GET) => Ok(self.listening()),
            (Resource::Listening, Method::POST) => {
                let body: ListeningRequest = read_json(request).await?;
                self.set_listening(body.listening).await
            }
            (Resource::Shutdown, Method::POST) => {
                self.target.shutdown.notify_one();
                let body = ShuttingDown {
                    shutting_down: true,
                };
                Ok(json(StatusCode::ACCEPTED, &body))
            }
            (Resource::Config(key), Method::GET) => {
                let key = config_key(key)?;
                let value = server.config(&key)?;
                Ok(json(StatusCode::OK, &ConfigView { key, value }))
            }
            (Resource::Config(key), Method::PUT) => {
                let key = config_key(key)?;
                let body: ConfigRequest = read_json(request).await?;
                server.config(&format!("{key}={}", body.value.to_setting()))?;
                let value = server.config(&key)?;
                Ok(json(StatusCode::OK, &ConfigView { key, value }))
            }
            (Resource::Metrics, Method::GET) => {
                let cluster = self.target.cluster.as_ref().map(|c| c.status());
                let text = metrics::render(server.metrics(), self.tenants(), cluster);
                Ok(reply(StatusCode::OK, metrics::CONTENT_TYPE, text.into()))
            }
            (resource, method) => {
                let mut reply = error_reply(&ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!(
                        "{path} does not take {method}; it takes {}",
                        resource.methods()
                    ),
                ));
                reply
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(resource.methods()));
                Ok(reply)
            }
        }
    }

    fn plugins(&self) -> Reply {
        let plugins = self.tenants().into_iter().map(PluginView::from).collect();
        json(StatusCode::OK, &PluginList { plugins })
    }

    /// Every tenant's status; none with the native echo.
    fn tenants(&self) -> Vec<crate::plugin::TenantStatus> {
        self.target
            .plugins
            .as_ref()
            .map(|p| p.tenants())
            .unwrap_or_default()
    }

    fn router(&self) -> Result<Arc<PluginRouter>, ApiError> {
        self.target.plugins.clone().ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "the server runs the native echo, not plugins",
            )
        })
    }

    /// Hot swap: the body is the component itself (`application/wasm`,
    /// configuration kept) or JSON naming a file on the server and/or new
    /// configuration values (see [`SwapRequest`]).
    async fn swap(&self, name: &str, request: Request<Incoming>) -> Result<SwapOutcome, ApiError> {
        let router = self.router()?;
        let uploaded = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case(WASM));
        let tenant = name.to_owned();
        let outcome = if uploaded {
            let wasm = read_body(request, MAX_COMPONENT).await?.to_vec();
            let update = Update { wasm, config: None };
            blocking(move || router.swap(&tenant, update)).await?
        } else {
            let SwapRequest { file, config } = read_json_or_default(request).await?;
            match file {
                Some(path) => {
                    let wasm = tokio::fs::read(&path).await.map_err(|e| {
                        ApiError::bad_request(format!("cannot read {}: {e}", path.display()))
                    })?;
                    let update = Update { wasm, config };
                    blocking(move || router.swap(&tenant, update)).await?
                }
                None => blocking(move || router.reload(&tenant, config)).await?,
            }
        };
        Ok(outcome)
    }

    /// Publishes to a tenant's topic, here and on the other nodes.
    fn publish(&self, tenant: String, body: PublishRequest) -> Result<Reply, ApiError> {
        let (kind, payload) = body.message()?;
        let payload = Bytes::from(payload);
        let delivered_here = self
            .router()?
            .publish(&tenant, &body.topic, kind, payload)?;
        let view = PublishView {
            tenant,
            topic: body.topic,
            delivered_here,
        };
        Ok(json(StatusCode::OK, &view))
    }

    /// Starts the closing handshake: with the DisconnectStatusCode and
    /// Description settings unless the body names a code or reason.
    fn disconnect(&self, id: ConnectionId, body: DisconnectRequest) -> Result<Reply, ApiError> {
        let server = &self.target.server;
        let conn = server.connection(id)?;
        match body.closing(server.settings().disconnect_status_code)? {
            Closing::Default => conn.disconnect()?,
            Closing::With { code, reason } => conn.close(code, &reason)?,
        }
        let body = Disconnecting {
            connection_id: id,
            closing: true,
        };
        Ok(json(StatusCode::ACCEPTED, &body))
    }

    fn listening(&self) -> Reply {
        let server = &self.target.server;
        let address = server.local_addr();
        let view = ListeningView {
            listening: address.is_some(),
            address,
        };
        json(StatusCode::OK, &view)
    }

    /// Starts or stops listening; asking for the current state is no error.
    async fn set_listening(&self, listening: bool) -> Result<Reply, ApiError> {
        let server = &self.target.server;
        if listening {
            match server.start_listening().await {
                Ok(()) | Err(Error::AlreadyListening) => {}
                Err(e) => return Err(e.into()),
            }
        } else {
            server.stop_listening().await;
        }
        Ok(self.listening())
    }
}

/// Leaves a line in the server log for a swap or rollback asked through
/// the API, as SIGHUP and the file watch do, whatever its outcome.
fn logged(
    action: &str,
    tenant: &str,
    result: Result<SwapOutcome, ApiError>,
) -> Result<SwapOutcome, ApiError> {
    match &result {
        Ok(outcome) if outcome.changed => {
            tracing::info!("admin {action}: tenant {tenant} now serves {outcome}")
        }
        Ok(outcome) => tracing::info!(
            "admin {action}: tenant {tenant} already serves {}; nothing changed",
            outcome.version
        ),
        Err(e) => tracing::error!(
            "admin {action} of tenant {tenant} failed ({}): {}; the running version keeps serving",
            e.status.as_u16(),
            e.message
        ),
    }
    result
}

fn connection_id(text: &str) -> Result<ConnectionId, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{text:?} is not a connection id (a positive number)"
        ))
    })
}

/// Runs a swap or rollback (which compile and wait for the plugin's
/// actors) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, crate::plugin::SwapError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)
}

/// The tenant name of `/tenants/{name}`, percent-decoded (names may hold
/// spaces: `echo%20(built-in)`).
fn tenant_name(raw: &str) -> Result<String, ApiError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|name| name.into_owned())
        .map_err(|_| ApiError::bad_request("the tenant name is not UTF-8"))
}

/// The key of `/config/{Key}`, percent-decoded (`MaxLineLength%5B3%5D`).
fn config_key(raw: &str) -> Result<String, ApiError> {
    let key = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("the config key is not UTF-8"))?;
    // `Key=Value` is how Config sets; a key must not smuggle one in.
    if key.is_empty() || key.contains('=') {
        return Err(ApiError::bad_request(format!(
            "{key:?} is not a config key; set values with PUT and a JSON body"
        )));
    }
    Ok(key.into_owned())
}

/// The request's JSON body.
async fn read_json<T: DeserializeOwned>(request: Request<Incoming>) -> Result<T, ApiError> {
    let body = read_body(request, MAX_BODY).await?;
    Ok(parse_json(&body)?)
}

/// The request's JSON body, or the default when it has none.
async fn read_json_or_default<T: DeserializeOwned + Default>(
    request: Request<Incoming>,
) -> Result<T, ApiError> {
    let body = read_body(request, MAX_BODY).await?;
    Ok(parse_json_or_default(&body)?)
}

async fn read_body(request: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("this request's body is at most {limit} bytes"),
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Reply {
    match serde_json::to_vec(body) {
        Ok(bytes) => reply(status, "application/json", bytes.into()),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("cannot encode the answer: {e}").into(),
        ),
    }
}

fn error_reply(e: &ApiError) -> Reply {
    let body = ErrorView {
        error: &e.message,
        code: e.code,
    };
    json(e.status, &body)
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Reply {
    let mut reply = Response::new(Full::new(body));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_resources() {
        assert_eq!(Resource::parse("/plugins"), Some(Resource::Plugins));
        assert_eq!(Resource::parse("/plugins/"), Some(Resource::Plugins));
        assert_eq!(
            Resource::parse("/connections/12"),
            Some(Resource::Connection("12"))
        );
        assert_eq!(
            Resource::parse("/config/MaxLineLength%5B3%5D"),
            Some(Resource::Config("MaxLineLength%5B3%5D"))
        );
        assert_eq!(Resource::parse("/connections/1/2"), None);
        assert_eq!(Resource::parse("/tenants"), Some(Resource::Tenants));
        assert_eq!(
            Resource::parse("/tenants/echo%20(built-in)"),
            Some(Resource::Tenant("echo%20(built-in)"))
        );
        assert_eq!(
            Resource::parse("/tenants/a/swap"),
            Some(Resource::Swap("a"))
        );
        assert_eq!(
            Resource::parse("/tenants/a/rollback"),
            Some(Resource::Rollback("a"))
        );
        assert_eq!(
            Resource::parse("/tenants/a/publish"),
            Some(Resource::Publish("a"))
        );
        assert_eq!(
            Resource::parse("/tenants/a/topics"),
            Some(Resource::Topics("a"))
        );
        assert_eq!(Resource::parse("/cluster"), Some(Resource::Cluster));
        assert_eq!(Resource::parse("/tenants/a/reboot"), None);
        assert_eq!(Resource::parse("/"), None);
        assert_eq!(Resource::parse("/nope"), None);
    }

    #[test]
    fn config_keys_are_decoded_and_may_not_set() {
        assert_eq!(
            config_key("MaxLineLength%5B3%5D").unwrap(),
            "MaxLineLength[3]"
        );
        assert_eq!(config_key("LogLevel").unwrap(), "LogLevel");
        assert!(config_key("LogLevel=3").is_err());
        assert!(config_key("LogLevel%3D3").is_err());
        assert!(config_key("").is_err());
    }
}
