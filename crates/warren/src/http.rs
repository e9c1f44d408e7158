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
use warren_http::{AppState, CertificateSource, HttpConfig, Listener, ListenerCertificates};
use warren_server::tls::{NotAfter, TlsServer};

use crate::serve::ServeArgs;
use crate::tls::{HttpsListener, TlsServers};

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

/// Binds the management API on HTTP and HTTPS (each unless off), and metrics (unless its
/// port is 0), and serves them until `stop` turns true.
pub async fn start(
    args: &ServeArgs,
    tls: Option<&TlsServers>,
    broker: Arc<Broker>,
    stop: &watch::Receiver<bool>,
) -> Result<HttpServers, ExitCode> {
    let at = |port: u16| SocketAddr::new(args.bind, port);
    let mut listeners = Vec::new();
    let mut add = |protocol: &'static str, port: Option<u16>, tls: Option<&Arc<TlsServer>>| {
        let port = port.filter(|p| *p != 0)?;
        listeners.push(Listener {
            protocol,
            addr: at(port),
            certificates: tls.map(certificate_source),
        });
        Some(at(port))
    };
    let amqp_tls = tls.map(|t| &t.amqp);
    let http_tls = tls.map(|t| &t.http);
    add("amqp", Some(args.amqp_port), None);
    add("amqp/ssl", args.tls.amqps_port(), amqp_tls);
    let http = add("http", Some(args.http_port), None);
    let https = add("https", args.tls.https_port(), http_tls);
    let metrics = add("http/prometheus", Some(args.prometheus_port), None);
    let metrics_tls = add("https/prometheus", args.tls.prometheus_tls_port, http_tls);

    let state = AppState::new(
        broker,
        HttpConfig {
            listeners,
            consumer_timeout: (args.consumer_timeout > 0)
                .then(|| std::time::Duration::from_millis(args.consumer_timeout)),
            ..HttpConfig::default()
        },
    );
    // The rate sampler runs once, with the first management listener.
    state.spawn_sampler(stop.clone());
    let mut tasks = Vec::new();
    let mut spawn = |what: &'static str, task: ServeTask| {
        tasks.push(tokio::spawn(async move {
            if let Err(e) = task.await {
                error!(error = %e, "{what} failed");
            }
        }));
    };
    if let Some(addr) = http {
        let tcp = bind(addr, "HTTP").await?;
        spawn(
            "management HTTP API",
            Box::pin(warren_http::serve_another(tcp, state.clone(), stop.clone())),
        );
    }
    if let Some(addr) = metrics {
        let tcp = bind(addr, "Prometheus metrics").await?;
        spawn(
            "Prometheus endpoint",
            Box::pin(warren_http::serve_metrics(tcp, state.clone(), stop.clone())),
        );
    }
    if let Some(tls) = tls {
        if let Some(addr) = https {
            let tcp = https_listener(addr, tls, "HTTPS").await?;
            spawn(
                "management HTTPS API",
                Box::pin(warren_http::serve_another(tcp, state.clone(), stop.clone())),
            );
        }
        if let Some(addr) = metrics_tls {
            let tcp = https_listener(addr, tls, "Prometheus metrics over HTTPS").await?;
            spawn(
                "Prometheus HTTPS endpoint",
                Box::pin(warren_http::serve_metrics(tcp, state.clone(), stop.clone())),
            );
        }
    } else if args.tls.prometheus_tls_port.is_some() {
        error!("--prometheus-tls-port needs --tls-cert-file and --tls-key-file");
        return Err(ExitCode::FAILURE);
    }
    Ok(HttpServers { tasks })
}

type ServeTask = std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>;

async fn https_listener(
    addr: SocketAddr,
    tls: &TlsServers,
    what: &str,
) -> Result<HttpsListener, ExitCode> {
    let tcp = bind(addr, what).await?;
    HttpsListener::new(tcp, tls.http.clone()).map_err(|e| {
        error!(%addr, error = %e, "cannot listen for {what}");
        ExitCode::FAILURE
    })
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

/// What the certificate-expiration health check reads of a TLS listener: the files and the
/// validity of the certificates loaded from them (so a SIGHUP reload shows at once).
fn certificate_source(tls: &Arc<TlsServer>) -> CertificateSource {
    let tls = Arc::clone(tls);
    CertificateSource(Arc::new(move || {
        let settings = tls.settings();
        let validity = tls.validity();
        let pairs = |v: Vec<NotAfter>| v.into_iter().map(|t| (t.unix, t.utc)).collect();
        ListenerCertificates {
            cert_file: settings.cert_file.display().to_string(),
            cert_not_after: pairs(validity.cert_not_after),
            ca_file: settings.ca_file.as_ref().map(|f| f.display().to_string()),
            ca_not_after: pairs(validity.ca_not_after),
        }
    }))
}
