//! The harness: a real Warren server on an ephemeral loopback port of the test's own runtime,
//! amqprs clients whose asynchronous events (connection and channel closes, server-sent
//! cancels, publisher confirms, returns) arrive on channels a test can await, and a raw-socket
//! client for what a well-behaved client library cannot send.
//!
//! Every wait is bounded by [`WAIT`], so a missing event fails the test instead of hanging it.

use std::future::Future;
use std::ops::Deref;
use std::time::Duration;

use amqprs::callbacks::{ChannelCallback, ConnectionCallback};
use amqprs::channel::{
    BasicConsumeArguments, BasicGetArguments, BasicPublishArguments, Channel, ConsumerMessage,
    QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::error::Error as ClientError;
use amqprs::{Ack, BasicProperties, Cancel, Close, CloseChannel, Nack, Return};
use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use warren_broker::{Broker, BrokerConfig};
use warren_protocol::{
    encode_method_frame, parse_frame, ChannelClose, ChannelCloseOk, ChannelOpen, ConnectionClose,
    ConnectionCloseOk, ConnectionOpen, ConnectionStart, ConnectionStartOk, ConnectionTune,
    ConnectionTuneOk, FieldTable, FieldValue, Frame, Method, QueueDeclare, ShortStr,
    PROTOCOL_HEADER,
};
use warren_server::ServerConfig;

/// How long any single expected event may take. Generous: the suite runs beside other builds
/// on a small machine; a passing test never waits this long.
pub const WAIT: Duration = Duration::from_secs(5);

/// Awaits `fut`, failing the test with `what` if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

// ---- the server -----------------------------------------------------------------------------

/// A Warren serving on 127.0.0.1:`port` until the test (and its runtime) ends.
pub struct TestServer {
    pub port: u16,
    pub broker: std::sync::Arc<Broker>,
    stop: watch::Sender<bool>,
}

pub async fn start() -> TestServer {
    start_with(ServerConfig::default()).await
}

/// A Warren whose durable state lives in `data_dir`, as the real binary runs.
pub async fn start_persistent(data_dir: &std::path::Path) -> TestServer {
    let broker = Broker::open(BrokerConfig::default(), data_dir).expect("open the data directory");
    serve_broker(broker, ServerConfig::default()).await
}

pub async fn start_with(config: ServerConfig) -> TestServer {
    serve_broker(Broker::new(BrokerConfig::default()), config).await
}

async fn serve_broker(broker: std::sync::Arc<Broker>, config: ServerConfig) -> TestServer {
    let listener = warren_server::bind("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind an ephemeral loopback port");
    let port = listener.local_addr().unwrap().port();
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(warren_server::serve(
        warren_server::AmqpListener::plain(listener),
        broker.clone(),
        config,
        stop_rx,
    ));
    TestServer { port, broker, stop }
}

impl TestServer {
    /// guest/guest on `/`, heartbeats off so an idle test never races a heartbeat timer.
    pub fn args(&self) -> OpenConnectionArguments {
        OpenConnectionArguments::new("127.0.0.1", self.port, "guest", "guest")
            .heartbeat(0)
            .finish()
    }

    pub async fn connect(&self) -> Client {
        self.connect_with(&self.args())
            .await
            .expect("guest logs in to /")
    }

    pub async fn connect_with(
        &self,
        args: &OpenConnectionArguments,
    ) -> Result<Client, ClientError> {
        let conn = within("connection.open-ok", Connection::open(args)).await?;
        let (tx, closes) = mpsc::unbounded_channel();
        conn.register_callback(ConnEvents(tx)).await?;
        Ok(Client { conn, closes })
    }

    /// Asks the server to stop, as SIGTERM does.
    pub fn shut_down(&self) {
        self.stop.send(true).unwrap();
    }
}

// ---- amqprs clients with observable events --------------------------------------------------

/// A connection.close or channel.close the server sent.
#[derive(Debug, Clone)]
pub struct Closed {
    pub code: u16,
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

struct ConnEvents(mpsc::UnboundedSender<Closed>);

#[async_trait]
impl ConnectionCallback for ConnEvents {
    async fn close(&mut self, _: &Connection, close: Close) -> Result<(), ClientError> {
        let _ = self.0.send(Closed {
            code: close.reply_code(),
            text: close.reply_text().clone(),
            class_id: close.class_id(),
            method_id: close.method_id(),
        });
        Ok(())
    }
    async fn blocked(&mut self, _: &Connection, _reason: String) {}
    async fn unblocked(&mut self, _: &Connection) {}
    async fn secret_updated(&mut self, _: &Connection) {}
}

/// What the server sent a channel on its own initiative.
#[derive(Debug)]
pub enum Event {
    Closed(Closed),
    Cancelled(String),
    Ack { tag: u64, multiple: bool },
    Nack { tag: u64, multiple: bool },
    Returned(Returned),
}

#[derive(Debug)]
pub struct Returned {
    pub code: u16,
    pub text: String,
    pub exchange: String,
    pub routing_key: String,
    pub body: String,
}

struct ChanEvents(mpsc::UnboundedSender<Event>);

#[async_trait]
impl ChannelCallback for ChanEvents {
    async fn close(&mut self, _: &Channel, close: CloseChannel) -> Result<(), ClientError> {
        let _ = self.0.send(Event::Closed(Closed {
            code: close.reply_code(),
            text: close.reply_text().clone(),
            class_id: close.class_id(),
            method_id: close.method_id(),
        }));
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, cancel: Cancel) -> Result<(), ClientError> {
        let _ = self.0.send(Event::Cancelled(cancel.consumer_tag().clone()));
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, ClientError> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        let _ = self.0.send(Event::Ack {
            tag: ack.delivery_tag(),
            multiple: ack.mutiple(),
        });
    }
    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        let _ = self.0.send(Event::Nack {
            tag: nack.delivery_tag(),
            multiple: nack.multiple(),
        });
    }
    async fn publish_return(
        &mut self,
        _: &Channel,
        ret: Return,
        _: BasicProperties,
        content: Vec<u8>,
    ) {
        let _ = self.0.send(Event::Returned(Returned {
            code: ret.reply_code(),
            text: ret.reply_text().clone(),
            exchange: ret.exchange().clone(),
            routing_key: ret.routing_key().clone(),
            body: String::from_utf8(content).unwrap(),
        }));
    }
}

pub struct Client {
    pub conn: Connection,
    closes: mpsc::UnboundedReceiver<Closed>,
}

impl Client {
    pub async fn channel(&self) -> Chan {
        let ch = within("channel.open-ok", self.conn.open_channel(None))
            .await
            .expect("channel opens");
        let (tx, events) = mpsc::unbounded_channel();
        ch.register_callback(ChanEvents(tx)).await.unwrap();
        Chan {
            ch,
            events: tokio::sync::Mutex::new(events),
        }
    }

    /// The connection.close the server sends next.
    pub async fn closed_by_server(&mut self) -> Closed {
        within("connection.close from the server", self.closes.recv())
            .await
            .expect("connection callback dropped without a close")
    }

    pub async fn close(self) {
        within("connection.close-ok", self.conn.close())
            .await
            .expect("clean close");
    }
}

/// An amqprs channel plus the events the server sends it. The events sit behind a lock so
/// that every helper takes `&self`: a test can await an event while a request it made on the
/// same channel is still pending.
pub struct Chan {
    pub ch: Channel,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>,
}

impl Deref for Chan {
    type Target = Channel;
    fn deref(&self) -> &Channel {
        &self.ch
    }
}

/// A delivery as a test looks at it.
#[derive(Debug)]
pub struct Msg {
    pub consumer_tag: String,
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub exchange: String,
    pub routing_key: String,
    pub props: BasicProperties,
    pub body: String,
}

impl Msg {
    fn from_consumer(mut m: ConsumerMessage) -> Msg {
        let deliver = m.deliver.take().unwrap();
        Msg {
            consumer_tag: deliver.consumer_tag().clone(),
            delivery_tag: deliver.delivery_tag(),
            redelivered: deliver.redelivered(),
            exchange: deliver.exchange().clone(),
            routing_key: deliver.routing_key().clone(),
            props: m.basic_properties.take().unwrap(),
            body: String::from_utf8(m.content.take().unwrap()).unwrap(),
        }
    }
}

/// A basic.get result.
#[derive(Debug)]
pub struct Got {
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub message_count: u32,
    pub routing_key: String,
    pub body: String,
}

pub struct Consumer {
    pub tag: String,
    rx: mpsc::UnboundedReceiver<ConsumerMessage>,
}

impl Consumer {
    pub async fn next(&mut self) -> Msg {
        let m = within(&format!("a delivery to {}", self.tag), self.rx.recv())
            .await
            .expect("consumer stream ended");
        Msg::from_consumer(m)
    }

    pub async fn take(&mut self, n: usize) -> Vec<Msg> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next().await);
        }
        out
    }

    /// A delivery that already reached the client, if any (never waits).
    pub fn try_next(&mut self) -> Option<Msg> {
        self.rx.try_recv().ok().map(Msg::from_consumer)
    }
}

