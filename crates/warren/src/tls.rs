//! TLS configuration from the command line, the management API's HTTPS listener, and the
//! SIGHUP that re-reads certificates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tracing::{debug, error, info, warn};
use warren_server::tls::{LoginFrom, TlsError, TlsServer, TlsSettings, VerifyPeer};

/// How long an HTTPS client has to finish its TLS handshake.
const HTTPS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args, Clone, Debug)]
pub struct TlsArgs {
    /// Server certificate chain (PEM). Setting it turns on AMQPS (5671) and HTTPS (15671).
    #[arg(long, env = "WARREN_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, RSA or EC).
    #[arg(long, env = "WARREN_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to.
    #[arg(long, env = "WARREN_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificates on AMQPS: none, optional (checked if presented) or required.
    #[arg(long, env = "WARREN_TLS_VERIFY_PEER", default_value = "none")]
    pub tls_verify_peer: VerifyPeer,
    /// Which field of a client certificate names the user of an EXTERNAL login:
    /// common_name, distinguished_name, san_dns, san_email or san_uri.
    #[arg(long, env = "WARREN_TLS_LOGIN_FROM", default_value = "common_name")]
    pub tls_login_from: LoginFrom,
    /// AMQPS port (default 5671 when a certificate is configured; 0 turns it off).
    #[arg(long, env = "WARREN_AMQPS_PORT")]
    pub amqps_port: Option<u16>,
    /// Management HTTPS port (default 15671 when a certificate is configured; 0 turns it off).
    #[arg(long, env = "WARREN_HTTPS_PORT")]
    pub https_port: Option<u16>,
    /// Prometheus metrics over HTTPS on this port (RabbitMQ uses 15691); off unless given.
    #[arg(long, env = "WARREN_PROMETHEUS_TLS_PORT")]
    pub prometheus_tls_port: Option<u16>,
}

/// The TLS servers the command line asked for: AMQPS (with the client-certificate policy) and
/// HTTP (management API and metrics: no client certificates, ALPN `http/1.1`).
pub struct TlsServers {
    pub amqp: Arc<TlsServer>,
    pub http: Arc<TlsServer>,
}

impl TlsArgs {
    /// None when no certificate is configured.
    pub fn load(&self) -> Result<Option<TlsServers>, TlsError> {
        let (Some(cert_file), Some(key_file)) = (&self.tls_cert_file, &self.tls_key_file) else {
            return Ok(None);
        };
        let amqp = TlsSettings {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
            ca_file: self.tls_ca_file.clone(),
            verify_peer: self.tls_verify_peer,
            login_from: self.tls_login_from,
            alpn: Vec::new(),
        };
        let http = TlsSettings {
            verify_peer: VerifyPeer::None,
            alpn: vec![b"http/1.1".to_vec()],
            ..amqp.clone()
        };
        Ok(Some(TlsServers {
            amqp: TlsServer::load(amqp)?,
            http: TlsServer::load(http)?,
        }))
    }

    /// The AMQPS port, or None when it is off.
    pub fn amqps_port(&self) -> Option<u16> {
        enabled_port(self.tls_cert_file.is_some(), self.amqps_port, 5671)
    }

    pub fn https_port(&self) -> Option<u16> {
        enabled_port(self.tls_cert_file.is_some(), self.https_port, 15671)
    }
}

fn enabled_port(configured: bool, port: Option<u16>, default: u16) -> Option<u16> {
    match port {
        _ if !configured => None,
        Some(0) => None,
        Some(port) => Some(port),
        None => Some(default),
    }
}

/// Re-reads every TLS server's files on SIGHUP. Connections already open keep their sessions;
/// a file that no longer loads is reported and the old certificate stays in use.
pub fn reload_on_sighup(servers: Vec<Arc<TlsServer>>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGHUP: certificates will not be reloaded");
                return;
            }
        };
        while hangup.recv().await.is_some() {
            for server in &servers {
                let cert = server.settings().cert_file.display();
                match server.reload() {
                    Ok(()) => info!(%cert, "reloaded TLS certificates"),
                    Err(e) => {
                        error!(error = %e, "cannot reload TLS certificates; keeping the old ones")
                    }
                }
            }
        }
    });
}

/// An HTTPS listener for axum: handshakes run in their own tasks so a slow client holds up
/// nobody, and `accept` yields the ones that finished.
pub struct HttpsListener {
    local: SocketAddr,
    done: mpsc::Receiver<(TlsStream<tokio::net::TcpStream>, SocketAddr)>,
}

impl HttpsListener {
    pub fn new(tcp: TcpListener, tls: Arc<TlsServer>) -> std::io::Result<HttpsListener> {
        let local = tcp.local_addr()?;
        let (tx, done) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut backoff = Duration::ZERO;
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => {
                        backoff = Duration::ZERO;
                        accepted
                    }
                    Err(e) => {
                        if backoff.is_zero() {
                            warn!(error = %e, "HTTPS: cannot accept connections; backing off");
                        }
                        backoff =
                            (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HTTPS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok((stream, _))) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "HTTPS handshake failed"),
                        Err(_) => debug!(%peer, "HTTPS handshake timed out"),
                    }
                });
            }
        });
        Ok(HttpsListener { local, done })
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.done.recv().await {
            Some(accepted) => accepted,
            // The accepting task only ends once this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
