//! Running the broker: configuration, wiring, signals.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tokio::sync::watch;
use tracing::{error, info};
use warren_broker::{Broker, BrokerConfig};
use warren_server::{AmqpListener, ServerConfig};

use crate::tls::TlsArgs;

#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// The node's name, as RabbitMQ's `RABBITMQ_NODENAME`: `NAME@HOST`, or a bare `NAME` on
    /// this host (default `warren@HOSTNAME`). The management API, the CLI and the metrics
    /// name the node by it, and it is the cluster name until one is set.
    #[arg(long, env = "WARREN_NODE_NAME", value_parser = parse_node_name)]
    pub node_name: Option<String>,
    /// AMQP listener port (0 turns plain AMQP off, e.g. to serve AMQPS only).
    #[arg(long, env = "WARREN_AMQP_PORT", default_value_t = 5672)]
    pub amqp_port: u16,
    /// Management HTTP API port (0 turns plain HTTP off).
    #[arg(long, env = "WARREN_HTTP_PORT", default_value_t = 15672)]
    pub http_port: u16,
    /// Prometheus metrics port (`/metrics`); 0 turns the endpoint off.
    #[arg(long, env = "WARREN_PROMETHEUS_PORT", default_value_t = 15692)]
    pub prometheus_port: u16,
    /// Address to listen on. The default `::` takes IPv4 connections too (dual stack).
    #[arg(long, env = "WARREN_BIND", default_value = "::")]
    pub bind: IpAddr,
    /// Where definitions and messages are kept; created on first run.
    #[arg(long, env = "WARREN_DATA_DIR", default_value = "./warren-data")]
    pub data_dir: PathBuf,
    /// Heartbeat interval offered to clients, in seconds (0 disables).
    #[arg(long, env = "WARREN_HEARTBEAT", default_value_t = 60)]
    pub heartbeat: u16,
    /// Most channels a connection may open (offered in connection.tune; 1-65535).
    #[arg(long, env = "WARREN_CHANNEL_MAX", default_value_t = 2047,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub channel_max: u16,
    /// Largest frame offered in connection.tune, in bytes (4096 to 131072, RabbitMQ's range).
    #[arg(long, env = "WARREN_FRAME_MAX", default_value_t = 131_072,
          value_parser = clap::value_parser!(u32).range(4096..=131_072))]
    pub frame_max: u32,
    /// Milliseconds a client has from connecting (TLS included) to connection.open.
    #[arg(long, env = "WARREN_HANDSHAKE_TIMEOUT", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub handshake_timeout: u64,
    /// A delivery not acknowledged within this many milliseconds closes its channel with 406
    /// (RabbitMQ's consumer_timeout; default 30 minutes). 0 disables it.
    #[arg(long, env = "WARREN_CONSUMER_TIMEOUT", default_value_t = 1_800_000)]
    pub consumer_timeout: u64,
    /// Let the default user log in from any address, not only loopback.
    #[arg(long, env = "WARREN_ALLOW_REMOTE_GUEST")]
    pub allow_remote_guest: bool,
    /// Memory limit as a fraction of the machine's RAM (RabbitMQ's vm_memory_high_watermark).
    /// Above it publishers are blocked; above half of it queues page new messages to disk.
    #[arg(long, env = "WARREN_MEMORY_HIGH_WATERMARK", default_value_t = 0.4)]
    pub memory_high_watermark: f64,
    /// Absolute memory limit in bytes (overrides --memory-high-watermark).
    #[arg(long, env = "WARREN_MEMORY_LIMIT")]
    pub memory_limit: Option<u64>,
    /// Free disk below which publishers are blocked, in bytes (RabbitMQ: 50 MB).
    #[arg(long, env = "WARREN_DISK_FREE_LIMIT", default_value_t = 50_000_000)]
    pub disk_free_limit: u64,
    /// Log filter, e.g. `info` or `warren_server=debug`.
    #[arg(long, env = "WARREN_LOG", default_value = "info")]
    pub log: String,
    #[command(flatten)]
    pub tls: TlsArgs,
}

