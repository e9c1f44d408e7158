//! Exchanges: declaration rules, deletion, exchange-to-exchange bindings and the four routing
//! kinds. Routing is observed with basic.get on the same channel, which the server handles
//! after the publishes before it.

use amqprs::channel::{
    BasicPublishArguments, ExchangeBindArguments, ExchangeDeclareArguments,
    ExchangeDeleteArguments, QueueBindArguments, QueueUnbindArguments,
};
use amqprs::{BasicProperties, FieldTable, FieldValue};

use crate::common::*;

fn declare(name: &str, kind: &str) -> ExchangeDeclareArguments {
    ExchangeDeclareArguments::new(name, kind)
}

#[tokio::test]
async fn declare_and_passive_declare() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    for kind in ["direct", "fanout", "topic", "headers"] {
        let name = format!("x-{kind}");
        ch.exchange_declare(declare(&name, kind)).await.unwrap();
        // Redeclaring with the same properties is fine; passive finds it whatever the type.
        ch.exchange_declare(declare(&name, kind)).await.unwrap();
        ch.exchange_declare(declare(&name, "direct").passive(true).finish())
            .await
            .unwrap();
    }
    // The standard exchanges exist.
    for name in [
        "amq.direct",
        "amq.fanout",
        "amq.topic",
        "amq.headers",
        "amq.match",
    ] {
        ch.exchange_declare(declare(name, "direct").passive(true).finish())
            .await
            .unwrap();
    }
    let closed = ch
        .refused(ch.exchange_declare(declare("x-missing", "direct").passive(true).finish()))
        .await;
    assert_eq!(closed.code, 404, "{closed:?}");
    assert_eq!((closed.class_id, closed.method_id), (40, 10));
    // The connection survives a channel error.
    let ch = client.channel().await;
    ch.exchange_declare(declare("x-direct", "direct").passive(true).finish())
        .await
        .unwrap();
    client.close().await;
}

#[tokio::test]
async fn redeclare_with_other_type_or_flags_is_406() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    ch.exchange_declare(declare("x-durable", "direct").durable(true).finish())
        .await
        .unwrap();
    ch.exchange_declare(declare("x-durable", "direct").durable(true).finish())
        .await
        .unwrap();
    let cases = [
        declare("x-durable", "fanout").durable(true).finish(),
        declare("x-durable", "direct").durable(false).finish(),
        declare("x-durable", "direct")
            .durable(true)
            .auto_delete(true)
            .finish(),
        declare("x-durable", "direct")
            .durable(true)
            .internal(true)
            .finish(),
    ];
    for args in cases {
        let ch = client.channel().await;
        let closed = ch.refused(ch.exchange_declare(args.clone())).await;
        assert_eq!(closed.code, 406, "{args:?}: {closed:?}");
        assert!(closed.text.contains("inequivalent arg"), "{closed:?}");
    }
    client.close().await;
}

#[tokio::test]
async fn amq_prefix_is_reserved() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let closed = ch
        .refused(ch.exchange_declare(declare("amq.foo", "direct")))
        .await;
    assert_eq!(closed.code, 403, "{closed:?}");
    let ch = client.channel().await;
    let closed = ch
        .refused(ch.exchange_delete(ExchangeDeleteArguments::new("amq.direct")))
        .await;
    assert_eq!(closed.code, 403, "{closed:?}");
    client.close().await;
}

#[tokio::test]
async fn delete_if_unused() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    ch.exchange_declare(declare("x-used", "direct"))
        .await
        .unwrap();
    let q = ch.declare("").await;
    ch.queue_bind(QueueBindArguments::new(&q, "x-used", "k"))
        .await
        .unwrap();
    let closed = ch
        .refused(
            ch.exchange_delete(
                ExchangeDeleteArguments::new("x-used")
                    .if_unused(true)
                    .finish(),
            ),
        )
        .await;
    assert_eq!(closed.code, 406, "{closed:?}");

    let ch = client.channel().await;
    ch.queue_unbind(QueueUnbindArguments::new(&q, "x-used", "k"))
        .await
        .unwrap();
    ch.exchange_delete(
        ExchangeDeleteArguments::new("x-used")
            .if_unused(true)
            .finish(),
    )
    .await
    .unwrap();
    let ch = client.channel().await;
    let closed = ch
        .refused(ch.exchange_declare(declare("x-used", "direct").passive(true).finish()))
        .await;
    assert_eq!(closed.code, 404, "{closed:?}");
    // Deleting what does not exist succeeds, as in RabbitMQ.
    let ch = client.channel().await;
    ch.exchange_delete(ExchangeDeleteArguments::new("x-never"))
        .await
        .unwrap();
    client.close().await;
}

