//! A stateful fuzzer: random sequences of AMQP operations, valid and invalid, over several
//! connections to a real broker on a loopback socket, checked against a model of what the
//! broker must hold after every step.
//!
//! The model tracks every message by a unique id in its body. Invariants:
//! - every operation gets the reply (or the channel/connection error, with its code) that the
//!   model predicts; the broker never drops a socket on its own (no panic);
//! - a message is delivered only from a queue that holds it, and never to two places at once;
//! - confirms settle every publish exactly once;
//! - at quiet points, every queue's ready + unacked count equals the model's, and the set of
//!   queues (no ghost exclusive queue) and of connections is the model's;
//! - at the end, all connections closed, each queue holds exactly the model's messages.
//!
//! `WARREN_MODEL_SEQUENCES` and `WARREN_MODEL_OPS` size the run (CI runs a short form); a
//! failure prints its seed, and `WARREN_MODEL_SEED` replays one. Seeds that once failed stay in
//! `REGRESSION_SEEDS`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_protocol::*;

use crate::common::*;

/// Seeds that found bugs once; they run first, every time.
const REGRESSION_SEEDS: &[u64] = &[];

const QUEUES: &[&str] = &["q0", "q1", "q2", "q3"];
/// These are priority queues (always declared with `x-max-priority` 3): publishes carry random
/// priorities, so deliveries, requeues and purges go through several levels.
const PRIORITY_QUEUES: &[&str] = &["q2", "q3"];
const MAX_CONNECTIONS: usize = 3;
const MAX_CHANNELS: u16 = 3;
/// How long a socket must stay silent for the broker to count as quiet.
const QUIET: Duration = Duration::from_millis(25);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Settle {
    Ack,
    Requeue,
    Discard,
}

#[derive(Default)]
struct Ch {
    confirm: bool,
    tx: bool,
    prefetch: u16,
    publish_seq: u64,
    unconfirmed: BTreeSet<u64>,
    /// Delivery tag -> (queue, message id).
    unacked: BTreeMap<u64, (String, u64)>,
    /// Consumer tag -> (queue, no_ack).
    consumers: BTreeMap<String, (String, bool)>,
    tx_publishes: Vec<(String, u64)>,
    tx_acks: Vec<u64>,
}

/// Content being assembled: what announced it, and its body so far.
struct Incoming {
    channel: u16,
    what: Announced,
    size: u64,
    body: Vec<u8>,
}

enum Announced {
    Deliver {
        tag: u64,
        consumer: String,
    },
    GetOk {
        tag: u64,
        queue: String,
        no_ack: bool,
    },
    Return,
}

struct Client {
    stream: TcpStream,
    buf: BytesMut,
    alive: bool,
    channels: BTreeMap<u16, Ch>,
    incoming: Option<Incoming>,
    /// The queue a pending basic.get asked (its get-ok names no queue).
    pending_get: Option<(String, bool)>,
}

#[derive(Default)]
struct QueueModel {
    ids: BTreeSet<u64>,
    owner: Option<usize>,
}

/// What a request came back with.
#[derive(Debug)]
enum Reply {
    Ok(Method),
    ChannelClosed(u16),
    ConnectionClosed(u16),
}

struct World {
    rng: StdRng,
    clients: Vec<Client>,
    queues: BTreeMap<String, QueueModel>,
    next_id: u64,
    port: u16,
    broker: std::sync::Arc<warren_broker::Broker>,
    log: Vec<String>,
    /// Channel and connection errors seen (all of them predicted), deliveries read.
    errors: u64,
    deliveries: u64,
}

impl World {
    fn fail(&self, what: String) -> ! {
        let tail: Vec<&String> = self.log.iter().rev().take(15).collect();
        panic!("{what}\nlast steps (newest first):\n{tail:#?}");
    }

    fn in_queue(&self, queue: &str, id: u64) -> bool {
        self.queues.get(queue).is_some_and(|q| q.ids.contains(&id))
    }

    /// Message ids that clients hold unacked from `queue`.
    fn unacked_ids(&self, queue: &str) -> BTreeSet<u64> {
        self.clients
            .iter()
            .filter(|c| c.alive)
            .flat_map(|c| c.channels.values())
            .flat_map(|ch| ch.unacked.values())
            .filter(|(q, _)| q == queue)
            .map(|(_, id)| *id)
            .collect()
    }

