"""AMQPS and HTTPS against a real Warren process, with certificates made by make_certs.sh:
pika over TLS (PLAIN and EXTERNAL), the management API over HTTPS, `openssl s_client` for the
protocol versions, refused clients and certificates, and a certificate reload on SIGHUP.

Run: WARREN_BIN=target/release/warren python -m pytest tests/tls
"""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pika
import pytest
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
# What a refused connection raises from pika: its own errors, or the TLS error underneath.
REFUSED = (pika.exceptions.AMQPError, ssl.SSLError, ConnectionError)
WARREN_BIN = os.environ.get("WARREN_BIN", str(ROOT / "target" / "release" / "warren"))


# Short, so the stalled-handshake test need not wait RabbitMQ's 10 s.
HANDSHAKE_TIMEOUT_MS = 2000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"warren exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def certs():
    directory = Path(tempfile.mkdtemp(prefix="warren-certs."))
    subprocess.run([str(HERE / "make_certs.sh"), str(directory)], check=True)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


class Broker:
    """A Warren with AMQPS, HTTPS and metrics over HTTPS; plain AMQP and HTTP beside them."""

    def __init__(self, certs, verify_peer):
        self.certs = certs
        self.dir = Path(tempfile.mkdtemp(prefix="warren-tls."))
        # Copies the broker reads, so the reload test can replace them.
        shutil.copy(certs / "server.pem", self.dir / "cert.pem")
        shutil.copy(certs / "server.key", self.dir / "key.pem")
        self.amqp, self.amqps, self.http, self.https, self.metrics = (free_port() for _ in range(5))
        self.log = open(self.dir / "warren.log", "w")
        self.proc = subprocess.Popen(
            [WARREN_BIN, "serve", "--bind", "127.0.0.1", "--data-dir", str(self.dir / "data"),
             "--amqp-port", str(self.amqp), "--http-port", str(self.http),
             "--amqps-port", str(self.amqps), "--https-port", str(self.https),
             "--prometheus-port", "0", "--prometheus-tls-port", str(self.metrics),
             "--tls-cert-file", str(self.dir / "cert.pem"),
             "--tls-key-file", str(self.dir / "key.pem"),
             "--tls-ca-file", str(certs / "ca.pem"), "--tls-verify-peer", verify_peer,
             "--handshake-timeout", str(HANDSHAKE_TIMEOUT_MS), "--log", "info"],
            stdout=self.log, stderr=subprocess.STDOUT)
        for port in (self.amqp, self.amqps, self.https, self.metrics):
            wait_for_port(port, self.proc)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def tls_context(self, client=None, ca="ca.pem", **kwargs):
        context = ssl.create_default_context(cafile=str(self.certs / ca))
        for key, value in kwargs.items():
            setattr(context, key, value)
        if client:
            cert, key = client if isinstance(client, tuple) else (f"{client}.pem", f"{client}.key")
            context.load_cert_chain(str(self.certs / cert), str(self.certs / key))
        return context

    def connect(self, client=None, external=False, ca="ca.pem"):
        credentials = (pika.credentials.ExternalCredentials() if external
                       else pika.PlainCredentials("guest", "guest"))
        params = pika.ConnectionParameters(
            "localhost", self.amqps, credentials=credentials, heartbeat=0,
            ssl_options=pika.SSLOptions(self.tls_context(client, ca), "localhost"),
            connection_attempts=1, socket_timeout=5)
        return pika.BlockingConnection(params)

    def api(self, path):
        response = requests.get(f"https://localhost:{self.https}{path}", auth=("guest", "guest"),
                                verify=str(self.certs / "ca.pem"), timeout=10)
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="module")
def broker(certs):
    b = Broker(certs, "optional")
    yield b
    b.stop()


def round_trip(connection):
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"over tls")
    for _ in range(50):
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method:
            return body
        time.sleep(0.02)
    return None


def s_client(port, *options, input_text=b"", ca=None):
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost"]
    if ca:
        args += ["-CAfile", str(ca)]
    done = subprocess.run(args + list(options), input=input_text, capture_output=True, timeout=20)
    return done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")


def negotiated(output):
    """(protocol, cipher) from s_client's `New, TLSv1.3, Cipher is ...` line, or None."""
    for line in output.splitlines():
        if line.startswith("New, ") and "Cipher is" in line:
            protocol = line.split(",")[1].strip()
            cipher = line.split("Cipher is")[1].strip()
            return None if cipher == "(NONE)" else (protocol, cipher)
    return None


