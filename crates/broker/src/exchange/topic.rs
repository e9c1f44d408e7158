//! Topic exchanges: binding keys are dot-separated words where `*` matches exactly one word and
//! `#` zero or more. Bindings live in a trie of words, so routing costs the length of the key,
//! not the number of bindings.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use warren_protocol::{FieldTable, ShortStr};

use super::{Binding, BindingList, Destination, Routed, Router};
use crate::message::Message;

#[derive(Default)]
struct Node {
    words: HashMap<Bytes, Node>,
    star: Option<Box<Node>>,
    hash: Option<Box<Node>>,
    /// Bindings whose key ends at this node.
    bindings: BindingList,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.bindings.is_empty()
            && self.words.is_empty()
            && self.star.is_none()
            && self.hash.is_none()
    }
}

#[derive(Default)]
pub struct TopicRouter {
    root: Node,
    count: usize,
}

/// RabbitMQ splits the empty key into no words at all, so "" matches only "" and "#".
fn split(key: &[u8]) -> Vec<&[u8]> {
    if key.is_empty() {
        Vec::new()
    } else {
        key.split(|&b| b == b'.').collect()
    }
}

/// Splits a binding key, folding runs of `#` into one: `#.#` means the same as `#`, and the
/// folding keeps matching from exploring the same split twice.
fn binding_words(key: &[u8]) -> Vec<&[u8]> {
    let mut words: Vec<&[u8]> = Vec::new();
    for w in split(key) {
        if w == b"#" && words.last() == Some(&&b"#"[..]) {
            continue;
        }
        words.push(w);
    }
    words
}

fn child_mut<'a>(node: &'a mut Node, word: &[u8]) -> &'a mut Node {
    match word {
        b"*" => node.star.get_or_insert_with(Default::default),
        b"#" => node.hash.get_or_insert_with(Default::default),
        w => node.words.entry(Bytes::copy_from_slice(w)).or_default(),
    }
}

/// Walks to the node for `words` and applies `f` there, pruning nodes left empty.
fn with_node<R>(node: &mut Node, words: &[&[u8]], f: &mut impl FnMut(&mut Node) -> R) -> Option<R> {
    let Some((first, rest)) = words.split_first() else {
        return Some(f(node));
    };
    let result = match *first {
        b"*" => {
            let child = node.star.as_deref_mut()?;
            let r = with_node(child, rest, f);
            if child.is_empty() {
                node.star = None;
            }
            r
        }
        b"#" => {
            let child = node.hash.as_deref_mut()?;
            let r = with_node(child, rest, f);
            if child.is_empty() {
                node.hash = None;
            }
            r
        }
        w => {
            let child = node.words.get_mut(w)?;
            let r = with_node(child, rest, f);
            if child.is_empty() {
                node.words.remove(w);
            }
            r
        }
    };
    result
}

struct Matcher<'a> {
    out: &'a mut Routed,
    /// (node, position) pairs already explored below a `#`. Without it, keys like
    /// `#.a.#.a.#` against `a.a.a.a...` would take time exponential in the number of words.
    seen: HashSet<(*const Node, usize)>,
}

impl Matcher<'_> {
    fn walk(&mut self, node: &Node, words: &[&[u8]], at: usize) {
        if at == words.len() {
            self.out.extend(node.bindings.destinations());
            if let Some(hash) = &node.hash {
                self.walk_hash(hash, words, at);
            }
            return;
        }
        if let Some(child) = node.words.get(words[at]) {
            self.walk(child, words, at + 1);
        }
        if let Some(star) = &node.star {
            self.walk(star, words, at + 1);
        }
        if let Some(hash) = &node.hash {
            self.walk_hash(hash, words, at);
        }
    }

    /// `#` swallows zero or more words: try every remaining suffix once.
    fn walk_hash(&mut self, hash: &Node, words: &[&[u8]], at: usize) {
        for skip_to in at..=words.len() {
            if self.seen.insert((hash as *const Node, skip_to)) {
                self.walk(hash, words, skip_to);
            }
        }
    }
}

impl Router for TopicRouter {
    fn bind(&mut self, binding: Binding) -> bool {
        let key = binding.routing_key.clone();
        let words = binding_words(key.as_bytes());
        let mut node = &mut self.root;
        for w in &words {
            node = child_mut(node, w);
        }
        let added = node.bindings.add(binding);
        self.count += added as usize;
        added
    }

