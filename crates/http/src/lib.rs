//! Warren's management HTTP API: RabbitMQ's paths, methods, status codes and JSON, so that
//! the tools written for RabbitMQ's management plugin (rabbitmqadmin, Terraform providers,
//! monitoring) work unchanged; plus the web UI at `/` and Prometheus metrics on a listener of
//! their own.
//!
//! One module per resource under `api/`. Handlers read the broker model directly and change
//! it only through its public methods, so whatever those methods do (durability included)
//! applies to changes made here too.

mod api;
mod auth;
mod convert;
mod error;
mod listing;
mod metrics;
mod stats;
mod system;
mod ui;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::serve::{Listener as AcceptLoop, ListenerExt};
use axum::Router;
use tokio::sync::watch;
use tracing::info;
use warren_broker::Broker;

pub use error::{ApiError, ApiResult};

/// The RabbitMQ release whose management API Warren answers like; clients that check
/// `rabbitmq_version` or `management_version` see this.
pub const RABBITMQ_COMPAT_VERSION: &str = "3.10.0";

/// A listener shown in `/api/overview` and `/api/nodes`.
#[derive(Clone, Debug)]
pub struct Listener {
    pub protocol: &'static str,
    pub addr: SocketAddr,
    /// A TLS listener's certificates, for the certificate-expiration health check.
    pub certificates: Option<CertificateSource>,
}

/// The certificates a TLS listener serves as loaded now (they change on SIGHUP).
#[derive(Clone, Debug, Default)]
pub struct ListenerCertificates {
    pub cert_file: String,
    /// Each certificate's notAfter in the certificate file: Unix seconds, and the UTC time
    /// as RabbitMQ prints it (`2027-01-06 11:44:05`).
    pub cert_not_after: Vec<(i64, String)>,
    pub ca_file: Option<String>,
    pub ca_not_after: Vec<(i64, String)>,
}

/// Asks the TLS layer for a listener's current certificates; this crate parses no X.509.
#[derive(Clone)]
pub struct CertificateSource(pub Arc<dyn Fn() -> ListenerCertificates + Send + Sync>);

impl std::fmt::Debug for CertificateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertificateSource")
    }
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub listeners: Vec<Listener>,
    /// How often message rates are sampled (RabbitMQ: 5 s).
    pub stats_interval: Duration,
    /// The AMQP server's consumer timeout, shown with each consumer (None: no limit).
    pub consumer_timeout: Option<Duration>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listeners: Vec::new(),
            stats_interval: Duration::from_secs(5),
            // RabbitMQ 3.10's default.
            consumer_timeout: Some(Duration::from_secs(30 * 60)),
        }
    }
}

/// What every handler shares.
pub struct Shared {
    pub broker: Arc<Broker>,
    pub config: HttpConfig,
    sampler: stats::Sampler,
    started: Instant,
}

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(broker: Arc<Broker>, config: HttpConfig) -> AppState {
        AppState(Arc::new(Shared {
            broker,
            sampler: stats::Sampler::new(config.stats_interval),
            config,
            started: Instant::now(),
        }))
    }

    /// The management API and web UI.
    pub fn router(&self) -> Router {
        api::router()
            .merge(ui::router())
            .layer(axum::middleware::from_fn(ui::no_challenge_for_scripts))
            .with_state(self.clone())
    }

    /// Samples message rates every `stats_interval` until `shutdown` turns true.
    pub fn spawn_sampler(&self, mut shutdown: watch::Receiver<bool>) {
        let state = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(state.sampler.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => state.sampler.sample(&state.broker),
                    _ = shutdown.changed() => if *shutdown.borrow() { break },
                }
            }
        });
    }
}

async fn until_true(mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Serves the management API and the web UI until `shutdown` turns true. Also samples
/// message rates meanwhile.
pub async fn serve<L>(
    listener: L,
    state: AppState,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    L: AcceptLoop<Addr = SocketAddr>,
{
    state.spawn_sampler(shutdown.clone());
    serve_another(listener, state, shutdown).await
}

/// Serves the management API on one more listener (HTTPS beside HTTP) for a state that
/// `serve` already samples.
pub async fn serve_another<L>(
    listener: L,
    state: AppState,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    L: AcceptLoop<Addr = SocketAddr>,
{
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "management HTTP API listening");
    }
    let app = state.router();
    // `tap_io` makes the listener's own address type the connection info, for any listener.
    axum::serve(
        listener.tap_io(|_| ()),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(until_true(shutdown))
    .await
}

/// Serves Prometheus metrics at `/metrics` until `shutdown` turns true.
pub async fn serve_metrics<L>(
    listener: L,
    state: AppState,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    L: AcceptLoop<Addr = SocketAddr>,
{
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "Prometheus metrics listening");
    }
    let app = metrics::router().with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(until_true(shutdown))
        .await
}