#[tokio::test]
async fn auto_delete_exchange_goes_with_its_last_binding() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    ch.exchange_declare(declare("x-auto", "fanout").auto_delete(true).finish())
        .await
        .unwrap();
    let q = ch.declare("").await;
    ch.queue_bind(QueueBindArguments::new(&q, "x-auto", ""))
        .await
        .unwrap();
    ch.queue_unbind(QueueUnbindArguments::new(&q, "x-auto", ""))
        .await
        .unwrap();
    let closed = ch
        .refused(ch.exchange_declare(declare("x-auto", "fanout").passive(true).finish()))
        .await;
    assert_eq!(closed.code, 404, "{closed:?}");
    client.close().await;
}

#[tokio::test]
async fn internal_exchange_takes_no_publishes_but_routes_from_other_exchanges() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    ch.exchange_declare(declare("x-inner", "fanout").internal(true).finish())
        .await
        .unwrap();
    ch.exchange_declare(declare("x-outer", "fanout"))
        .await
        .unwrap();
    ch.exchange_bind(ExchangeBindArguments::new("x-inner", "x-outer", ""))
        .await
        .unwrap();
    let q = ch.declare("").await;
    ch.queue_bind(QueueBindArguments::new(&q, "x-inner", ""))
        .await
        .unwrap();
    ch.publish("x-outer", "", "via outer").await;
    assert_eq!(ch.drain(&q).await, ["via outer"]);

    ch.publish("x-inner", "", "direct to inner").await;
    let closed = ch.closed_by_server().await;
    assert_eq!(closed.code, 403, "{closed:?}");
    let ch = client.channel().await;
    assert!(ch.drain(&q).await.is_empty());
    client.close().await;
}

#[tokio::test]
async fn exchange_to_exchange_bindings_route() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    ch.exchange_declare(declare("e2e-src", "topic"))
        .await
        .unwrap();
    ch.exchange_declare(declare("e2e-dst", "direct"))
        .await
        .unwrap();
    ch.exchange_bind(ExchangeBindArguments::new("e2e-dst", "e2e-src", "orders.*"))
        .await
        .unwrap();
    let q = ch.declare("").await;
    ch.queue_bind(QueueBindArguments::new(&q, "e2e-dst", "orders.new"))
        .await
        .unwrap();
    ch.publish("e2e-src", "orders.new", "1").await; // src matches, dst matches
    ch.publish("e2e-src", "orders.old", "2").await; // src matches, dst does not
    ch.publish("e2e-src", "invoices.new", "3").await; // src does not match
    ch.publish("e2e-dst", "orders.new", "4").await; // straight to dst
    assert_eq!(ch.drain(&q).await, ["1", "4"]);

    // A cycle of exchange bindings delivers once and does not loop.
    ch.exchange_bind(ExchangeBindArguments::new(
        "e2e-src",
        "e2e-dst",
        "orders.new",
    ))
    .await
    .unwrap();
    ch.publish("e2e-src", "orders.new", "5").await;
    assert_eq!(ch.drain(&q).await, ["5"]);
    client.close().await;
}

