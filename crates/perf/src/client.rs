//! A minimal AMQP 0-9-1 client connection: the handshake, synchronous methods for setting
//! things up, and a graceful close. The hot loops (producer, consumer) split the socket and
//! drive it themselves.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_protocol::*;

use crate::args::Endpoint;
use crate::stream::{ReadHalf, Stream, WriteHalf};
use crate::PerfError;

/// The largest frame we accept; brokers offer 128 KiB (RabbitMQ) or so.
const OUR_FRAME_MAX: u32 = 128 * 1024;
/// Read buffer size: big enough that a busy consumer drains the socket in few reads.
pub const READ_BUF: usize = 256 * 1024;
/// Each connection uses channel 1 only.
pub const CHANNEL: u16 = 1;
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Connection {
    stream: Stream,
    pub rbuf: BytesMut,
    wbuf: BytesMut,
    pub frame_max: u32,
}

impl Connection {
    /// Connects, logs in with PLAIN, opens the vhost and channel 1. Heartbeats are turned off
    /// (tune-ok with 0), so the hot loops never have to send any.
    pub async fn open(endpoint: &Endpoint, name: &str) -> Result<Connection, PerfError> {
        let stream = Stream::connect(endpoint).await?;
        let mut conn = Connection {
            stream,
            rbuf: BytesMut::with_capacity(READ_BUF),
            wbuf: BytesMut::with_capacity(4096),
            frame_max: OUR_FRAME_MAX,
        };
        let handshake = async {
            conn.stream.write_all(PROTOCOL_HEADER).await?;
            conn.stream.flush().await?;
            let start = match conn.recv_method(0).await? {
                Method::ConnectionStart(s) => s,
                other => return Err(unexpected("connection.start", &other)),
            };
            if !start
                .mechanisms
                .split(|&b| b == b' ')
                .any(|m| m == b"PLAIN")
            {
                return Err(PerfError::Protocol(
                    "the broker does not offer PLAIN authentication".into(),
                ));
            }
            let mut response = BytesMut::new();
            response.put_u8(0);
            response.put_slice(endpoint.user.as_bytes());
            response.put_u8(0);
            response.put_slice(endpoint.password.as_bytes());
            conn.send(
                0,
                &Method::ConnectionStartOk(ConnectionStartOk {
                    client_properties: client_properties(name),
                    mechanism: "PLAIN".into(),
                    response: response.freeze(),
                    locale: "en_US".into(),
                }),
            )
            .await?;
            let tune = match conn.recv_method(0).await {
                Ok(Method::ConnectionTune(t)) => t,
                Ok(other) => return Err(unexpected("connection.tune", &other)),
                // Brokers answer a refused login by closing the socket (older clients).
                Err(PerfError::Eof) => {
                    return Err(PerfError::Protocol(format!(
                    "the broker closed the connection during login (wrong user {:?} or password?)",
                    endpoint.user
                )))
                }
                Err(e) => return Err(e),
            };
            conn.frame_max = match tune.frame_max {
                0 => OUR_FRAME_MAX,
                n => n.min(OUR_FRAME_MAX),
            };
            conn.send(
                0,
                &Method::ConnectionTuneOk(ConnectionTuneOk {
                    channel_max: tune.channel_max,
                    frame_max: conn.frame_max,
                    heartbeat: 0,
                }),
            )
            .await?;
            conn.send(
                0,
                &Method::ConnectionOpen(ConnectionOpen {
                    virtual_host: endpoint.vhost.as_str().into(),
                    capabilities: ShortStr::default(),
                    insist: false,
                }),
            )
            .await?;
            match conn.recv_method(0).await? {
                Method::ConnectionOpenOk(_) => {}
                other => return Err(unexpected("connection.open-ok", &other)),
            }
            conn.rpc(Method::ChannelOpen(ChannelOpen::default()), |m| {
                matches!(m, Method::ChannelOpenOk(_))
            })
            .await?;
            Ok(())
        };
        tokio::time::timeout(Duration::from_secs(15), handshake)
            .await
            .map_err(|_| PerfError::Timeout("in the AMQP handshake"))??;
        Ok(conn)
    }

    /// Sends one method at once.
    pub async fn send(&mut self, channel: u16, method: &Method) -> Result<(), PerfError> {
        self.wbuf.clear();
        encode_method_frame(&mut self.wbuf, channel, method);
        self.stream.write_all(&self.wbuf).await?;
        self.stream.flush().await?;
        Ok(())
    }

