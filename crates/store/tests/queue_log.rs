//! The queue log against real files: recovery, torn and corrupt records, space reclaim.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use warren_store::{Change, DefinitionsLog, NewRecord, QueueLog, RecordMeta, Syncer};

/// Appends a record with a context shared by all of them.
fn put(log: &QueueLog, seq: u64, persistent: bool, payload: &[u8]) -> u64 {
    log.append(&NewRecord {
        seq,
        persistent,
        meta: RecordMeta {
            enqueued_at: 1_700_000_000_000 + seq,
            ..RecordMeta::default()
        },
        context: &[b"ctx"],
        payload,
    })
    .unwrap()
}

fn open(dir: &Path, syncer: &Arc<Syncer>) -> (QueueLog, warren_store::Recovered) {
    QueueLog::open_with_segment_size(dir, true, syncer.clone(), 1024).unwrap()
}

fn seqs(log: &QueueLog, from: u64) -> Vec<u64> {
    log.read(from, usize::MAX, usize::MAX)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect()
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count()
}

#[test]
fn persistent_records_survive_reopen_and_transient_ones_do_not() {
    let tmp = tempfile::tempdir().unwrap();
    let syncer = Syncer::start();
    {
        let (log, rec) = open(tmp.path(), &syncer);
        assert_eq!(rec.messages, 0);
        for seq in 0..100u64 {
            put(
                &log,
                seq,
                seq % 2 == 0,
                &[&b"payload-"[..], &seq.to_be_bytes()].concat(),
            );
        }
        log.kill([0, 2, 4]).unwrap();
        log.delivered(10);
        log.kill([6]).unwrap(); // flushes the delivery frontier with it
    }
    let (log, rec) = open(tmp.path(), &syncer);
    assert_eq!(rec.next_seq, 100);
    assert_eq!(rec.messages, 50 - 4);
    assert_eq!(rec.delivered, Some(10));
    let got = log.read(0, usize::MAX, usize::MAX).unwrap();
    assert_eq!(got.len(), 46);
    assert_eq!(got[0].seq, 8);
    assert!(got.iter().all(|r| r.persistent));
    assert_eq!(&got[0].payload[..8], b"payload-");
    assert_eq!(&got[0].context[..], b"ctx");
    assert_eq!(got[0].meta.enqueued_at, 1_700_000_000_008);
    assert_eq!(rec.bytes, 46 * 16, "payload bytes of what is live");
    syncer.shutdown();
}

#[test]
fn acked_segments_are_deleted_and_reads_resume_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let syncer = Syncer::start();
    let (log, _) = open(tmp.path(), &syncer);
    for seq in 0..200u64 {
        put(&log, seq, true, &[7u8; 40]);
    }
    let before = segment_files(tmp.path());
    assert!(before > 5, "1 KiB segments roll often: {before}");
    assert_eq!(seqs(&log, 0).len(), 200);
    log.kill(0..190).unwrap();
    // The group-commit thread removes them, off the caller's (the queue's) lock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while segment_files(tmp.path()) > 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "fully acked segments are gone"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(log);
    let (log, rec) = open(tmp.path(), &syncer);
    assert_eq!(rec.messages, 10);
    assert_eq!(seqs(&log, 0), (190..200).collect::<Vec<_>>());
    syncer.shutdown();
}