pub fn run(args: ServeArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_target(false)
        .init();
    if let Err(e) = std::fs::create_dir_all(&args.data_dir) {
        error!(dir = %args.data_dir.display(), error = %e, "cannot create the data directory");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(args))
}

/// `NAME` or `NAME@HOST`, neither part empty.
fn parse_node_name(given: &str) -> Result<String, String> {
    let mut parts = given.split('@');
    let name = parts.next().unwrap_or_default();
    let host = parts.next();
    if name.is_empty() || host == Some("") || parts.next().is_some() {
        return Err(format!("{given:?} is not NAME or NAME@HOST"));
    }
    Ok(given.to_owned())
}

async fn serve(args: ServeArgs) -> ExitCode {
    let mut config = BrokerConfig {
        node_name: warren_broker::node_name(args.node_name.as_deref()),
        ..BrokerConfig::default()
    };
    if args.allow_remote_guest {
        config.loopback_users.clear();
    }
    let started = std::time::Instant::now();
    let broker = match Broker::open(config, &args.data_dir) {
        Ok(b) => b,
        Err(e) => {
            error!(dir = %args.data_dir.display(), error = %e, "cannot open the data directory");
            return ExitCode::FAILURE;
        }
    };
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovered the data directory"
    );
    let memory_bytes = args.memory_limit.unwrap_or_else(|| {
        let total = crate::monitor::total_memory().unwrap_or(4 << 30);
        (total as f64 * args.memory_high_watermark) as u64
    });
    info!(
        memory_limit = memory_bytes,
        disk_free_limit = args.disk_free_limit,
        open_files = crate::monitor::raise_file_limit(),
        "resource limits"
    );
    let monitor = crate::monitor::spawn(
        broker.clone(),
        crate::monitor::Limits {
            memory_bytes,
            disk_free_bytes: args.disk_free_limit,
            data_dir: args.data_dir.clone(),
        },
    );
    let server_config = ServerConfig {
        heartbeat: args.heartbeat,
        channel_max: args.channel_max,
        frame_max: args.frame_max,
        handshake_timeout: std::time::Duration::from_millis(args.handshake_timeout),
        consumer_timeout: (args.consumer_timeout > 0)
            .then(|| std::time::Duration::from_millis(args.consumer_timeout)),
    };
    let tls = match args.tls.load() {
        Ok(tls) => tls,
        Err(e) => {
            error!(error = %e, "cannot load the TLS configuration");
            return ExitCode::FAILURE;
        }
    };
    let mut listeners = Vec::new();
    let amqp_ports = [
        (Some(args.amqp_port).filter(|p| *p != 0), None),
        (args.tls.amqps_port(), tls.as_ref().map(|t| t.amqp.clone())),
    ];
    for (port, tls) in amqp_ports {
        let Some(port) = port else { continue };
        let addr = SocketAddr::new(args.bind, port);
        let what = if tls.is_some() { "AMQPS" } else { "AMQP" };
        match warren_server::bind(addr).await {
            Ok(tcp) => {
                info!(%addr, "accepting {what} connections");
                listeners.push(AmqpListener { tcp, tls });
            }
            Err(e) => {
                error!(%addr, error = %e, "cannot listen for {what}");
                return ExitCode::FAILURE;
            }
        }
    }
    if listeners.is_empty() {
        error!("no AMQP listener: --amqp-port is 0 and no TLS certificate is configured");
        return ExitCode::FAILURE;
    }
    info!(data_dir = %args.data_dir.display(), version = env!("CARGO_PKG_VERSION"), "Warren is running");
    let (stop_tx, stop_rx) = watch::channel(false);
    let http = match crate::http::start(&args, tls.as_ref(), broker.clone(), &stop_rx).await {
        Ok(servers) => servers,
        Err(code) => return code,
    };
    if let Some(tls) = &tls {
        crate::tls::reload_on_sighup(vec![tls.amqp.clone(), tls.http.clone()]);
    }
    let server = tokio::spawn(warren_server::serve(
        listeners,
        broker.clone(),
        server_config,
        stop_rx,
    ));
    shutdown_signal().await;
    info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = server.await;
    http.stopped().await;
    // Give connections a moment to send their connection.close and hand back deliveries.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    monitor.abort();
    broker.shutdown();
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
