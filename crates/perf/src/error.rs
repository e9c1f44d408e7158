use thiserror::Error;
use warren_protocol::FrameError;

#[derive(Debug, Error)]
pub enum PerfError {
    #[error("{0}")]
    Config(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the broker closed the socket")]
    Eof,
    #[error("bad frame from the broker: {0}")]
    Frame(#[from] FrameError),
    /// connection.close or channel.close from the broker.
    #[error("broker closed the {scope}: {code} {text} (in reply to {method})")]
    Closed {
        scope: &'static str,
        code: u16,
        text: String,
        method: &'static str,
    },
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("timed out {0}")]
    Timeout(&'static str),
}