#[test]
fn a_torn_tail_is_truncated_and_a_corrupt_record_costs_its_block_only() {
    let tmp = tempfile::tempdir().unwrap();
    let syncer = Syncer::start();
    let payload = |seq: u64| format!("record-{seq:03}-{}", "x".repeat(500)).into_bytes();
    {
        let (log, _) = QueueLog::open(tmp.path(), true, syncer.clone()).unwrap();
        for seq in 0..40u64 {
            put(&log, seq, true, &payload(seq));
        }
        log.kill(std::iter::empty()).unwrap();
        log.read(0, 1, usize::MAX).unwrap(); // flushes the writer
    }
    let seg = tmp.path().join(format!("{:020}.seg", 0));
    // Flip a byte inside record 3's payload, and leave part of a frame at the end.
    let mut bytes = std::fs::read(&seg).unwrap();
    let whole = bytes.len() as u64;
    let at = bytes.windows(10).position(|w| w == b"record-003").unwrap();
    bytes[at + 20] ^= 0xFF;
    bytes.extend_from_slice(&[50, 1, 2, 3]);
    std::fs::write(&seg, &bytes).unwrap();

    let (log, rec) = QueueLog::open(tmp.path(), true, syncer.clone()).unwrap();
    let got = seqs(&log, 0);
    assert_eq!(&got[..3], &[0, 1, 2]);
    // Blocks are 4 KiB: reading resumes with the next one, a few records on.
    let resumed = got[3];
    assert!((5..=10).contains(&resumed), "resumed at {resumed}");
    assert_eq!(&got[3..], &(resumed..40).collect::<Vec<_>>()[..]);
    assert_eq!(rec.messages, got.len() as u64);
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        whole,
        "torn tail truncated"
    );
    // Appending after recovery continues the sequence.
    put(&log, rec.next_seq, true, b"after");
    assert_eq!(seqs(&log, 40), vec![40]);
    syncer.shutdown();
}

#[test]
fn a_range_kill_purges_the_disk_part() {
    let tmp = tempfile::tempdir().unwrap();
    let syncer = Syncer::start();
    let (log, _) = open(tmp.path(), &syncer);
    for seq in 0..100u64 {
        put(&log, seq, true, &[1u8; 40]);
    }
    log.kill_range(20, 100).unwrap();
    assert_eq!(seqs(&log, 0), (0..20).collect::<Vec<_>>());
    log.kill(0..20).unwrap();
    assert!(segment_files(tmp.path()) <= 1);
    drop(log);
    let (_, rec) = open(tmp.path(), &syncer);
    assert_eq!(rec.messages, 0);
    syncer.shutdown();
}

#[test]
fn group_commit_announces_durable_tickets() {
    let tmp = tempfile::tempdir().unwrap();
    let syncer = Syncer::start();
    let (log, _) = open(tmp.path(), &syncer);
    let ticket = put(&log, 0, true, b"x");
    assert!(ticket > 0);
    assert_eq!(
        put(&log, 1, false, b"y"),
        0,
        "transient records need no fsync"
    );
    let mut rx = syncer.subscribe();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while *rx.borrow_and_update() < ticket {
        assert!(
            std::time::Instant::now() < deadline,
            "ticket never became durable"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    syncer.shutdown();
}

#[test]
fn destroy_removes_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let syncer = Syncer::start();
    let dir = tmp.path().join("q");
    let (log, _) = open(&dir, &syncer);
    put(&log, 0, true, b"x");
    log.destroy();
    assert!(!dir.exists());
    syncer.shutdown();
}

#[test]
fn definitions_replay_and_survive_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("definitions.log");
    {
        let (mut defs, entries) = DefinitionsLog::open(&path).unwrap();
        assert!(entries.is_empty());
        defs.put(b"queue/a", b"1").unwrap();
        defs.put(b"queue/b", b"2").unwrap();
        defs.put(b"queue/a", b"3").unwrap();
        defs.delete(b"queue/b").unwrap();
    }
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[0, 0, 1])
        .unwrap();
    let (_, entries) = DefinitionsLog::open(&path).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries.get(&b"queue/a"[..]).map(|v| &v[..]),
        Some(&b"3"[..])
    );
}

#[test]
fn a_batch_of_definition_changes_is_replayed_whole_or_not_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("definitions.log");
    {
        let (mut defs, _) = DefinitionsLog::open(&path).unwrap();
        defs.put(b"queue/a", b"1").unwrap();
        defs.put(b"binding/a", b"1").unwrap();
        defs.commit(&[
            Change::Delete { key: b"binding/a" },
            Change::Delete { key: b"queue/a" },
            Change::Put {
                key: b"queue/b",
                value: b"2",
            },
        ])
        .unwrap();
    }
    let (_, entries) = DefinitionsLog::open(&path).unwrap();
    let keys: Vec<&[u8]> = entries.keys().map(|k| &k[..]).collect();
    assert_eq!(keys, [&b"queue/b"[..]]);

    // A batch torn by a crash leaves everything as it was before it.
    let before = std::fs::metadata(&path).unwrap().len();
    {
        let (mut defs, _) = DefinitionsLog::open(&path).unwrap();
        defs.commit(&[
            Change::Delete { key: b"queue/b" },
            Change::Put {
                key: b"queue/c",
                value: b"3",
            },
        ])
        .unwrap();
    }
    let full = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(full - 3)
        .unwrap();
    assert!(full - 3 > before);
    let (_, entries) = DefinitionsLog::open(&path).unwrap();
    let keys: Vec<&[u8]> = entries.keys().map(|k| &k[..]).collect();
    assert_eq!(keys, [&b"queue/b"[..]]);
}

