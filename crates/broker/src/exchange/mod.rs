//! Exchanges: named routers from a publish to the queues (and exchanges) bound to them.
//!
//! Each exchange type is a [`Router`] in a file of its own; [`router_for`] is the registry, so a
//! new type is a new file and one line here.

mod direct;
mod fanout;
mod headers;
mod topic;

use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;
use smallvec::SmallVec;
use warren_protocol::{FieldTable, ShortStr};

use crate::message::Message;
use crate::policy::Policy;
use crate::queue::Queue;

/// Where a binding leads.
#[derive(Clone)]
pub enum Destination {
    Queue(Arc<Queue>),
    Exchange(Arc<Exchange>),
}

impl Destination {
    pub fn same_as(&self, other: &Destination) -> bool {
        match (self, other) {
            (Destination::Queue(a), Destination::Queue(b)) => Arc::ptr_eq(a, b),
            (Destination::Exchange(a), Destination::Exchange(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    pub fn name(&self) -> &ShortStr {
        match self {
            Destination::Queue(q) => &q.name,
            Destination::Exchange(e) => &e.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Queue(_) => "queue",
            Destination::Exchange(_) => "exchange",
        }
    }
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

/// A binding as stored by a router.
#[derive(Clone, Debug)]
pub struct Binding {
    pub destination: Destination,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
}

impl Binding {
    pub fn matches(
        &self,
        destination: &Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> bool {
        self.destination.same_as(destination)
            && self.routing_key == *routing_key
            && self.arguments == *arguments
    }
}

/// Routing destinations of one publish; most publishes reach a handful.
pub type Routed = SmallVec<[Destination; 4]>;

/// One exchange type's routing table.
pub trait Router: Send + Sync {
    /// Adds a binding; false if an identical one exists.
    fn bind(&mut self, binding: Binding) -> bool;
    /// Removes the identical binding; false if there was none.
    fn unbind(
        &mut self,
        destination: &Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> bool;
    /// Removes every binding to `destination` (it is being deleted); returns them.
    fn unbind_all(&mut self, destination: &Destination) -> Vec<Binding>;
    /// Appends the destinations `message` goes to (duplicates are removed by the caller).
    fn route(&self, message: &Message, out: &mut Routed);
    fn bindings(&self) -> Vec<Binding>;
    fn is_empty(&self) -> bool;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn parse(name: &[u8]) -> Option<ExchangeKind> {
        Some(match name {
            b"direct" => ExchangeKind::Direct,
            b"fanout" => ExchangeKind::Fanout,
            b"topic" => ExchangeKind::Topic,
            b"headers" => ExchangeKind::Headers,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

/// The registry of exchange types.
fn router_for(kind: ExchangeKind) -> Box<dyn Router> {
    match kind {
        ExchangeKind::Direct => Box::<direct::DirectRouter>::default(),
        ExchangeKind::Fanout => Box::<fanout::FanoutRouter>::default(),
        ExchangeKind::Topic => Box::<topic::TopicRouter>::default(),
        ExchangeKind::Headers => Box::<headers::HeadersRouter>::default(),
    }
}

/// What an exchange is declared with; equivalence checks compare these.
#[derive(Clone, Debug)]
pub struct ExchangeConfig {
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

pub struct Exchange {
    pub name: ShortStr,
    pub config: ExchangeConfig,
    /// Bindings change rarely and are read on every publish: a read-write lock whose readers
    /// hold it only for the lookup.
    router: RwLock<Box<dyn Router>>,
    /// The policy that applies to it, if any (read when a message routes nowhere).
    policy: RwLock<Option<Arc<Policy>>>,
}

impl Exchange {
    pub fn new(name: ShortStr, config: ExchangeConfig) -> Arc<Exchange> {
        let router = RwLock::new(router_for(config.kind));
        Arc::new(Exchange {
            name,
            config,
            router,
            policy: RwLock::new(None),
        })
    }

    /// The name of the policy that applies to it, for the management API.
    pub fn policy_name(&self) -> Option<String> {
        self.policy.read().as_ref().map(|p| p.def.name.clone())
    }

    pub(crate) fn set_policy(&self, policy: Option<Arc<Policy>>) {
        *self.policy.write() = policy;
    }

    /// The alternate exchange its policy names (`alternate-exchange`), if any.
    pub(crate) fn policy_alternate(&self) -> Option<ShortStr> {
        let policy = self.policy.read();
        let name = policy
            .as_ref()?
            .def
            .definition
            .get("alternate-exchange")?
            .as_str()?;
        (name.len() <= ShortStr::MAX_LEN).then(|| ShortStr::from(name))
    }

    pub fn bind(&self, binding: Binding) -> bool {
        self.router.write().bind(binding)
    }

    pub fn unbind(
        &self,
        destination: &Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> bool {
        self.router
            .write()
            .unbind(destination, routing_key, arguments)
    }

    pub fn unbind_all(&self, destination: &Destination) -> Vec<Binding> {
        self.router.write().unbind_all(destination)
    }

    pub fn route(&self, message: &Message, out: &mut Routed) {
        self.router.read().route(message, out)
    }

    pub fn bindings(&self) -> Vec<Binding> {
        self.router.read().bindings()
    }

    pub fn has_bindings(&self) -> bool {
        !self.router.read().is_empty()
    }
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exchange {} ({})", self.name, self.config.kind.as_str())
    }
}

/// Bindings kept in a plain list: a fanout or headers exchange's, one key's of a direct
/// exchange, one node's of a topic trie. Identical bindings are kept once.
#[derive(Default, Clone)]
pub(crate) struct BindingList(Vec<Binding>);

impl BindingList {
    /// Adds a binding; false if an identical one is there.
    pub fn add(&mut self, binding: Binding) -> bool {
        if self.0.iter().any(|b| {
            b.matches(
                &binding.destination,
                &binding.routing_key,
                &binding.arguments,
            )
        }) {
            return false;
        }
        self.0.push(binding);
        true
    }

    /// Removes the identical binding; false if there was none.
    pub fn remove(
        &mut self,
        destination: &Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> bool {
        !self
            .remove_where(|b| b.matches(destination, routing_key, arguments))
            .is_empty()
    }

    /// Removes every binding to `destination`; returns them.
    pub fn remove_destination(&mut self, destination: &Destination) -> Vec<Binding> {
        self.remove_where(|b| b.destination.same_as(destination))
    }

    fn remove_where(&mut self, gone: impl Fn(&Binding) -> bool) -> Vec<Binding> {
        let (removed, kept) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|b| gone(b));
        self.0 = kept;
        removed
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Binding> {
        self.0.iter()
    }

    pub fn destinations(&self) -> impl Iterator<Item = Destination> + '_ {
        self.0.iter().map(|b| b.destination.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
