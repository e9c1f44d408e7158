//! Resource alarms, as RabbitMQ raises them: memory use above its limit, or free disk below
//! its limit. While one is on, connections that publish are blocked (`connection.blocked`)
//! until it clears; consumers keep going, which is what frees the resources.

use tokio::sync::watch;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlarmState {
    pub memory: bool,
    pub disk: bool,
}

impl AlarmState {
    pub fn any(self) -> bool {
        self.memory || self.disk
    }

    /// The reason RabbitMQ gives in connection.blocked.
    pub fn reason(self) -> &'static str {
        match (self.memory, self.disk) {
            (true, true) => "low on memory and disk",
            (true, false) => "low on memory",
            (false, true) => "low on disk",
            (false, false) => "",
        }
    }
}

pub struct Alarms {
    tx: watch::Sender<AlarmState>,
}

impl Default for Alarms {
    fn default() -> Self {
        Alarms {
            tx: watch::channel(AlarmState::default()).0,
        }
    }
}

impl Alarms {
    pub fn subscribe(&self) -> watch::Receiver<AlarmState> {
        self.tx.subscribe()
    }

    pub fn state(&self) -> AlarmState {
        *self.tx.borrow()
    }

    pub fn set_memory(&self, on: bool) {
        self.tx
            .send_if_modified(|s| std::mem::replace(&mut s.memory, on) != on);
    }

    pub fn set_disk(&self, on: bool) {
        self.tx
            .send_if_modified(|s| std::mem::replace(&mut s.disk, on) != on);
    }
}