impl Chan {
    pub async fn next_event(&self) -> Event {
        let mut events = self.events.lock().await;
        within("a channel event", events.recv())
            .await
            .expect("channel callback dropped")
    }

    /// An event that already reached the client, if any (never waits).
    pub fn try_event(&self) -> Option<Event> {
        self.events.try_lock().ok()?.try_recv().ok()
    }

    /// The channel.close the server sends next (other events before it are skipped).
    pub async fn closed_by_server(&self) -> Closed {
        loop {
            if let Event::Closed(c) = self.next_event().await {
                return c;
            }
        }
    }

    /// Runs a request the server should refuse by closing the channel; returns the close.
    pub async fn refused<T: std::fmt::Debug>(
        &self,
        request: impl Future<Output = Result<T, ClientError>>,
    ) -> Closed {
        let result = within("the refused request to end", request).await;
        assert!(result.is_err(), "expected the request to fail: {result:?}");
        self.closed_by_server().await
    }

    /// Declares a non-durable queue (server-named if `name` is empty); returns its name.
    pub async fn declare(&self, name: &str) -> String {
        self.declare_with(QueueDeclareArguments::new(name)).await
    }

    pub async fn declare_with(&self, args: QueueDeclareArguments) -> String {
        let (name, _, _) = within("queue.declare-ok", self.queue_declare(args))
            .await
            .expect("queue.declare")
            .expect("declare-ok (not nowait)");
        name
    }

