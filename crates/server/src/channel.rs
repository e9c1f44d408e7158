//! One AMQP channel: its consumers, unacked deliveries, confirm and transaction modes, and the
//! handling of every channel-level method.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use warren_broker::auth::Access;
use warren_broker::message::{expiration_property, parse_expiration};
use warren_broker::names::{
    direct_reply_to_name, server_generated_consumer_tag, server_generated_queue_name,
};
use warren_broker::queue::arguments::consumer_priority;
use warren_broker::queue::QueueConfig;
use warren_broker::registry::{ChannelSnapshot, ConnectionStats, ConsumerSnapshot};
use warren_broker::vhost::{ExchangeDeclare, QueueDeclare};
use warren_broker::{
    AmqpError, AmqpResult, Broker, ChannelOutbox, ConnectionId, ConsumerSpec, Delivery, Message,
    Published, Queue, Queued, ReplyCode, Routes, Settlement, VHost,
};
use warren_protocol::*;

use crate::access::AccessCheck;
use crate::content::{PendingContent, Progress};
use crate::unacked::UnackedDeliveries;
use crate::writer::Writer;

/// The pseudo-queue name clients consume from and put in `reply_to` for direct reply-to.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// What a channel needs from its connection while handling a method.
pub struct Ctx<'a> {
    pub connection: ConnectionId,
    pub broker: &'a Arc<Broker>,
    pub vhost: &'a Arc<VHost>,
    pub access: &'a mut AccessCheck,
    pub out: &'a mut Writer,
    /// The connection's clock in ticks (seconds), for the consumer timeout.
    pub tick: u64,
}

struct ConsumerRef {
    queue: Arc<Queue>,
    id: u64,
    /// What the management API shows of the consumer.
    no_ack: bool,
    prefetch: u32,
    exclusive: bool,
    arguments: FieldTable,
}

/// Per-channel message counters for the management API; the connection's atomic totals are
/// counted alongside.
#[derive(Default)]
struct ChannelCounters {
    published: u64,
    delivered: u64,
    got: u64,
    acked: u64,
    redelivered: u64,
}

struct Unacked {
    queue: Arc<Queue>,
    /// None for basic.get deliveries, which take no prefetch credit.
    consumer: Option<u64>,
    item: Queued,
    /// The connection's tick when it was delivered (the consumer timeout).
    delivered_tick: u64,
}

/// Deliveries encoded this turn, per consumer. Once the connection's write completes, each
/// queue hears how many of its consumer's deliveries reached the socket, which opens that
/// consumer's window again (`warren_broker::queue::SOCKET_WINDOW`).
#[derive(Default)]
pub struct WrittenDeliveries(Vec<(Arc<Queue>, u64, u32, usize)>);

impl WrittenDeliveries {
    fn add(&mut self, queue: &Arc<Queue>, consumer: u64, bytes: usize) {
        if let Some(last) = self.0.last_mut() {
            if last.1 == consumer && Arc::ptr_eq(&last.0, queue) {
                last.2 += 1;
                last.3 += bytes;
                return;
            }
        }
        self.0.push((queue.clone(), consumer, 1, bytes));
    }

    /// Tells the queues; one lock per run of one consumer's deliveries.
    pub fn report(&mut self) {
        for (queue, consumer, n, bytes) in self.0.drain(..) {
            queue.written(consumer, n, bytes);
        }
    }
}

/// A publish awaiting its confirm.
#[derive(Clone, Copy, Debug)]
pub struct Unconfirmed {
    /// The publish sequence number (the confirm's delivery tag).
    seq: u64,
    /// The group commit to wait for (0: none); an ack once it is durable.
    ticket: u64,
    /// A queue refused the message: a nack (still in order, after the publishes before it).
    rejected: bool,
}

/// A message published inside a transaction, routed at commit.
struct TxPublish {
    exchange: ShortStr,
    mandatory: bool,
    message: Message,
}

#[derive(Default)]
struct TxState {
    publishes: Vec<TxPublish>,
    settlements: Vec<(u64, bool, Settlement)>,
}

pub struct Channel {
    pub id: u16,
    pub outbox: Arc<ChannelOutbox>,
    /// The server sent channel.close and awaits close-ok; everything else is ignored.
    pub closing: bool,
    content: Option<PendingContent>,
    consumers: foldhash::HashMap<ShortStr, ConsumerRef>,
    unacked: UnackedDeliveries<Unacked>,
    /// The shortest per-queue consumer timeout among the queues it has had deliveries from
    /// (milliseconds; see `overdue`).
    shortest_queue_timeout: Option<u64>,
    next_delivery_tag: u64,
    /// basic.qos global=false: the prefetch given to consumers created after it.
    consumer_prefetch: u32,
    /// Publisher confirms: the next publish sequence number, once confirm.select was seen.
    confirm_next: Option<u64>,
    /// Publishes not yet confirmed, in publish order.
    pub unconfirmed: VecDeque<Unconfirmed>,
    /// tx.commit-oks owed once their group-commit tickets are durable, and whether a queue
    /// refused one of the commit's publishes.
    commits_awaiting_disk: VecDeque<(u64, bool)>,
    /// A commit could not be stored: the connection is closed with 541 (AMQP has no way to
    /// fail a tx.commit short of an error).
    pub commit_failed: bool,
    tx: Option<TxState>,
    last_queue: Option<ShortStr>,
    /// The hidden queue behind this channel's direct reply-to consumer.
    reply_queue: Option<ShortStr>,
    routes: Routes,
    conn_stats: Arc<ConnectionStats>,
    counters: ChannelCounters,
}

