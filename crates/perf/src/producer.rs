//! A producer: one connection, one channel, publishing batches as fast as the rate limit and
//! the confirm window allow. A second task reads the socket for confirms and closes.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, Notify};
use warren_protocol::{parse_frame, Frame, Method};

use crate::client::{close_error, is_close, Connection, CHANNEL, READ_BUF};
use crate::confirm::ConfirmWindow;
use crate::publish::PublishTemplate;
use crate::rate::Pacer;
use crate::stats::Shared;
use crate::stream::ReadHalf;
use crate::{Config, PerfError};

/// Bytes of publishes encoded per write: enough to amortise the syscall, small enough that the
/// timestamps in a batch are all "now".
const BATCH_BYTES: usize = 64 * 1024;
/// How long a finished producer waits for its outstanding confirms.
const CONFIRM_DRAIN: Duration = Duration::from_secs(5);

struct Window {
    confirms: Mutex<ConfirmWindow>,
    freed: Notify,
}

/// Connects and, with confirms, puts the channel in confirm mode.
pub async fn connect(cfg: &Config, id: usize) -> Result<Connection, PerfError> {
    let mut conn = Connection::open(&cfg.endpoint, &format!("warren-perf producer {id}")).await?;
    if cfg.confirm > 0 {
        conn.rpc(
            Method::ConfirmSelect(warren_protocol::ConfirmSelect { nowait: false }),
            |m| matches!(m, Method::ConfirmSelectOk(_)),
        )
        .await?;
    }
    Ok(conn)
}

pub async fn run(id: usize, conn: Connection, cfg: Arc<Config>, shared: Arc<Shared>) {
    if let Err(e) = publish(id, conn, &cfg, &shared).await {
        shared.fail(&format!("producer {id}"), e);
    }
    let done = shared.producers_done.fetch_add(1, Relaxed) + 1;
    // Publish-only runs end when every producer is done.
    if done == cfg.producers && cfg.consumers == 0 {
        shared.request_stop();
    }
}

async fn publish(
    id: usize,
    conn: Connection,
    cfg: &Config,
    shared: &Arc<Shared>,
) -> Result<(), PerfError> {
    let routing_key = cfg.routing_key(cfg.producer_queue(id));
    let (reader, mut writer, rbuf, frame_max) = conn.into_split();
    // One template per priority (--priorities), or one without a priority.
    let levels: Vec<Option<u8>> = match cfg.priorities {
        0 => vec![None],
        n => (0..n).map(Some).collect(),
    };
    let templates: Vec<PublishTemplate> = levels
        .into_iter()
        .map(|priority| {
            PublishTemplate::new(
                CHANNEL,
                &cfg.exchange,
                &routing_key,
                cfg.persistent,
                priority,
                cfg.size,
                frame_max,
            )
        })
        .collect();
    let mut pick = Xorshift(0x9E37_79B9_7F4A_7C15 ^ id as u64);
    let window = (cfg.confirm > 0).then(|| {
        Arc::new(Window {
            confirms: Mutex::new(ConfirmWindow::new(cfg.confirm)),
            freed: Notify::new(),
        })
    });
    let (finish_tx, finish_rx) = oneshot::channel();
    let read_task = {
        let (window, shared) = (window.clone(), shared.clone());
        tokio::spawn(async move {
            let read = read_confirms(reader, rbuf, frame_max, window, &shared, finish_rx).await;
            // Reported at once: the publishing loop may be waiting for confirms that will
            // never come, and the stop wakes it.
            read.map_err(|e| shared.fail(&format!("producer {id}"), e))
                .ok()
        })
    };

    let limit = cfg.pmessages.unwrap_or(u64::MAX);
    let batch_max = (BATCH_BYTES / templates[0].encoded_len()).max(1) as u64;
    let mut pacer = (cfg.rate > 0.0).then(|| Pacer::new(cfg.rate));
    let mut wbuf = BytesMut::with_capacity(batch_max as usize * templates[0].encoded_len());
    let stopped = shared.stopped();
    tokio::pin!(stopped);
    let mut sent = 0u64;
    let mut interrupted = false;

    while sent < limit && !shared.stopping() {
        let mut n = batch_max.min(limit - sent);
        if let Some(w) = &window {
            let free = w.confirms.lock().expect("not poisoned").free();
            if free == 0 {
                tokio::select! {
                    _ = w.freed.notified() => {}
                    _ = &mut stopped => break,
                }
                continue;
            }
            n = n.min(free);
        }
        if let Some(p) = &mut pacer {
            n = p.take(shared.elapsed(), n);
            if n == 0 {
                let due = tokio::time::Instant::from_std(shared.origin + p.next_due());
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = &mut stopped => break,
                }
                continue;
            }
        }
        if let Some(w) = &window {
            w.confirms.lock().expect("not poisoned").publish(n);
        }
        let stamp = shared.now_ns();
        wbuf.clear();
        for _ in 0..n {
            let template = match templates.len() {
                1 => &templates[0],
                len => &templates[pick.next() as usize % len],
            };
            template.write(&mut wbuf, stamp);
        }
        tokio::select! {
            biased;
            // TLS keeps records until flushed; on TCP flush is free.
            written = async {
                writer.write_all(&wbuf).await?;
                writer.flush().await
            } => written?,
            // The broker stopped reading (no flow control, or overloaded) and the run is over.
            _ = &mut stopped => {
                interrupted = true;
                break;
            }
        }
        sent += n;
        shared.counters.sent.fetch_add(n, Relaxed);
        // Let consumers on this thread run between batches.
        tokio::task::yield_now().await;
    }

    if let (Some(w), false) = (&window, interrupted) {
        // Wait for outstanding confirms, so the confirmed count is complete.
        let _ = tokio::time::timeout(CONFIRM_DRAIN, async {
            loop {
                let notified = w.freed.notified();
                if w.confirms.lock().expect("not poisoned").in_flight() == 0 {
                    break;
                }
                notified.await;
            }
        })
        .await;
    }
    let _ = finish_tx.send(());
    let (reader, rbuf) = match read_task.await {
        Ok(Some(parts)) => parts,
        // Already reported by the reader.
        Ok(None) => return Ok(()),
        Err(join) => return Err(PerfError::Protocol(format!("confirm reader: {join}"))),
    };
    if !interrupted {
        if let Some(conn) = Connection::reunite(reader, writer, rbuf, frame_max) {
            conn.close().await;
        }
    }
    Ok(())
}

