//! An in-process Warren (broker, AMQP listener, management API) on ephemeral loopback ports,
//! as crates/http's tests boot one; the CLI run against it through the library and through
//! the real `warrenctl` binary; and an amqprs client for what the CLI cannot do itself
//! (declare, publish, get, log in).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amqprs::channel::{
    BasicConsumeArguments, BasicGetArguments, BasicPublishArguments, Channel,
    ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::BasicProperties;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use warren_broker::Broker;
use warren_http::{HttpConfig, Listener};
use warren_server::ServerConfig;

/// Every wait on the broker is bounded by this, so a hang fails instead of stalling CI.
const WAIT: Duration = Duration::from_secs(10);

pub struct Harness {
    pub rt: Runtime,
    pub http_port: u16,
    pub amqp_port: u16,
    stop: watch::Sender<bool>,
    _broker: Arc<Broker>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Stop the listeners; dropping the runtime then ends every task.
        let _ = self.stop.send(true);
    }
}

/// What one CLI run printed, and its exit code.
#[derive(Debug)]
pub struct Out {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        &self.stdout
    }

    /// Asserts failure with `code` and returns stderr.
    #[track_caller]
    pub fn fails(&self, code: u8) -> &str {
        assert_eq!(self.code, code, "expected exit code {code}: {self:#?}");
        &self.stderr
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.stdout))
    }
}

pub fn start() -> Harness {
    // Heartbeats stay on: amqprs 2 treats a negotiated 0 as an immediate timeout.
    let warren_testkit::Started {
        rt,
        broker,
        amqp_port,
        http_port,
        stop,
    } = warren_testkit::start(ServerConfig::default(), |amqp, http| HttpConfig {
        stats_interval: Duration::from_millis(200),
        listeners: vec![
            Listener {
                protocol: "amqp",
                addr: amqp,
                certificates: None,
            },
            Listener {
                protocol: "http",
                addr: http,
                certificates: None,
            },
        ],
        ..HttpConfig::default()
    });
    Harness {
        rt,
        http_port,
        amqp_port,
        stop,
        _broker: broker,
    }
}

impl Harness {
    fn address(&self) -> Vec<String> {
        vec![
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            self.http_port.to_string(),
        ]
    }

    /// The CLI through its library entry point, against this broker, with an empty stdin.
    pub fn ctl(&self, args: &[&str]) -> Out {
        self.ctl_stdin(args, "")
    }

    pub fn ctl_stdin(&self, args: &[&str], stdin: &str) -> Out {
        let mut argv = self.address();
        argv.extend(args.iter().map(|s| s.to_string()));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = warren_cli::run(
            "warrenctl",
            argv,
            &|_| None,
            &mut warren_cli::Io {
                stdin: &mut stdin.as_bytes(),
                stdout: &mut out,
                stderr: &mut err,
            },
        );
        Out {
            code,
            stdout: String::from_utf8(out).unwrap(),
            stderr: String::from_utf8(err).unwrap(),
        }
    }

    /// The real `warrenctl` binary against this broker.
    pub fn bin(&self, args: &[&str]) -> Out {
        let mut argv = self.address();
        argv.extend(args.iter().map(|s| s.to_string()));
        bin(&argv, &[], "")
    }
}