    async fn recv_frame(&mut self) -> Result<Frame, PerfError> {
        loop {
            if let Some(frame) = parse_frame(&mut self.rbuf, self.frame_max)? {
                return Ok(frame);
            }
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(PerfError::Eof);
            }
        }
    }

    /// The next method on `channel`, skipping heartbeats; a close from the broker is an error.
    async fn recv_method(&mut self, channel: u16) -> Result<Method, PerfError> {
        loop {
            match self.recv_frame().await? {
                Frame::Method { method, .. } if is_close(&method) => {
                    return Err(self.on_close(method).await);
                }
                Frame::Method { channel: c, method } if c == channel => return Ok(method),
                _ => {}
            }
        }
    }

    /// Sends a method on channel 1 and waits for the reply that `is_reply` accepts.
    pub async fn rpc(
        &mut self,
        method: Method,
        is_reply: impl Fn(&Method) -> bool,
    ) -> Result<Method, PerfError> {
        self.send(CHANNEL, &method).await?;
        loop {
            let reply = self.recv_method(CHANNEL).await?;
            if is_reply(&reply) {
                return Ok(reply);
            }
        }
    }

    /// Answers the broker's close with close-ok and turns it into an error.
    async fn on_close(&mut self, method: Method) -> PerfError {
        let error = close_error(&method);
        let ok = match method {
            Method::ConnectionClose(_) => (0, Method::ConnectionCloseOk(ConnectionCloseOk)),
            _ => (CHANNEL, Method::ChannelCloseOk(ChannelCloseOk)),
        };
        let _ = self.send(ok.0, &ok.1).await;
        error
    }

    /// connection.close, then waits (briefly) for close-ok. Best effort: errors are ignored,
    /// the socket is gone either way.
    pub async fn close(mut self) {
        let close = Method::ConnectionClose(ConnectionClose {
            reply_code: 200,
            reply_text: "Goodbye".into(),
            class_id: 0,
            method_id: 0,
        });
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            self.send(0, &close).await?;
            loop {
                // Deliveries may still be on their way; everything but close-ok is dropped.
                if let Frame::Method {
                    method: Method::ConnectionCloseOk(_) | Method::ConnectionClose(_),
                    ..
                } = self.recv_frame().await?
                {
                    return Ok::<(), PerfError>(());
                }
            }
        })
        .await;
    }

    pub fn into_split(self) -> (ReadHalf, WriteHalf, BytesMut, u32) {
        let (r, w) = self.stream.into_split();
        (r, w, self.rbuf, self.frame_max)
    }

    pub fn reunite(
        read: ReadHalf,
        write: WriteHalf,
        rbuf: BytesMut,
        frame_max: u32,
    ) -> Option<Connection> {
        let stream = Stream::reunite(read, write)?;
        Some(Connection {
            stream,
            rbuf,
            wbuf: BytesMut::with_capacity(256),
            frame_max,
        })
    }
}

pub fn is_close(method: &Method) -> bool {
    matches!(method, Method::ConnectionClose(_) | Method::ChannelClose(_))
}

/// connection.close or channel.close as an error that names the cause.
pub fn close_error(method: &Method) -> PerfError {
    match method {
        Method::ConnectionClose(c) => PerfError::Closed {
            scope: "connection",
            code: c.reply_code,
            text: c.reply_text.to_string(),
            method: method_name(c.class_id, c.method_id),
        },
        Method::ChannelClose(c) => PerfError::Closed {
            scope: "channel",
            code: c.reply_code,
            text: c.reply_text.to_string(),
            method: method_name(c.class_id, c.method_id),
        },
        other => unexpected("a close", other),
    }
}

fn unexpected(wanted: &str, got: &Method) -> PerfError {
    PerfError::Protocol(format!("expected {wanted}, got {}", got.name()))
}

fn client_properties(name: &str) -> FieldTable {
    let mut capabilities = FieldTable::new();
    for cap in [
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
    ] {
        capabilities.insert(cap, FieldValue::Bool(true));
    }
    let mut props = FieldTable::new();
    props.insert("product", "warren-perf");
    props.insert("version", env!("CARGO_PKG_VERSION"));
    props.insert("connection_name", name);
    props.insert("capabilities", FieldValue::Table(capabilities));
    props
}
