//! An in-process Warren for integration tests: a broker, its AMQP listener and the management
//! API on ephemeral loopback ports, on a runtime of its own so blocking test code (HTTP
//! clients, the CLI) can drive it. Used by the tests of crates/http and crates/cli.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::runtime::Runtime;
use tokio::sync::watch;
use warren_broker::{Broker, BrokerConfig};
use warren_http::{AppState, HttpConfig};
use warren_server::ServerConfig;

/// What `start` made. Sending `true` on `stop` (or dropping it and the runtime) ends it.
pub struct Started {
    pub rt: Runtime,
    pub broker: Arc<Broker>,
    pub amqp_port: u16,
    pub http_port: u16,
    pub stop: watch::Sender<bool>,
}

/// Starts a fresh in-memory broker with `server` for AMQP and the HTTP config `http` builds
/// from the two listeners' addresses (AMQP, HTTP). `TEST_LOG=debug` shows the broker's logs.
pub fn start(
    server: ServerConfig,
    http: impl FnOnce(SocketAddr, SocketAddr) -> HttpConfig,
) -> Started {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into()),
        ))
        .with_test_writer()
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a test runtime");
    let broker = Broker::new(BrokerConfig::default());
    let (stop, stop_rx) = watch::channel(false);
    let (amqp_addr, http_addr) = rt.block_on(async {
        let amqp = warren_server::bind("127.0.0.1:0".parse().unwrap())
            .await
            .expect("bind AMQP");
        let amqp_addr = amqp.local_addr().unwrap();
        tokio::spawn(warren_server::serve(
            warren_server::AmqpListener::plain(amqp),
            broker.clone(),
            server,
            stop_rx.clone(),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind HTTP");
        let http_addr = listener.local_addr().unwrap();
        let state = AppState::new(broker.clone(), http(amqp_addr, http_addr));
        tokio::spawn(warren_http::serve(listener, state, stop_rx));
        (amqp_addr, http_addr)
    });
    Started {
        rt,
        broker,
        amqp_port: amqp_addr.port(),
        http_port: http_addr.port(),
        stop,
    }
}
