//! Headers exchanges: match message headers against binding arguments (`x-match` all or any).

use warren_protocol::{FieldTable, FieldValue, ShortStr};

use super::{Binding, BindingList, Destination, Routed, Router};
use crate::message::Message;

#[derive(Default)]
pub struct HeadersRouter {
    bindings: BindingList,
}

#[derive(PartialEq)]
enum MatchMode {
    All,
    Any,
}

fn values_equal(a: &FieldValue, b: &FieldValue) -> bool {
    match (a.as_i64(), b.as_i64()) {
        // Clients pick integer widths freely; RabbitMQ compares numbers by value.
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Whether `headers` satisfy one binding's arguments. Arguments starting with `x-` are not
/// matched; a `V` (void) argument asks only for the header to be present.
fn binding_matches(arguments: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let mode = match arguments.get("x-match").and_then(FieldValue::as_bytes) {
        Some(b"any") | Some(b"any-with-x") => MatchMode::Any,
        _ => MatchMode::All,
    };
    for (name, expected) in arguments.iter() {
        if name.starts_with(b"x-") {
            continue;
        }
        let found = headers.and_then(|h| h.get(&name.to_string()));
        let hit = match (expected, found) {
            (_, None) => false,
            (FieldValue::Void, Some(_)) => true,
            (e, Some(f)) => values_equal(e, f),
        };
        match mode {
            MatchMode::Any if hit => return true,
            MatchMode::All if !hit => return false,
            _ => {}
        }
    }
    // `all` with no criteria matches everything; `any` with none matches nothing.
    mode == MatchMode::All
}

impl Router for HeadersRouter {
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

    fn route(&self, message: &Message, out: &mut Routed) {
        if self.bindings.is_empty() {
            return;
        }
        let headers = message.decode_properties().headers;
        for b in self.bindings.iter() {
            if binding_matches(&b.arguments, headers.as_ref()) {
                out.push(b.destination.clone());
            }
        }
    }

    fn bindings(&self) -> Vec<Binding> {
        self.bindings.iter().cloned().collect()
    }

    fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, FieldValue)]) -> FieldTable {
        pairs
            .iter()
            .map(|(k, v)| (ShortStr::from(*k), v.clone()))
            .collect()
    }

    #[test]
    fn all_and_any() {
        let headers = table(&[
            ("format", "pdf".into()),
            ("type", "report".into()),
            ("n", FieldValue::U8(3)),
        ]);
        let all = table(&[
            ("x-match", "all".into()),
            ("format", "pdf".into()),
            ("type", "report".into()),
        ]);
        let all_miss = table(&[("format", "pdf".into()), ("type", "log".into())]);
        let any = table(&[
            ("x-match", "any".into()),
            ("format", "zip".into()),
            ("type", "report".into()),
        ]);
        let any_miss = table(&[("x-match", "any".into()), ("format", "zip".into())]);
        let numeric = table(&[("n", FieldValue::I64(3))]);
        let presence = table(&[("type", FieldValue::Void)]);
        assert!(binding_matches(&all, Some(&headers)));
        assert!(!binding_matches(&all_miss, Some(&headers)));
        assert!(binding_matches(&any, Some(&headers)));
        assert!(!binding_matches(&any_miss, Some(&headers)));
        assert!(binding_matches(&numeric, Some(&headers)));
        assert!(binding_matches(&presence, Some(&headers)));
        assert!(!binding_matches(&all, None));
        assert!(
            binding_matches(&FieldTable::new(), None),
            "all with no criteria matches"
        );
    }
}
