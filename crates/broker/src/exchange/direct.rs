//! Direct exchanges: the routing key must equal the binding key.

use warren_protocol::{FieldTable, ShortStr};

use super::{Binding, BindingList, Destination, Routed, Router};
use crate::message::Message;

#[derive(Default)]
pub struct DirectRouter {
    by_key: foldhash::HashMap<ShortStr, BindingList>,
}

impl Router for DirectRouter {
    fn bind(&mut self, binding: Binding) -> bool {
        self.by_key
            .entry(binding.routing_key.clone())
            .or_default()
            .add(binding)
    }

    fn unbind(
        &mut self,
        destination: &Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> bool {
        let Some(list) = self.by_key.get_mut(routing_key) else {
            return false;
        };
        let removed = list.remove(destination, routing_key, arguments);
        if list.is_empty() {
            self.by_key.remove(routing_key);
        }
        removed
    }

    fn unbind_all(&mut self, destination: &Destination) -> Vec<Binding> {
        let mut removed = Vec::new();
        self.by_key.retain(|_, list| {
            removed.extend(list.remove_destination(destination));
            !list.is_empty()
        });
        removed
    }

    fn route(&self, message: &Message, out: &mut Routed) {
        if let Some(list) = self.by_key.get(message.routing_key.as_bytes()) {
            out.extend(list.destinations());
        }
    }

    fn bindings(&self) -> Vec<Binding> {
        self.by_key
            .values()
            .flat_map(|l| l.iter().cloned())
            .collect()
    }

    fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}
