//! A vhost's policies and operator policies: setting and clearing them (planned, committed and
//! applied like every definition change), and applying them to its queues and exchanges. Every
//! change re-evaluates every queue and exchange of the vhost, as RabbitMQ's
//! `update_matched_objects` does; only those whose policy changed hear of it.

use std::io;
use std::sync::Arc;

use super::VHost;
use crate::exchange::Exchange;
use crate::metadata::Command;
use crate::policy::{self, Policy, PolicyDef, PolicyKind, Target};
use crate::queue::Queue;

impl VHost {
    /// The vhost's policies of one kind.
    pub fn policies(&self, kind: PolicyKind) -> Vec<PolicyDef> {
        self.policies
            .read()
            .iter()
            .filter(|p| p.def.kind == kind)
            .map(|p| p.def.clone())
            .collect()
    }

    pub fn policy(&self, kind: PolicyKind, name: &str) -> Option<PolicyDef> {
        self.find_policy(kind, name).map(|p| p.def.clone())
    }

    fn find_policy(&self, kind: PolicyKind, name: &str) -> Option<Arc<Policy>> {
        self.policies
            .read()
            .iter()
            .find(|p| p.def.kind == kind && p.def.name == name)
            .cloned()
    }

    /// Sets a validated policy (`PolicyDef::from_json`). Returns whether it is new. The same
    /// policy set again changes nothing (RabbitMQ does not tell the queues either).
    pub fn set_policy(&self, def: PolicyDef) -> io::Result<bool> {
        let _order = self.metadata.lock();
        let existing = self.find_policy(def.kind, &def.name);
        if existing.as_ref().is_some_and(|p| p.def == def) {
            return Ok(false);
        }
        let command = Command::SetPolicy(def);
        self.metadata.commit(std::slice::from_ref(&command))?;
        self.apply(&command);
        Ok(existing.is_none())
    }

    /// Clears a policy; false if there was none of that name.
    pub fn clear_policy(&self, kind: PolicyKind, name: &str) -> io::Result<bool> {
        let _order = self.metadata.lock();
        if self.find_policy(kind, name).is_none() {
            return Ok(false);
        }
        let command = Command::ClearPolicy {
            vhost: self.name.to_string(),
            kind,
            name: name.to_string(),
        };
        self.metadata.commit(std::slice::from_ref(&command))?;
        self.apply(&command);
        Ok(true)
    }

    /// The commands that clear every policy (the vhost is being deleted).
    pub(super) fn plan_clear_policies(&self) -> Vec<Command> {
        self.policies
            .read()
            .iter()
            .map(|p| Command::ClearPolicy {
                vhost: self.name.to_string(),
                kind: p.def.kind,
                name: p.def.name.clone(),
            })
            .collect()
    }

    /// Applies a committed `SetPolicy` or `ClearPolicy`, then re-evaluates what it affects.
    pub(super) fn apply_policy_command(&self, command: &Command) {
        {
            let mut policies = self.policies.write();
            match command {
                Command::SetPolicy(def) => {
                    policies.retain(|p| !(p.def.kind == def.kind && p.def.name == def.name));
                    policies.push(Arc::new(Policy::new(def.clone())));
                }
                Command::ClearPolicy { kind, name, .. } => {
                    policies.retain(|p| !(p.def.kind == *kind && &p.def.name == name));
                }
                _ => return,
            }
        }
        for queue in self.queues() {
            self.apply_policies_to_queue(&queue);
        }
        for exchange in self.exchanges() {
            self.apply_policy_to_exchange(&exchange);
        }
    }

    /// Gives a queue the policy and operator policy that apply to it now.
    pub(super) fn apply_policies_to_queue(&self, queue: &Arc<Queue>) {
        let target = Target::Queue(queue.queue_type());
        let (policy, operator) = {
            let policies = self.policies.read();
            let of = |kind: PolicyKind| {
                policy::choose(
                    policies.iter().filter(|p| p.def.kind == kind),
                    target,
                    queue.name.as_bytes(),
                )
                .cloned()
            };
            (of(PolicyKind::Policy), of(PolicyKind::OperatorPolicy))
        };
        queue.apply_policies(policy, operator);
    }

    /// Gives an exchange the policy that applies to it now (operator policies set nothing an
    /// exchange has).
    pub(super) fn apply_policy_to_exchange(&self, exchange: &Exchange) {
        let chosen = {
            let policies = self.policies.read();
            policy::choose(
                policies.iter().filter(|p| p.def.kind == PolicyKind::Policy),
                Target::Exchange,
                exchange.name.as_bytes(),
            )
            .cloned()
        };
        exchange.set_policy(chosen);
    }
}
