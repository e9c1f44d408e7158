//! The open client connections, as the management API and metrics see them.
//!
//! A connection registers itself once `connection.open` succeeds and unregisters when it ends.
//! What it publishes here is either fixed at registration (peer, user, vhost, client
//! properties) or counted with relaxed atomics by the connection's own task (uncontended, so
//! the hot path pays a few nanoseconds); everything else is asked of the connection task
//! through its control channel, off the hot path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot};
use warren_protocol::{FieldTable, ShortStr};

use crate::ConnectionId;

/// Message counters of one connection (or, in [`ConnectionRegistry::totals`], of all of them).
#[derive(Default, Debug)]
pub struct ConnectionStats {
    pub recv_oct: AtomicU64,
    pub recv_cnt: AtomicU64,
    pub send_oct: AtomicU64,
    pub send_cnt: AtomicU64,
    /// basic.publish received (RabbitMQ's `publish`, `messages_received_total`).
    pub published: AtomicU64,
    /// Publishes routed to at least one queue.
    pub routed: AtomicU64,
    pub unroutable_dropped: AtomicU64,
    pub unroutable_returned: AtomicU64,
    pub confirmed: AtomicU64,
    /// basic.deliver sent, with and without ack.
    pub delivered: AtomicU64,
    pub delivered_no_ack: AtomicU64,
    /// basic.get-ok sent, with and without ack.
    pub got: AtomicU64,
    pub got_no_ack: AtomicU64,
    pub redelivered: AtomicU64,
    pub acked: AtomicU64,
}

/// A plain copy of [`ConnectionStats`].
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub recv_oct: u64,
    pub recv_cnt: u64,
    pub send_oct: u64,
    pub send_cnt: u64,
    pub published: u64,
    pub routed: u64,
    pub unroutable_dropped: u64,
    pub unroutable_returned: u64,
    pub confirmed: u64,
    pub delivered: u64,
    pub delivered_no_ack: u64,
    pub got: u64,
    pub got_no_ack: u64,
    pub redelivered: u64,
    pub acked: u64,
}

macro_rules! stats_fields {
    ($m:ident) => {
        $m!(
            recv_oct,
            recv_cnt,
            send_oct,
            send_cnt,
            published,
            routed,
            unroutable_dropped,
            unroutable_returned,
            confirmed,
            delivered,
            delivered_no_ack,
            got,
            got_no_ack,
            redelivered,
            acked
        )
    };
}

impl ConnectionStats {
    /// Adds `n` to a counter. Only the owning connection task writes, so relaxed is enough.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        macro_rules! copy {
            ($($f:ident),*) => { StatsSnapshot { $($f: self.$f.load(Ordering::Relaxed)),* } };
        }
        stats_fields!(copy)
    }

    fn accumulate(&self, s: &StatsSnapshot) {
        macro_rules! add {
            ($($f:ident),*) => {{ $(self.$f.fetch_add(s.$f, Ordering::Relaxed);)* }};
        }
        stats_fields!(add)
    }
}

impl std::ops::AddAssign for StatsSnapshot {
    fn add_assign(&mut self, o: StatsSnapshot) {
        macro_rules! add {
            ($($f:ident),*) => {{ $(self.$f += o.$f;)* }};
        }
        stats_fields!(add)
    }
}

/// What the connection's client said about itself in connection.start-ok.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub properties: FieldTable,
    pub auth_mechanism: String,
}

/// One consumer as a channel knows it.
#[derive(Clone, Debug)]
pub struct ConsumerSnapshot {
    pub tag: ShortStr,
    pub queue: ShortStr,
    pub ack_required: bool,
    pub prefetch_count: u32,
    pub exclusive: bool,
    pub arguments: FieldTable,
    pub activity: ConsumerActivity,
}

/// Whether a consumer is delivered to, as the management API's `activity_status` says it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConsumerActivity {
    /// An ordinary consumer.
    #[default]
    Up,
    /// The active consumer of a single-active-consumer queue.
    SingleActive,
    /// A consumer of a single-active-consumer queue waiting for the active one to go.
    Waiting,
}

