//! The command line, and the validated run configuration derived from it.
//!
//! Option names follow RabbitMQ's PerfTest where it has one (its short letters too), so that a
//! scenario written for PerfTest reads the same here.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::PerfError;

#[derive(Args, Debug, Clone)]
pub struct PerfArgs {
    /// Broker URI, e.g. amqp://guest:guest@127.0.0.1:5672/%2F (overrides --host, --port,
    /// --user, --password and --vhost).
    #[arg(long)]
    pub uri: Option<String>,
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker AMQP port.
    #[arg(long, default_value_t = 5672)]
    pub port: u16,
    /// User name (PLAIN authentication).
    #[arg(long, default_value = "guest")]
    pub user: String,
    #[arg(long, default_value = "guest")]
    pub password: String,
    /// Virtual host.
    #[arg(long, default_value = "/")]
    pub vhost: String,
    /// Connect with TLS (as an `amqps://` URI does).
    #[arg(long)]
    pub tls: bool,
    /// The CA certificate (PEM) the broker's certificate must chain to, for TLS.
    #[arg(long)]
    pub tls_ca_file: Option<PathBuf>,

    /// Producers, each on its own connection.
    #[arg(long, short = 'x', default_value_t = 1)]
    pub producers: usize,
    /// Consumers, each on its own connection, spread round-robin over the queues.
    #[arg(long, short = 'y', default_value_t = 1)]
    pub consumers: usize,
    /// Message body size in bytes. The first 8 bytes carry the send time, so bodies shorter
    /// than 8 bytes are sent but give no latency.
    #[arg(long, short = 's', default_value_t = 16)]
    pub size: usize,
    /// Publishing rate limit per producer in messages per second (0: as fast as possible).
    #[arg(long, short = 'r', default_value_t = 0.0)]
    pub rate: f64,
    /// Publisher confirms with at most this many unconfirmed messages per producer (0: off).
    #[arg(long, short = 'c', default_value_t = 0)]
    pub confirm: usize,
    /// Publish with delivery_mode 2 (persistent).
    #[arg(long)]
    pub persistent: bool,
    /// Consume with no_ack (the broker forgets a message once it is written).
    #[arg(long, short = 'a')]
    pub auto_ack: bool,
    /// basic.qos prefetch count per consumer, for manual acknowledgement.
    #[arg(long, short = 'q', default_value_t = 1000)]
    pub prefetch: u16,
    /// Acknowledge every N deliveries with one basic.ack (multiple=true when N > 1). 0: once
    /// per socket read, covering everything that read brought.
    #[arg(long, short = 'A', default_value_t = 0)]
    pub multi_ack_every: usize,
    /// Type of the exchange the producers publish to.
    #[arg(long, short = 't', value_enum, default_value_t = ExchangeType::Direct)]
    pub exchange_type: ExchangeType,
    /// Exchange to publish to (default: perf.<type>; "" is the default exchange).
    #[arg(long, short = 'e')]
    pub exchange: Option<String>,
    /// Queues. Direct and topic: producers take turns over them; fanout: every message goes to
    /// all of them. Every queue needs at least one consumer.
    #[arg(long, default_value_t = 1)]
    pub queues: usize,
    /// Queue names are <prefix>-1 .. <prefix>-N.
    #[arg(long, default_value = "perf-q")]
    pub queue_prefix: String,
    /// Declare durable queues (and exchange) instead of transient ones.
    #[arg(long)]
    pub durable_queues: bool,
    /// Skip declaring (and deleting) the exchange, queues and bindings: they exist already.
    #[arg(long)]
    pub predeclared: bool,
    /// Stop after this many seconds (default: run until the message counts are reached or
    /// Ctrl-C).
    #[arg(long, short = 'z')]
    pub duration: Option<f64>,
    /// Each producer stops after this many messages; consumers stop once every expected
    /// message has arrived.
    #[arg(long, short = 'C')]
    pub pmessages: Option<u64>,
    /// Write the summary (and per-second samples) as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Runtime threads: 1 runs every connection on one thread (best on small machines).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Arguments for the queues declared, as PerfTest's: `x-max-priority=10,x-max-length=1000`
    /// (integers and true/false are sent as such, anything else as a string; `k=` is "").
    #[arg(long)]
    pub queue_args: Option<String>,
    /// Publish with a `priority` property spread evenly over 0..N-1 (0: no priority).
    #[arg(long, default_value_t = 0)]
    pub priorities: u8,
    /// Settle deliveries with `basic.nack requeue=false` instead of acking them: with a
    /// dead-letter exchange, a reject-to-dead-letter loop.
    #[arg(long)]
    pub reject: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeType {
    Direct,
    Fanout,
    Topic,
}

impl ExchangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeType::Direct => "direct",
            ExchangeType::Fanout => "fanout",
            ExchangeType::Topic => "topic",
        }
    }
}