    /// (ready messages, consumers) by passive declare.
    pub async fn counts(&self, queue: &str) -> (u32, u32) {
        let (_, ready, consumers) = within(
            "passive queue.declare-ok",
            self.queue_declare(QueueDeclareArguments::new(queue).passive(true).finish()),
        )
        .await
        .expect("the queue exists")
        .unwrap();
        (ready, consumers)
    }

    pub async fn publish(&self, exchange: &str, routing_key: &str, body: &str) {
        self.publish_with(
            BasicPublishArguments::new(exchange, routing_key),
            BasicProperties::default(),
            body,
        )
        .await
    }

    pub async fn publish_with(
        &self,
        args: BasicPublishArguments,
        props: BasicProperties,
        body: &str,
    ) {
        within(
            "basic.publish to be sent",
            self.basic_publish(props, body.as_bytes().to_vec(), args),
        )
        .await
        .expect("basic.publish");
    }

    pub async fn get(&self, queue: &str, no_ack: bool) -> Option<Got> {
        let got = within(
            "basic.get-ok or get-empty",
            self.basic_get(BasicGetArguments::new(queue).no_ack(no_ack).finish()),
        )
        .await
        .expect("basic.get");
        got.map(|(ok, _props, body)| Got {
            delivery_tag: ok.delivery_tag(),
            redelivered: ok.redelivered(),
            message_count: ok.message_count(),
            routing_key: ok.routing_key().clone(),
            body: String::from_utf8(body).unwrap(),
        })
    }