def test_pika_over_tls_with_a_password(broker):
    connection = broker.connect()
    assert round_trip(connection) == b"over tls"
    [listed] = [c for c in broker.api("/api/connections") if c["auth_mechanism"] == "PLAIN"]
    assert listed["ssl"] is True
    assert listed["ssl_protocol"] == "tlsv1.3"
    assert "peer_cert_subject" not in listed
    connection.close()


def test_external_login_is_the_certificates_common_name(broker):
    connection = broker.connect(client="guest", external=True)
    assert round_trip(connection) == b"over tls"
    [listed] = [c for c in broker.api("/api/connections") if c["auth_mechanism"] == "EXTERNAL"]
    assert listed["user"] == "guest"
    assert listed["peer_cert_subject"] == "CN=guest,O=Warren tests"
    assert listed["peer_cert_issuer"] == "CN=Warren test CA,O=Warren tests"
    connection.close()


def test_external_needs_a_certificate_and_a_known_user(broker):
    for client in (None, "stranger"):
        with pytest.raises(REFUSED):
            broker.connect(client=client, external=True)
    assert round_trip(broker.connect()) == b"over tls", "the listener still serves"


@pytest.mark.parametrize("client", ["rogue", ("expired.pem", "guest.key")],
                         ids=["another CA", "expired"])
def test_bad_client_certificates_are_refused(broker, client):
    with pytest.raises(REFUSED):
        broker.connect(client=client)


def test_a_client_that_distrusts_the_server_certificate_fails(broker):
    with pytest.raises(REFUSED):
        broker.connect(ca="rogue-ca.pem")


def test_a_plain_client_on_the_tls_port_is_refused_cleanly(broker):
    params = pika.ConnectionParameters("127.0.0.1", broker.amqps, connection_attempts=1,
                                       socket_timeout=5, blocked_connection_timeout=5)
    started = time.monotonic()
    with pytest.raises(REFUSED):
        pika.BlockingConnection(params)
    assert time.monotonic() - started < 5, "refused at once, not after a timeout"
    # The plain port beside it serves plain clients.
    plain = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker.amqp))
    assert round_trip(plain) == b"over tls"
    plain.close()


