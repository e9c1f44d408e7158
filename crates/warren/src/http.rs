//! Starting the management HTTP API and the Prometheus endpoint beside the AMQP listener.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, warn};
use warren_broker::Broker;
use warren_http::{AppState, HttpConfig, Listener};

use crate::serve::ServeArgs;

/// How long shutdown waits for HTTP requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

pub struct HttpServers {
    tasks: Vec<JoinHandle<()>>,
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, ExitCode> {
    warren_server::bind(addr).await.map_err(|e| {
        error!(%addr, error = %e, "cannot listen for {what}");
        ExitCode::FAILURE
    })
}

/// Binds the management API (and metrics, unless its port is 0) and serves them until
/// `stop` turns true.
pub async fn start(
    args: &ServeArgs,
    broker: Arc<Broker>,
    stop: &watch::Receiver<bool>,
) -> Result<HttpServers, ExitCode> {
    let http_addr = SocketAddr::new(args.bind, args.http_port);
    let http = bind(http_addr, "HTTP").await?;
    let mut listeners = vec![
        Listener {
            protocol: "amqp",
            addr: SocketAddr::new(args.bind, args.amqp_port),
        },
        Listener {
            protocol: "http",
            addr: http_addr,
        },
    ];
    let metrics = if args.prometheus_port == 0 {
        None
    } else {
        let addr = SocketAddr::new(args.bind, args.prometheus_port);
        listeners.push(Listener {
            protocol: "http/prometheus",
            addr,
        });
        Some(bind(addr, "Prometheus metrics").await?)
    };
    let state = AppState::new(
        broker,
        HttpConfig {
            listeners,
            consumer_timeout: (args.consumer_timeout > 0)
                .then(|| std::time::Duration::from_millis(args.consumer_timeout)),
            ..HttpConfig::default()
        },
    );
    let mut tasks = Vec::new();
    let (s, st) = (stop.clone(), state.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = warren_http::serve(http, st, s).await {
            error!(error = %e, "management HTTP API failed");
        }
    }));
    if let Some(listener) = metrics {
        let s = stop.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = warren_http::serve_metrics(listener, state, s).await {
                error!(error = %e, "Prometheus endpoint failed");
            }
        }));
    }
    Ok(HttpServers { tasks })
}

impl HttpServers {
    /// Waits (a little) for the servers to finish the requests they had.
    pub async fn stopped(self) {
        for task in self.tasks {
            if tokio::time::timeout(DRAIN_TIMEOUT, task).await.is_err() {
                warn!("HTTP requests still running at shutdown");
            }
        }
    }
}
