//! A consumer: one connection, one channel, one `basic.consume`. Each turn reads whatever the
//! socket has, walks every frame in it, records latencies under one lock, and acknowledges
//! with one `basic.ack multiple=true` (or every N deliveries with --multi-ack-every).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_protocol::{
    encode_method_frame, BasicAck, BasicConsume, BasicNack, BasicQos, Frame, Method, ShortStr,
};

use crate::client::{close_error, is_close, Connection, CHANNEL, READ_BUF};
use crate::scan::{next_frame, Scanned};
use crate::stats::{Shared, SharedHistogram};
use crate::{Config, PerfError};

/// Connects, sets the prefetch (manual acks) and starts consuming from the consumer's queue.
pub async fn connect(cfg: &Config, id: usize) -> Result<Connection, PerfError> {
    let mut conn = Connection::open(&cfg.endpoint, &format!("warren-perf consumer {id}")).await?;
    if !cfg.auto_ack && cfg.prefetch > 0 {
        conn.rpc(
            Method::BasicQos(BasicQos {
                prefetch_size: 0,
                prefetch_count: cfg.prefetch,
                global: false,
            }),
            |m| matches!(m, Method::BasicQosOk(_)),
        )
        .await?;
    }
    conn.rpc(
        Method::BasicConsume(BasicConsume {
            queue: cfg.queues[cfg.consumer_queue(id)].as_str().into(),
            consumer_tag: ShortStr::from(format!("perf-c{id}")),
            no_ack: cfg.auto_ack,
            ..Default::default()
        }),
        |m| matches!(m, Method::BasicConsumeOk(_)),
    )
    .await?;
    Ok(conn)
}

pub async fn run(
    id: usize,
    conn: Connection,
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    latency: SharedHistogram,
) {
    if let Err(e) = consume(conn, &cfg, &shared, &latency).await {
        shared.fail(&format!("consumer {id}"), e);
    }
}

/// Acknowledgement state of a manual-ack consumer.
struct Acks {
    /// Deliveries received but not acknowledged yet.
    pending: usize,
    last_tag: u64,
    /// 0: once per read; N: every N deliveries.
    every: usize,
    /// --reject: settle with basic.nack requeue=false.
    reject: bool,
}

impl Acks {
    fn encode(&mut self, out: &mut BytesMut) {
        if self.pending == 0 {
            return;
        }
        // One delivery per ack when asked for exactly that; otherwise everything so far.
        let multiple = self.every != 1;
        let ack = if self.reject {
            Method::BasicNack(BasicNack {
                delivery_tag: self.last_tag,
                multiple,
                requeue: false,
            })
        } else {
            Method::BasicAck(BasicAck {
                delivery_tag: self.last_tag,
                multiple,
            })
        };
        encode_method_frame(out, CHANNEL, &ack);
        self.pending = 0;
    }
}

async fn consume(
    conn: Connection,
    cfg: &Config,
    shared: &Shared,
    latency: &SharedHistogram,
) -> Result<(), PerfError> {
    let (mut reader, mut writer, mut rbuf, frame_max) = conn.into_split();
    let mut acks = (!cfg.auto_ack).then_some(Acks {
        pending: 0,
        last_tag: 0,
        every: cfg.multi_ack_every,
        reject: cfg.reject,
    });
    let expected = cfg.expected_deliveries();
    let mut wbuf = BytesMut::with_capacity(4096);
    // Set by a delivery, cleared by its first body frame (which carries the send time).
    let mut awaiting_stamp = false;
    let stopped = shared.stopped();
    tokio::pin!(stopped);

    loop {
        // Frames already buffered come first: the read that brought basic.consume-ok may
        // have brought deliveries with it (a queue with a backlog answers at once), and no
        // more arrive until those are acknowledged.
        let now = shared.now_ns();
        let mut delivered = 0u64;
        {
            let mut histogram = latency.lock().expect("not poisoned");
            while let Some(frame) = next_frame(&mut rbuf, frame_max)? {
                match frame {
                    Scanned::Deliver { delivery_tag } => {
                        delivered += 1;
                        awaiting_stamp = true;
                        if let Some(a) = &mut acks {
                            a.pending += 1;
                            a.last_tag = delivery_tag;
                            if a.every > 0 && a.pending >= a.every {
                                a.encode(&mut wbuf);
                            }
                        }
                    }
                    Scanned::Header { body_size: 0 } => awaiting_stamp = false,
                    Scanned::Header { .. } => {}
                    Scanned::Body { head } => {
                        if awaiting_stamp {
                            awaiting_stamp = false;
                            if let Some(sent) = head {
                                histogram.saturating_record(now.saturating_sub(sent).max(1));
                            }
                        }
                    }
                    Scanned::Other(Frame::Method { method, .. }) if is_close(&method) => {
                        return Err(close_error(&method));
                    }
                    Scanned::Other(Frame::Method {
                        method: Method::BasicCancel(_),
                        ..
                    }) => {
                        return Err(PerfError::Protocol(
                            "the broker cancelled the consumer (queue deleted?)".into(),
                        ))
                    }
                    Scanned::Other(_) => {}
                }
            }
        }
        if let Some(a) = &mut acks {
            if a.every == 0 {
                a.encode(&mut wbuf);
            }
        }
        if !wbuf.is_empty() {
            writer.write_all(&wbuf).await?;
            writer.flush().await?;
            wbuf.clear();
        }
        if delivered > 0 {
            let total = shared.counters.received.fetch_add(delivered, Relaxed) + delivered;
            if expected.is_some_and(|e| total >= e) {
                shared.request_stop();
            }
        }
        if rbuf.capacity() - rbuf.len() < READ_BUF / 4 {
            rbuf.reserve(READ_BUF);
        }
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            read = reader.read_buf(&mut rbuf) => {
                if read? == 0 {
                    return Err(PerfError::Eof);
                }
            }
        }
    }

    // Acknowledge what we have before leaving, so nothing is redelivered to nobody.
    if let Some(a) = &mut acks {
        a.encode(&mut wbuf);
        if !wbuf.is_empty() {
            writer.write_all(&wbuf).await?;
            writer.flush().await?;
        }
    }
    if let Some(conn) = Connection::reunite(reader, writer, rbuf, frame_max) {
        conn.close().await;
    }
    Ok(())
}