impl ConsumerActivity {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerActivity::Up => "up",
            ConsumerActivity::SingleActive => "single_active",
            ConsumerActivity::Waiting => "waiting",
        }
    }

    pub fn is_active(self) -> bool {
        self != ConsumerActivity::Waiting
    }
}

/// One channel's state, answered by its connection on request.
#[derive(Clone, Debug, Default)]
pub struct ChannelSnapshot {
    pub number: u16,
    pub prefetch_count: u32,
    pub global_prefetch_count: u32,
    pub messages_unacknowledged: u32,
    pub confirm: bool,
    pub transactional: bool,
    pub consumers: Vec<ConsumerSnapshot>,
    pub published: u64,
    pub delivered: u64,
    pub got: u64,
    pub acked: u64,
    pub redelivered: u64,
}

/// Requests to a connection task from outside it.
pub enum Control {
    /// Close with 320 CONNECTION_FORCED and this reason.
    Close { reason: String },
    /// Describe the open channels.
    Channels(oneshot::Sender<Vec<ChannelSnapshot>>),
}

pub struct ConnectionInfo {
    pub id: ConnectionId,
    /// RabbitMQ's connection name: `peer -> local`.
    pub name: String,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub user: String,
    pub vhost: String,
    /// Milliseconds since the Unix epoch.
    pub connected_at: u64,
    pub client: ClientInfo,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    pub tls: Option<TlsDetails>,
    pub channels: AtomicU32,
    pub stats: Arc<ConnectionStats>,
    control: mpsc::UnboundedSender<Control>,
}

/// A TLS connection's session, as the management API shows it (`ssl_protocol`,
/// `peer_cert_subject`...).
#[derive(Clone, Debug, Default)]
pub struct TlsDetails {
    /// `tlsv1.3` or `tlsv1.2`.
    pub protocol: String,
    /// The cipher suite as Erlang's ssl splits it: key exchange, cipher, hash.
    pub key_exchange: String,
    pub cipher: String,
    pub hash: String,
    /// The client's verified certificate, if it presented one.
    pub peer_cert: Option<PeerCertDetails>,
}

#[derive(Clone, Debug, Default)]
pub struct PeerCertDetails {
    pub subject: String,
    pub issuer: String,
    pub validity: String,
}

/// What a connection hands over to be registered.
pub struct NewConnection {
    pub id: ConnectionId,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub user: String,
    pub vhost: String,
    pub client: ClientInfo,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    pub tls: Option<TlsDetails>,
    pub stats: Arc<ConnectionStats>,
    pub control: mpsc::UnboundedSender<Control>,
}

/// RabbitMQ writes IPv4-mapped and plain addresses without brackets: `127.0.0.1:5672`.
fn show_addr(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => format!("{v4}:{}", a.port()),
            None => a.to_string(),
        },
    }
}

pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl ConnectionInfo {
    /// Asks the connection to close with 320 CONNECTION_FORCED; false if it is already gone.
    pub fn close(&self, reason: impl Into<String>) -> bool {
        self.control
            .send(Control::Close {
                reason: reason.into(),
            })
            .is_ok()
    }

    /// Asks the connection to describe its channels; None if it ended meanwhile.
    pub fn request_channels(&self) -> Option<oneshot::Receiver<Vec<ChannelSnapshot>>> {
        let (tx, rx) = oneshot::channel();
        self.control.send(Control::Channels(tx)).ok()?;
        Some(rx)
    }
}

/// Every open connection, by id; plus the counters of those that closed, so global totals
/// never go backwards.
#[derive(Default)]
pub struct ConnectionRegistry {
    connections: RwLock<BTreeMap<ConnectionId, Arc<ConnectionInfo>>>,
    closed: ConnectionStats,
    opened_total: AtomicU64,
    closed_total: AtomicU64,
    channels_opened_total: AtomicU64,
    channels_closed_total: AtomicU64,
}