/// Where to connect and as whom.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    #[serde(skip)]
    pub password: String,
    pub vhost: String,
    /// TLS, for `amqps://` or `--tls`.
    pub tls: Option<TlsClient>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TlsClient {
    pub ca_file: Option<PathBuf>,
}

/// A checked run configuration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Config {
    pub endpoint: Endpoint,
    pub producers: usize,
    pub consumers: usize,
    pub size: usize,
    pub rate: f64,
    pub confirm: usize,
    pub persistent: bool,
    pub auto_ack: bool,
    pub prefetch: u16,
    pub multi_ack_every: usize,
    pub exchange_type: ExchangeType,
    pub exchange: String,
    pub queues: Vec<String>,
    pub durable: bool,
    pub predeclared: bool,
    #[serde(serialize_with = "secs")]
    pub duration: Option<Duration>,
    pub pmessages: Option<u64>,
    #[serde(skip)]
    pub json: Option<PathBuf>,
    pub threads: usize,
    /// `--queue-args`, parsed.
    pub queue_args: Vec<(String, QueueArg)>,
    pub priorities: u8,
    pub reject: bool,
}

/// A value of `--queue-args`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum QueueArg {
    Int(i64),
    Bool(bool),
    Text(String),
}

/// `k=v,k=v` into typed pairs.
fn parse_queue_args(spec: &str) -> Result<Vec<(String, QueueArg)>, PerfError> {
    spec.split(',')
        .filter(|kv| !kv.trim().is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                PerfError::Config(format!("--queue-args: expected key=value, got {kv:?}"))
            })?;
            let value = match v {
                "true" => QueueArg::Bool(true),
                "false" => QueueArg::Bool(false),
                _ => match v.parse::<i64>() {
                    Ok(n) => QueueArg::Int(n),
                    Err(_) => QueueArg::Text(v.to_string()),
                },
            };
            Ok((k.trim().to_string(), value))
        })
        .collect()
}

fn secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl Config {
    pub fn from_args(a: PerfArgs) -> Result<Config, PerfError> {
        let bad = |s: String| Err(PerfError::Config(s));
        let mut endpoint = match &a.uri {
            Some(uri) => parse_uri(uri)?,
            None => Endpoint {
                host: a.host.clone(),
                port: a.port,
                user: a.user.clone(),
                password: a.password.clone(),
                vhost: a.vhost.clone(),
                tls: a.tls.then_some(TlsClient { ca_file: None }),
            },
        };
        if let Some(tls) = &mut endpoint.tls {
            tls.ca_file = a.tls_ca_file.clone();
        }
        if a.producers == 0 && a.consumers == 0 {
            return bad("nothing to do: --producers and --consumers are both 0".into());
        }
        if a.queues == 0 {
            return bad("--queues must be at least 1".into());
        }
        if a.consumers > 0 && a.consumers < a.queues {
            return bad(format!(
                "{} queues but {} consumers: give every queue a consumer (--consumers >= --queues)",
                a.queues, a.consumers
            ));
        }
        if !(a.rate.is_finite() && a.rate >= 0.0) {
            return bad(format!("--rate must be a number >= 0, not {}", a.rate));
        }
        let mut multi_ack_every = a.multi_ack_every;
        if !a.auto_ack && a.prefetch > 0 && multi_ack_every > a.prefetch as usize {
            // Waiting for more deliveries than the broker may have outstanding never ends.
            eprintln!(
                "warren perf: --multi-ack-every {} exceeds --prefetch {}; using {}",
                multi_ack_every, a.prefetch, a.prefetch
            );
            multi_ack_every = a.prefetch as usize;
        }
        let duration = match a.duration {
            Some(s) if !(s.is_finite() && s > 0.0) => {
                return bad(format!("--duration must be > 0 seconds, not {s}"))
            }
            Some(s) => Some(Duration::from_secs_f64(s)),
            None => None,
        };
        if a.pmessages == Some(0) {
            return bad("--pmessages must be at least 1".into());
        }
        if a.size > u32::MAX as usize {
            return bad("--size is too large".into());
        }
        let exchange = a
            .exchange
            .clone()
            .unwrap_or_else(|| format!("perf.{}", a.exchange_type.as_str()));
        if exchange.is_empty() && a.exchange_type == ExchangeType::Fanout {
            return bad("the default exchange (\"\") is a direct exchange, not fanout".into());
        }
        let queues = (1..=a.queues)
            .map(|i| format!("{}-{}", a.queue_prefix, i))
            .collect::<Vec<_>>();
        if queues.iter().any(|q| q.len() > 255) {
            return bad("queue names must be at most 255 bytes".into());
        }
        Ok(Config {
            endpoint,
            producers: a.producers,
            consumers: a.consumers,
            size: a.size,
            rate: a.rate,
            confirm: a.confirm,
            persistent: a.persistent,
            auto_ack: a.auto_ack,
            prefetch: a.prefetch,
            multi_ack_every,
            exchange_type: a.exchange_type,
            exchange,
            queues,
            durable: a.durable_queues,
            predeclared: a.predeclared,
            duration,
            pmessages: a.pmessages,
            json: a.json,
            threads: a.threads.max(1),
            queue_args: match &a.queue_args {
                Some(spec) => parse_queue_args(spec)?,
                None => Vec::new(),
            },
            priorities: a.priorities,
            reject: a.reject,
        })
    }

    /// The routing key a producer uses for queue `i`, and the binding that catches it.
    pub fn routing_key(&self, queue: usize) -> String {
        if self.exchange.is_empty() {
            // The default exchange routes by queue name.
            return self.queues[queue].clone();
        }
        match self.exchange_type {
            ExchangeType::Fanout => String::new(),
            ExchangeType::Direct | ExchangeType::Topic => format!("perf.{}", self.queues[queue]),
        }
    }

    pub fn binding_key(&self, queue: usize) -> String {
        match self.exchange_type {
            ExchangeType::Fanout => String::new(),
            ExchangeType::Direct => self.routing_key(queue),
            // `#` matches zero words too, so the topic trie is walked to a `#` node.
            ExchangeType::Topic => format!("{}.#", self.routing_key(queue)),
        }
    }

    /// The queue producer `p` publishes to (direct and topic; fanout reaches all).
    pub fn producer_queue(&self, p: usize) -> usize {
        p % self.queues.len()
    }

    /// The queue consumer `c` consumes from.
    pub fn consumer_queue(&self, c: usize) -> usize {
        c % self.queues.len()
    }

    /// How many deliveries each published message turns into.
    pub fn copies_per_message(&self) -> u64 {
        match self.exchange_type {
            ExchangeType::Fanout => self.queues.len() as u64,
            ExchangeType::Direct | ExchangeType::Topic => 1,
        }
    }

    /// Deliveries the consumers wait for before stopping, when producers have a message count.
    pub fn expected_deliveries(&self) -> Option<u64> {
        let per_producer = self.pmessages?;
        if self.consumers == 0 {
            return None;
        }
        Some(per_producer * self.producers as u64 * self.copies_per_message())
    }
}

