//! Warren's AMQP 0-9-1 listener: one task per connection owning the socket, the handshake,
//! frame dispatch, heartbeats and per-channel state. Broker work is delegated to
//! `warren-broker`; deliveries come back from queues through the connection's outbox.

mod access;
mod channel;
mod connection;
mod content;
mod unacked;
mod writer;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};
use warren_broker::Broker;

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
    pub handshake_timeout: std::time::Duration,
    /// A delivery left unacknowledged this long closes its channel with 406 (RabbitMQ's
    /// `consumer_timeout`: 30 minutes). None: no limit.
    pub consumer_timeout: Option<std::time::Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            heartbeat: 60,
            frame_max: 131_072,
            channel_max: 2047,
            handshake_timeout: std::time::Duration::from_secs(10),
            consumer_timeout: Some(std::time::Duration::from_secs(30 * 60)),
        }
    }
}

/// Accepts AMQP connections until `shutdown` turns true; then asks every connection to close.
/// The broker's timers (TTLs and whatever else is time-driven) run for as long as it serves.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: ServerConfig,
    shutdown: watch::Receiver<bool>,
) {
    let timers = tokio::spawn(broker.timers.clone().run());
    let config = Arc::new(config);
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let broker = broker.clone();
                    let config = config.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(connection::run(stream, peer, broker, config, shutdown));
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => {
                if *stop.borrow() {
                    break;
                }
            }
        }
    }
    timers.abort();
    info!("AMQP listener stopped");
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