/// The real `warrenctl` binary: `args`, extra `env` (the caller's WARREN_* are removed, so
/// the test sees only what it sets), `stdin`.
pub fn bin(args: &[String], env: &[(&str, &str)], stdin: &str) -> Out {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warrenctl"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        warren_cli::ENV_HOST,
        warren_cli::ENV_PORT,
        warren_cli::ENV_USERNAME,
        warren_cli::ENV_PASSWORD,
        warren_cli::ENV_VHOST,
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("run warrenctl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    Out {
        code: output.status.code().expect("warrenctl exited") as u8,
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Polls until `check` holds, failing after [`WAIT`].
#[track_caller]
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An AMQP client connection (amqprs), with one open channel.
pub struct Amqp {
    conn: Option<Connection>,
    ch: Option<Channel>,
    /// amqprs spawns a task when a channel is dropped: that needs the runtime.
    rt: tokio::runtime::Handle,
}

impl Amqp {
    fn ch(&self) -> &Channel {
        self.ch.as_ref().unwrap()
    }
}

impl Drop for Amqp {
    fn drop(&mut self) {
        let _in_runtime = self.rt.enter();
        self.ch.take();
        self.conn.take();
    }
}

impl Harness {
    /// Logs in over AMQP; the error is amqprs's (a refused login or vhost).
    pub fn login(&self, user: &str, password: &str, vhost: &str) -> Result<Amqp, String> {
        let args = OpenConnectionArguments::new("127.0.0.1", self.amqp_port, user, password)
            .virtual_host(vhost)
            .finish();
        self.rt.block_on(async {
            let open = async {
                let conn = Connection::open(&args).await?;
                let ch = conn.open_channel(None).await?;
                Ok::<_, amqprs::error::Error>(Amqp {
                    conn: Some(conn),
                    ch: Some(ch),
                    rt: tokio::runtime::Handle::current(),
                })
            };
            match tokio::time::timeout(WAIT, open).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => panic!("AMQP login of {user} to {vhost} hung"),
            }
        })
    }

    pub fn guest(&self) -> Amqp {
        self.login("guest", "guest", "/").expect("guest logs in")
    }

    fn block<T>(&self, what: &str, fut: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(async {
            tokio::time::timeout(WAIT, fut)
                .await
                .unwrap_or_else(|_| panic!("timed out: {what}"))
        })
    }

    /// Declares a queue (durable unless told otherwise).
    pub fn declare(&self, c: &Amqp, queue: &str, durable: bool) {
        let args = QueueDeclareArguments::new(queue).durable(durable).finish();
        self.block("queue.declare", c.ch().queue_declare(args))
            .expect("queue.declare");
    }

    pub fn declare_exchange(&self, c: &Amqp, exchange: &str, kind: &str) {
        let args = ExchangeDeclareArguments::new(exchange, kind)
            .durable(true)
            .finish();
        self.block("exchange.declare", c.ch().exchange_declare(args))
            .expect("exchange.declare");
    }

    pub fn bind(&self, c: &Amqp, queue: &str, exchange: &str, key: &str) {
        let args = QueueBindArguments::new(queue, exchange, key);
        self.block("queue.bind", c.ch().queue_bind(args))
            .expect("queue.bind");
    }

    /// Publishes `n` messages to `queue` through the default exchange, then makes a round
    /// trip on the same channel so that they are in the queue when this returns.
    pub fn publish(&self, c: &Amqp, queue: &str, n: usize) {
        self.block("publish", async {
            for i in 0..n {
                c.ch()
                    .basic_publish(
                        BasicProperties::default(),
                        format!("message {i}").into_bytes(),
                        BasicPublishArguments::new("", queue),
                    )
                    .await
                    .expect("basic.publish");
            }
            let passive = QueueDeclareArguments::new(queue).passive(true).finish();
            c.ch().queue_declare(passive).await.expect("queue.declare");
        });
    }

    /// basic.get with manual ack, never acked: the message stays unacknowledged while the
    /// channel lives.
    pub fn get_unacked(&self, c: &Amqp, queue: &str) {
        let got = self
            .block(
                "basic.get",
                c.ch()
                    .basic_get(BasicGetArguments::new(queue).no_ack(false).finish()),
            )
            .expect("basic.get");
        assert!(got.is_some(), "{queue} had a message");
    }

    /// Starts a consumer (manual acks) and keeps its deliveries unread.
    pub fn consume(&self, c: &Amqp, queue: &str, tag: &str) -> impl Sized {
        let args = BasicConsumeArguments::new(queue, tag);
        let (_tag, rx) = self
            .block("basic.consume", c.ch().basic_consume_rx(args))
            .expect("basic.consume");
        rx
    }

    pub fn close(&self, mut c: Amqp) {
        let conn = c.conn.take().unwrap();
        let _ = self.block("connection.close", conn.close());
    }
}
