//! AMQPS: a real TLS listener with certificates the test makes itself (rcgen), amqprs over
//! TLS, EXTERNAL logins, refused certificates and clients, and certificate reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use amqprs::channel::{BasicGetArguments, BasicPublishArguments, QueueDeclareArguments};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::security::SecurityCredentials;
use amqprs::tls::TlsAdaptor;
use amqprs::BasicProperties;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use warren_broker::{Broker, BrokerConfig};
use warren_server::tls::{LoginFrom, TlsServer, TlsSettings, VerifyPeer};
use warren_server::AmqpListener;

use crate::common::within;

/// A certificate authority of the test's own.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A leaf for `localhost` (server) or for the user `cn` (client), valid now unless
    /// `expired`.
    fn issue(&self, cn: &str, client: bool, expired: bool) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Warren tests");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf { cert, key }
    }
}

struct Leaf {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Leaf {
    fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, self.cert.pem()).unwrap();
        std::fs::write(&key, self.key.serialize_pem()).unwrap();
        (cert, key)
    }

    fn client_auth(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = PrivateKeyDer::try_from(self.key.serialize_der()).unwrap();
        (vec![self.cert.der().clone()], key)
    }
}

struct TlsTestServer {
    port: u16,
    broker: Arc<Broker>,
    tls: Arc<TlsServer>,
    ca: Ca,
    dir: tempfile::TempDir,
    _stop: watch::Sender<bool>,
}

async fn start(verify_peer: VerifyPeer) -> TlsTestServer {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Warren test CA");
    let (cert_file, key_file) = ca
        .issue("localhost", false, false)
        .write(dir.path(), "server");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert.pem()).unwrap();
    let tls = TlsServer::load(TlsSettings {
        cert_file,
        key_file,
        ca_file: Some(ca_file),
        verify_peer,
        login_from: LoginFrom::CommonName,
        alpn: Vec::new(),
    })
    .expect("load the test certificates");
    let tcp = warren_server::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = tcp.local_addr().unwrap().port();
    let broker = Broker::new(BrokerConfig::default());
    let (stop, stop_rx) = watch::channel(false);
    let listeners = vec![AmqpListener {
        tcp,
        tls: Some(tls.clone()),
    }];
    tokio::spawn(warren_server::serve(
        listeners,
        broker.clone(),
        Default::default(),
        stop_rx,
    ));
    TlsTestServer {
        port,
        broker,
        tls,
        ca,
        dir,
        _stop: stop,
    }
}