    /// Takes every ready message off `queue` (no-ack) and returns the bodies in order.
    pub async fn drain(&self, queue: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        while let Some(got) = self.get(queue, true).await {
            bodies.push(got.body);
        }
        bodies
    }

    pub async fn consume(&self, args: BasicConsumeArguments) -> Consumer {
        let (tag, rx) = within("basic.consume-ok", self.basic_consume_rx(args))
            .await
            .expect("basic.consume");
        Consumer { tag, rx }
    }

    /// A consumer with manual acks (no_ack = false) and a server-generated tag.
    pub async fn consume_acked(&self, queue: &str) -> Consumer {
        self.consume(BasicConsumeArguments::new(queue, "")).await
    }
}

// ---- a raw AMQP client ----------------------------------------------------------------------

/// A client that speaks frames directly, for malformed input and exact wire observations.
pub struct Raw {
    stream: TcpStream,
    buf: BytesMut,
}

pub const PLAIN_GUEST: &[u8] = b"\0guest\0guest";

impl Raw {
    pub async fn connect(port: u16) -> Raw {
        let stream = within("TCP connect", TcpStream::connect(("127.0.0.1", port)))
            .await
            .expect("connect");
        stream.set_nodelay(true).unwrap();
        Raw {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    pub async fn send_method(&mut self, channel: u16, method: Method) {
        let mut out = BytesMut::new();
        encode_method_frame(&mut out, channel, &method);
        self.send(&out).await;
    }

    /// The next frame, or None once the server closed the socket.
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) =
                parse_frame(&mut self.buf, 0).expect("the server sends valid frames")
            {
                return Some(frame);
            }
            let n = within("bytes from the server", self.stream.read_buf(&mut self.buf))
                .await
                .unwrap_or(0); // a reset counts as closed
            if n == 0 {
                return None;
            }
        }
    }

    /// The next method frame, skipping heartbeats.
    pub async fn recv_method(&mut self) -> (u16, Method) {
        loop {
            match self.recv().await {
                Some(Frame::Method { channel, method }) => return (channel, method),
                Some(Frame::Heartbeat { .. }) => continue,
                Some(other) => panic!("expected a method frame, got {other:?}"),
                None => panic!("the server closed the socket while a method was expected"),
            }
        }
    }

    /// Reads until the server closes the socket; fails on anything but heartbeats before that.
    pub async fn expect_eof(&mut self) {
        loop {
            match self.recv().await {
                None => return,
                Some(Frame::Heartbeat { .. }) => continue,
                Some(other) => panic!("expected the socket to close, got {other:?}"),
            }
        }
    }

    /// Every byte the server sends until it closes the socket.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        let mut all = self.buf.split().to_vec();
        within(
            "the server to close the socket",
            self.stream.read_to_end(&mut all),
        )
        .await
        .expect("read");
        all
    }

    /// Protocol header in, connection.start out.
    pub async fn start(port: u16) -> (Raw, ConnectionStart) {
        let mut raw = Raw::connect(port).await;
        raw.send(PROTOCOL_HEADER).await;
        match raw.recv_method().await {
            (0, Method::ConnectionStart(start)) => (raw, start),
            other => panic!("expected connection.start, got {other:?}"),
        }
    }

    /// Sends connection.start-ok announcing authentication_failure_close.
    pub async fn start_ok(&mut self, mechanism: &str, response: &[u8]) {
        let mut caps = FieldTable::new();
        caps.insert("authentication_failure_close", true);
        caps.insert("consumer_cancel_notify", true);
        caps.insert("connection.blocked", true);
        let mut props = FieldTable::new();
        props.insert("product", "warren e2e raw client");
        props.insert("capabilities", FieldValue::Table(caps));
        self.send_method(
            0,
            Method::ConnectionStartOk(ConnectionStartOk {
                client_properties: props,
                mechanism: ShortStr::from(mechanism),
                response: Bytes::copy_from_slice(response),
                locale: ShortStr::from("en_US"),
            }),
        )
        .await;
    }

    /// Logs in as guest, answers tune with `heartbeat`, opens `vhost`: returns what the server
    /// answered connection.open with.
    pub async fn handshake(port: u16, heartbeat: u16, vhost: &str) -> (Raw, Method) {
        let (mut raw, _) = Raw::start(port).await;
        raw.start_ok("PLAIN", PLAIN_GUEST).await;
        let tune = match raw.recv_method().await {
            (0, Method::ConnectionTune(t)) => t,
            other => panic!("expected connection.tune, got {other:?}"),
        };
        let ConnectionTune {
            channel_max,
            frame_max,
            ..
        } = tune;
        raw.send_method(
            0,
            Method::ConnectionTuneOk(ConnectionTuneOk {
                channel_max,
                frame_max,
                heartbeat,
            }),
        )
        .await;
        raw.send_method(
            0,
            Method::ConnectionOpen(ConnectionOpen {
                virtual_host: ShortStr::from(vhost),
                ..Default::default()
            }),
        )
        .await;
        let (_, answer) = raw.recv_method().await;
        (raw, answer)
    }

    /// An open connection (no heartbeats) with channel 1 open.
    pub async fn open(port: u16) -> Raw {
        let (mut raw, answer) = Raw::handshake(port, 0, "/").await;
        assert!(
            matches!(answer, Method::ConnectionOpenOk(_)),
            "expected connection.open-ok, got {answer:?}"
        );
        raw.send_method(1, Method::ChannelOpen(ChannelOpen::default()))
            .await;
        match raw.recv_method().await {
            (1, Method::ChannelOpenOk(_)) => raw,
            other => panic!("expected channel.open-ok, got {other:?}"),
        }
    }

    /// Declares a non-durable queue on `channel` and expects declare-ok.
    pub async fn declare_queue(&mut self, channel: u16, name: &str) {
        self.send_method(
            channel,
            Method::QueueDeclare(QueueDeclare {
                queue: ShortStr::from(name),
                ..Default::default()
            }),
        )
        .await;
        match self.recv_method().await {
            (ch, Method::QueueDeclareOk(_)) if ch == channel => {}
            other => panic!("expected queue.declare-ok, got {other:?}"),
        }
    }

    /// Expects connection.close, answers close-ok and expects the socket to close.
    pub async fn expect_connection_close(&mut self) -> ConnectionClose {
        let close = loop {
            match self.recv_method().await {
                (0, Method::ConnectionClose(c)) => break c,
                // Whatever was in flight before the error may still arrive.
                (ch, m) if ch != 0 => eprintln!("(skipping {m:?} on channel {ch})"),
                other => panic!("expected connection.close, got {other:?}"),
            }
        };
        self.send_method(0, Method::ConnectionCloseOk(ConnectionCloseOk))
            .await;
        self.expect_eof().await;
        close
    }

    /// Expects channel.close on `channel` and answers close-ok.
    pub async fn expect_channel_close(&mut self, channel: u16) -> ChannelClose {
        match self.recv_method().await {
            (ch, Method::ChannelClose(c)) if ch == channel => {
                self.send_method(channel, Method::ChannelCloseOk(ChannelCloseOk))
                    .await;
                c
            }
            other => panic!("expected channel.close on {channel}, got {other:?}"),
        }
    }
}

/// A frame with arbitrary type, channel and payload, and a chosen end octet.
pub fn raw_frame(kind: u8, channel: u16, payload: &[u8], end: u8) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u8(kind);
    out.put_u16(channel);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    out.put_u8(end);
    out.to_vec()
}

/// Checks that the broker still serves: a fresh amqprs connection declares, publishes, gets.
pub async fn assert_serving(server: &TestServer) {
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    ch.publish("", &q, "still here").await;
    let got = ch.get(&q, true).await.expect("the message just published");
    assert_eq!(got.body, "still here");
    client.close().await;
}
