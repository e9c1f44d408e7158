//! Fanout exchanges: every bound destination gets every message; keys are ignored.

use warren_protocol::{FieldTable, ShortStr};

use super::{Binding, BindingList, Destination, Routed, Router};
use crate::message::Message;

#[derive(Default)]
pub struct FanoutRouter {
    bindings: BindingList,
}

impl Router for FanoutRouter {
    fn bind(&mut self, binding: Binding) -> bool {
        self.bindings.add(binding)
    }

    fn unbind(
        &mut self,
        destination: &Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> bool {
        self.bindings.remove(destination, routing_key, arguments)
    }

    fn unbind_all(&mut self, destination: &Destination) -> Vec<Binding> {
        self.bindings.remove_destination(destination)
    }

    fn route(&self, _message: &Message, out: &mut Routed) {
        out.extend(self.bindings.destinations());
    }

    fn bindings(&self) -> Vec<Binding> {
        self.bindings.iter().cloned().collect()
    }

    fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}