/// Many writers on several logs, each waiting for its own ticket: every ticket must become
/// durable without further writes arriving (a lost wakeup here stalls publisher confirms).
#[test]
fn every_ticket_becomes_durable_under_concurrent_writers() {
    let tmp = tempfile::tempdir().unwrap();
    let syncer = Syncer::start();
    // Each log with the next seq to use: a queue appends its seqs in order, under its lock.
    let logs: Vec<Arc<parking_lot::Mutex<(QueueLog, u64)>>> = (0..3)
        .map(|i| {
            let log = QueueLog::open(&tmp.path().join(i.to_string()), true, syncer.clone())
                .unwrap()
                .0;
            Arc::new(parking_lot::Mutex::new((log, 0)))
        })
        .collect();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let log = logs[t % logs.len()].clone();
            let syncer = syncer.clone();
            std::thread::spawn(move || {
                let mut rx = syncer.subscribe();
                for _ in 0..300 {
                    let ticket = {
                        let mut guard = log.lock();
                        let (log, next) = &mut *guard;
                        *next += 1;
                        put(log, *next - 1, true, b"m")
                    };
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                    while *rx.borrow_and_update() < ticket {
                        assert!(
                            std::time::Instant::now() < deadline,
                            "ticket {ticket} never became durable"
                        );
                        std::thread::sleep(std::time::Duration::from_micros(50));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    syncer.shutdown();
}

#[test]
fn seqs_are_not_reused_after_everything_was_purged() {
    let tmp = tempfile::tempdir().unwrap();
    let syncer = Syncer::start();
    {
        let (log, _) = open(tmp.path(), &syncer);
        for seq in 0..50u64 {
            put(&log, seq, true, b"m");
        }
        log.kill_range(0, 50).unwrap();
        assert_eq!(
            segment_files(tmp.path()),
            0,
            "a purge frees even the active segment"
        );
    }
    let (log, rec) = open(tmp.path(), &syncer);
    assert_eq!(
        (rec.messages, rec.next_seq),
        (0, 50),
        "the journal remembers how far seqs went"
    );
    put(&log, rec.next_seq, true, b"new");
    drop(log);
    let (_, rec) = open(tmp.path(), &syncer);
    assert_eq!(
        rec.messages, 1,
        "a message appended after the purge is not mistaken for a dead one"
    );
    syncer.shutdown();
}

/// A journal past its size limit is compacted by the group-commit thread, not by the caller
/// that acked, and says the same afterwards.
#[test]
fn a_long_journal_is_compacted_off_the_ack_path() {
    let tmp = tempfile::tempdir().unwrap();
    let syncer = Syncer::start();
    let journal = tmp.path().join("journal");
    const N: u64 = 200_000;
    {
        let (log, _) = QueueLog::open(tmp.path(), true, syncer.clone()).unwrap();
        for seq in 0..N {
            put(&log, seq, true, b"m");
        }
        // The first 180,000 acked one by one: a journal record each, 25 bytes, 4.5 MB.
        for seq in 0..180_000 {
            log.kill([seq]).unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let len = std::fs::metadata(&journal).unwrap().len();
            // Compacted (what the records then said was one range), with the acks since.
            if len < 512 * 1024 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "journal of {len} bytes"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    let (log, rec) = QueueLog::open(tmp.path(), true, syncer.clone()).unwrap();
    assert_eq!(rec.messages, N - 180_000);
    assert_eq!(seqs(&log, 0), (180_000..N).collect::<Vec<_>>());
    syncer.shutdown();
}
