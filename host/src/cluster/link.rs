//! The task that talks to Redis: one RESP3 connection carries the
//! node's publishes (pipelined, in order), its shard-channel subscriptions
//! (their messages arrive as pushes) and its presence counts. When the
//! connection fails the task waits with exponential backoff, connects
//! again and subscribes to what the node's clients still want; meanwhile
//! publishes are counted as failed and dropped.

use std::collections::{HashMap, HashSet};
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Client, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind,
    RedisResult, Value,
};
use tokio::sync::mpsc;

use super::{ASKED_FOR, Outgoing, PRESENCE_PERIOD, PRESENCE_REFRESH, PRESENCE_TTL, Shared};
use super::{now_ms, wire};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Connecting, and any one reply, may take this long before the link
/// counts as down.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Publishes sent in one pipeline.
const BATCH: usize = 512;

/// A client for `url` speaking RESP3 (subscription messages come as
/// pushes on the same connection as commands).
pub(super) fn client(url: &str) -> RedisResult<Client> {
    let info = url.into_connection_info()?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    Client::open(info.set_redis_settings(settings))
}

/// Runs until the backplane is dropped.
pub(super) async fn run(shared: Weak<Shared>, client: Client, mut queue: mpsc::Receiver<Outgoing>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let (push_sender, mut pushes) = mpsc::unbounded_channel();
        let config = AsyncConnectionConfig::new()
            .set_push_sender(push_sender)
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let error = match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(connection) => {
                let Some(strong) = shared.upgrade() else {
                    return;
                };
                strong.up();
                let wake = strong.wake.clone();
                drop(strong);
                backoff = MIN_BACKOFF;
                let mut session = Session {
                    shared: shared.clone(),
                    wake,
                    connection,
                    subscribed: HashSet::new(),
                    stale: Vec::new(),
                    last_refresh: Instant::now(),
                };
                match session.serve(&mut queue, &mut pushes).await {
                    Ok(()) => return,
                    Err(e) => e,
                }
            }
            Err(e) => e.to_string(),
        };
        let Some(strong) = shared.upgrade() else {
            return;
        };
        strong.down(&error);
        drop(strong);
        // Wait out the backoff, dropping (and counting) what is published
        // meanwhile: delivery across nodes is at most once.
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                message = queue.recv() => match (message, shared.upgrade()) {
                    (Some(_), Some(shared)) => shared.failed(1),
                    _ => return,
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life.
struct Session {
    shared: Weak<Shared>,
    /// Signalled when the wanted channels change.
    wake: std::sync::Arc<tokio::sync::Notify>,
    connection: MultiplexedConnection,
    /// Channels this connection is subscribed to.
    subscribed: HashSet<String>,
    /// Other nodes' presence entries found expired: deleted next time.
    stale: Vec<(String, String)>,
    last_refresh: Instant,
}

/// Why a session ended: the error, for the log; Ok when the backplane is
/// gone.
type Ended = Result<(), String>;

impl Session {
    async fn serve(
        &mut self,
        queue: &mut mpsc::Receiver<Outgoing>,
        pushes: &mut mpsc::UnboundedReceiver<PushInfo>,
    ) -> Ended {
        let mut presence = tokio::time::interval(PRESENCE_PERIOD);
        presence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let wake = self.wake.clone();
        let mut sync = true;
        loop {
            if sync {
                let Some(shared) = self.shared.upgrade() else {
                    return Ok(());
                };
                self.subscribe(&shared).await?;
                sync = false;
            }
            tokio::select! {
                biased;
                push = pushes.recv() => self.push(push)?,
                first = queue.recv() => match first {
                    Some(first) => self.publish(first, queue).await?,
                    None => return Ok(()),
                },
                _ = wake.notified() => sync = true,
                _ = presence.tick() => self.presence().await?,
            }
        }
    }

    /// Brings the subscriptions to the channels with local subscribers.
    async fn subscribe(&mut self, shared: &Shared) -> Ended {
        let (join, leave) = {
            let state = shared.lock();
            let join: Vec<String> = state
                .interests
                .keys()
                .filter(|c| !self.subscribed.contains(*c))
                .cloned()
                .collect();
            let leave: Vec<String> = self
                .subscribed
                .iter()
                .filter(|c| !state.interests.contains_key(*c))
                .cloned()
                .collect();
            (join, leave)
        };
        for channel in join {
            // One channel per command: its `ssubscribe` push is the reply.
            let command = redis::cmd("SSUBSCRIBE").arg(&channel).to_owned();
            self.connection
                .req_packed_command(&command)
                .await
                .map_err(|e| e.to_string())?;
            self.subscribed.insert(channel);
        }
        for channel in leave {
            // The connection passes a `sunsubscribe` push to the push
            // sender without taking it for a reply (redis-rs treats only
            // its own unsubscribe calls as awaiting one): the PING after
            // it is the reply waited for.
            let mut pipeline = redis::pipe();
            pipeline.cmd("SUNSUBSCRIBE").arg(&channel).cmd("PING");
            self.connection
                .req_packed_commands(&pipeline, 0, 1)
                .await
                .map_err(|e| e.to_string())?;
            self.subscribed.remove(&channel);
        }
        if let Some(shared) = self.shared.upgrade() {
            shared.lock().subscribed = self.subscribed.len();
        }
        Ok(())
    }

    /// A push from Redis: a message on a subscribed channel, or the end of
    /// the connection.
    fn push(&mut self, push: Option<PushInfo>) -> Ended {
        let Some(push) = push else {
            return Err("connection closed".into());
        };
        match push.kind {
            PushKind::Disconnection => Err("connection lost".into()),
            PushKind::SMessage => {
                let mut data = push.data.into_iter();
                if let (Some(Value::BulkString(channel)), Some(Value::BulkString(message))) =
                    (data.next(), data.next())
                    && let Some(shared) = self.shared.upgrade()
                {
                    shared.deliver(&channel, Bytes::from(message));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Sends `first` and whatever else is waiting, in order, in one
    /// pipeline.
    async fn publish(&mut self, first: Outgoing, queue: &mut mpsc::Receiver<Outgoing>) -> Ended {
        let mut pipeline = redis::pipe();
        let mut count: u64 = 1;
        pipeline
            .cmd("SPUBLISH")
            .arg(first.channel)
            .arg(&first.message[..])
            .ignore();
        while count < BATCH as u64 {
            let Ok(next) = queue.try_recv() else { break };
            pipeline
                .cmd("SPUBLISH")
                .arg(next.channel)
                .arg(&next.message[..])
                .ignore();
            count += 1;
        }
        let result: RedisResult<()> = pipeline.exec_async(&mut self.connection).await;
        let Some(shared) = self.shared.upgrade() else {
            return Ok(());
        };
        match result {
            Ok(()) => {
                shared
                    .counters
                    .published
                    .fetch_add(count, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                shared.failed(count);
                Err(e.to_string())
            }
        }
    }

    /// Writes this node's changed counts (all of them every
    /// PRESENCE_REFRESH) and reads the other nodes' for the tenants in use.
    async fn presence(&mut self) -> Ended {
        let Some(shared) = self.shared.upgrade() else {
            return Ok(());
        };
        let now = now_ms();
        let expires = now + PRESENCE_TTL.as_millis() as u64;
        let mut pipeline = redis::pipe();
        let readers: Vec<_> = {
            let mut state = shared.lock();
            let refresh = self.last_refresh.elapsed() >= PRESENCE_REFRESH;
            if refresh {
                self.last_refresh = Instant::now();
                let all: Vec<_> = state
                    .interests
                    .values()
                    .map(|i| (i.tenant.clone(), i.topic.clone()))
                    .collect();
                state.dirty.extend(all);
            }
            let mut touched = HashSet::new();
            for (tenant, topic) in state.dirty.drain().collect::<Vec<_>>() {
                let key = wire::presence_key(&tenant);
                let field = wire::presence_field(shared.node, &topic);
                match state.interests.get(&wire::channel(&tenant, &topic)) {
                    Some(interest) => pipeline
                        .hset(&key, field, wire::presence_value(interest.count, expires))
                        .ignore(),
                    None => pipeline.hdel(&key, field).ignore(),
                };
                touched.insert(key);
            }
            for key in touched {
                pipeline
                    .pexpire(key, 2 * PRESENCE_TTL.as_millis() as i64)
                    .ignore();
            }
            for (key, field) in self.stale.drain(..) {
                pipeline.hdel(key, field).ignore();
            }
            state.asked.retain(|_, at| at.elapsed() < ASKED_FOR);
            let mut tenants: HashSet<_> =
                state.interests.values().map(|i| i.tenant.clone()).collect();
            tenants.extend(state.asked.keys().cloned());
            // Counts of tenants no longer read are no longer known.
            state.remote.retain(|tenant, _| tenants.contains(tenant));
            tenants.into_iter().collect()
        };
        drop(shared);
        for tenant in &readers {
            pipeline.hgetall(wire::presence_key(tenant));
        }
        if pipeline.is_empty() {
            return Ok(());
        }
        let result: RedisResult<Vec<HashMap<String, String>>> =
            pipeline.query_async(&mut self.connection).await;
        let hashes = result.map_err(|e| e.to_string())?;
        let Some(shared) = self.shared.upgrade() else {
            return Ok(());
        };
        let mut counts = Vec::with_capacity(readers.len());
        for (tenant, hash) in readers.into_iter().zip(hashes) {
            let key = wire::presence_key(&tenant);
            let mut topics: HashMap<String, u64> = HashMap::new();
            for (field, value) in &hash {
                match wire::parse_presence(field, value) {
                    Some(entry) if entry.expires_ms < now => {
                        self.stale.push((key.clone(), field.clone()));
                    }
                    Some(entry) if entry.node != shared.node && entry.count > 0 => {
                        *topics.entry(entry.topic.to_owned()).or_default() += entry.count;
                    }
                    _ => {}
                }
            }
            counts.push((tenant, topics));
        }
        shared.lock().remote.extend(counts);
        Ok(())
    }
}