/// A client configuration trusting `ca`, presenting `client` if given, limited to `versions`.
fn client_config(
    ca: &Ca,
    client: Option<&Leaf>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(leaf) => {
            let (chain, key) = leaf.client_auth();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    Arc::new(config)
}

fn amqps_args(
    server: &TlsTestServer,
    client: Option<&Leaf>,
    credentials: SecurityCredentials,
) -> OpenConnectionArguments {
    let config = client_config(&server.ca, client, rustls::ALL_VERSIONS);
    let adaptor = TlsAdaptor::new(TlsConnector::from(config), "localhost".into());
    OpenConnectionArguments::new("localhost", server.port, "", "")
        .credentials(credentials)
        .heartbeat(0)
        .tls_adaptor(adaptor)
        .finish()
}

/// A TLS handshake only: Ok with the session's protocol, or the error the client saw.
async fn handshake(
    server: &TlsTestServer,
    client: Option<&Leaf>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    ca: &Ca,
) -> std::io::Result<rustls::ProtocolVersion> {
    let connector = TlsConnector::from(client_config(ca, client, versions));
    let tcp = TcpStream::connect(("127.0.0.1", server.port)).await?;
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    // TLS 1.3 servers judge a client certificate after the client's handshake is done: the
    // verdict arrives on the first read. Speak AMQP and expect connection.start back.
    tls.write_all(warren_protocol::PROTOCOL_HEADER).await?;
    let mut first = [0u8; 1];
    tls.read_exact(&mut first).await?;
    assert_eq!(first[0], 1, "a method frame (connection.start)");
    Ok(tls.get_ref().1.protocol_version().unwrap())
}

async fn publish_and_get(connection: &Connection) -> Vec<u8> {
    let channel = connection.open_channel(None).await.unwrap();
    let (queue, _, _) = channel
        .queue_declare(QueueDeclareArguments::new("").exclusive(true).finish())
        .await
        .unwrap()
        .unwrap();
    channel
        .basic_publish(
            BasicProperties::default(),
            b"over tls".to_vec(),
            BasicPublishArguments::new("", &queue),
        )
        .await
        .unwrap();
    let (_, _, body) = channel
        .basic_get(BasicGetArguments::new(&queue).no_ack(true).finish())
        .await
        .unwrap()
        .expect("the message");
    // Closed here: a channel dropped open closes itself concurrently with a later
    // connection.close, and amqprs then loses the close-ok.
    channel.close().await.unwrap();
    body
}

#[tokio::test]
async fn amqps_carries_a_plain_login_and_reports_its_session() {
    let server = start(VerifyPeer::None).await;
    let args = amqps_args(
        &server,
        None,
        SecurityCredentials::new_plain("guest", "guest"),
    );
    let connection = within("an AMQPS connection", Connection::open(&args))
        .await
        .unwrap();
    assert_eq!(
        within("a round trip", publish_and_get(&connection)).await,
        b"over tls"
    );
    let registered = server.broker.connections.list();
    let tls = registered[0].tls.as_ref().expect("registered as TLS");
    assert_eq!(tls.protocol, "tlsv1.3");
    assert_eq!(tls.key_exchange, "any");
    assert!(
        tls.peer_cert.is_none(),
        "no client certificate was asked for"
    );
    connection.close().await.unwrap();
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_both_negotiated() {
    let server = start(VerifyPeer::None).await;
    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let got = within(
            "a handshake",
            handshake(&server, None, &[version], &server.ca),
        )
        .await
        .expect("handshake");
        assert_eq!(got, expected);
    }
}

#[tokio::test]
async fn external_logs_in_the_user_the_certificate_names() {
    let server = start(VerifyPeer::Required).await;
    let guest = server.ca.issue("guest", true, false);
    let args = amqps_args(&server, Some(&guest), SecurityCredentials::new_external());
    let connection = within("an EXTERNAL login", Connection::open(&args))
        .await
        .unwrap();
    assert_eq!(
        within("a round trip", publish_and_get(&connection)).await,
        b"over tls"
    );
    let registered = server.broker.connections.list();
    assert_eq!(registered[0].user, "guest");
    assert_eq!(registered[0].client.auth_mechanism, "EXTERNAL");
    let cert = registered[0]
        .tls
        .as_ref()
        .unwrap()
        .peer_cert
        .as_ref()
        .unwrap();
    // RFC 4514 order: the certificate's last RDN first.
    assert_eq!(cert.subject, "O=Warren tests,CN=guest");
    assert_eq!(cert.issuer, "CN=Warren test CA");
    connection.close().await.unwrap();

    // A certificate for a user that does not exist logs in nobody.
    let stranger = server.ca.issue("stranger", true, false);
    let args = amqps_args(
        &server,
        Some(&stranger),
        SecurityCredentials::new_external(),
    );
    let refused = within("a refused login", Connection::open(&args)).await;
    assert!(refused.is_err(), "EXTERNAL for an unknown user must fail");
    assert!(server.broker.connections.list().is_empty());
}

#[tokio::test]
async fn external_is_not_offered_without_a_client_certificate() {
    let server = start(VerifyPeer::Optional).await;
    let args = amqps_args(&server, None, SecurityCredentials::new_external());
    let refused = within("a refused login", Connection::open(&args)).await;
    assert!(refused.is_err(), "EXTERNAL needs a certificate");
    // Optional verification lets the same client in with a password.
    let args = amqps_args(
        &server,
        None,
        SecurityCredentials::new_plain("guest", "guest"),
    );
    let connection = within("a password login", Connection::open(&args))
        .await
        .unwrap();
    connection.close().await.unwrap();
}

#[tokio::test]
async fn wrong_ca_expired_and_missing_client_certificates_are_refused() {
    let server = start(VerifyPeer::Required).await;
    let other_ca = Ca::new("Somebody else's CA");
    let cases = [
        ("no certificate", None),
        (
            "another CA's certificate",
            Some(other_ca.issue("guest", true, false)),
        ),
        (
            "an expired certificate",
            Some(server.ca.issue("guest", true, true)),
        ),
    ];
    for (what, client) in &cases {
        let result = within(
            what,
            handshake(&server, client.as_ref(), rustls::ALL_VERSIONS, &server.ca),
        )
        .await;
        assert!(result.is_err(), "{what} must be refused, got {result:?}");
    }
    // A client that trusts another CA refuses the server in turn.
    let result = within(
        "a client of another CA",
        handshake(&server, None, rustls::ALL_VERSIONS, &other_ca),
    )
    .await;
    assert!(result.is_err());
    // None of that disturbed the listener.
    let good = server.ca.issue("guest", true, false);
    within(
        "a good handshake",
        handshake(&server, Some(&good), rustls::ALL_VERSIONS, &server.ca),
    )
    .await
    .expect("a valid certificate still gets in");
}

#[tokio::test]
async fn a_plain_client_on_the_tls_port_is_refused() {
    let server = start(VerifyPeer::None).await;
    let mut plain = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    plain
        .write_all(warren_protocol::PROTOCOL_HEADER)
        .await
        .unwrap();
    // The broker answers with a TLS alert at most, then closes: never connection.start.
    let mut reply = Vec::new();
    let read = within("the broker to close", plain.read_to_end(&mut reply)).await;
    assert!(read.is_ok() || reply.is_empty());
    assert!(
        reply.first() != Some(&1),
        "a plain-text client got an AMQP frame: {reply:?}"
    );
    assert!(server.broker.connections.list().is_empty());
}

#[tokio::test]
async fn reload_serves_the_new_certificate_and_keeps_open_connections() {
    let server = start(VerifyPeer::None).await;
    let args = amqps_args(
        &server,
        None,
        SecurityCredentials::new_plain("guest", "guest"),
    );
    let before = within("a connection", Connection::open(&args))
        .await
        .unwrap();

    // A new CA and certificate replace the files; the old connection's session is its own.
    let new_ca = Ca::new("Warren test CA, second generation");
    new_ca
        .issue("localhost", false, false)
        .write(server.dir.path(), "server");
    server.tls.reload().expect("reload");

    within(
        "a handshake against the new CA",
        handshake(&server, None, rustls::ALL_VERSIONS, &new_ca),
    )
    .await
    .expect("new clients see the new certificate");
    let stale = within(
        "a handshake against the old CA",
        handshake(&server, None, rustls::ALL_VERSIONS, &server.ca),
    )
    .await;
    assert!(stale.is_err(), "the old certificate is no longer served");
    assert_eq!(
        within("a round trip", publish_and_get(&before)).await,
        b"over tls"
    );
    before.close().await.unwrap();

    // A broken file leaves the working certificate in place.
    std::fs::write(server.dir.path().join("server.pem"), "not a certificate").unwrap();
    assert!(server.tls.reload().is_err());
    within(
        "a handshake after a failed reload",
        handshake(&server, None, rustls::ALL_VERSIONS, &new_ca),
    )
    .await
    .expect("the last good certificate is still served");
}