impl ConnectionRegistry {
    pub fn register(&self, c: NewConnection) -> Arc<ConnectionInfo> {
        let info = Arc::new(ConnectionInfo {
            id: c.id,
            name: format!("{} -> {}", show_addr(&c.peer), show_addr(&c.local)),
            peer: c.peer,
            local: c.local,
            user: c.user,
            vhost: c.vhost,
            connected_at: now_millis(),
            client: c.client,
            frame_max: c.frame_max,
            channel_max: c.channel_max,
            heartbeat: c.heartbeat,
            tls: c.tls,
            channels: AtomicU32::new(0),
            stats: c.stats,
            control: c.control,
        });
        self.connections.write().insert(c.id, info.clone());
        self.opened_total.fetch_add(1, Ordering::Relaxed);
        info
    }

    pub fn unregister(&self, id: ConnectionId) {
        if let Some(info) = self.connections.write().remove(&id) {
            self.closed.accumulate(&info.stats.snapshot());
            self.closed_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn channel_opened(&self, info: &ConnectionInfo) {
        info.channels.fetch_add(1, Ordering::Relaxed);
        self.channels_opened_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn channels_closed(&self, info: &ConnectionInfo, n: u32) {
        if n == 0 {
            return;
        }
        let _ = info
            .channels
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
        self.channels_closed_total
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn get(&self, id: ConnectionId) -> Option<Arc<ConnectionInfo>> {
        self.connections.read().get(&id).cloned()
    }

    pub fn by_name(&self, name: &str) -> Option<Arc<ConnectionInfo>> {
        self.connections
            .read()
            .values()
            .find(|c| c.name == name)
            .cloned()
    }

    /// The open connections, oldest first.
    pub fn list(&self) -> Vec<Arc<ConnectionInfo>> {
        self.connections.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.connections.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn channel_count(&self) -> u64 {
        self.connections
            .read()
            .values()
            .map(|c| c.channels.load(Ordering::Relaxed) as u64)
            .sum()
    }

    /// Closes every connection to `vhost` (it is being deleted).
    pub fn close_vhost(&self, vhost: &str, reason: &str) -> usize {
        let victims: Vec<Arc<ConnectionInfo>> = self
            .connections
            .read()
            .values()
            .filter(|c| c.vhost == vhost)
            .cloned()
            .collect();
        victims.iter().filter(|c| c.close(reason)).count()
    }

    /// Counters over the broker's lifetime: open connections plus closed ones.
    pub fn totals(&self) -> StatsSnapshot {
        let mut total = self.closed.snapshot();
        for c in self.connections.read().values() {
            total += c.stats.snapshot();
        }
        total
    }

    /// (connections opened, connections closed, channels opened, channels closed).
    pub fn churn(&self) -> (u64, u64, u64, u64) {
        (
            self.opened_total.load(Ordering::Relaxed),
            self.closed_total.load(Ordering::Relaxed),
            self.channels_opened_total.load(Ordering::Relaxed),
            self.channels_closed_total.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_conn(id: u64, vhost: &str) -> (NewConnection, mpsc::UnboundedReceiver<Control>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let c = NewConnection {
            id: ConnectionId(id),
            peer: "127.0.0.1:40000".parse().unwrap(),
            local: "[::ffff:127.0.0.1]:5672".parse().unwrap(),
            user: "guest".into(),
            vhost: vhost.into(),
            client: ClientInfo::default(),
            frame_max: 131072,
            channel_max: 2047,
            heartbeat: 60,
            tls: None,
            stats: Arc::default(),
            control: tx,
        };
        (c, rx)
    }

    #[test]
    fn names_totals_and_vhost_closing() {
        let reg = ConnectionRegistry::default();
        let (a, mut rx_a) = new_conn(1, "/");
        let (b, mut rx_b) = new_conn(2, "other");
        let a = reg.register(a);
        reg.register(b);
        assert_eq!(a.name, "127.0.0.1:40000 -> 127.0.0.1:5672");
        assert!(reg.by_name(&a.name).is_some());
        ConnectionStats::add(&a.stats.published, 3);
        assert_eq!(reg.totals().published, 3);
        reg.unregister(ConnectionId(1));
        assert_eq!(reg.totals().published, 3, "closed connections still count");
        assert_eq!(reg.len(), 1);

        assert_eq!(reg.close_vhost("other", "vhost is deleted"), 1);
        assert!(
            matches!(rx_b.try_recv(), Ok(Control::Close { reason }) if reason == "vhost is deleted")
        );
        assert!(rx_a.try_recv().is_err());
    }
}