#[tokio::test]
async fn direct_and_fanout_routing() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let (a, b) = (ch.declare("").await, ch.declare("").await);
    ch.queue_bind(QueueBindArguments::new(&a, "amq.direct", "red"))
        .await
        .unwrap();
    ch.queue_bind(QueueBindArguments::new(&b, "amq.direct", "blue"))
        .await
        .unwrap();
    ch.queue_bind(QueueBindArguments::new(&b, "amq.direct", "red"))
        .await
        .unwrap();
    ch.publish("amq.direct", "red", "r").await;
    ch.publish("amq.direct", "blue", "b").await;
    ch.publish("amq.direct", "green", "g").await;
    assert_eq!(ch.drain(&a).await, ["r"]);
    assert_eq!(ch.drain(&b).await, ["r", "b"]);

    // The default exchange routes by queue name.
    ch.publish("", &a, "by name").await;
    assert_eq!(ch.drain(&a).await, ["by name"]);

    ch.queue_bind(QueueBindArguments::new(&a, "amq.fanout", "ignored"))
        .await
        .unwrap();
    ch.queue_bind(QueueBindArguments::new(&b, "amq.fanout", ""))
        .await
        .unwrap();
    ch.publish("amq.fanout", "anything", "f").await;
    assert_eq!(ch.drain(&a).await, ["f"]);
    assert_eq!(ch.drain(&b).await, ["f"]);
    client.close().await;
}

#[tokio::test]
async fn topic_routing() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let star = ch.declare("").await;
    let hash = ch.declare("").await;
    let both = ch.declare("").await;
    let bind = |q: String, key: &'static str| {
        let ch = &ch;
        async move {
            ch.queue_bind(QueueBindArguments::new(&q, "amq.topic", key))
                .await
                .unwrap();
        }
    };
    bind(star.clone(), "stock.*.nyse").await;
    bind(hash.clone(), "stock.#").await;
    bind(hash.clone(), "#.error").await;
    // Two bindings of one queue that both match: the message arrives once.
    bind(both.clone(), "a.*").await;
    bind(both.clone(), "a.#").await;

    for key in [
        "stock.ibm.nyse",   // star, hash
        "stock.nyse",       // hash (# matches zero words); * needs exactly one
        "stock.ibm.x.nyse", // hash only
        "stock",            // hash: stock.# matches "stock"
        "app.error",        // hash via #.error
        "error",            // hash: # matches zero words
        "stockx.ibm.nyse",  // nothing: words are whole
        "a.b",              // both
    ] {
        ch.publish("amq.topic", key, key).await;
    }
    assert_eq!(ch.drain(&star).await, ["stock.ibm.nyse"]);
    assert_eq!(
        ch.drain(&hash).await,
        [
            "stock.ibm.nyse",
            "stock.nyse",
            "stock.ibm.x.nyse",
            "stock",
            "app.error",
            "error"
        ]
    );
    assert_eq!(ch.drain(&both).await, ["a.b"]);
    client.close().await;
}

fn headers(pairs: &[(&str, &str)]) -> FieldTable {
    let mut t = FieldTable::new();
    for (k, v) in pairs {
        t.insert((*k).try_into().unwrap(), FieldValue::from(*v));
    }
    t
}

#[tokio::test]
async fn headers_routing_all_and_any() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let all = ch.declare("").await;
    let any = ch.declare("").await;
    ch.queue_bind(
        QueueBindArguments::new(&all, "amq.headers", "")
            .arguments(headers(&[
                ("x-match", "all"),
                ("format", "pdf"),
                ("type", "report"),
            ]))
            .finish(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        QueueBindArguments::new(&any, "amq.headers", "")
            .arguments(headers(&[
                ("x-match", "any"),
                ("format", "pdf"),
                ("type", "report"),
            ]))
            .finish(),
    )
    .await
    .unwrap();
    let publish = |body: &'static str, h: FieldTable| {
        let ch = &ch;
        async move {
            ch.publish_with(
                BasicPublishArguments::new("amq.headers", "ignored"),
                BasicProperties::default().with_headers(h).finish(),
                body,
            )
            .await
        }
    };
    publish(
        "both",
        headers(&[("format", "pdf"), ("type", "report"), ("extra", "1")]),
    )
    .await;
    publish("one", headers(&[("format", "pdf"), ("type", "log")])).await;
    publish("none", headers(&[("format", "zip")])).await;
    publish("empty", FieldTable::new()).await;
    assert_eq!(ch.drain(&all).await, ["both"]);
    assert_eq!(ch.drain(&any).await, ["both", "one"]);
    client.close().await;
}