impl Channel {
    pub fn new(id: u16, outbox: Arc<ChannelOutbox>, conn_stats: Arc<ConnectionStats>) -> Self {
        Channel {
            id,
            outbox,
            closing: false,
            content: None,
            consumers: foldhash::HashMap::default(),
            unacked: UnackedDeliveries::default(),
            shortest_queue_timeout: None,
            next_delivery_tag: 1,
            consumer_prefetch: 0,
            confirm_next: None,
            unconfirmed: VecDeque::new(),
            commits_awaiting_disk: VecDeque::new(),
            commit_failed: false,
            tx: None,
            last_queue: None,
            reply_queue: None,
            routes: Routes::default(),
            conn_stats,
            counters: ChannelCounters::default(),
        }
    }

    /// The channel as the management API shows it.
    pub fn snapshot(&self) -> ChannelSnapshot {
        ChannelSnapshot {
            number: self.id,
            prefetch_count: self.consumer_prefetch,
            global_prefetch_count: self.outbox.global_limit(),
            messages_unacknowledged: self.unacked.len() as u32,
            confirm: self.confirm_next.is_some(),
            transactional: self.tx.is_some(),
            consumers: self
                .consumers
                .iter()
                .map(|(tag, c)| ConsumerSnapshot {
                    tag: tag.clone(),
                    queue: c.queue.name.clone(),
                    ack_required: !c.no_ack,
                    prefetch_count: c.prefetch,
                    exclusive: c.exclusive,
                    arguments: c.arguments.clone(),
                    activity: c.queue.consumer_activity(c.id),
                })
                .collect(),
            published: self.counters.published,
            delivered: self.counters.delivered,
            got: self.counters.got,
            acked: self.counters.acked,
            redelivered: self.counters.redelivered,
        }
    }

    pub fn expects_content(&self) -> bool {
        self.content.is_some()
    }

    /// Resolves the empty queue name to the channel's last declared queue, as the spec says.
    fn queue_name(&self, name: ShortStr) -> AmqpResult<ShortStr> {
        if !name.is_empty() {
            return Ok(name);
        }
        self.last_queue
            .clone()
            .ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }

    pub fn handle(&mut self, method: Method, ctx: &mut Ctx) -> AmqpResult<()> {
        match method {
            Method::BasicPublish(m) => self.on_publish(m, ctx),
            Method::BasicAck(m) => self.on_settle(m.delivery_tag, m.multiple, Settlement::Ack, ctx),
            Method::BasicNack(m) => {
                let how = if m.requeue {
                    Settlement::Requeue
                } else {
                    Settlement::Discard
                };
                self.on_settle(m.delivery_tag, m.multiple, how, ctx)
            }
            Method::BasicReject(m) => {
                let how = if m.requeue {
                    Settlement::Requeue
                } else {
                    Settlement::Discard
                };
                self.on_settle(m.delivery_tag, false, how, ctx)
            }
            Method::BasicQos(m) => self.on_qos(m, ctx),
            Method::BasicConsume(m) => self.on_consume(m, ctx),
            Method::BasicCancel(m) => {
                self.cancel_consumer(&m.consumer_tag, ctx.vhost);
                if !m.nowait {
                    ctx.out.method(
                        self.id,
                        &Method::BasicCancelOk(BasicCancelOk {
                            consumer_tag: m.consumer_tag,
                        }),
                    );
                }
                Ok(())
            }
            Method::BasicGet(m) => self.on_get(m, ctx),
            Method::BasicRecover(m) => {
                self.recover(m.requeue)?;
                ctx.out
                    .method(self.id, &Method::BasicRecoverOk(BasicRecoverOk));
                Ok(())
            }
            Method::BasicRecoverAsync(m) => self.recover(m.requeue),
            Method::QueueDeclare(m) => self.on_queue_declare(m, ctx),
            Method::QueueBind(m) => {
                let queue = self.queue_name(m.queue)?;
                ctx.access.check(Access::Write, "queue", &queue)?;
                ctx.access.check(Access::Read, "exchange", &m.exchange)?;
                ctx.access
                    .check_topic(Access::Read, ctx.vhost, &m.exchange, &m.routing_key)?;
                ctx.vhost.bind_queue(
                    ctx.connection,
                    &queue,
                    &m.exchange,
                    m.routing_key,
                    m.arguments,
                )?;
                if !m.nowait {
                    ctx.out.method(self.id, &Method::QueueBindOk(QueueBindOk));
                }
                Ok(())
            }
            Method::QueueUnbind(m) => {
                let queue = self.queue_name(m.queue)?;
                ctx.access.check(Access::Write, "queue", &queue)?;
                ctx.access.check(Access::Read, "exchange", &m.exchange)?;
                ctx.access
                    .check_topic(Access::Read, ctx.vhost, &m.exchange, &m.routing_key)?;
                ctx.vhost.unbind_queue(
                    ctx.connection,
                    &queue,
                    &m.exchange,
                    &m.routing_key,
                    &m.arguments,
                )?;
                ctx.out
                    .method(self.id, &Method::QueueUnbindOk(QueueUnbindOk));
                Ok(())
            }
            Method::QueuePurge(m) => {
                let name = self.queue_name(m.queue)?;
                ctx.access.check(Access::Read, "queue", &name)?;
                let queue = ctx.vhost.queue(&name)?;
                queue.check_owner(ctx.connection)?;
                let message_count = queue.purge();
                if !m.nowait {
                    ctx.out.method(
                        self.id,
                        &Method::QueuePurgeOk(QueuePurgeOk { message_count }),
                    );
                }
                Ok(())
            }
            Method::QueueDelete(m) => {
                let name = self.queue_name(m.queue)?;
                ctx.access.check(Access::Configure, "queue", &name)?;
                let message_count =
                    ctx.vhost
                        .delete_queue(ctx.connection, &name, m.if_unused, m.if_empty)?;
                if !m.nowait {
                    ctx.out.method(
                        self.id,
                        &Method::QueueDeleteOk(QueueDeleteOk { message_count }),
                    );
                }
                Ok(())
            }
            Method::ExchangeDeclare(m) => {
                if !m.passive {
                    ctx.access
                        .check(Access::Configure, "exchange", &m.exchange)?;
                }
                ctx.vhost.declare_exchange(ExchangeDeclare {
                    name: m.exchange,
                    kind: m.kind,
                    passive: m.passive,
                    config_flags: (m.durable, m.auto_delete, m.internal),
                    arguments: m.arguments,
                })?;
                if !m.nowait {
                    ctx.out
                        .method(self.id, &Method::ExchangeDeclareOk(ExchangeDeclareOk));
                }
                Ok(())
            }
            Method::ExchangeDelete(m) => {
                ctx.access
                    .check(Access::Configure, "exchange", &m.exchange)?;
                ctx.vhost.delete_exchange(&m.exchange, m.if_unused)?;
                if !m.nowait {
                    ctx.out
                        .method(self.id, &Method::ExchangeDeleteOk(ExchangeDeleteOk));
                }
                Ok(())
            }
            Method::ExchangeBind(m) => {
                ctx.access
                    .check(Access::Write, "exchange", &m.destination)?;
                ctx.access.check(Access::Read, "exchange", &m.source)?;
                ctx.access
                    .check_topic(Access::Read, ctx.vhost, &m.source, &m.routing_key)?;
                ctx.vhost
                    .bind_exchange(&m.destination, &m.source, m.routing_key, m.arguments)?;
                if !m.nowait {
                    ctx.out
                        .method(self.id, &Method::ExchangeBindOk(ExchangeBindOk));
                }
                Ok(())
            }
            Method::ExchangeUnbind(m) => {
                ctx.access
                    .check(Access::Write, "exchange", &m.destination)?;
                ctx.access.check(Access::Read, "exchange", &m.source)?;
                ctx.access
                    .check_topic(Access::Read, ctx.vhost, &m.source, &m.routing_key)?;
                ctx.vhost.unbind_exchange(
                    &m.destination,
                    &m.source,
                    &m.routing_key,
                    &m.arguments,
                )?;
                if !m.nowait {
                    ctx.out
                        .method(self.id, &Method::ExchangeUnbindOk(ExchangeUnbindOk));
                }
                Ok(())
            }
            Method::ConfirmSelect(m) => {
                if self.tx.is_some() {
                    return Err(AmqpError::precondition_failed(
                        "cannot switch from tx to confirm mode",
                    ));
                }
                self.confirm_next.get_or_insert(1);
                if !m.nowait {
                    ctx.out
                        .method(self.id, &Method::ConfirmSelectOk(ConfirmSelectOk));
                }
                Ok(())
            }
            Method::TxSelect(_) => {
                if self.confirm_next.is_some() {
                    return Err(AmqpError::precondition_failed(
                        "cannot switch from confirm to tx mode",
                    ));
                }
                self.tx.get_or_insert_with(TxState::default);
                ctx.out.method(self.id, &Method::TxSelectOk(TxSelectOk));
                Ok(())
            }
            Method::TxCommit(_) => {
                let Some(tx) = self.tx.replace(TxState::default()) else {
                    return Err(AmqpError::precondition_failed(
                        "channel is not transactional",
                    ));
                };
                let committed = self.commit(tx, ctx)?;
                // As with confirms: commit-ok promises the persistent messages are on disk.
                self.commits_awaiting_disk.push_back(committed);
                Ok(())
            }
            Method::TxRollback(_) => {
                if self.tx.replace(TxState::default()).is_none() {
                    return Err(AmqpError::precondition_failed(
                        "channel is not transactional",
                    ));
                }
                ctx.out.method(self.id, &Method::TxRollbackOk(TxRollbackOk));
                Ok(())
            }
            Method::ChannelFlow(m) => {
                if !m.active {
                    // As RabbitMQ: consumers are paused with basic.qos or basic.cancel instead.
                    return Err(AmqpError::not_implemented("active=false"));
                }
                ctx.out.method(
                    self.id,
                    &Method::ChannelFlowOk(ChannelFlowOk { active: true }),
                );
                Ok(())
            }
            Method::AccessRequest(_) => {
                ctx.out.method(
                    self.id,
                    &Method::AccessRequestOk(AccessRequestOk { ticket: 1 }),
                );
                Ok(())
            }
            other => Err(AmqpError::new(
                ReplyCode::CommandInvalid,
                format!("unexpected method {} on channel {}", other.name(), self.id),
            )),
        }
    }

