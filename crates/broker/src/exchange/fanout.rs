//! Fanout exchanges: every bound destination gets every message; keys are ignored.

use warren_protocol::{FieldTable, ShortStr};

use super::{remove_matching, Binding, Destination, Routed, Router};
use crate::message::Message;

#[derive(Default)]
pub struct FanoutRouter {
    bindings: Vec<Binding>,
}

impl Router for FanoutRouter {
    fn bind(&mut self, binding: Binding) -> bool {
        if self.bindings.iter().any(|b| {
            b.matches(
                &binding.destination,
                &binding.routing_key,
                &binding.arguments,
            )
        }) {
            return false;
        }
        self.bindings.push(binding);
        true
    }

    fn unbind(
        &mut self,
        destination: &Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> bool {
        let removed = remove_matching(&mut self.bindings, |b| {
            !b.matches(destination, routing_key, arguments)
        });
        !removed.is_empty()
    }

    fn unbind_all(&mut self, destination: &Destination) -> Vec<Binding> {
        remove_matching(&mut self.bindings, |b| !b.destination.same_as(destination))
    }

    fn route(&self, _message: &Message, out: &mut Routed) {
        out.extend(self.bindings.iter().map(|b| b.destination.clone()));
    }

    fn bindings(&self) -> Vec<Binding> {
        self.bindings.clone()
    }

    fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}