def closed_by_peer(sock, timeout):
    """Whether the broker closes `sock` within `timeout` seconds (EOF or reset)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(4096) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True
    except (socket.timeout, TimeoutError):
        return False


def test_stalled_tls_handshakes_are_closed_and_others_are_served(broker):
    # Half a TLS record header, then nothing; and a finished TLS handshake with no AMQP after
    # it. The handshake timeout runs from accept, so both are closed after it.
    partial = [socket.create_connection(("127.0.0.1", broker.amqps)) for _ in range(50)]
    for sock in partial:
        sock.sendall(b"\x16\x03\x01")
    context = broker.tls_context()
    silent = [context.wrap_socket(socket.create_connection(("127.0.0.1", broker.amqps)),
                                  server_hostname="localhost") for _ in range(10)]
    started = time.monotonic()
    served = broker.connect()
    assert round_trip(served) == b"over tls", "a well-behaved client is served meanwhile"
    limit = HANDSHAKE_TIMEOUT_MS / 1000 + 3
    for sock in partial + silent:
        assert closed_by_peer(sock, max(0.1, limit - (time.monotonic() - started))), \
            "a stalled handshake outlived the handshake timeout"
        sock.close()
    assert time.monotonic() - started >= HANDSHAKE_TIMEOUT_MS / 1000 - 0.5
    assert round_trip(served) == b"over tls", "the served connection is still open"
    served.close()


def test_tls_1_2_and_1_3_negotiate_and_older_versions_are_refused(broker):
    ca = broker.certs / "ca.pem"
    tls12 = negotiated(s_client(broker.amqps, "-tls1_2", ca=ca))
    tls13 = negotiated(s_client(broker.amqps, "-tls1_3", ca=ca))
    print(f"\nTLS 1.2: {tls12}\nTLS 1.3: {tls13}")
    assert tls12 and tls12[0] == "TLSv1.2" and ("GCM" in tls12[1] or "CHACHA20" in tls12[1])
    assert tls13 and tls13[0] == "TLSv1.3" and tls13[1].startswith("TLS_")
    for old in ("-tls1", "-tls1_1"):
        output = s_client(broker.amqps, old, "-cipher", "DEFAULT@SECLEVEL=0", ca=ca)
        print(f"{old}: {negotiated(output)}")
        assert negotiated(output) is None, f"{old} must be refused:\n{output}"


def test_management_api_and_metrics_over_https(broker):
    overview = broker.api("/api/overview")
    protocols = {(listener["protocol"], listener["port"]) for listener in overview["listeners"]}
    assert ("amqp/ssl", broker.amqps) in protocols
    assert ("https", broker.https) in protocols
    metrics = requests.get(f"https://localhost:{broker.metrics}/metrics",
                           verify=str(broker.certs / "ca.pem"), timeout=10)
    assert metrics.status_code == 200 and "rabbitmq_" in metrics.text
    # The UI's page comes over HTTPS too.
    page = requests.get(f"https://localhost:{broker.https}/", verify=str(broker.certs / "ca.pem"),
                        timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_certificate_expiration_health_check(broker):
    def check(window):
        return requests.get(f"https://localhost:{broker.https}/api/health/checks/"
                            f"certificate-expiration/{window}", auth=("guest", "guest"),
                            verify=str(broker.certs / "ca.pem"), timeout=10)
    # make_certs.sh's certificates are good for ten years.
    assert check("1/months").json() == {"status": "ok"}
    late = check("11/years")
    assert late.status_code == 503, late.text
    body = late.json()
    assert body["status"] == "failed" and body["reason"] == "Certificates expiring"
    by_protocol = {e["protocol"]: e for e in body["expired"]}
    assert set(by_protocol) == {"amqp/ssl", "https", "https/prometheus"}, body
    amqps = by_protocol["amqp/ssl"]
    assert amqps["port"] == broker.amqps and amqps["certfile"] == str(broker.dir / "cert.pem")
    assert amqps["cacertfile"] == str(broker.certs / "ca.pem")
    # The date is the certificate's notAfter, written as RabbitMQ writes it.
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in",
                          str(broker.dir / "cert.pem")], capture_output=True, text=True,
                         check=True).stdout.strip().removeprefix("notAfter=")
    expected = time.strftime("%Y-%m-%d %H:%M:%S",
                             time.strptime(end, "%b %d %H:%M:%S %Y %Z"))
    assert amqps["certfile_expires_on"] == [expected], amqps
    assert len(amqps["cacertfile_expires_on"]) == 1
    assert check("1/fortnights").status_code == 400


def test_sighup_reloads_certificates_and_keeps_connections(broker):
    before = broker.connect()
    assert "localhost (ECDSA)" not in s_client(broker.amqps, ca=broker.certs / "ca.pem")
    shutil.copy(broker.certs / "server-ec.pem", broker.dir / "cert.pem")
    shutil.copy(broker.certs / "server-ec.key", broker.dir / "key.pem")
    broker.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "localhost (ECDSA)" not in s_client(broker.amqps, ca=broker.certs / "ca.pem"):
        assert time.monotonic() < deadline, "the new certificate is not served"
        time.sleep(0.1)
    assert round_trip(before) == b"over tls", "an open connection survives the reload"
    assert round_trip(broker.connect()) == b"over tls"
    before.close()
    # A broken file is refused; the broker keeps serving the last good certificate.
    (broker.dir / "cert.pem").write_text("garbage")
    broker.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert broker.proc.poll() is None
    assert "localhost (ECDSA)" in s_client(broker.amqps, ca=broker.certs / "ca.pem")


def test_required_verification_refuses_clients_without_certificates(certs):
    strict = Broker(certs, "required")
    try:
        with pytest.raises(REFUSED):
            strict.connect()
        connection = strict.connect(client="guest", external=True)
        assert round_trip(connection) == b"over tls"
        connection.close()
    finally:
        strict.stop()


def test_plain_listeners_can_be_switched_off(certs):
    https = free_port()
    amqps = free_port()
    directory = Path(tempfile.mkdtemp(prefix="warren-tls-only."))
    proc = subprocess.Popen(
        [WARREN_BIN, "serve", "--bind", "127.0.0.1", "--data-dir", str(directory),
         "--amqp-port", "0", "--http-port", "0", "--prometheus-port", "0",
         "--amqps-port", str(amqps), "--https-port", str(https),
         "--tls-cert-file", str(certs / "server.pem"), "--tls-key-file", str(certs / "server.key"),
         "--log", "warn"])
    try:
        wait_for_port(amqps, proc)
        wait_for_port(https, proc)
        overview = requests.get(f"https://localhost:{https}/api/overview", auth=("guest", "guest"),
                                verify=str(certs / "ca.pem"), timeout=10).json()
        assert sorted(listener["protocol"] for listener in overview["listeners"]) == [
            "amqp/ssl", "https"], json.dumps(overview["listeners"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
