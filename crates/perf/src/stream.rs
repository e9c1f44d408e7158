//! The socket under a connection: TCP, or TLS over TCP for `amqps://`. Enums rather than boxed
//! trait objects, so that a plain run is the same code it always was: the TLS arm only costs a
//! branch per read and write.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

use crate::args::Endpoint;
use crate::PerfError;

type Tls = TlsStream<TcpStream>;

pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<Tls>),
}

pub enum ReadHalf {
    Tcp(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<Box<Tls>>),
}

pub enum WriteHalf {
    Tcp(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<Box<Tls>>),
}

impl Stream {
    /// Connects to the endpoint, with a TLS handshake when it says `amqps`.
    pub async fn connect(endpoint: &Endpoint) -> Result<Stream, PerfError> {
        let addr = format!("{}:{}", endpoint.host, endpoint.port);
        let connect_error = |source| PerfError::Connect {
            addr: addr.clone(),
            source,
        };
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(connect_error)?;
        tcp.set_nodelay(true)?;
        let Some(tls) = &endpoint.tls else {
            return Ok(Stream::Tcp(tcp));
        };
        let connector = tokio_rustls::TlsConnector::from(client_config(tls.ca_file.as_deref())?);
        let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
            .map_err(|e| PerfError::Config(format!("{}: {e}", endpoint.host)))?;
        let stream = connector.connect(name, tcp).await.map_err(connect_error)?;
        report_session_once(stream.get_ref().1);
        Ok(Stream::Tls(Box::new(stream)))
    }

    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Stream::Tls(s) => {
                let (r, w) = tokio::io::split(s);
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
        }
    }

    pub fn reunite(read: ReadHalf, write: WriteHalf) -> Option<Stream> {
        match (read, write) {
            (ReadHalf::Tcp(r), WriteHalf::Tcp(w)) => r.reunite(w).ok().map(Stream::Tcp),
            (ReadHalf::Tls(r), WriteHalf::Tls(w)) => {
                r.is_pair_of(&w).then(|| Stream::Tls(r.unsplit(w)))
            }
            _ => None,
        }
    }
}

/// Says once per run what the first TLS session negotiated, so that a benchmark's log shows
/// which protocol version and cipher each broker chose.
fn report_session_once(session: &rustls::ClientConnection) {
    static REPORTED: std::sync::Once = std::sync::Once::new();
    REPORTED.call_once(|| {
        let version = session.protocol_version().map(|v| format!("{v:?}"));
        let suite = session
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()));
        eprintln!(
            "warren perf: TLS session {} {}",
            version.as_deref().unwrap_or("?"),
            suite.as_deref().unwrap_or("?")
        );
    });
}

/// Trusts the CA in `ca_file` (PEM) only: a benchmark talks to a broker whose certificate it
/// was given, never to the public web.
fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, PerfError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let ca_file = ca_file
        .ok_or_else(|| PerfError::Config("amqps needs --tls-ca-file (the broker's CA)".into()))?;
    let bad = |e: &dyn std::fmt::Display| {
        PerfError::Config(format!("--tls-ca-file {}: {e}", ca_file.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Forwards the tokio I/O traits to whichever arm an enum holds.
macro_rules! delegate_io {
    ($type:ident: $($arm:ident),+) => {
        impl AsyncRead for $type {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($type::$arm(s) => Pin::new(s).poll_read(cx, buf),)+
                }
            }
        }
    };
    (write $type:ident: $($arm:ident),+) => {
        impl AsyncWrite for $type {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $($type::$arm(s) => Pin::new(s).poll_write(cx, buf),)+
                }
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($type::$arm(s) => Pin::new(s).poll_flush(cx),)+
                }
            }
            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($type::$arm(s) => Pin::new(s).poll_shutdown(cx),)+
                }
            }
        }
    };
}

delegate_io!(Stream: Tcp, Tls);
delegate_io!(write Stream: Tcp, Tls);
delegate_io!(ReadHalf: Tcp, Tls);
delegate_io!(write WriteHalf: Tcp, Tls);