    // ---- publishing ---------------------------------------------------------------------

    fn on_publish(&mut self, m: BasicPublish, ctx: &mut Ctx) -> AmqpResult<()> {
        if m.immediate {
            return Err(AmqpError::not_implemented("immediate=true"));
        }
        ctx.access.check(Access::Write, "exchange", &m.exchange)?;
        ctx.access
            .check_topic(Access::Write, ctx.vhost, &m.exchange, &m.routing_key)?;
        self.content = Some(PendingContent::new(m));
        Ok(())
    }

    pub fn on_header(&mut self, header: ContentHeader, ctx: &mut Ctx) -> AmqpResult<()> {
        let Some(pending) = self.content.as_mut() else {
            return Err(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                "unexpected content header frame",
            ));
        };
        if pending.header.is_some() {
            return Err(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                "expected content body, got content header",
            ));
        }
        if header.class_id != 60 {
            return Err(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                format!(
                    "content header for class {} does not match method class 60",
                    header.class_id
                ),
            ));
        }
        let max = ctx.broker.config.max_message_size;
        if header.body_size > max {
            self.content = None;
            return Err(AmqpError::precondition_failed(format!(
                "message size {} is larger than configured max size {max}",
                header.body_size
            )));
        }
        pending.header = Some(header);
        match pending.check_complete() {
            Progress::Complete {
                publish,
                properties,
                body,
            } => {
                self.content = None;
                self.publish(publish, properties, body, ctx)
            }
            _ => Ok(()),
        }
    }

    pub fn on_body(&mut self, payload: Bytes, ctx: &mut Ctx) -> AmqpResult<()> {
        let Some(pending) = self.content.as_mut().filter(|p| p.header.is_some()) else {
            return Err(AmqpError::new(
                ReplyCode::UnexpectedFrame,
                "unexpected content body frame",
            ));
        };
        match pending.add_body(payload) {
            Progress::NeedMore => Ok(()),
            Progress::Overflow => Err(AmqpError::new(
                ReplyCode::FrameError,
                format!(
                    "content body exceeds the announced size of {} bytes",
                    pending.expected()
                ),
            )),
            Progress::Complete {
                publish,
                properties,
                body,
            } => {
                self.content = None;
                self.publish(publish, properties, body, ctx)
            }
        }
    }

    fn publish(
        &mut self,
        publish: BasicPublish,
        properties: Bytes,
        body: Bytes,
        ctx: &mut Ctx,
    ) -> AmqpResult<()> {
        let properties = self.rewrite_direct_reply_to(properties)?;
        if let Some(expiration) = expiration_property(&properties) {
            if let Err(term) = parse_expiration(&expiration) {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid expiration '{expiration}': {term}"
                )));
            }
        }
        let message = Message::new(&publish.exchange, &publish.routing_key, &properties, body);
        if let Some(tx) = self.tx.as_mut() {
            // Unknown exchanges are reported at publish time even inside a transaction.
            if !publish.exchange.is_empty() {
                ctx.vhost.exchange(&publish.exchange)?;
            }
            tx.publishes.push(TxPublish {
                exchange: publish.exchange,
                mandatory: publish.mandatory,
                message,
            });
            return Ok(());
        }
        let (ticket, rejected) =
            self.route_and_enqueue(&publish.exchange, publish.mandatory, message, ctx)?;
        if let Some(next) = self.confirm_next.as_mut() {
            // The confirm goes out once the group commit it needs (if any) is on disk.
            self.unconfirmed.push_back(Unconfirmed {
                seq: *next,
                ticket,
                rejected,
            });
            *next += 1;
            ConnectionStats::add(&self.conn_stats.confirmed, 1);
        }
        Ok(())
    }

    /// Publishes through the broker; an unroutable mandatory message goes back to the client.
    /// Returns what the confirm waits for: the group-commit ticket, and whether a queue
    /// refused the message (an unroutable one is confirmed at once, as in RabbitMQ).
    fn route_and_enqueue(
        &mut self,
        exchange: &ShortStr,
        mandatory: bool,
        message: Message,
        ctx: &mut Ctx,
    ) -> AmqpResult<(u64, bool)> {
        self.counters.published += 1;
        ConnectionStats::add(&self.conn_stats.published, 1);
        match ctx.vhost.publish(exchange, message, &mut self.routes)? {
            Published::Unroutable(message) => {
                let unroutable = if mandatory {
                    &self.conn_stats.unroutable_returned
                } else {
                    &self.conn_stats.unroutable_dropped
                };
                ConnectionStats::add(unroutable, 1);
                if mandatory {
                    ctx.out.content(
                        self.id,
                        &Method::BasicReturn(BasicReturn {
                            reply_code: ReplyCode::NoRoute.code(),
                            reply_text: ShortStr::from_static("NO_ROUTE"),
                            exchange: message.exchange.clone(),
                            routing_key: message.routing_key.clone(),
                        }),
                        &message,
                    );
                }
                Ok((0, false))
            }
            Published::Routed { ticket, rejected } => {
                ConnectionStats::add(&self.conn_stats.routed, 1);
                Ok((ticket, rejected))
            }
        }
    }

    /// Writes the replies whose group commits have reached the disk (`durable`): confirms in
    /// publish order, runs of acks coalesced into one basic.ack (multiple), a basic.nack for
    /// each publish a queue refused or whose fsync failed; then tx.commit-oks.
    pub fn write_durable_replies(&mut self, durable: u64, broker: &Broker, out: &mut Writer) {
        let mut acked_through = None;
        while let Some(&next) = self.unconfirmed.front() {
            if next.ticket > durable {
                break;
            }
            self.unconfirmed.pop_front();
            if !next.rejected && !broker.durable_write_lost(next.ticket) {
                acked_through = Some(next.seq);
                continue;
            }
            if let Some(seq) = acked_through.take() {
                out.method(self.id, &confirm_ack(seq));
            }
            out.method(
                self.id,
                &Method::BasicNack(BasicNack {
                    delivery_tag: next.seq,
                    multiple: false,
                    requeue: false,
                }),
            );
        }
        if let Some(seq) = acked_through {
            out.method(self.id, &confirm_ack(seq));
        }
        while let Some(&(ticket, failed)) = self.commits_awaiting_disk.front() {
            if ticket > durable {
                break;
            }
            self.commits_awaiting_disk.pop_front();
            if failed || broker.durable_write_lost(ticket) {
                // The commit did not take effect as promised; RabbitMQ has no tx.commit
                // failure reply short of an error, so the channel is told the hard way.
                self.commit_failed = true;
                continue;
            }
            out.method(self.id, &Method::TxCommitOk(TxCommitOk));
        }
    }

    pub fn awaits_durability(&self) -> bool {
        !self.unconfirmed.is_empty() || !self.commits_awaiting_disk.is_empty()
    }

    /// A request with `reply_to = amq.rabbitmq.reply-to` gets this channel's private reply
    /// queue name instead, so the responder's publish to it reaches our consumer.
    fn rewrite_direct_reply_to(&self, properties: Bytes) -> AmqpResult<Bytes> {
        // Cheap pre-check: the literal can only be there if the bytes contain it.
        let needle = DIRECT_REPLY_TO.as_bytes();
        if !properties.windows(needle.len()).any(|w| w == needle) {
            return Ok(properties);
        }
        let Ok(mut props) = BasicProperties::decode(&mut properties.clone()) else {
            return Ok(properties);
        };
        if props
            .reply_to
            .as_ref()
            .is_none_or(|r| *r != DIRECT_REPLY_TO)
        {
            return Ok(properties);
        }
        let Some(reply_queue) = &self.reply_queue else {
            return Err(AmqpError::precondition_failed(
                "fast reply consumer does not exist",
            ));
        };
        props.reply_to = Some(reply_queue.clone());
        let mut out = BytesMut::new();
        props.encode(&mut out);
        Ok(out.freeze())
    }

    /// Applies a transaction; returns the group-commit ticket its publishes need and whether a
    /// queue refused one of them.
    fn commit(&mut self, tx: TxState, ctx: &mut Ctx) -> AmqpResult<(u64, bool)> {
        let (mut ticket, mut rejected) = (0, false);
        for p in tx.publishes {
            let (t, r) = self.route_and_enqueue(&p.exchange, p.mandatory, p.message, ctx)?;
            ticket = ticket.max(t);
            rejected |= r;
        }
        for (tag, multiple, how) in tx.settlements {
            self.settle_now(tag, multiple, how, ctx)?;
        }
        Ok((ticket, rejected))
    }

    // ---- consuming ----------------------------------------------------------------------

    fn on_qos(&mut self, m: BasicQos, ctx: &mut Ctx) -> AmqpResult<()> {
        if m.prefetch_size != 0 {
            return Err(AmqpError::not_implemented(format!(
                "prefetch_size!=0 ({})",
                m.prefetch_size
            )));
        }
        if m.global {
            self.outbox.set_global_limit(m.prefetch_count as u32);
            self.kick_consumer_queues();
        } else {
            self.consumer_prefetch = m.prefetch_count as u32;
        }
        ctx.out.method(self.id, &Method::BasicQosOk(BasicQosOk));
        Ok(())
    }

    fn on_consume(&mut self, m: BasicConsume, ctx: &mut Ctx) -> AmqpResult<()> {
        let queue = if m.queue == DIRECT_REPLY_TO {
            if !m.no_ack {
                return Err(AmqpError::precondition_failed(
                    "reply consumer cannot acknowledge",
                ));
            }
            self.direct_reply_queue(ctx)?
        } else {
            let name = self.queue_name(m.queue)?;
            ctx.access.check(Access::Read, "queue", &name)?;
            let queue = ctx.vhost.queue(&name)?;
            queue.check_owner(ctx.connection)?;
            queue
        };
        let tag = if m.consumer_tag.is_empty() {
            server_generated_consumer_tag()
        } else {
            m.consumer_tag
        };
        if self.consumers.contains_key(&tag) {
            return Err(AmqpError::new(
                ReplyCode::NotAllowed,
                format!("attempt to reuse consumer tag '{tag}'"),
            ));
        }
        let priority = consumer_priority(&m.arguments, queue.queue_type(), &queue.describe())?;
        let spec = ConsumerSpec {
            tag: tag.clone(),
            outbox: self.outbox.clone(),
            no_ack: m.no_ack,
            prefetch: self.consumer_prefetch,
            exclusive: m.exclusive,
            priority,
        };
        let id = queue.add_consumer(spec)?;
        self.consumers.insert(
            tag.clone(),
            ConsumerRef {
                queue,
                id,
                no_ack: m.no_ack,
                prefetch: self.consumer_prefetch,
                exclusive: m.exclusive,
                arguments: m.arguments,
            },
        );
        // Deliveries the queue already handed over are written only after this turn's frames
        // are handled, so the consume-ok still goes out first.
        if !m.nowait {
            ctx.out.method(
                self.id,
                &Method::BasicConsumeOk(BasicConsumeOk { consumer_tag: tag }),
            );
        }
        Ok(())
    }

    /// Creates (once per channel) the hidden queue behind a direct reply-to consumer.
    fn direct_reply_queue(&mut self, ctx: &mut Ctx) -> AmqpResult<Arc<Queue>> {
        if self.reply_queue.is_some() {
            return Err(AmqpError::precondition_failed(
                "direct reply-to consumer already exists on this channel",
            ));
        }
        let name = direct_reply_to_name();
        let declared = ctx.vhost.declare_internal_queue(
            ctx.connection,
            name.clone(),
            QueueConfig {
                durable: false,
                exclusive: true,
                auto_delete: true,
                arguments: FieldTable::new(),
            },
        )?;
        self.reply_queue = Some(name);
        Ok(declared)
    }

    /// Cancels a consumer; an auto-delete queue that loses its last consumer is deleted.
    fn cancel_consumer(&mut self, tag: &ShortStr, vhost: &VHost) {
        let Some(c) = self.consumers.remove(tag) else {
            return;
        };
        vhost.cancel_consumer(&c.queue, c.id);
        if self.reply_queue.as_ref() == Some(&c.queue.name) {
            self.reply_queue = None;
        }
    }

    /// The server cancelled a consumer (its queue was deleted).
    pub fn consumer_cancelled(&mut self, tag: &ShortStr) -> bool {
        self.consumers.remove(tag).is_some()
    }

    fn on_get(&mut self, m: BasicGet, ctx: &mut Ctx) -> AmqpResult<()> {
        let name = self.queue_name(m.queue)?;
        ctx.access.check(Access::Read, "queue", &name)?;
        let queue = ctx.vhost.queue(&name)?;
        queue.check_owner(ctx.connection)?;
        let Some((item, message_count)) = queue.get(m.no_ack) else {
            ctx.out.method(
                self.id,
                &Method::BasicGetEmpty(BasicGetEmpty {
                    cluster_id: ShortStr::default(),
                }),
            );
            return Ok(());
        };
        self.counters.got += 1;
        let got = if m.no_ack {
            &self.conn_stats.got_no_ack
        } else {
            &self.conn_stats.got
        };
        ConnectionStats::add(got, 1);
        if item.redelivered {
            self.counters.redelivered += 1;
            ConnectionStats::add(&self.conn_stats.redelivered, 1);
        }
        let tag = self.next_tag();
        let method = Method::BasicGetOk(BasicGetOk {
            delivery_tag: tag,
            redelivered: item.redelivered,
            exchange: item.message.exchange.clone(),
            routing_key: item.message.routing_key.clone(),
            message_count,
        });
        ctx.out.content(self.id, &method, &item.message);
        if !m.no_ack {
            self.note_queue_timeout(&queue);
            self.unacked.insert(
                tag,
                Unacked {
                    queue,
                    consumer: None,
                    item,
                    delivered_tick: ctx.tick,
                },
            );
        }
        Ok(())
    }

    /// A delivery from `queue` is outstanding: its own consumer timeout, if shorter than
    /// any before, bounds how far `overdue` looks.
    fn note_queue_timeout(&mut self, queue: &Queue) {
        if let Some(ms) = queue.consumer_timeout().filter(|&ms| ms > 0) {
            self.shortest_queue_timeout =
                Some(self.shortest_queue_timeout.map_or(ms, |s| s.min(ms)));
        }
    }

    /// The consumer timeout (in milliseconds) an unacknowledged delivery has outlived, if one
    /// has: its queue's (`x-consumer-timeout` or policy), else `broker_ms` (None: no limit).
    /// Deliveries are in age order, so only those older than the shortest timeout in play are
    /// looked at: usually none.
    pub fn overdue(&self, ticks: u64, broker_ms: Option<u64>) -> Option<u64> {
        let shortest = match (broker_ms, self.shortest_queue_timeout) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        for u in self.unacked.iter() {
            let age_ms = ticks.saturating_sub(u.delivered_tick).saturating_mul(1000);
            if age_ms <= shortest {
                return None;
            }
            let limit = match u.queue.consumer_timeout() {
                None => broker_ms,
                Some(0) => None,
                Some(ms) => Some(ms),
            };
            if limit.is_some_and(|limit| age_ms > limit) {
                return limit;
            }
        }
        None
    }

    fn next_tag(&mut self) -> u64 {
        let tag = self.next_delivery_tag;
        self.next_delivery_tag += 1;
        tag
    }

    /// Writes a delivery from a queue, or hands it back if its consumer is gone. What is
    /// written is noted in `written`, so that the queue hears when it reached the socket.
    pub fn deliver(
        &mut self,
        d: Delivery,
        tick: u64,
        out: &mut Writer,
        written: &mut WrittenDeliveries,
    ) {
        let live = !self.closing
            && self
                .consumers
                .get(&d.consumer_tag)
                .is_some_and(|c| c.id == d.consumer_id);
        if !live {
            if !d.no_ack {
                self.outbox.release(1);
            }
            d.queue.restore_unsent(d.consumer_id, d.no_ack, d.item);
            return;
        }
        self.counters.delivered += 1;
        let delivered = if d.no_ack {
            &self.conn_stats.delivered_no_ack
        } else {
            &self.conn_stats.delivered
        };
        ConnectionStats::add(delivered, 1);
        if d.item.redelivered {
            self.counters.redelivered += 1;
            ConnectionStats::add(&self.conn_stats.redelivered, 1);
        }
        let tag = self.next_tag();
        out.delivery(
            self.id,
            &d.consumer_tag,
            tag,
            d.item.redelivered,
            &d.item.message,
        );
        if d.windowed {
            written.add(&d.queue, d.consumer_id, d.item.message.size());
        }
        if d.no_ack {
            return;
        }
        self.note_queue_timeout(&d.queue);
        self.unacked.insert(
            tag,
            Unacked {
                queue: d.queue,
                consumer: Some(d.consumer_id),
                item: d.item,
                delivered_tick: tick,
            },
        );
    }

    // ---- acknowledgements ---------------------------------------------------------------

    fn on_settle(
        &mut self,
        tag: u64,
        multiple: bool,
        how: Settlement,
        ctx: &mut Ctx,
    ) -> AmqpResult<()> {
        if self.tx.is_some() {
            self.check_tag(tag, multiple)?;
            if let Some(tx) = self.tx.as_mut() {
                tx.settlements.push((tag, multiple, how));
            }
            return Ok(());
        }
        self.settle_now(tag, multiple, how, ctx)
    }

    fn check_tag(&self, tag: u64, multiple: bool) -> AmqpResult<()> {
        // As RabbitMQ's collect_acks: the tag itself must be outstanding, multiple or not;
        // only 0 with multiple means "everything outstanding".
        let known = (multiple && tag == 0) || self.unacked.contains(tag);
        if known {
            Ok(())
        } else {
            Err(AmqpError::precondition_failed(format!(
                "unknown delivery tag {tag}"
            )))
        }
    }

    fn settle_now(
        &mut self,
        tag: u64,
        multiple: bool,
        how: Settlement,
        _ctx: &mut Ctx,
    ) -> AmqpResult<()> {
        self.check_tag(tag, multiple)?;
        let settled: Vec<Unacked> = if multiple && tag == 0 {
            // tag 0 with multiple means "everything outstanding".
            self.unacked.take_all()
        } else if multiple {
            self.unacked.take_through(tag)
        } else {
            self.unacked.take(tag).into_iter().collect()
        };
        if how == Settlement::Ack {
            self.counters.acked += settled.len() as u64;
            ConnectionStats::add(&self.conn_stats.acked, settled.len() as u64);
        }
        self.settle_batch(settled, how);
        Ok(())
    }

    /// Settles deliveries queue by queue, one queue lock per run of the same queue.
    fn settle_batch(&mut self, settled: Vec<Unacked>, how: Settlement) {
        let credit = settled.iter().filter(|u| u.consumer.is_some()).count() as u32;
        let mut iter = settled.into_iter().peekable();
        while let Some(first) = iter.next() {
            let queue = first.queue.clone();
            let mut batch = vec![(first.consumer, first.item)];
            while let Some(next) = iter.next_if(|u| Arc::ptr_eq(&u.queue, &queue)) {
                batch.push((next.consumer, next.item));
            }
            queue.settle(batch, how);
        }
        if credit > 0 {
            self.outbox.release(credit);
            if self.outbox.global_limit() != 0 {
                self.kick_consumer_queues();
            }
        }
    }

    fn kick_consumer_queues(&self) {
        for c in self.consumers.values() {
            c.queue.kick();
        }
    }

    fn recover(&mut self, requeue: bool) -> AmqpResult<()> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        let all = self.unacked.take_all();
        self.settle_batch(all, Settlement::Requeue);
        Ok(())
    }

    // ---- queue.declare ------------------------------------------------------------------

    fn on_queue_declare(&mut self, m: QueueDeclare_, ctx: &mut Ctx) -> AmqpResult<()> {
        // A server-named queue gets its name first: RabbitMQ checks permissions on it.
        let server_named = !m.passive && m.queue.is_empty();
        let name = if server_named {
            server_generated_queue_name()
        } else {
            m.queue
        };
        if !m.passive {
            ctx.access.check(Access::Configure, "queue", &name)?;
            // As RabbitMQ: declaring a new queue with a dead-letter exchange needs read on
            // the queue and write on that exchange (which need not exist yet).
            if let Some(dlx) = m
                .arguments
                .get("x-dead-letter-exchange")
                .and_then(FieldValue::as_bytes)
            {
                if ctx.vhost.queue(&name).is_err() {
                    ctx.access.check(Access::Read, "queue", &name)?;
                    ctx.access
                        .check(Access::Write, "exchange", &ShortStr::from(dlx))?;
                }
            }
        }
        let declared = ctx.vhost.declare_queue(
            ctx.connection,
            QueueDeclare {
                name,
                server_named,
                passive: m.passive,
                config: QueueConfig {
                    durable: m.durable,
                    exclusive: m.exclusive,
                    auto_delete: m.auto_delete,
                    arguments: m.arguments,
                },
            },
        )?;
        let name = declared.queue.name.clone();
        self.last_queue = Some(name.clone());
        if !m.nowait {
            ctx.out.method(
                self.id,
                &Method::QueueDeclareOk(QueueDeclareOk {
                    queue: name,
                    message_count: declared.message_count,
                    consumer_count: declared.consumer_count,
                }),
            );
        }
        Ok(())
    }

    // ---- closing ------------------------------------------------------------------------

    /// Releases everything the channel holds: consumers are cancelled (auto-delete queues may
    /// go), unacked deliveries return to their queues flagged redelivered.
    pub fn release(&mut self, vhost: &VHost) {
        self.content = None;
        let tags: Vec<ShortStr> = self.consumers.keys().cloned().collect();
        for tag in tags {
            self.cancel_consumer(&tag, vhost);
        }
        let all = self.unacked.take_all();
        self.settle_batch(all, Settlement::Requeue);
        self.tx = None;
    }
}

use warren_protocol::QueueDeclare as QueueDeclare_;

fn confirm_ack(seq: u64) -> Method {
    Method::BasicAck(BasicAck {
        delivery_tag: seq,
        multiple: true,
    })
}
