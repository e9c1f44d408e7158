//! One client connection: a task that owns the socket, the handshake, frame dispatch,
//! heartbeats, the channels, and the deliveries queues send to it.
//!
//! Each turn of the loop reads whatever the socket has, handles every complete frame in it,
//! takes whatever deliveries queues sent meanwhile, and writes all output in one write.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, info_span, warn, Instrument};
use warren_broker::alarms::AlarmState;
use warren_broker::auth::User;
use warren_broker::registry::{
    ClientInfo, ConnectionInfo, ConnectionStats, Control, NewConnection,
};
use warren_broker::{AmqpError, Broker, ChannelOutbox, ConnectionId, Outbound, ReplyCode, VHost};
use warren_protocol::constants::FRAME_MIN_SIZE;
use warren_protocol::*;

use crate::access::AccessCheck;
use crate::channel::{Channel, Ctx, WrittenDeliveries};
use crate::tls::{TlsServer, TlsSession};
use crate::writer::Writer;
use crate::ServerConfig;

/// A connection's clock: heartbeats, timeouts and upkeep are checked once per tick.
const TICK: Duration = Duration::from_secs(1);
/// How long to wait for close-ok after sending connection.close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Read buffer growth step of a busy connection: large enough that a publisher is read in few
/// syscalls.
const READ_CHUNK: usize = 64 * 1024;
/// The read buffer of a quiet connection: room for the handshake, heartbeats and small
/// methods. Thousands of idle connections must not hold 64 KiB each (RSS per idle connection
/// is a figure users compare); a read that fills it moves the connection to `READ_CHUNK`.
const READ_QUIET: usize = 2 * 1024;
/// Output buffers larger than this are given back when a connection falls quiet.
const WRITE_QUIET: usize = 4 * 1024;
/// Deliveries taken from the outbox per turn before output is written, so one busy queue
/// cannot delay the connection's reads indefinitely.
const DELIVERIES_PER_TURN: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitStartOk,
    AwaitTuneOk,
    AwaitOpen,
    Open,
    /// We sent connection.close and wait for close-ok.
    Closing,
    Done,
}

/// Why the loop stopped reading frames.
enum Stop {
    /// Send connection.close with this error (class and method that caused it).
    Close(AmqpError, u16, u16),
    /// Drop the socket without further ado (EOF, I/O error, protocol header mismatch).
    Abort(String),
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::Abort(e.to_string())
    }
}

#[derive(Default, Clone, Copy)]
struct ClientCapabilities {
    consumer_cancel_notify: bool,
    authentication_failure_close: bool,
    connection_blocked: bool,
}

struct Connection {
    id: ConnectionId,
    peer: SocketAddr,
    local: SocketAddr,
    /// From connection.start-ok, kept for the registry.
    client: ClientInfo,
    stats: Arc<ConnectionStats>,
    /// Our entry in the broker's connection registry, once open.
    info: Option<Arc<ConnectionInfo>>,
    /// Requests from outside (the management API): close, describe channels.
    control_tx: mpsc::UnboundedSender<Control>,
    control_rx: mpsc::UnboundedReceiver<Control>,
    broker: Arc<Broker>,
    config: Arc<ServerConfig>,
    phase: Phase,
    read_buf: BytesMut,
    /// How much room a read is given: `READ_QUIET` until a read fills it, then `READ_CHUNK`
    /// until the connection has been quiet for a tick (`shed_buffers`).
    read_chunk: usize,
    out: Writer,
    /// Inbound frame size limit (ours before tune-ok, the negotiated one after).
    frame_max: u32,
    channel_max: u16,
    heartbeat: u16,
    /// Seconds of the connection's life, counted by its ticker (the consumer timeout's clock).
    ticks: u64,
    capabilities: ClientCapabilities,
    /// The TLS session, on the AMQPS listener.
    tls: Option<TlsSession>,
    user: Option<User>,
    vhost: Option<Arc<VHost>>,
    access: Option<AccessCheck>,
    channels: foldhash::HashMap<u16, Channel>,
    /// Where queues send this connection's deliveries; made at the first channel.open, since
    /// a channel holds its first block of slots (a few KiB) from the start and an idle
    /// connection needs none.
    outbox_tx: Option<mpsc::UnboundedSender<Outbound>>,
    outbox_rx: Option<mpsc::UnboundedReceiver<Outbound>>,
    /// Group-commit announcements; None when the broker keeps nothing on disk.
    durable_rx: Option<watch::Receiver<u64>>,
    /// Deliveries written this turn: their queues open the consumers' windows again.
    written: WrittenDeliveries,
    /// The client has published; such connections are blocked during resource alarms.
    published: bool,
    /// Blocked by a resource alarm: the socket is not read until it clears.
    blocked: bool,
    last_received: Instant,
    last_sent: Instant,
    closing_since: Option<Instant>,
}

pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<TlsServer>>,
    broker: Arc<Broker>,
    config: Arc<ServerConfig>,
    shutdown: watch::Receiver<bool>,
) {
    let id = broker.next_connection_id();
    let span = info_span!("conn", id = id.0, %peer);
    async move {
        debug!("accepted");
        // The TLS handshake counts against the AMQP handshake's time, as in RabbitMQ.
        let handshake_deadline = Instant::now() + config.handshake_timeout;
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        let mut conn = Connection {
            id,
            peer,
            local: stream.local_addr().unwrap_or(peer),
            client: ClientInfo::default(),
            stats: Arc::default(),
            info: None,
            control_tx,
            control_rx,
            frame_max: config.frame_max,
            channel_max: config.channel_max,
            heartbeat: 0,
            ticks: 0,
            broker,
            config,
            phase: Phase::AwaitStartOk,
            read_buf: BytesMut::with_capacity(READ_QUIET),
            read_chunk: READ_QUIET,
            out: Writer::new(FRAME_MIN_SIZE),
            capabilities: ClientCapabilities::default(),
            tls: None,
            user: None,
            vhost: None,
            access: None,
            channels: foldhash::HashMap::default(),
            outbox_tx: None,
            outbox_rx: None,
            durable_rx: None,
            written: WrittenDeliveries::default(),
            published: false,
            blocked: false,
            last_received: now,
            last_sent: now,
            closing_since: None,
        };
        let result = match tls {
            None => conn.serve(stream, handshake_deadline, shutdown).await,
            Some(tls) => {
                match tokio::time::timeout_at(handshake_deadline, tls.accept(stream)).await {
                    Err(_) => Err("TLS handshake timeout".into()),
                    Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
                    Ok(Ok((stream, session))) => {
                        debug!(%session, "TLS handshake done");
                        conn.tls = Some(session);
                        conn.serve(stream, handshake_deadline, shutdown).await
                    }
                }
            }
        };
        // Dropping the connection releases what it holds (see `Drop`).
        drop(conn);
        match result {
            Ok(()) => debug!("closed"),
            Err(reason) => info!(%reason, "connection ended"),
        }
    }
    .instrument(span)
    .await
}

