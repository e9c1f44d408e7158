//! purge_queue and delete_queue.

use crate::harness::start;

#[test]
fn purge_then_delete_a_queue() {
    let h = start();
    let c = h.guest();
    h.declare(&c, "jobs", true);
    h.declare(&c, "keep", true);
    h.publish(&c, "jobs", 5);
    h.publish(&c, "keep", 2);

    let out = h.ctl(&["purge_queue", "jobs"]);
    assert_eq!(out.ok(), "Purging queue 'jobs' in vhost '/' ...\n");
    assert_eq!(h.ctl(&["-s", "list_queues"]).ok(), "jobs\t0\nkeep\t2\n");

    // --if-empty refuses while there are messages, and leaves the queue alone.
    let out = h.ctl(&["delete_queue", "keep", "--if-empty"]);
    let err = out.fails(70);
    assert!(
        err.contains("not empty") || err.contains("PRECONDITION"),
        "{err}"
    );
    assert!(out
        .stdout
        .starts_with("Deleting queue 'keep' on vhost '/' if queue is empty ..."));
    assert_eq!(h.ctl(&["-s", "list_queues"]).ok(), "jobs\t0\nkeep\t2\n");

    let out = h.ctl(&["delete_queue", "keep"]);
    assert_eq!(
        out.ok(),
        "Deleting queue 'keep' on vhost '/' ...\nQueue was successfully deleted with 2 messages\n"
    );
    let out = h.bin(&["-q", "delete_queue", "-e", "jobs"]);
    assert_eq!(out.ok(), "");
    assert_eq!(h.ctl(&["-s", "list_queues"]).ok(), "");

    let out = h.ctl(&["delete_queue", "jobs"]);
    assert!(out
        .fails(70)
        .contains("queue 'jobs' in vhost '/' not found"));
    let out = h.ctl(&["purge_queue", "jobs"]);
    assert!(out.fails(70).contains("not found"));
    h.close(c);
}
