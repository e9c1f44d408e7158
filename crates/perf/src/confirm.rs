//! Publisher-confirm bookkeeping: which sequence numbers are still unconfirmed, so a producer
//! keeps at most N messages in flight.
//!
//! Brokers confirm with `multiple=true` for runs and singly out of order (a message routed to
//! several queues is confirmed when the last of them has it), so the window is a ring of flags
//! indexed by sequence number. A slot frees when every earlier message is confirmed too.

#[derive(Debug)]
pub struct ConfirmWindow {
    /// Every sequence number below this is settled.
    low: u64,
    /// The next sequence number to publish (the channel's first is 1).
    next: u64,
    /// For `low <= seq < next`: settled out of order. Indexed by `seq % capacity`.
    settled: Vec<bool>,
}

impl ConfirmWindow {
    pub fn new(capacity: usize) -> ConfirmWindow {
        assert!(capacity > 0);
        ConfirmWindow {
            low: 1,
            next: 1,
            settled: vec![false; capacity],
        }
    }

    fn capacity(&self) -> u64 {
        self.settled.len() as u64
    }

    /// How many more messages may be published now.
    pub fn free(&self) -> u64 {
        self.capacity() - (self.next - self.low)
    }

    pub fn in_flight(&self) -> u64 {
        self.next - self.low
    }

    /// Records `n` publishes (at most `free()`).
    pub fn publish(&mut self, n: u64) {
        debug_assert!(n <= self.free());
        self.next += n;
    }

    /// A basic.ack or basic.nack from the broker; returns how many messages it settled.
    /// Tags outside the window (repeats, or never published) settle nothing.
    pub fn settle(&mut self, tag: u64, multiple: bool) -> u64 {
        if tag < self.low || tag >= self.next {
            return 0;
        }
        let cap = self.capacity();
        let mut count = 0;
        if multiple {
            for seq in self.low..=tag {
                let slot = &mut self.settled[(seq % cap) as usize];
                if !*slot {
                    count += 1;
                }
                *slot = false;
            }
            self.low = tag + 1;
        } else {
            let slot = &mut self.settled[(tag % cap) as usize];
            if *slot {
                return 0;
            }
            *slot = true;
            count = 1;
        }
        while self.low < self.next {
            let slot = &mut self.settled[(self.low % cap) as usize];
            if !*slot {
                break;
            }
            *slot = false;
            self.low += 1;
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiple_acks_free_the_window() {
        let mut w = ConfirmWindow::new(4);
        assert_eq!(w.free(), 4);
        w.publish(4);
        assert_eq!(w.free(), 0);
        assert_eq!(w.settle(3, true), 3);
        assert_eq!(w.free(), 3);
        assert_eq!(w.in_flight(), 1);
        w.publish(3);
        assert_eq!(w.settle(7, true), 4);
        assert_eq!(w.in_flight(), 0);
    }

    #[test]
    fn single_acks_out_of_order() {
        let mut w = ConfirmWindow::new(3);
        w.publish(3);
        assert_eq!(w.settle(2, false), 1);
        assert_eq!(w.settle(3, false), 1);
        // Still blocked on 1.
        assert_eq!(w.free(), 0);
        assert_eq!(w.settle(1, false), 1);
        assert_eq!(w.free(), 3);
        // Repeats and tags never published settle nothing.
        assert_eq!(w.settle(2, false), 0);
        assert_eq!(w.settle(9, true), 0);
    }

    #[test]
    fn multiple_after_singles_counts_each_message_once() {
        let mut w = ConfirmWindow::new(8);
        w.publish(6);
        assert_eq!(w.settle(3, false), 1);
        assert_eq!(w.settle(5, false), 1);
        assert_eq!(w.settle(4, true), 3); // 1, 2 and 4; 3 was already settled
        assert_eq!(w.in_flight(), 1); // 5 done by the advance, 6 still out
        assert_eq!(w.settle(6, true), 1);
        assert_eq!(w.in_flight(), 0);
    }

    #[test]
    fn wraps_around_the_ring() {
        let mut w = ConfirmWindow::new(2);
        let mut settled = 0;
        for seq in 1..=1001 {
            w.publish(1);
            settled += w.settle(seq, seq % 2 == 0);
        }
        assert_eq!(settled, 1001);
        assert_eq!(w.free(), 2);
    }
}