impl Connection {
    /// The connection's life on its (plain or TLS) stream. Reads and writes never overlap:
    /// output is written at the top of each turn, and a select's handler runs only after its
    /// futures are dropped, so one stream serves both without splitting it.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        mut stream: S,
        handshake_deadline: Instant,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), String> {
        // Protocol header.
        let header_result = tokio::time::timeout_at(handshake_deadline, async {
            while self.read_buf.len() < PROTOCOL_HEADER.len() {
                if stream.read_buf(&mut self.read_buf).await? == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "closed before protocol header",
                    ));
                }
            }
            Ok(())
        })
        .await;
        match header_result {
            Err(_) => return Err("handshake timeout".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(())) => {}
        }
        if &self.read_buf[..8] != PROTOCOL_HEADER {
            // The spec's answer to a header we do not speak: ours, then close.
            let _ = stream.write_all(PROTOCOL_HEADER).await;
            let _ = stream.flush().await;
            return Err(format!("bad protocol header {:?}", &self.read_buf[..8]));
        }
        self.read_buf.advance(8);
        let external = self.external_login().is_some();
        let start = connection_start(&self.broker.cluster_name(), external);
        self.out.method(0, &Method::ConnectionStart(start));

        self.durable_rx = self.broker.durability();
        let mut alarms = self.broker.alarms.subscribe();
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if self.phase != Phase::Closing {
                if let Err(stop) = self.flush_confirms() {
                    self.stop(stop, &mut stream).await?;
                }
            }
            if !self.out.is_empty() {
                stream
                    .write_all(&self.out.buf)
                    .await
                    .map_err(|e| e.to_string())?;
                // TLS buffers records until flushed; on TCP this is free.
                stream.flush().await.map_err(|e| e.to_string())?;
                ConnectionStats::add(&self.stats.send_oct, self.out.buf.len() as u64);
                ConnectionStats::add(&self.stats.send_cnt, 1);
                self.out.buf.clear();
                self.last_sent = Instant::now();
                self.report_written();
            }
            if self.phase == Phase::Done {
                // TLS: close_notify, so the client knows close-ok was the last word.
                let _ = stream.shutdown().await;
                return Ok(());
            }
            if self.read_buf.capacity() - self.read_buf.len() < self.read_chunk / 4 {
                self.read_buf.reserve(self.read_chunk);
            }
            let room = self.read_buf.capacity() - self.read_buf.len();
            let receiving = matches!(self.phase, Phase::Open | Phase::Closing);
            let awaiting_disk = self.channels.values().any(Channel::awaits_durability);
            if self.update_blocked(*alarms.borrow_and_update()) {
                continue; // write the (un)blocked notification first
            }
            let reading = !self.blocked;
            tokio::select! {
                read = stream.read_buf(&mut self.read_buf), if reading => {
                    match read {
                        Ok(0) => return Err("client closed the socket".into()),
                        Ok(n) => {
                            if n == room {
                                self.read_chunk = READ_CHUNK;
                            }
                            ConnectionStats::add(&self.stats.recv_oct, n as u64);
                            ConnectionStats::add(&self.stats.recv_cnt, 1);
                            self.last_received = Instant::now();
                            if let Err(stop) = self.process_frames() {
                                self.stop(stop, &mut stream).await?;
                            }
                        }
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Some(event) = recv_outbound(&mut self.outbox_rx), if receiving => {
                    self.on_outbound(event);
                    for _ in 1..DELIVERIES_PER_TURN {
                        if self.out.wants_flush() {
                            break;
                        }
                        match self.outbox_rx.as_mut().map(|rx| rx.try_recv()) {
                            Some(Ok(event)) => self.on_outbound(event),
                            _ => break,
                        }
                    }
                }
                Some(control) = self.control_rx.recv() => {
                    if let Err(stop) = self.on_control(control) {
                        self.stop(stop, &mut stream).await?;
                    }
                }
                _ = ticker.tick() => {
                    if let Err(stop) = self.on_tick(handshake_deadline) {
                        self.stop(stop, &mut stream).await?;
                    }
                }
                _ = wait_durable(&mut self.durable_rx), if awaiting_disk => {}
                _ = alarms.changed() => {}
                _ = shutdown.changed() => {
                    if *shutdown.borrow() && self.phase != Phase::Closing {
                        let e = AmqpError::new(ReplyCode::ConnectionForced, "broker forced connection closure with reason 'shutdown'");
                        self.stop(Stop::Close(e, 0, 0), &mut stream).await?;
                    }
                }
            }
        }
    }

    /// Gives back the large read and write buffers of a connection that went quiet: a burst of
    /// traffic should not cost its memory for the rest of a long idle life.
    fn shed_buffers(&mut self) {
        if self.read_buf.is_empty() && self.read_buf.capacity() > READ_QUIET {
            self.read_buf = BytesMut::with_capacity(READ_QUIET);
        }
        self.read_chunk = READ_QUIET;
        self.out.shrink_to(WRITE_QUIET);
    }

    /// Blocks a publishing connection while a resource alarm is on (it is then not read, which
    /// is what holds the publisher back), and unblocks it when the alarm clears. Clients that
    /// announced the `connection.blocked` capability are told. Returns whether that changed.
    fn update_blocked(&mut self, alarm: AlarmState) -> bool {
        let block = alarm.any() && self.published && self.phase == Phase::Open;
        if block == self.blocked {
            return false;
        }
        self.blocked = block;
        if block {
            info!(reason = alarm.reason(), "blocking a publishing connection");
            if self.capabilities.connection_blocked {
                let reason = ShortStr::from_static(alarm.reason());
                self.out
                    .method(0, &Method::ConnectionBlocked(ConnectionBlocked { reason }));
            }
        } else {
            info!("unblocking a publishing connection");
            if self.capabilities.connection_blocked {
                self.out
                    .method(0, &Method::ConnectionUnblocked(ConnectionUnblocked));
            }
        }
        true
    }

    /// Turns a stop into connection.close (then waits for close-ok) or an immediate end.
    async fn stop<W: AsyncWrite + Unpin>(
        &mut self,
        stop: Stop,
        writer: &mut W,
    ) -> Result<(), String> {
        match stop {
            Stop::Abort(reason) => {
                if !self.out.is_empty() {
                    let _ = writer.write_all(&self.out.buf).await;
                    let _ = writer.flush().await;
                }
                Err(reason)
            }
            Stop::Close(error, class_id, method_id) => {
                if error.code != ReplyCode::ConnectionForced {
                    warn!(code = error.code.code(), text = %error, "closing connection");
                }
                self.out.method(
                    0,
                    &Method::ConnectionClose(ConnectionClose {
                        reply_code: error.code.code(),
                        reply_text: ShortStr::from(error.reply_text()),
                        class_id,
                        method_id,
                    }),
                );
                self.phase = Phase::Closing;
                self.closing_since = Some(Instant::now());
                // Nothing more will be delivered; hand back what channels hold now.
                self.release_channels();
                Ok(())
            }
        }
    }

    fn on_control(&mut self, control: Control) -> Result<(), Stop> {
        match control {
            Control::Close { reason } if self.phase != Phase::Closing => {
                info!(%reason, "closing connection on request");
                let e = AmqpError::new(ReplyCode::ConnectionForced, reason);
                Err(Stop::Close(e, 0, 0))
            }
            Control::Close { .. } => Ok(()),
            Control::Channels(reply) => {
                let mut channels: Vec<_> = self
                    .channels
                    .values()
                    .filter(|c| !c.closing)
                    .map(Channel::snapshot)
                    .collect();
                channels.sort_by_key(|c| c.number);
                let _ = reply.send(channels);
                Ok(())
            }
        }
    }

    /// Keeps the registry's channel count in step when channels go.
    fn channels_closed(&self, n: usize) {
        if let Some(info) = &self.info {
            self.broker.connections.channels_closed(info, n as u32);
        }
    }

    fn on_tick(&mut self, handshake_deadline: Instant) -> Result<(), Stop> {
        let now = Instant::now();
        self.ticks += 1;
        if now - self.last_received >= TICK && now - self.last_sent >= TICK {
            self.shed_buffers();
        }
        self.check_consumer_timeouts()?;
        match self.phase {
            Phase::AwaitStartOk | Phase::AwaitTuneOk | Phase::AwaitOpen
                if now >= handshake_deadline =>
            {
                return Err(Stop::Abort("handshake timeout".into()));
            }
            Phase::Closing if self.closing_since.is_some_and(|t| now - t > CLOSE_TIMEOUT) => {
                self.phase = Phase::Done;
            }
            _ => {}
        }
        // A blocked connection is not read, so its heartbeats are not seen: as RabbitMQ, do not
        // hold that against it.
        if self.heartbeat > 0 && !self.blocked {
            let interval = Duration::from_secs(self.heartbeat as u64);
            // RabbitMQ's rule: a peer that sent nothing for two intervals is gone.
            if now - self.last_received > interval * 2 {
                return Err(Stop::Abort(format!(
                    "missed heartbeats from client, timeout: {}s",
                    self.heartbeat
                )));
            }
            if now - self.last_sent >= interval / 2 && self.out.is_empty() {
                self.out.heartbeat();
            }
        }
        Ok(())
    }

    /// RabbitMQ's consumer timeout: a channel with an unacknowledged delivery older than its
    /// limit (its queue's `x-consumer-timeout` or policy, else the broker's) is closed with
    /// 406, and its deliveries return to their queues. Measured in ticks (seconds) so that
    /// delivering reads no clock.
    fn check_consumer_timeouts(&mut self) -> Result<(), Stop> {
        let broker_ms = self.config.consumer_timeout.map(|t| t.as_millis() as u64);
        let ticks = self.ticks;
        let timed_out: Vec<(u16, u64)> = self
            .channels
            .iter()
            .filter(|(_, ch)| !ch.closing)
            .filter_map(|(&id, ch)| ch.overdue(ticks, broker_ms).map(|limit| (id, limit)))
            .collect();
        for (id, limit) in timed_out {
            warn!(
                channel = id,
                timeout_ms = limit,
                "a consumer timed out waiting for delivery acknowledgement"
            );
            let e = AmqpError::precondition_failed(format!(
                "delivery acknowledgement on channel {id} timed out. Timeout value used: {limit} ms. \
                 This timeout value can be configured, see consumers doc guide to learn more"
            ));
            self.channel_error(id, e, 0, 0)?;
        }
        Ok(())
    }

    fn process_frames(&mut self) -> Result<(), Stop> {
        loop {
            let frame = match parse_frame(&mut self.read_buf, self.frame_max) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(e) => {
                    // Past a framing error the buffered bytes mean nothing. Dropping them lets
                    // the client's close-ok be read instead of failing on them again (which
                    // sent a second connection.close and never saw the close-ok).
                    self.read_buf.clear();
                    if self.phase == Phase::Closing {
                        return Ok(());
                    }
                    return Err(frame_error(e));
                }
            };
            self.on_frame(frame)?;
            if self.phase == Phase::Done {
                return Ok(());
            }
        }
    }

    fn on_frame(&mut self, frame: Frame) -> Result<(), Stop> {
        if self.phase == Phase::Closing {
            // After connection.close only close-ok (or a crossing close) matters.
            if let Frame::Method { channel: 0, method } = frame {
                match method {
                    Method::ConnectionCloseOk(_) => self.phase = Phase::Done,
                    Method::ConnectionClose(_) => {
                        self.out
                            .method(0, &Method::ConnectionCloseOk(ConnectionCloseOk));
                        self.phase = Phase::Done;
                    }
                    _ => {}
                }
            }
            return Ok(());
        }
        match frame {
            Frame::Heartbeat { channel: 0 } => Ok(()),
            Frame::Heartbeat { .. } => Err(Stop::Close(
                AmqpError::new(
                    ReplyCode::FrameError,
                    "heartbeat frame on a non-zero channel",
                ),
                0,
                0,
            )),
            Frame::Method { channel: 0, method } => self.on_connection_method(method),
            _ if self.phase != Phase::Open => Err(Stop::Close(
                AmqpError::new(
                    ReplyCode::ChannelError,
                    "channel frames before connection.open-ok",
                ),
                0,
                0,
            )),
            Frame::Method { channel, method } => self.on_channel_method(channel, method),
            Frame::Header { channel, header } => {
                self.on_content(channel, |ch, ctx| ch.on_header(header, ctx))
            }
            Frame::Body { channel, payload } => {
                self.on_content(channel, |ch, ctx| ch.on_body(payload, ctx))
            }
        }
    }

    // ---- connection class -----------------------------------------------------------------

    fn on_connection_method(&mut self, method: Method) -> Result<(), Stop> {
        let (class_id, method_id) = method.id();
        let name = method.name();
        let unexpected = |expected: &str| {
            Stop::Close(
                AmqpError::new(
                    ReplyCode::CommandInvalid,
                    format!("expected {expected}, got {name}"),
                ),
                class_id,
                method_id,
            )
        };
        match (self.phase, method) {
            (Phase::AwaitStartOk, Method::ConnectionStartOk(m)) => self.on_start_ok(m),
            (Phase::AwaitStartOk, _) => Err(unexpected("connection.start-ok")),
            (Phase::AwaitTuneOk, Method::ConnectionTuneOk(m)) => self.on_tune_ok(m),
            (Phase::AwaitTuneOk, _) => Err(unexpected("connection.tune-ok")),
            (Phase::AwaitOpen, Method::ConnectionOpen(m)) => self.on_open(m),
            (_, Method::ConnectionClose(m)) => {
                debug!(code = m.reply_code, text = %m.reply_text, "client closed the connection");
                self.release_channels();
                self.out
                    .method(0, &Method::ConnectionCloseOk(ConnectionCloseOk));
                self.phase = Phase::Done;
                Ok(())
            }
            (Phase::Open, Method::ConnectionUpdateSecret(m)) => {
                // As RabbitMQ 3.10 with its internal user database: passwords do not expire,
                // so there is nothing to refresh and the new secret is not checked.
                debug!(reason = %m.reason, "connection.update-secret");
                self.out.method(
                    0,
                    &Method::ConnectionUpdateSecretOk(ConnectionUpdateSecretOk),
                );
                Ok(())
            }
            (Phase::Open, Method::ConnectionBlocked(_) | Method::ConnectionUnblocked(_)) => Ok(()),
            (_, _) => Err(unexpected(&format!(
                "a connection method valid after {}",
                phase_name(self.phase)
            ))),
        }
    }

    fn on_start_ok(&mut self, m: ConnectionStartOk) -> Result<(), Stop> {
        if let Some(FieldValue::Table(caps)) = m.client_properties.get("capabilities") {
            let flag = |name: &str| matches!(caps.get(name), Some(FieldValue::Bool(true)));
            self.capabilities = ClientCapabilities {
                consumer_cancel_notify: flag("consumer_cancel_notify"),
                authentication_failure_close: flag("authentication_failure_close"),
                connection_blocked: flag("connection.blocked"),
            };
        }
        let mechanism = m.mechanism.to_string();
        self.client = ClientInfo {
            properties: m.client_properties,
            auth_mechanism: mechanism.clone(),
        };
        let refused = || {
            AmqpError::access_refused(format!(
                "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
            ))
        };
        let user = if mechanism == "EXTERNAL" {
            // The certificate vouches for the user; there is no password to check. Offered
            // only when a verified certificate names someone (`external_login`).
            let Some(username) = self.external_login() else {
                warn!(
                    "login refused: EXTERNAL without a verified client certificate naming a user"
                );
                return Err(self.auth_failure(refused()));
            };
            let Some(user) = self.broker.access.user(username) else {
                warn!(user = %username, "login refused: EXTERNAL for a user that does not exist");
                return Err(self.auth_failure(refused()));
            };
            user
        } else {
            let credentials = match mechanism.as_str() {
                "PLAIN" => parse_plain(&m.response),
                "AMQPLAIN" => parse_amqplain(&m.response),
                _ => None,
            };
            let Some((username, password)) = credentials else {
                warn!(mechanism = %mechanism, "login refused: unsupported mechanism or malformed response");
                return Err(self.auth_failure(refused()));
            };
            let Some(user) = self.broker.access.authenticate(&username, &password) else {
                warn!(user = %username, "login refused: invalid credentials");
                return Err(self.auth_failure(refused()));
            };
            user
        };
        let username = user.name.clone();
        let loopback = self.peer.ip().to_canonical().is_loopback();
        if !loopback && self.broker.config.loopback_users.contains(&user.name) {
            warn!(user = %username, "login refused: user may only connect via localhost");
            return Err(self.auth_failure(refused()));
        }
        self.user = Some(user);
        self.out.method(
            0,
            &Method::ConnectionTune(ConnectionTune {
                channel_max: self.config.channel_max,
                frame_max: self.config.frame_max,
                heartbeat: self.config.heartbeat,
            }),
        );
        self.phase = Phase::AwaitTuneOk;
        Ok(())
    }

    /// The user a verified client certificate names, for the EXTERNAL mechanism.
    fn external_login(&self) -> Option<&str> {
        self.tls.as_ref()?.login.as_deref()
    }

    /// Clients that announce authentication_failure_close get a connection.close with 403;
    /// older ones only see the socket close, as the spec has it.
    fn auth_failure(&self, error: AmqpError) -> Stop {
        if self.capabilities.authentication_failure_close {
            Stop::Close(error, 10, 11)
        } else {
            Stop::Abort(error.to_string())
        }
    }

    fn on_tune_ok(&mut self, m: ConnectionTuneOk) -> Result<(), Stop> {
        let ours = self.config.frame_max;
        if m.frame_max != 0 && m.frame_max < FRAME_MIN_SIZE {
            let e = AmqpError::new(
                ReplyCode::NotAllowed,
                format!("frame_max={} < {FRAME_MIN_SIZE} min size", m.frame_max),
            );
            return Err(Stop::Close(e, 10, 31));
        }
        if m.frame_max > ours {
            let e = AmqpError::new(
                ReplyCode::NotAllowed,
                format!("frame_max={} > {ours} max size", m.frame_max),
            );
            return Err(Stop::Close(e, 10, 31));
        }
        self.frame_max = if m.frame_max == 0 { ours } else { m.frame_max };
        self.out.frame_max = self.frame_max;
        self.channel_max = match m.channel_max {
            0 => self.config.channel_max,
            n => n.min(self.config.channel_max),
        };
        self.heartbeat = m.heartbeat;
        self.phase = Phase::AwaitOpen;
        Ok(())
    }

    fn on_open(&mut self, m: ConnectionOpen) -> Result<(), Stop> {
        let user = self.user.clone().expect("authenticated before open");
        let vhost_name = m.virtual_host.to_string();
        match self.broker.open_vhost(&user, &vhost_name) {
            Ok(vhost) => {
                self.access = Some(AccessCheck::new(
                    self.broker.clone(),
                    &user.name,
                    &vhost_name,
                ));
                self.vhost = Some(vhost);
                self.phase = Phase::Open;
                self.info = Some(self.broker.connections.register(NewConnection {
                    id: self.id,
                    peer: self.peer,
                    local: self.local,
                    user: user.name.clone(),
                    vhost: vhost_name.clone(),
                    client: std::mem::take(&mut self.client),
                    frame_max: self.frame_max,
                    channel_max: self.channel_max,
                    heartbeat: self.heartbeat,
                    tls: self.tls.as_ref().map(|t| t.details.clone()),
                    stats: self.stats.clone(),
                    control: self.control_tx.clone(),
                }));
                self.out.method(
                    0,
                    &Method::ConnectionOpenOk(ConnectionOpenOk {
                        known_hosts: ShortStr::default(),
                    }),
                );
                info!(user = %user.name, vhost = %vhost_name, "connection open");
                Ok(())
            }
            Err(e) => Err(Stop::Close(e, 10, 40)),
        }
    }

    // ---- channels -------------------------------------------------------------------------

    fn on_channel_method(&mut self, id: u16, method: Method) -> Result<(), Stop> {
        if matches!(method, Method::BasicPublish(_)) {
            self.published = true;
        }
        let (class_id, method_id) = method.id();
        if class_id == 10 {
            let e = AmqpError::new(
                ReplyCode::CommandInvalid,
                format!("{} on channel {id}", method.name()),
            );
            return Err(Stop::Close(e, class_id, method_id));
        }
        if let Method::ChannelOpen(_) = method {
            return self.open_channel(id);
        }
        let Some(channel) = self.channels.get_mut(&id) else {
            let e = AmqpError::new(
                ReplyCode::ChannelError,
                format!("expected 'channel.open' on channel {id}"),
            );
            return Err(Stop::Close(e, class_id, method_id));
        };
        if channel.closing {
            // Until close-ok, only close matters; everything else is dropped.
            match method {
                Method::ChannelCloseOk(_) => {
                    self.channels.remove(&id);
                    self.channels_closed(1);
                }
                Method::ChannelClose(_) => {
                    self.channels.remove(&id);
                    self.channels_closed(1);
                    self.out.method(id, &Method::ChannelCloseOk(ChannelCloseOk));
                }
                _ => {}
            }
            return Ok(());
        }
        if channel.expects_content() {
            let e = AmqpError::new(
                ReplyCode::UnexpectedFrame,
                format!("expected content header for class 60, got non content header frame instead ({})", method.name()),
            );
            return Err(Stop::Close(e, class_id, method_id));
        }
        match method {
            Method::ChannelClose(_) => {
                let mut channel = self.channels.remove(&id).expect("looked up above");
                self.channels_closed(1);
                channel.release(self.vhost.as_ref().expect("open"));
                self.out.method(id, &Method::ChannelCloseOk(ChannelCloseOk));
                Ok(())
            }
            Method::ChannelCloseOk(_) => Ok(()),
            method => {
                let mut ctx = Ctx {
                    connection: self.id,
                    broker: &self.broker,
                    vhost: self.vhost.as_ref().expect("open"),
                    access: self.access.as_mut().expect("open"),
                    out: &mut self.out,
                    tick: self.ticks,
                };
                let result = channel.handle(method, &mut ctx);
                result.or_else(|e| self.channel_error(id, e, class_id, method_id))
            }
        }
    }

    fn on_content(
        &mut self,
        id: u16,
        handle: impl FnOnce(&mut Channel, &mut Ctx) -> Result<(), AmqpError>,
    ) -> Result<(), Stop> {
        let Some(channel) = self.channels.get_mut(&id) else {
            let e = AmqpError::new(
                ReplyCode::ChannelError,
                format!("expected 'channel.open' on channel {id}"),
            );
            return Err(Stop::Close(e, 0, 0));
        };
        if channel.closing {
            return Ok(());
        }
        let mut ctx = Ctx {
            connection: self.id,
            broker: &self.broker,
            vhost: self.vhost.as_ref().expect("open"),
            access: self.access.as_mut().expect("open"),
            out: &mut self.out,
            tick: self.ticks,
        };
        let result = handle(channel, &mut ctx);
        // Content belongs to basic.publish: errors name it.
        result.or_else(|e| self.channel_error(id, e, 60, 40))
    }

    fn open_channel(&mut self, id: u16) -> Result<(), Stop> {
        if id == 0 {
            let e = AmqpError::new(ReplyCode::ChannelError, "channel.open on channel 0");
            return Err(Stop::Close(e, 20, 10));
        }
        // RabbitMQ (rabbit_reader:create_channel) counts open channels rather than checking
        // the number, and refuses with no method named: the same here, so the same clients
        // work, and a connection still holds at most channel_max channels.
        if self.channels.len() >= usize::from(self.channel_max) {
            let e = AmqpError::new(
                ReplyCode::NotAllowed,
                format!(
                    "number of channels opened ({}) has reached the negotiated channel_max ({})",
                    self.channels.len(),
                    self.channel_max
                ),
            );
            return Err(Stop::Close(e, 0, 0));
        }
        if self.channels.contains_key(&id) {
            let e = AmqpError::new(ReplyCode::ChannelError, "second 'channel.open' seen");
            return Err(Stop::Close(e, 20, 10));
        }
        if let Some(info) = &self.info {
            if let Err(e) = self.broker.check_channel_limit(&info.user) {
                return Err(Stop::Close(e, 20, 10));
            }
        }
        let sender = self.outbox_tx.get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            self.outbox_rx = Some(rx);
            tx
        });
        let outbox = ChannelOutbox::new(self.id, id, sender.clone());
        self.channels
            .insert(id, Channel::new(id, outbox, self.stats.clone()));
        if let Some(info) = &self.info {
            self.broker.connections.channel_opened(info);
        }
        self.out.method(
            id,
            &Method::ChannelOpenOk(ChannelOpenOk {
                channel_id: Default::default(),
            }),
        );
        Ok(())
    }

    /// Soft errors close the channel; hard ones the connection.
    fn channel_error(
        &mut self,
        id: u16,
        error: AmqpError,
        class_id: u16,
        method_id: u16,
    ) -> Result<(), Stop> {
        if error.code.closes_connection() {
            return Err(Stop::Close(error, class_id, method_id));
        }
        debug!(channel = id, code = error.code.code(), text = %error, "closing channel");
        if let Some(channel) = self.channels.get_mut(&id) {
            channel.release(self.vhost.as_ref().expect("open"));
            channel.closing = true;
            // Confirms for publishes before the error are still owed, as far as they are safe.
            let durable = self.durable_rx.as_ref().map_or(u64::MAX, |rx| *rx.borrow());
            channel.write_durable_replies(durable, &self.broker, &mut self.out);
        }
        self.out.method(
            id,
            &Method::ChannelClose(ChannelClose {
                reply_code: error.code.code(),
                reply_text: ShortStr::from(error.reply_text()),
                class_id,
                method_id,
            }),
        );
        Ok(())
    }

    // ---- deliveries -----------------------------------------------------------------------

    fn on_outbound(&mut self, event: Outbound) {
        match event {
            Outbound::Deliver(d) => match self.channels.get_mut(&d.channel) {
                Some(channel) => channel.deliver(d, self.ticks, &mut self.out, &mut self.written),
                None => return_unsent(d),
            },
            Outbound::ConsumerCancelled {
                channel,
                consumer_tag,
            } => {
                let known = self
                    .channels
                    .get_mut(&channel)
                    .is_some_and(|ch| ch.consumer_cancelled(&consumer_tag));
                if known && self.capabilities.consumer_cancel_notify {
                    self.out.method(
                        channel,
                        &Method::BasicCancel(BasicCancel {
                            consumer_tag,
                            nowait: true,
                        }),
                    );
                }
            }
        }
    }

    /// Publisher confirms are coalesced: one basic.ack (multiple) per channel per turn, for
    /// the publishes whose group commit (if they needed one) is on disk.
    fn flush_confirms(&mut self) -> Result<(), Stop> {
        let durable = self
            .durable_rx
            .as_mut()
            .map_or(u64::MAX, |rx| *rx.borrow_and_update());
        let mut failed_commit = false;
        for channel in self.channels.values_mut() {
            channel.write_durable_replies(durable, &self.broker, &mut self.out);
            failed_commit |= std::mem::take(&mut channel.commit_failed);
        }
        if failed_commit {
            let e = AmqpError::new(
                ReplyCode::InternalError,
                "a transaction could not be stored: the disk refused its messages",
            );
            return Err(Stop::Close(e, 90, 20));
        }
        Ok(())
    }

    fn report_written(&mut self) {
        self.written.report();
    }

    fn release_channels(&mut self) {
        if let Some(vhost) = &self.vhost {
            for channel in self.channels.values_mut() {
                channel.release(vhost);
                channel.closing = true;
            }
        }
    }

    /// The connection is over: channels give back what they hold, deliveries still on their
    /// way return to their queues, exclusive queues go. Runs once, from `Drop`.
    fn release(&mut self) {
        self.release_channels();
        self.channels_closed(self.channels.len());
        self.channels.clear();
        if self.info.take().is_some() {
            self.broker.connections.unregister(self.id);
        }
        if let Some(outbox) = self.outbox_rx.as_mut() {
            outbox.close();
            while let Ok(event) = outbox.try_recv() {
                if let Outbound::Deliver(d) = event {
                    return_unsent(d);
                }
            }
        }
        if let Some(vhost) = &self.vhost {
            vhost.delete_exclusive_queues(self.id);
        }
    }
}