    async fn connect(&mut self) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream.write_all(PROTOCOL_HEADER).await.unwrap();
        let mut client = Client {
            stream,
            buf: BytesMut::new(),
            alive: true,
            channels: BTreeMap::new(),
            incoming: None,
            pending_get: None,
        };
        let _start = read_frame(&mut client).await;
        let mut caps = FieldTable::new();
        caps.insert("consumer_cancel_notify", true);
        let mut props = FieldTable::new();
        props.insert("capabilities", FieldValue::Table(caps));
        send(
            &mut client,
            0,
            Method::ConnectionStartOk(ConnectionStartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: Bytes::from_static(PLAIN_GUEST),
                locale: "en_US".into(),
            }),
        )
        .await;
        let Some(Frame::Method {
            method: Method::ConnectionTune(tune),
            ..
        }) = read_frame(&mut client).await
        else {
            self.fail("no connection.tune".into())
        };
        send(
            &mut client,
            0,
            Method::ConnectionTuneOk(ConnectionTuneOk {
                channel_max: tune.channel_max,
                frame_max: tune.frame_max,
                heartbeat: 0,
            }),
        )
        .await;
        let open = Method::ConnectionOpen(ConnectionOpen {
            virtual_host: "/".into(),
            ..Default::default()
        });
        send(&mut client, 0, open).await;
        match read_frame(&mut client).await {
            Some(Frame::Method {
                method: Method::ConnectionOpenOk(_),
                ..
            }) => {}
            other => self.fail(format!("no connection.open-ok: {other:?}")),
        }
        self.clients.push(client);
    }

    /// Handles one frame from client `c` that is not the reply being waited for.
    async fn on_frame(&mut self, c: usize, frame: Frame) -> Option<Reply> {
        match frame {
            Frame::Heartbeat { .. } => None,
            Frame::Method { channel: 0, method } => match method {
                Method::ConnectionClose(close) => {
                    send(
                        &mut self.clients[c],
                        0,
                        Method::ConnectionCloseOk(ConnectionCloseOk),
                    )
                    .await;
                    self.connection_gone(c);
                    Some(Reply::ConnectionClosed(close.reply_code))
                }
                Method::ConnectionCloseOk(_) => {
                    self.connection_gone(c);
                    Some(Reply::ConnectionClosed(200))
                }
                other => Some(Reply::Ok(other)),
            },
            Frame::Method { channel, method } => self.on_channel_method(c, channel, method).await,
            Frame::Header { channel, header } => {
                match self.clients[c].incoming.as_mut() {
                    Some(i) if i.channel == channel => i.size = header.body_size,
                    _ => self.fail(format!("content header without a method on {channel}")),
                }
                self.content_done(c)
            }
            Frame::Body { channel, payload } => {
                match self.clients[c].incoming.as_mut() {
                    Some(i) if i.channel == channel => i.body.extend_from_slice(&payload),
                    _ => self.fail(format!("content body without a method on {channel}")),
                }
                self.content_done(c)
            }
        }
    }

    async fn on_channel_method(&mut self, c: usize, channel: u16, method: Method) -> Option<Reply> {
        match method {
            Method::BasicDeliver(d) => {
                self.clients[c].incoming = Some(Incoming {
                    channel,
                    what: Announced::Deliver {
                        tag: d.delivery_tag,
                        consumer: d.consumer_tag.to_string(),
                    },
                    size: u64::MAX,
                    body: Vec::new(),
                });
                None
            }
            Method::BasicGetOk(g) => {
                let (queue, no_ack) = self.clients[c]
                    .pending_get
                    .take()
                    .unwrap_or_else(|| self.fail("get-ok without a get".into()));
                self.clients[c].incoming = Some(Incoming {
                    channel,
                    what: Announced::GetOk {
                        tag: g.delivery_tag,
                        queue,
                        no_ack,
                    },
                    size: u64::MAX,
                    body: Vec::new(),
                });
                None
            }
            Method::BasicReturn(_) => {
                self.clients[c].incoming = Some(Incoming {
                    channel,
                    what: Announced::Return,
                    size: u64::MAX,
                    body: Vec::new(),
                });
                None
            }
            Method::BasicAck(a) => {
                self.confirmed(c, channel, a.delivery_tag, a.multiple);
                None
            }
            Method::BasicNack(n) => {
                self.confirmed(c, channel, n.delivery_tag, n.multiple);
                None
            }
            Method::BasicCancel(cancel) => {
                if let Some(ch) = self.clients[c].channels.get_mut(&channel) {
                    ch.consumers
                        .remove(cancel.consumer_tag.as_str().unwrap_or(""));
                }
                None
            }
            Method::ChannelClose(close) => {
                send(
                    &mut self.clients[c],
                    channel,
                    Method::ChannelCloseOk(ChannelCloseOk),
                )
                .await;
                // Unacked messages go back to their queues: the model keeps them there.
                self.clients[c].channels.remove(&channel);
                Some(Reply::ChannelClosed(close.reply_code))
            }
            other => Some(Reply::Ok(other)),
        }
    }

    fn confirmed(&mut self, c: usize, channel: u16, tag: u64, multiple: bool) {
        let Some(ch) = self.clients[c].channels.get_mut(&channel) else {
            return;
        };
        let settled: Vec<u64> = if multiple {
            ch.unconfirmed.range(..=tag).copied().collect()
        } else {
            vec![tag]
        };
        for seq in settled {
            if !ch.unconfirmed.remove(&seq) {
                self.fail(format!("confirm for publish {seq} that is not outstanding"));
            }
        }
    }

    fn content_done(&mut self, c: usize) -> Option<Reply> {
        let done = self.clients[c]
            .incoming
            .as_ref()
            .is_some_and(|i| i.body.len() as u64 >= i.size);
        if !done {
            return None;
        }
        let incoming = self.clients[c].incoming.take().expect("checked");
        let id: u64 = std::str::from_utf8(&incoming.body)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| self.fail(format!("a body that is no id: {:?}", incoming.body)));
        let channel = incoming.channel;
        self.deliveries += 1;
        let got = matches!(incoming.what, Announced::GetOk { .. });
        let (tag, queue, no_ack) = match incoming.what {
            Announced::Return => self.fail(format!("message {id} returned; nothing is mandatory")),
            Announced::GetOk { tag, queue, no_ack } => (tag, queue, no_ack),
            Announced::Deliver { tag, consumer } => {
                let known = self.clients[c]
                    .channels
                    .get(&channel)
                    .and_then(|ch| ch.consumers.get(&consumer).cloned());
                let Some((queue, no_ack)) = known else {
                    self.fail(format!("delivery of {id} to unknown consumer {consumer}"))
                };
                (tag, queue, no_ack)
            }
        };
        if !self.in_queue(&queue, id) {
            self.fail(format!("{queue} delivered {id}, which it does not hold"));
        }
        if self.unacked_ids(&queue).contains(&id) {
            self.fail(format!(
                "{queue} delivered {id} while it is unacked elsewhere"
            ));
        }
        if no_ack {
            self.queues
                .get_mut(&queue)
                .expect("checked")
                .ids
                .remove(&id);
        } else if let Some(ch) = self.clients[c].channels.get_mut(&channel) {
            ch.unacked.insert(tag, (queue, id));
        }
        // A basic.get is answered once its content is in.
        got.then(|| Reply::Ok(Method::BasicGetOk(Default::default())))
    }

    fn connection_gone(&mut self, c: usize) {
        self.clients[c].alive = false;
        self.clients[c].channels.clear();
        // Its exclusive queues go with it.
        self.queues.retain(|_, q| q.owner != Some(c));
    }

    /// Sends `method` on `channel` of client `c` and waits for the reply `wanted` accepts, or
    /// for the channel or connection to be closed.
    async fn request(
        &mut self,
        c: usize,
        channel: u16,
        method: Method,
        wanted: impl Fn(&Method) -> bool,
    ) -> Reply {
        send(&mut self.clients[c], channel, method).await;
        loop {
            let Some(frame) = read_frame(&mut self.clients[c]).await else {
                self.fail(format!("client {c}: the broker dropped the socket"));
            };
            let on_channel = match &frame {
                Frame::Method { channel: ch, .. }
                | Frame::Header { channel: ch, .. }
                | Frame::Body { channel: ch, .. } => *ch,
                Frame::Heartbeat { .. } => u16::MAX,
            };
            match self.on_frame(c, frame).await {
                Some(Reply::Ok(m)) if on_channel == channel && wanted(&m) => return Reply::Ok(m),
                Some(Reply::ChannelClosed(code)) if on_channel == channel => {
                    return Reply::ChannelClosed(code)
                }
                Some(r @ Reply::ConnectionClosed(_)) => return r,
                _ => {}
            }
        }
    }

    /// A closed connection's exclusive queues go (and it leaves the registry) just after its
    /// close-ok, as in RabbitMQ; the model waits for that before it goes on.
    async fn await_release(&mut self) {
        let alive = self.clients.iter().filter(|c| c.alive).count();
        let broker = self.broker.clone();
        let model: Vec<String> = self.queues.keys().cloned().collect();
        within("a closed connection to be released", async {
            loop {
                let vhost = broker.vhost("/").unwrap();
                let mut names: Vec<String> =
                    vhost.queues().iter().map(|q| q.name.to_string()).collect();
                names.sort();
                if names == model && broker.connections.len() == alive {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
    }

    /// Reads every client until all of them have been silent for `QUIET`.
    async fn quiesce(&mut self) {
        loop {
            let mut heard = false;
            for c in 0..self.clients.len() {
                while self.clients[c].alive {
                    let frame = tokio::time::timeout(QUIET, read_frame(&mut self.clients[c])).await;
                    match frame {
                        Err(_) => break,
                        Ok(None) => self.fail(format!("client {c}: the broker dropped the socket")),
                        Ok(Some(frame)) => {
                            heard = true;
                            self.on_frame(c, frame).await;
                        }
                    }
                }
            }
            if !heard {
                return;
            }
        }
    }

    /// At a quiet point the broker's view must be the model's.
    fn check_counts(&self, broker: &warren_broker::Broker) {
        let vhost = broker.vhost("/").unwrap();
        let mut names: Vec<String> = vhost.queues().iter().map(|q| q.name.to_string()).collect();
        names.sort();
        let model: Vec<String> = self.queues.keys().cloned().collect();
        if names != model {
            self.fail(format!("queues {names:?}, model {model:?}"));
        }
        for (name, q) in &self.queues {
            let counts = vhost.queue(&name.as_str().into()).unwrap().counts();
            let (held, unacked) = (counts.ready + counts.unacked, self.unacked_ids(name).len());
            if held as usize != q.ids.len() || counts.unacked as usize != unacked {
                self.fail(format!(
                    "{name}: broker {counts:?}, model {} held ({unacked} unacked)",
                    q.ids.len()
                ));
            }
        }
        let alive = self.clients.iter().filter(|c| c.alive).count();
        if broker.connections.len() != alive {
            self.fail(format!(
                "{} connections registered, {alive} open",
                broker.connections.len()
            ));
        }
    }

    fn pick_client(&mut self) -> Option<usize> {
        let alive: Vec<usize> = (0..self.clients.len())
            .filter(|&c| self.clients[c].alive)
            .collect();
        (!alive.is_empty()).then(|| alive[self.rng.gen_range(0..alive.len())])
    }

    fn pick_channel(&mut self, c: usize) -> Option<u16> {
        let open: Vec<u16> = self.clients[c].channels.keys().copied().collect();
        (!open.is_empty()).then(|| open[self.rng.gen_range(0..open.len())])
    }

    /// One random operation.
    async fn step(&mut self) {
        let Some(c) = self.pick_client() else {
            self.log.push("connect".into());
            return self.connect().await;
        };
        let roll = self.rng.gen_range(0..100);
        if roll < 3 && self.clients.iter().filter(|c| c.alive).count() < MAX_CONNECTIONS {
            self.log.push("connect".into());
            return self.connect().await;
        }
        if roll < 5 {
            self.log.push(format!("client {c}: connection.close"));
            let reply = self
                .request(c, 0, Method::ConnectionClose(Default::default()), |_| false)
                .await;
            // 200: our own close, answered with close-ok.
            if !matches!(reply, Reply::ConnectionClosed(200)) {
                self.fail(format!("connection.close answered {reply:?}"));
            }
            return self.await_release().await;
        }
        let Some(channel) = self.pick_channel(c).filter(|_| roll >= 8) else {
            let n = (1..=MAX_CHANNELS).find(|n| !self.clients[c].channels.contains_key(n));
            if let Some(n) = n {
                self.log.push(format!("client {c}: channel.open {n}"));
                self.expect_ok(c, n, Method::ChannelOpen(Default::default()))
                    .await;
                self.clients[c].channels.insert(n, Ch::default());
            }
            return;
        };
        // Mostly queues that exist, sometimes any name (404s are part of the game).
        let existing: Vec<String> = self.queues.keys().cloned().collect();
        let queue = if !existing.is_empty() && self.rng.gen_bool(0.85) {
            existing[self.rng.gen_range(0..existing.len())].clone()
        } else {
            QUEUES[self.rng.gen_range(0..QUEUES.len())].to_string()
        };
        let op = self.rng.gen_range(0..100);
        self.log
            .push(format!("client {c} channel {channel}: op {op} on {queue}"));
        match op {
            0..=7 => self.declare(c, channel, &queue).await,
            8..=10 => self.delete(c, channel, &queue).await,
            11..=12 => self.purge(c, channel, &queue).await,
            13..=37 => self.publish(c, channel, &queue).await,
            38..=45 => self.consume(c, channel, &queue).await,
            46..=48 => self.cancel(c, channel).await,
            49..=54 => self.get(c, channel, &queue).await,
            55..=72 => self.settle(c, channel).await,
            73..=76 => {
                let prefetch = self.rng.gen_range(0..4);
                let qos = Method::BasicQos(BasicQos {
                    prefetch_count: prefetch,
                    ..Default::default()
                });
                self.expect_ok(c, channel, qos).await;
                if let Some(ch) = self.clients[c].channels.get_mut(&channel) {
                    ch.prefetch = prefetch;
                }
            }
            77..=79 => {
                if self.clients[c].channels[&channel].tx {
                    return; // tx acks hold tags that a recover would invalidate
                }
                let recover = Method::BasicRecover(BasicRecover { requeue: true });
                self.expect_ok(c, channel, recover).await;
                if let Some(ch) = self.clients[c].channels.get_mut(&channel) {
                    ch.unacked.clear();
                }
            }
            80..=83 => {
                let tx = self.clients[c].channels[&channel].tx;
                let select = Method::ConfirmSelect(Default::default());
                if tx {
                    self.expect_closed(c, channel, select, 406).await;
                } else {
                    self.expect_ok(c, channel, select).await;
                    self.clients[c].channels.get_mut(&channel).unwrap().confirm = true;
                }
            }
            84..=86 => {
                let confirm = self.clients[c].channels[&channel].confirm;
                let select = Method::TxSelect(TxSelect);
                if confirm {
                    self.expect_closed(c, channel, select, 406).await;
                } else {
                    self.expect_ok(c, channel, select).await;
                    self.clients[c].channels.get_mut(&channel).unwrap().tx = true;
                }
            }
            87..=91 => self.commit_or_rollback(c, channel).await,
            92..=94 => {
                self.expect_ok(c, channel, Method::ChannelClose(Default::default()))
                    .await;
                self.clients[c].channels.remove(&channel);
            }
            _ => {
                // An unknown delivery tag: 406, and the channel's deliveries go back.
                let tag = 1 << 40;
                let ack = Method::BasicAck(BasicAck {
                    delivery_tag: tag,
                    multiple: false,
                });
                send(&mut self.clients[c], channel, ack).await;
                let reply = self
                    .request(c, channel, qos_of(0), |m| {
                        matches!(m, Method::BasicQosOk(_))
                    })
                    .await;
                if !matches!(reply, Reply::ChannelClosed(406)) {
                    self.fail(format!("ack of an unknown tag answered {reply:?}"));
                }
            }
        }
    }

    async fn expect_ok(&mut self, c: usize, channel: u16, method: Method) -> Method {
        let name = method.name();
        match self.request(c, channel, method, |_| true).await {
            Reply::Ok(m) => m,
            other => self.fail(format!("{name} answered {other:?}")),
        }
    }

    async fn expect_closed(&mut self, c: usize, channel: u16, method: Method, code: u16) {
        let name = method.name();
        match self.request(c, channel, method, |_| false).await {
            Reply::ChannelClosed(got) if got == code => self.errors += 1,
            other => self.fail(format!(
                "{name} answered {other:?}, expected channel.close {code}"
            )),
        }
    }

    /// The reply a queue operation from client `c` gets when another connection owns it.
    fn locked(&self, c: usize, queue: &str) -> bool {
        self.queues
            .get(queue)
            .is_some_and(|q| q.owner.is_some_and(|o| o != c))
    }

    async fn declare(&mut self, c: usize, channel: u16, queue: &str) {
        let exclusive = self.rng.gen_bool(0.2);
        let invalid = self.rng.gen_bool(0.1);
        let mut arguments = FieldTable::new();
        if invalid {
            arguments.insert("x-max-length", FieldValue::I64(-1));
        }
        if PRIORITY_QUEUES.contains(&queue) {
            arguments.insert("x-max-priority", FieldValue::I32(3));
        }
        let method = Method::QueueDeclare(QueueDeclare {
            queue: queue.into(),
            exclusive,
            arguments,
            ..Default::default()
        });
        let expected = match self.queues.get(queue) {
            Some(q) if q.owner.is_some_and(|o| o != c) => Some(405),
            Some(q) if q.owner.is_some() != exclusive => Some(405),
            Some(_) if invalid => Some(406),
            Some(_) => None,
            None if invalid => Some(406),
            None => None,
        };
        match expected {
            Some(code) => self.expect_closed(c, channel, method, code).await,
            None => {
                self.expect_ok(c, channel, method).await;
                self.queues
                    .entry(queue.to_string())
                    .or_insert_with(|| QueueModel {
                        ids: BTreeSet::new(),
                        owner: exclusive.then_some(c),
                    });
            }
        }
    }

    /// Sends a queue.delete or queue.purge: refused with 405 on another connection's
    /// exclusive queue; otherwise, at a quiet point, its message count must be the model's
    /// ready count. Returns whether it went through.
    async fn empty_queue(&mut self, c: usize, channel: u16, queue: &str, method: Method) -> bool {
        if self.locked(c, queue) {
            self.expect_closed(c, channel, method, 405).await;
            return false;
        }
        self.quiesce().await;
        let ready = self.ready(queue);
        let name = method.name();
        let count = match self.expect_ok(c, channel, method).await {
            Method::QueueDeleteOk(ok) => ok.message_count,
            Method::QueuePurgeOk(ok) => ok.message_count,
            other => self.fail(format!("{name} answered {other:?}")),
        };
        if count as usize != ready {
            self.fail(format!("{name} of {queue}: {count} ready, model {ready}"));
        }
        true
    }

    async fn delete(&mut self, c: usize, channel: u16, queue: &str) {
        let method = Method::QueueDelete(QueueDelete {
            queue: queue.into(),
            ..Default::default()
        });
        if !self.empty_queue(c, channel, queue, method).await {
            return;
        }
        self.queues.remove(queue);
        // Acks of its messages are now of nothing; the channels forget them.
        for client in &mut self.clients {
            for ch in client.channels.values_mut() {
                ch.unacked.retain(|_, (q, _)| q != queue);
            }
        }
        self.quiesce().await; // consumer cancellations
    }

    fn ready(&self, queue: &str) -> usize {
        let unacked = self.unacked_ids(queue);
        self.queues.get(queue).map_or(0, |q| {
            q.ids.iter().filter(|id| !unacked.contains(id)).count()
        })
    }

    async fn purge(&mut self, c: usize, channel: u16, queue: &str) {
        let method = Method::QueuePurge(QueuePurge {
            queue: queue.into(),
            ..Default::default()
        });
        if !self.queues.contains_key(queue) {
            return self.expect_closed(c, channel, method, 404).await;
        }
        if !self.empty_queue(c, channel, queue, method).await {
            return;
        }
        let unacked = self.unacked_ids(queue);
        self.queues
            .get_mut(queue)
            .unwrap()
            .ids
            .retain(|id| unacked.contains(id));
    }

    async fn publish(&mut self, c: usize, channel: u16, queue: &str) {
        let id = self.next_id;
        self.next_id += 1;
        let body = id.to_string();
        let mut out = BytesMut::new();
        encode_method_frame(
            &mut out,
            channel,
            &Method::BasicPublish(BasicPublish {
                routing_key: queue.into(),
                ..Default::default()
            }),
        );
        // A priority (0-4: above the maximum of 3 counts as 3) on most publishes.
        let properties = BasicProperties {
            priority: self.rng.gen_bool(0.7).then(|| self.rng.gen_range(0..5)),
            ..Default::default()
        };
        let mut encoded = BytesMut::new();
        properties.encode(&mut encoded);
        encode_content_header(&mut out, channel, 60, body.len() as u64, &encoded);
        encode_body_frames(&mut out, channel, body.as_bytes(), 131_072);
        self.clients[c].stream.write_all(&out).await.unwrap();
        let ch = self.clients[c].channels.get_mut(&channel).unwrap();
        if ch.confirm {
            ch.publish_seq += 1;
            ch.unconfirmed.insert(ch.publish_seq);
        }
        if ch.tx {
            ch.tx_publishes.push((queue.to_string(), id));
        } else if let Some(q) = self.queues.get_mut(queue) {
            q.ids.insert(id);
        }
        self.barrier(c, channel).await;
    }

    /// A request-reply on the channel: everything sent on it before has been handled.
    async fn barrier(&mut self, c: usize, channel: u16) {
        let Some(prefetch) = self.clients[c].channels.get(&channel).map(|ch| ch.prefetch) else {
            return;
        };
        match self
            .request(c, channel, qos_of(prefetch), |m| {
                matches!(m, Method::BasicQosOk(_))
            })
            .await
        {
            Reply::Ok(_) => {}
            other => self.fail(format!("barrier answered {other:?}")),
        }
    }

    async fn consume(&mut self, c: usize, channel: u16, queue: &str) {
        let no_ack = self.rng.gen_bool(0.3);
        let tag = format!("c{}", self.rng.gen_range(0..1000));
        if self.clients[c].channels[&channel]
            .consumers
            .contains_key(&tag)
        {
            return;
        }
        let method = Method::BasicConsume(BasicConsume {
            queue: queue.into(),
            consumer_tag: tag.as_str().into(),
            no_ack,
            ..Default::default()
        });
        if !self.queues.contains_key(queue) {
            return self.expect_closed(c, channel, method, 404).await;
        }
        if self.locked(c, queue) {
            return self.expect_closed(c, channel, method, 405).await;
        }
        // Registered before the reply: deliveries may come right behind it.
        let ch = self.clients[c].channels.get_mut(&channel).unwrap();
        ch.consumers
            .insert(tag.clone(), (queue.to_string(), no_ack));
        let reply = self
            .request(c, channel, method, |m| {
                matches!(m, Method::BasicConsumeOk(_))
            })
            .await;
        if !matches!(reply, Reply::Ok(_)) {
            self.fail(format!("basic.consume answered {reply:?}"));
        }
    }

    async fn cancel(&mut self, c: usize, channel: u16) {
        let Some(tag) = self.clients[c].channels[&channel]
            .consumers
            .keys()
            .next()
            .cloned()
        else {
            return;
        };
        let method = Method::BasicCancel(BasicCancel {
            consumer_tag: tag.as_str().into(),
            nowait: false,
        });
        let reply = self
            .request(c, channel, method, |m| {
                matches!(m, Method::BasicCancelOk(_))
            })
            .await;
        if !matches!(reply, Reply::Ok(_)) {
            self.fail(format!("basic.cancel answered {reply:?}"));
        }
        if let Some(ch) = self.clients[c].channels.get_mut(&channel) {
            ch.consumers.remove(&tag);
        }
    }

    async fn get(&mut self, c: usize, channel: u16, queue: &str) {
        let no_ack = self.rng.gen_bool(0.5);
        let method = Method::BasicGet(BasicGet {
            queue: queue.into(),
            no_ack,
            ..Default::default()
        });
        if !self.queues.contains_key(queue) {
            return self.expect_closed(c, channel, method, 404).await;
        }
        if self.locked(c, queue) {
            return self.expect_closed(c, channel, method, 405).await;
        }
        self.clients[c].pending_get = Some((queue.to_string(), no_ack));
        let reply = self
            .request(c, channel, method, |m| {
                matches!(m, Method::BasicGetOk(_) | Method::BasicGetEmpty(_))
            })
            .await;
        if !matches!(reply, Reply::Ok(_)) {
            self.fail(format!("basic.get answered {reply:?}"));
        }
        self.clients[c].pending_get = None;
    }

    async fn settle(&mut self, c: usize, channel: u16) {
        let ch = &self.clients[c].channels[&channel];
        let tx = ch.tx;
        // Inside a transaction a tag is acked once: a second ack would fail the commit.
        let candidates: Vec<u64> = ch
            .unacked
            .keys()
            .copied()
            .filter(|t| !ch.tx_acks.contains(t))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let tag = candidates[self.rng.gen_range(0..candidates.len())];
        let how = match self.rng.gen_range(0..10) {
            _ if tx => Settle::Ack,
            0..=5 => Settle::Ack,
            6..=7 => Settle::Requeue,
            _ => Settle::Discard,
        };
        let multiple = !tx && self.rng.gen_bool(0.3);
        let method = match how {
            Settle::Ack => Method::BasicAck(BasicAck {
                delivery_tag: tag,
                multiple,
            }),
            Settle::Requeue | Settle::Discard if !multiple && self.rng.gen_bool(0.5) => {
                Method::BasicReject(BasicReject {
                    delivery_tag: tag,
                    requeue: how == Settle::Requeue,
                })
            }
            _ => Method::BasicNack(BasicNack {
                delivery_tag: tag,
                multiple,
                requeue: how == Settle::Requeue,
            }),
        };
        send(&mut self.clients[c], channel, method).await;
        let ch = self.clients[c].channels.get_mut(&channel).unwrap();
        if tx {
            ch.tx_acks.push(tag);
        } else {
            let tags: Vec<u64> = if multiple {
                ch.unacked.range(..=tag).map(|(t, _)| *t).collect()
            } else {
                vec![tag]
            };
            let settled: Vec<(String, u64)> =
                tags.iter().filter_map(|t| ch.unacked.remove(t)).collect();
            if how != Settle::Requeue {
                for (queue, id) in settled {
                    if let Some(q) = self.queues.get_mut(&queue) {
                        q.ids.remove(&id);
                    }
                }
            }
        }
        self.barrier(c, channel).await;
    }

    async fn commit_or_rollback(&mut self, c: usize, channel: u16) {
        let commit = self.rng.gen_bool(0.7);
        let method = if commit {
            Method::TxCommit(TxCommit)
        } else {
            Method::TxRollback(TxRollback)
        };
        if !self.clients[c].channels[&channel].tx {
            return self.expect_closed(c, channel, method, 406).await;
        }
        self.expect_ok(c, channel, method).await;
        let ch = self.clients[c].channels.get_mut(&channel).unwrap();
        let publishes = std::mem::take(&mut ch.tx_publishes);
        let acks = std::mem::take(&mut ch.tx_acks);
        if !commit {
            return;
        }
        let acked: Vec<(String, u64)> = acks.iter().filter_map(|t| ch.unacked.remove(t)).collect();
        for (queue, id) in publishes {
            if let Some(q) = self.queues.get_mut(&queue) {
                q.ids.insert(id);
            }
        }
        for (queue, id) in acked {
            if let Some(q) = self.queues.get_mut(&queue) {
                q.ids.remove(&id);
            }
        }
    }

    /// Quiet, every confirm in, then everything closed: each queue holds exactly its model.
    async fn finish(&mut self, server: &TestServer) {
        self.quiesce().await;
        self.check_counts(&server.broker);
        for c in 0..self.clients.len() {
            for (n, ch) in &self.clients[c].channels {
                if !ch.unconfirmed.is_empty() {
                    self.fail(format!(
                        "client {c} channel {n}: unconfirmed {:?}",
                        ch.unconfirmed
                    ));
                }
            }
        }
        for c in 0..self.clients.len() {
            if self.clients[c].alive {
                self.request(c, 0, Method::ConnectionClose(Default::default()), |_| false)
                    .await;
            }
        }
        self.await_release().await;
        self.check_counts(&server.broker);
        let vhost = server.broker.vhost("/").unwrap();
        for (name, model) in &self.queues {
            let queue = vhost.queue(&name.as_str().into()).unwrap();
            let mut held = BTreeSet::new();
            while let Some((item, _)) = queue.get(true) {
                let id: u64 = std::str::from_utf8(&item.message.body)
                    .unwrap()
                    .parse()
                    .unwrap();
                if !held.insert(id) {
                    self.fail(format!("{name} holds {id} twice"));
                }
            }
            if held != model.ids {
                self.fail(format!("{name} holds {held:?}, model {:?}", model.ids));
            }
        }
    }
}

fn qos_of(prefetch: u16) -> Method {
    Method::BasicQos(BasicQos {
        prefetch_count: prefetch,
        ..Default::default()
    })
}

async fn send(client: &mut Client, channel: u16, method: Method) {
    let mut out = BytesMut::new();
    encode_method_frame(&mut out, channel, &method);
    // A write to a connection the broker closed fails; the read that follows reports it.
    let _ = client.stream.write_all(&out).await;
}

async fn read_frame(client: &mut Client) -> Option<Frame> {
    loop {
        if let Some(frame) = parse_frame(&mut client.buf, 0).expect("the broker sends valid frames")
        {
            return Some(frame);
        }
        let n = within(
            "a frame from the broker",
            client.stream.read_buf(&mut client.buf),
        )
        .await
        .unwrap_or(0);
        if n == 0 {
            return None;
        }
    }
}

async fn run_sequence(seed: u64, ops: usize) {
    let server = start().await;
    let mut world = World {
        rng: StdRng::seed_from_u64(seed),
        clients: Vec::new(),
        queues: BTreeMap::new(),
        next_id: 0,
        port: server.port,
        broker: server.broker.clone(),
        log: Vec::new(),
        errors: 0,
        deliveries: 0,
    };
    for i in 0..ops {
        world.step().await;
        if i % 16 == 15 {
            world.quiesce().await;
            world.check_counts(&server.broker);
        }
    }
    world.finish(&server).await;
    eprintln!(
        "model: seed {seed}: {ops} operations, {} messages, {} deliveries, {} predicted errors",
        world.next_id, world.deliveries, world.errors
    );
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test]
async fn random_operation_sequences_keep_every_invariant() {
    let ops = env_number("WARREN_MODEL_OPS", 150) as usize;
    if let Ok(seed) = std::env::var("WARREN_MODEL_SEED") {
        return run_sequence(seed.parse().expect("a number"), ops).await;
    }
    let sequences = env_number("WARREN_MODEL_SEQUENCES", 12);
    let first = env_number("WARREN_MODEL_FIRST_SEED", 1);
    let seeds = REGRESSION_SEEDS
        .iter()
        .copied()
        .chain(first..first + sequences);
    for seed in seeds {
        run_sequence(seed, ops).await;
    }
}