/// `amqp://user:password@host:port/vhost`, with percent-escapes in user, password and vhost.
/// An empty or missing path means the vhost `/`, as most clients take it.
pub fn parse_uri(uri: &str) -> Result<Endpoint, PerfError> {
    let bad = |why: &str| PerfError::Config(format!("bad --uri {uri:?}: {why}"));
    let (rest, tls, default_port) = if let Some(r) = uri.strip_prefix("amqp://") {
        (r, None, 5672)
    } else if let Some(r) = uri.strip_prefix("amqps://") {
        (r, Some(TlsClient { ca_file: None }), 5671)
    } else {
        return Err(bad("expected amqp:// or amqps://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let path = path.split('?').next().unwrap_or("");
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(ui) => match ui.find(':') {
            Some(i) => (decode(&ui[..i]).ok_or_else(|| bad("escape"))?, {
                decode(&ui[i + 1..]).ok_or_else(|| bad("escape"))?
            }),
            None => (decode(ui).ok_or_else(|| bad("escape"))?, "guest".into()),
        },
        None => ("guest".into(), "guest".into()),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let end = v6.find(']').ok_or_else(|| bad("unclosed ["))?;
        let host = &v6[..end];
        let port = match v6[end + 1..].strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad("port"))?,
            None => default_port,
        };
        (host.to_string(), port)
    } else {
        match hostport.rfind(':') {
            Some(i) => (
                hostport[..i].to_string(),
                hostport[i + 1..].parse().map_err(|_| bad("port"))?,
            ),
            None => (hostport.to_string(), default_port),
        }
    };
    let host = if host.is_empty() {
        "127.0.0.1".into()
    } else {
        host
    };
    let vhost = if path.is_empty() {
        "/".into()
    } else {
        decode(path).ok_or_else(|| bad("escape"))?
    };
    Ok(Endpoint {
        host,
        port,
        user,
        password,
        vhost,
        tls,
    })
}

fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        perf: PerfArgs,
    }

    fn config(args: &[&str]) -> Result<Config, PerfError> {
        let mut argv = vec!["perf"];
        argv.extend_from_slice(args);
        Config::from_args(Cli::try_parse_from(argv).expect("parses").perf)
    }

    #[test]
    fn defaults_match_the_simple_scenario() {
        let c = config(&[]).unwrap();
        assert_eq!((c.producers, c.consumers, c.size), (1, 1, 16));
        assert_eq!((c.prefetch, c.confirm, c.auto_ack), (1000, 0, false));
        assert_eq!(c.exchange, "perf.direct");
        assert_eq!(c.queues, vec!["perf-q-1"]);
        assert_eq!(c.endpoint.port, 5672);
        assert_eq!(c.endpoint.vhost, "/");
        assert_eq!(c.expected_deliveries(), None);
    }

    #[test]
    fn perftest_short_flags() {
        let c = config(&[
            "-x", "2", "-y", "20", "-s", "100", "-r", "500", "-c", "50", "-q", "10", "-A", "5",
            "-z", "12", "-C", "1000", "-t", "fanout",
        ])
        .unwrap();
        assert_eq!((c.producers, c.consumers, c.size), (2, 20, 100));
        assert_eq!((c.rate, c.confirm, c.prefetch), (500.0, 50, 10));
        assert_eq!(c.multi_ack_every, 5);
        assert_eq!(c.duration, Some(Duration::from_secs(12)));
        assert_eq!(c.exchange_type, ExchangeType::Fanout);
    }

    #[test]
    fn fanout_copies_every_message_to_every_queue() {
        let c = config(&[
            "--exchange-type",
            "fanout",
            "--queues",
            "10",
            "--consumers",
            "10",
            "--producers",
            "2",
            "--pmessages",
            "100",
        ])
        .unwrap();
        assert_eq!(c.copies_per_message(), 10);
        assert_eq!(c.expected_deliveries(), Some(2000));
        assert_eq!(c.consumer_queue(13), 3);
        assert_eq!(c.binding_key(4), "");
        assert_eq!(c.queues[9], "perf-q-10");
    }

    #[test]
    fn routing_and_binding_keys() {
        let d = config(&["--queues", "2", "--consumers", "2"]).unwrap();
        assert_eq!(d.routing_key(1), "perf.perf-q-2");
        assert_eq!(d.binding_key(1), "perf.perf-q-2");
        assert_eq!(d.producer_queue(3), 1);
        let t = config(&["-t", "topic"]).unwrap();
        assert_eq!(t.binding_key(0), "perf.perf-q-1.#");
        let default_exchange = config(&["-e", ""]).unwrap();
        assert_eq!(default_exchange.routing_key(0), "perf-q-1");
    }

    #[test]
    fn rejects_inconsistent_options() {
        assert!(config(&["--queues", "3", "--consumers", "2"]).is_err());
        assert!(config(&["--producers", "0", "--consumers", "0"]).is_err());
        assert!(config(&["--rate=-1"]).is_err());
        assert!(config(&["--duration", "0"]).is_err());
        assert!(config(&["--pmessages", "0"]).is_err());
        assert!(config(&["-t", "fanout", "-e", ""]).is_err());
        // More consumers than queues is fine; none at all too (publish only).
        assert!(config(&["--queues", "2", "--consumers", "3"]).is_ok());
        assert!(config(&["--queues", "2", "--consumers", "0"]).is_ok());
    }

    #[test]
    fn multi_ack_is_capped_by_prefetch() {
        let c = config(&["--prefetch", "10", "--multi-ack-every", "50"]).unwrap();
        assert_eq!(c.multi_ack_every, 10);
    }

    #[test]
    fn uris() {
        let e = parse_uri("amqp://u%40x:p%3Aw@example:5673/%2Fv").unwrap();
        assert_eq!(
            e,
            Endpoint {
                host: "example".into(),
                port: 5673,
                user: "u@x".into(),
                password: "p:w".into(),
                vhost: "/v".into(),
                tls: None,
            }
        );
        let e = parse_uri("amqp://localhost").unwrap();
        assert_eq!(
            (e.port, e.vhost.as_str(), e.user.as_str()),
            (5672, "/", "guest")
        );
        let e = parse_uri("amqp://[::1]:5690/%2F").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.vhost.as_str()),
            ("::1", 5690, "/")
        );
        let e = parse_uri("amqps://h").unwrap();
        assert_eq!((e.port, e.tls.is_some()), (5671, true));
        assert!(parse_uri("http://h").is_err());
        assert!(parse_uri("amqp://h:notaport").is_err());
        assert!(parse_uri("amqp://h/%zz").is_err());
        let c = config(&["--uri", "amqp://a:b@h:1/v", "--port", "9"]).unwrap();
        assert_eq!(c.endpoint.port, 1);
    }
}
