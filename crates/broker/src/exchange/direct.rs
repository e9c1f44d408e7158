//! Direct exchanges: the routing key must equal the binding key.

use std::collections::HashMap;

use warren_protocol::{FieldTable, ShortStr};

use super::{remove_matching, Binding, Destination, Routed, Router};
use crate::message::Message;

#[derive(Default)]
pub struct DirectRouter {
    by_key: HashMap<ShortStr, Vec<Binding>>,
}

impl Router for DirectRouter {
    fn bind(&mut self, binding: Binding) -> bool {
        let list = self.by_key.entry(binding.routing_key.clone()).or_default();
        if list.iter().any(|b| {
            b.matches(
                &binding.destination,
                &binding.routing_key,
                &binding.arguments,
            )
        }) {
            return false;
        }
        list.push(binding);
        true
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
        let removed =
            remove_matching(list, |b| !b.matches(destination, routing_key, arguments)).len();
        if list.is_empty() {
            self.by_key.remove(routing_key);
        }
        removed > 0
    }

    fn unbind_all(&mut self, destination: &Destination) -> Vec<Binding> {
        let mut removed = Vec::new();
        self.by_key.retain(|_, list| {
            removed.extend(remove_matching(list, |b| {
                !b.destination.same_as(destination)
            }));
            !list.is_empty()
        });
        removed
    }

    fn route(&self, message: &Message, out: &mut Routed) {
        if let Some(list) = self.by_key.get(message.routing_key.as_bytes()) {
            out.extend(list.iter().map(|b| b.destination.clone()));
        }
    }

    fn bindings(&self) -> Vec<Binding> {
        self.by_key.values().flatten().cloned().collect()
    }

    fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}
