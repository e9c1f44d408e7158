//! Consumers and the outbox through which queues hand deliveries to whoever serves a channel.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;
use warren_protocol::ShortStr;

use super::{Queue, Queued};
use crate::ConnectionId;

/// What a queue sends to a connection.
pub enum Outbound {
    /// A message for a consumer. The connection assigns the delivery tag when it writes it.
    Deliver(Delivery),
    /// The consumer's queue was deleted (basic.cancel from the server).
    ConsumerCancelled {
        channel: u16,
        consumer_tag: ShortStr,
    },
}

pub struct Delivery {
    pub channel: u16,
    pub consumer_tag: ShortStr,
    pub consumer_id: u64,
    pub no_ack: bool,
    /// The connection must report the write back (`Queue::written`): see `Consumer::windowed`.
    pub windowed: bool,
    pub queue: Arc<Queue>,
    pub item: Queued,
}

/// A channel as queues see it: where to send deliveries, and the channel-wide prefetch credit
/// (basic.qos with global=true) that all its consumers share.
pub struct ChannelOutbox {
    pub connection: ConnectionId,
    pub channel: u16,
    sender: UnboundedSender<Outbound>,
    /// Deliveries awaiting ack on this channel, from all its consumers.
    in_flight: AtomicU32,
    /// Channel-wide prefetch limit; 0 means none.
    global_limit: AtomicU32,
    /// channel.flow: false stops deliveries.
    active: AtomicBool,
}

impl ChannelOutbox {
    pub fn new(
        connection: ConnectionId,
        channel: u16,
        sender: UnboundedSender<Outbound>,
    ) -> Arc<Self> {
        Arc::new(ChannelOutbox {
            connection,
            channel,
            sender,
            in_flight: AtomicU32::new(0),
            global_limit: AtomicU32::new(0),
            active: AtomicBool::new(true),
        })
    }

    pub fn send(&self, outbound: Outbound) -> Result<(), Outbound> {
        self.sender.send(outbound).map_err(|e| e.0)
    }

    /// Hands a delivery to the channel's connection; it comes back if the connection is gone.
    pub fn deliver(&self, delivery: Delivery) -> Result<(), Box<Delivery>> {
        match self.sender.send(Outbound::Deliver(delivery)) {
            Ok(()) => Ok(()),
            Err(returned) => match returned.0 {
                Outbound::Deliver(delivery) => Err(Box::new(delivery)),
                // `send` hands back what it was given: a delivery.
                Outbound::ConsumerCancelled { .. } => Ok(()),
            },
        }
    }

    pub fn set_global_limit(&self, limit: u32) {
        self.global_limit.store(limit, Ordering::Relaxed);
    }

    pub fn global_limit(&self) -> u32 {
        self.global_limit.load(Ordering::Relaxed)
    }

    pub fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::Relaxed);
    }

    fn may_deliver(&self) -> bool {
        if !self.active.load(Ordering::Relaxed) {
            return false;
        }
        let limit = self.global_limit.load(Ordering::Relaxed);
        limit == 0 || self.in_flight.load(Ordering::Relaxed) < limit
    }

    /// Takes one unit of channel credit; a compare-and-swap loop because consumers on different
    /// queues draw from it concurrently and the limit must hold exactly.
    fn try_acquire(&self) -> bool {
        let limit = self.global_limit.load(Ordering::Relaxed);
        let mut current = self.in_flight.load(Ordering::Relaxed);
        loop {
            if limit != 0 && current >= limit {
                return false;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }

    /// Returns credit for settled deliveries (acked, rejected or requeued).
    pub fn release(&self, n: u32) {
        // Saturate rather than wrap: a client that acks twice must not mint credit.
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }
}

/// What a client asks for in basic.consume.
pub struct ConsumerSpec {
    pub tag: ShortStr,
    pub outbox: Arc<ChannelOutbox>,
    pub no_ack: bool,
    /// Per-consumer prefetch (basic.qos global=false at the time of consume); 0 = unlimited.
    pub prefetch: u32,
    pub exclusive: bool,
    /// x-priority: higher goes first while it has credit.
    pub priority: i32,
}

/// How many deliveries a consumer may have on their way to its socket (handed to its
/// connection, not yet written), whatever its prefetch: a consumer with no prefetch limit, or
/// one whose client stopped reading, must not pull a whole backlog into the connection's
/// memory. Its connection writes them and reports back, which opens the window again; a
/// client that does not read holds the window shut through TCP back-pressure.
pub const SOCKET_WINDOW: u32 = 1024;
/// ... and at most this many bytes of them (at least one delivery always goes).
pub const SOCKET_WINDOW_BYTES: usize = 4 * 1024 * 1024;

pub(super) struct Consumer {
    pub id: u64,
    pub spec: ConsumerSpec,
    /// Delivered and not yet settled; counts against the prefetch (ack consumers only).
    pub unacked: u32,
    /// Handed to the connection and not yet written to the socket.
    pub unsent: u32,
    pub unsent_bytes: usize,
}

impl Consumer {
    pub fn new(id: u64, spec: ConsumerSpec) -> Consumer {
        Consumer {
            id,
            spec,
            unacked: 0,
            unsent: 0,
            unsent_bytes: 0,
        }
    }

    /// Whether the socket window applies. A consumer whose prefetch is within the window is
    /// bounded by its prefetch already (what is unsent is unacked), and its deliveries skip
    /// the window's bookkeeping: no report back to the queue per write on the hot path.
    pub fn windowed(&self) -> bool {
        self.spec.no_ack || self.spec.prefetch == 0 || self.spec.prefetch > SOCKET_WINDOW
    }

    pub fn has_credit(&self) -> bool {
        let prefetch =
            self.spec.no_ack || self.spec.prefetch == 0 || self.unacked < self.spec.prefetch;
        let window = !self.windowed()
            || (self.unsent < SOCKET_WINDOW && self.unsent_bytes < SOCKET_WINDOW_BYTES);
        prefetch && window && self.spec.outbox.may_deliver()
    }

    /// Reserves credit for one delivery of `bytes`; false if the channel-wide limit was
    /// reached meanwhile.
    pub fn acquire(&mut self, bytes: usize) -> bool {
        if !self.spec.no_ack {
            if !self.spec.outbox.try_acquire() {
                return false;
            }
            self.unacked += 1;
        }
        if self.windowed() {
            self.unsent += 1;
            self.unsent_bytes += bytes;
        }
        true
    }

    /// Undoes `acquire` for a delivery that could not be made after all.
    pub fn give_back(&mut self, bytes: usize) {
        if !self.spec.no_ack {
            self.spec.outbox.release(1);
            self.unacked = self.unacked.saturating_sub(1);
        }
        self.sent(1, bytes);
    }

    /// A delivery reached the socket (or came back unsent).
    pub fn sent(&mut self, n: u32, bytes: usize) {
        self.unsent = self.unsent.saturating_sub(n);
        self.unsent_bytes = self.unsent_bytes.saturating_sub(bytes);
    }
}