/// Reads what the broker sends a producer: confirms, and errors. Returns the read half when
/// told to finish, so the connection can be closed properly.
async fn read_confirms(
    mut reader: ReadHalf,
    mut rbuf: BytesMut,
    frame_max: u32,
    window: Option<Arc<Window>>,
    shared: &Shared,
    mut finish: oneshot::Receiver<()>,
) -> Result<(ReadHalf, BytesMut), PerfError> {
    loop {
        if rbuf.capacity() - rbuf.len() < READ_BUF / 4 {
            rbuf.reserve(READ_BUF);
        }
        tokio::select! {
            biased;
            _ = &mut finish => return Ok((reader, rbuf)),
            read = reader.read_buf(&mut rbuf) => {
                if read? == 0 {
                    return Err(PerfError::Eof);
                }
            }
        }
        let (mut acked, mut nacked) = (0, 0);
        while let Some(frame) = parse_frame(&mut rbuf, frame_max)? {
            let Frame::Method { method, .. } = frame else {
                continue;
            };
            match (&method, &window) {
                (Method::BasicAck(a), Some(w)) => {
                    acked += w
                        .confirms
                        .lock()
                        .expect("not poisoned")
                        .settle(a.delivery_tag, a.multiple);
                }
                (Method::BasicNack(n), Some(w)) => {
                    nacked += w
                        .confirms
                        .lock()
                        .expect("not poisoned")
                        .settle(n.delivery_tag, n.multiple);
                }
                _ if is_close(&method) => return Err(close_error(&method)),
                // connection.blocked and the like: nothing to do.
                _ => {}
            }
        }
        if acked + nacked > 0 {
            shared.counters.confirmed.fetch_add(acked, Relaxed);
            shared.counters.nacked.fetch_add(nacked, Relaxed);
            if let Some(w) = &window {
                w.freed.notify_one();
            }
        }
    }
}

/// Picks each message's priority: the load generator needs an even spread, not randomness of
/// any quality, so a xorshift does (no RNG crate for this).
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}