    fn unbind(
        &mut self,
        destination: &Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> bool {
        let words = binding_words(routing_key.as_bytes());
        let removed = with_node(&mut self.root, &words, &mut |node: &mut Node| {
            node.bindings.remove(destination, routing_key, arguments)
        })
        .unwrap_or(false);
        self.count -= removed as usize;
        removed
    }

    fn unbind_all(&mut self, destination: &Destination) -> Vec<Binding> {
        let keys: Vec<ShortStr> = self
            .bindings()
            .into_iter()
            .filter(|b| b.destination.same_as(destination))
            .map(|b| b.routing_key)
            .collect();
        let mut removed = Vec::new();
        for key in keys {
            let words = binding_words(key.as_bytes());
            removed.extend(
                with_node(&mut self.root, &words, &mut |node: &mut Node| {
                    node.bindings.remove_destination(destination)
                })
                .unwrap_or_default(),
            );
        }
        self.count -= removed.len();
        removed
    }

    fn route(&self, message: &Message, out: &mut Routed) {
        let words = split(message.routing_key.as_bytes());
        let mut matcher = Matcher {
            out,
            seen: HashSet::new(),
        };
        matcher.walk(&self.root, &words, 0);
    }

    fn bindings(&self) -> Vec<Binding> {
        fn collect(node: &Node, out: &mut Vec<Binding>) {
            out.extend(node.bindings.iter().cloned());
            node.words.values().for_each(|n| collect(n, out));
            node.star.iter().for_each(|n| collect(n, out));
            node.hash.iter().for_each(|n| collect(n, out));
        }
        let mut out = Vec::with_capacity(self.count);
        collect(&self.root, &mut out);
        out
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Queue, QueueConfig};
    use bytes::Bytes;
    use std::sync::Arc;

    fn queue(name: &str) -> Arc<Queue> {
        Queue::new(name.into(), "/".into(), QueueConfig::default(), None)
    }

    fn routed(router: &TopicRouter, key: &str) -> Vec<String> {
        let msg = Message::new(
            &"".into(),
            &key.into(),
            &Bytes::from_static(&[0, 0]),
            Bytes::new(),
        );
        let mut out = Routed::new();
        router.route(&msg, &mut out);
        let mut names: Vec<String> = out.iter().map(|d| d.name().to_string()).collect();
        names.sort();
        names.dedup();
        names
    }

    fn bind(router: &mut TopicRouter, q: &Arc<Queue>, key: &str) {
        router.bind(Binding {
            destination: Destination::Queue(q.clone()),
            routing_key: key.into(),
            arguments: FieldTable::new(),
        });
    }

    #[test]
    fn the_tutorial_table() {
        let (q1, q2) = (queue("Q1"), queue("Q2"));
        let mut r = TopicRouter::default();
        bind(&mut r, &q1, "*.orange.*");
        bind(&mut r, &q2, "*.*.rabbit");
        bind(&mut r, &q2, "lazy.#");
        assert_eq!(routed(&r, "quick.orange.rabbit"), ["Q1", "Q2"]);
        assert_eq!(routed(&r, "lazy.orange.elephant"), ["Q1", "Q2"]);
        assert_eq!(routed(&r, "quick.orange.fox"), ["Q1"]);
        assert_eq!(routed(&r, "lazy.brown.fox"), ["Q2"]);
        assert_eq!(routed(&r, "lazy.pink.rabbit"), ["Q2"]);
        assert!(routed(&r, "quick.brown.fox").is_empty());
        assert!(routed(&r, "orange").is_empty());
        assert!(routed(&r, "quick.orange.male.rabbit").is_empty());
        assert_eq!(routed(&r, "lazy.orange.male.rabbit"), ["Q2"]);
        assert_eq!(routed(&r, "lazy"), ["Q2"]);
    }

    #[test]
    fn hash_matches_zero_or_more_and_empty_keys() {
        let q = queue("q");
        let mut r = TopicRouter::default();
        bind(&mut r, &q, "a.#.z");
        assert_eq!(routed(&r, "a.z"), ["q"]);
        assert_eq!(routed(&r, "a.b.c.z"), ["q"]);
        assert!(routed(&r, "a.b").is_empty());
        let mut all = TopicRouter::default();
        bind(&mut all, &q, "#");
        assert_eq!(routed(&all, ""), ["q"]);
        assert_eq!(routed(&all, "x.y"), ["q"]);
        let mut star = TopicRouter::default();
        bind(&mut star, &q, "*");
        assert!(routed(&star, "").is_empty());
        assert!(routed(&star, "a.b").is_empty());
        assert_eq!(routed(&star, "a"), ["q"]);
    }

    #[test]
    fn pathological_hash_patterns_stay_fast() {
        let q = queue("q");
        let mut r = TopicRouter::default();
        bind(&mut r, &q, "#.a.#.a.#.a.#.a.#.a.#.b");
        let key = vec!["a"; 120].join(".");
        assert!(routed(&r, &key).is_empty());
    }

    #[test]
    fn unbind_prunes_and_counts() {
        let q = queue("q");
        let mut r = TopicRouter::default();
        bind(&mut r, &q, "a.*.c");
        bind(&mut r, &q, "a.#");
        let dest = Destination::Queue(q.clone());
        assert!(r.unbind(&dest, &"a.*.c".into(), &FieldTable::new()));
        assert!(!r.unbind(&dest, &"a.*.c".into(), &FieldTable::new()));
        assert_eq!(r.bindings().len(), 1);
        assert_eq!(r.unbind_all(&dest).len(), 1);
        assert!(r.is_empty());
        assert!(r.root.is_empty());
    }
}
