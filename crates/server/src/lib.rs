//! Warren's AMQP 0-9-1 listener: one task per connection owning the socket, the handshake,
//! frame dispatch, heartbeats and per-channel state. Broker work is delegated to
//! `warren-broker`; deliveries come back from queues through the connection's outbox.

mod access;
mod channel;
mod connection;
mod content;
pub mod tls;
mod unacked;
mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};
use warren_broker::Broker;

use crate::tls::TlsServer;

/// Limits offered to clients in connection.tune, and the handshake's patience.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Offered heartbeat interval in seconds (RabbitMQ: 60). 0 disables heartbeats.
    pub heartbeat: u16,
    /// Offered maximum frame size (RabbitMQ: 131072).
    pub frame_max: u32,
    /// Offered maximum channel number (RabbitMQ: 2047).
    pub channel_max: u16,
    /// Time allowed from TCP accept to connection.open (RabbitMQ: 10 s).
    pub handshake_timeout: Duration,
    /// A delivery left unacknowledged this long closes its channel with 406 (RabbitMQ's
    /// `consumer_timeout`: 30 minutes). None: no limit.
    pub consumer_timeout: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            heartbeat: 60,
            frame_max: 131_072,
            channel_max: 2047,
            handshake_timeout: Duration::from_secs(10),
            consumer_timeout: Some(Duration::from_secs(30 * 60)),
        }
    }
}

/// A bound AMQP port: plain, or AMQPS when it has a TLS server.
pub struct AmqpListener {
    pub tcp: TcpListener,
    pub tls: Option<Arc<TlsServer>>,
}

impl AmqpListener {
    pub fn plain(tcp: TcpListener) -> Vec<AmqpListener> {
        vec![AmqpListener { tcp, tls: None }]
    }
}

/// Accepts AMQP connections on every listener until `shutdown` turns true; then asks every
/// connection to close. The broker's timers (TTLs and whatever else is time-driven) run for
/// as long as it serves.
pub async fn serve(
    listeners: Vec<AmqpListener>,
    broker: Arc<Broker>,
    config: ServerConfig,
    shutdown: watch::Receiver<bool>,
) {
    let timers = tokio::spawn(broker.timers.clone().run());
    let config = Arc::new(config);
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            tokio::spawn(accept_loop(
                listener,
                broker.clone(),
                config.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    for task in accepting {
        let _ = task.await;
    }
    timers.abort();
    info!("AMQP listener stopped");
}

/// The longest pause between accept attempts while they fail.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

async fn accept_loop(
    listener: AmqpListener,
    broker: Arc<Broker>,
    config: Arc<ServerConfig>,
    shutdown: watch::Receiver<bool>,
) {
    let mut stop = shutdown.clone();
    let mut backoff = Duration::ZERO;
    loop {
        tokio::select! {
            accepted = listener.tcp.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::ZERO;
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection::run(
                        stream,
                        peer,
                        listener.tls.clone(),
                        broker.clone(),
                        config.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(e) => {
                    // EMFILE/ENFILE (out of file descriptors) and the like: the pending
                    // connection stays in the backlog, so retrying at once would spin. Back
                    // off, doubling up to a second, and say so once per episode.
                    if backoff.is_zero() {
                        warn!(error = %e, "cannot accept connections; backing off until it passes");
                    }
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), ACCEPT_BACKOFF_MAX);
                    tokio::time::sleep(backoff).await;
                }
            },
            _ = stop.changed() => {
                if *stop.borrow() {
                    break;
                }
            }
        }
    }
}

/// Binds a listening socket on `addr` (port 0 picks a free one, as tests do).
///
/// The unspecified IPv6 address `::` listens dual-stack, as RabbitMQ's default `[::]` does, so
/// that clients reach Warren whether `localhost` resolves to ::1 or 127.0.0.1 for them (IPv4
/// peers arrive as mapped addresses, which the rest of Warren canonicalizes). On a machine
/// without IPv6 it falls back to 0.0.0.0.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    if let SocketAddr::V6(v6) = addr {
        if v6.ip().is_unspecified() {
            match bind_dual_stack(addr) {
                Ok(listener) => return Ok(listener),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(e),
                Err(e) => {
                    warn!(error = %e, "cannot listen on [::] (no IPv6?); listening on 0.0.0.0");
                    let v4 = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port());
                    return TcpListener::bind(v4).await;
                }
            }
        }
    }
    TcpListener::bind(addr).await
}

fn bind_dual_stack(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_only_v6(false)?;
    // As tokio's own bind: a restarted broker must not wait out TIME_WAIT on its port.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}