/// The next delivery for the connection, or never while it has no outbox (no channel yet).
async fn recv_outbound(outbox: &mut Option<mpsc::UnboundedReceiver<Outbound>>) -> Option<Outbound> {
    match outbox {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Releasing on drop rather than at the end of `run` means that even a bug that panics the
/// connection's task gives back its unacked messages, leaves the connection registry, and
/// deletes its exclusive queues: a panic costs the client its connection, never a ghost
/// connection or orphaned messages.
impl Drop for Connection {
    fn drop(&mut self) {
        self.release();
    }
}

/// Resolves when a new durable epoch is announced (never, without a data directory).
async fn wait_durable(rx: &mut Option<watch::Receiver<u64>>) {
    match rx {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

fn return_unsent(d: warren_broker::Delivery) {
    d.queue.restore_unsent(d.consumer_id, d.no_ack, d.item);
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::AwaitStartOk => "connection.start",
        Phase::AwaitTuneOk => "connection.tune",
        Phase::AwaitOpen => "connection.tune-ok",
        Phase::Open => "connection.open",
        Phase::Closing | Phase::Done => "connection.close",
    }
}

/// Maps frame-level decoding failures to RabbitMQ's connection errors.
fn frame_error(e: FrameError) -> Stop {
    let (code, ids) = match &e {
        FrameError::TooLarge { .. } | FrameError::BadFrameEnd(_) | FrameError::UnknownType(_) => {
            (ReplyCode::FrameError, (0, 0))
        }
        FrameError::BadMethod {
            error:
                DecodeError::UnknownMethod {
                    class_id,
                    method_id,
                },
            ..
        } => (ReplyCode::CommandInvalid, (*class_id, *method_id)),
        FrameError::BadMethod { .. } => (ReplyCode::SyntaxError, (0, 0)),
        FrameError::BadHeader { .. } => (ReplyCode::FrameError, (0, 0)),
    };
    Stop::Close(AmqpError::new(code, e.to_string()), ids.0, ids.1)
}

/// PLAIN: `[authzid] NUL authcid NUL password`.
fn parse_plain(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|&b| b == 0);
    let _authzid = parts.next()?;
    let user = parts.next()?;
    let password = parts.next()?;
    Some((
        String::from_utf8(user.to_vec()).ok()?,
        String::from_utf8(password.to_vec()).ok()?,
    ))
}

/// AMQPLAIN: a field table without its length prefix, holding LOGIN and PASSWORD.
fn parse_amqplain(response: &Bytes) -> Option<(String, String)> {
    let mut framed = BytesMut::with_capacity(response.len() + 4);
    framed.extend_from_slice(&(response.len() as u32).to_be_bytes());
    framed.extend_from_slice(response);
    let table = FieldTable::decode_from(&mut framed.freeze()).ok()?;
    let text = |name: &str| {
        table
            .get(name)
            .and_then(FieldValue::as_bytes)
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
    };
    Some((text("LOGIN")?, text("PASSWORD")?))
}

/// `external`: offer EXTERNAL too (a TLS client presented a certificate that names a user).
fn connection_start(cluster_name: &str, external: bool) -> ConnectionStart {
    let mut capabilities = FieldTable::new();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        capabilities.insert(cap, FieldValue::Bool(true));
    }
    let mut props = FieldTable::new();
    props.insert("capabilities", FieldValue::Table(capabilities));
    props.insert("cluster_name", cluster_name);
    props.insert("copyright", "Copyright (c) the Warren developers");
    props.insert(
        "information",
        "Licensed under the MIT or Apache-2.0 license",
    );
    props.insert(
        "platform",
        format!("Rust ({} {})", std::env::consts::OS, std::env::consts::ARCH).as_str(),
    );
    props.insert("product", "Warren");
    props.insert("version", env!("CARGO_PKG_VERSION"));
    ConnectionStart {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: Bytes::from_static(if external {
            b"PLAIN AMQPLAIN EXTERNAL"
        } else {
            b"PLAIN AMQPLAIN"
        }),
        locales: Bytes::from_static(b"en_US"),
    }
}
