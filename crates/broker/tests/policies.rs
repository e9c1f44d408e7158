//! Policies are definitions like any other: they survive a restart and apply to the queues
//! recovered with them, are gone once cleared, and go with their vhost.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use warren_broker::persistence::VhostDef;
use warren_broker::policy::{PolicyDef, PolicyKind};
use warren_broker::{Broker, BrokerConfig, Message, VHost};
use warren_protocol::FieldTable;

#[path = "support/queues.rs"]
mod queues;

fn policy(vhost: &str, kind: PolicyKind, name: &str, definition: serde_json::Value) -> PolicyDef {
    let body = json!({"pattern": "^jobs$", "definition": definition, "apply-to": "queues"});
    PolicyDef::from_json(vhost, name, kind, &body).unwrap()
}

fn publish(v: &VHost, n: usize) {
    let q = v.queue(&"jobs".into()).unwrap();
    for i in 0..n {
        let m = Message::new(
            &"".into(),
            &"jobs".into(),
            &Bytes::new(),
            i.to_string().into(),
        );
        q.enqueue(Arc::new(m));
    }
}

#[test]
fn policies_survive_a_restart_and_apply_to_recovered_queues() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(BrokerConfig::default(), dir.path()).unwrap();
        let v = broker.vhost("/").unwrap();
        queues::declare(&v, "jobs", true, FieldTable::new());
        let cap = policy("/", PolicyKind::Policy, "cap", json!({"max-length": 5}));
        assert!(v.set_policy(cap.clone()).unwrap(), "new");
        assert!(!v.set_policy(cap).unwrap(), "the same again is no change");
        let op = policy(
            "/",
            PolicyKind::OperatorPolicy,
            "op",
            json!({"max-length": 3}),
        );
        assert!(v.set_policy(op).unwrap());
        let gone = policy("/", PolicyKind::Policy, "gone", json!({"message-ttl": 1}));
        v.set_policy(gone).unwrap();
        assert!(v.clear_policy(PolicyKind::Policy, "gone").unwrap());
        assert!(!v.clear_policy(PolicyKind::Policy, "gone").unwrap());
        publish(&v, 10);
        assert_eq!(v.queue(&"jobs".into()).unwrap().counts().ready, 3);
        broker.shutdown();
    }
    let broker = Broker::open(BrokerConfig::default(), dir.path()).unwrap();
    let v = broker.vhost("/").unwrap();
    let names = |kind| -> Vec<String> { v.policies(kind).into_iter().map(|p| p.name).collect() };
    assert_eq!(names(PolicyKind::Policy), ["cap"]);
    assert_eq!(names(PolicyKind::OperatorPolicy), ["op"]);
    let q = v.queue(&"jobs".into()).unwrap();
    let applied = q.applied_policies();
    assert_eq!(
        applied.policy.map(|p| p.def.name.clone()).as_deref(),
        Some("cap")
    );
    assert_eq!(
        applied.operator.map(|p| p.def.name.clone()).as_deref(),
        Some("op")
    );
    assert_eq!(q.effective_arguments().max_length, Some(3));
    // Clearing the operator policy lifts its cap to the policy's.
    assert!(v.clear_policy(PolicyKind::OperatorPolicy, "op").unwrap());
    assert_eq!(q.effective_arguments().max_length, Some(5));
    broker.shutdown();
}

#[test]
fn a_deleted_vhost_takes_its_policies_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let def = VhostDef {
        name: "shop".into(),
        description: String::new(),
        tags: Vec::new(),
        default_queue_type: None,
        limits: Default::default(),
    };
    {
        let broker = Broker::open(BrokerConfig::default(), dir.path()).unwrap();
        broker.put_vhost(def.clone()).unwrap();
        let v = broker.vhost("shop").unwrap();
        v.set_policy(policy(
            "shop",
            PolicyKind::Policy,
            "p",
            json!({"max-length": 1}),
        ))
        .unwrap();
        assert!(broker.delete_vhost("shop").unwrap());
        broker.put_vhost(def.clone()).unwrap();
        assert!(broker
            .vhost("shop")
            .unwrap()
            .policies(PolicyKind::Policy)
            .is_empty());
        broker.shutdown();
    }
    let broker = Broker::open(BrokerConfig::default(), dir.path()).unwrap();
    assert!(broker
        .vhost("shop")
        .unwrap()
        .policies(PolicyKind::Policy)
        .is_empty());
    broker.shutdown();
}
