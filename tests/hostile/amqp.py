"""A tiny hand-written AMQP 0-9-1 client: frame codecs, a blocking socket client and an asyncio
handshake. The hostile tests need thousands of connections, frames no library would send
(nested tables, channel ids past channel_max) and sockets they deliberately stop reading, none
of which pika offers.

Only what the tests use is here; method arguments are encoded by hand from the 0-9-1 spec
(RabbitMQ's field-type letters)."""

import asyncio
import socket
import struct
import time

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_END = 0xCE
FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8

# (class_id, method_id) of the methods the tests read or write.
CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
QUEUE_DECLARE = (50, 10)
QUEUE_DECLARE_OK = (50, 11)
QUEUE_DELETE = (50, 40)
QUEUE_DELETE_OK = (50, 41)
BASIC_QOS = (60, 10)
BASIC_QOS_OK = (60, 11)
BASIC_CONSUME = (60, 20)
BASIC_CONSUME_OK = (60, 21)
BASIC_PUBLISH = (60, 40)
BASIC_DELIVER = (60, 60)
BASIC_GET = (60, 70)
BASIC_GET_OK = (60, 71)
BASIC_GET_EMPTY = (60, 72)


class AmqpClosed(Exception):
    """The broker closed the connection (connection.close) or a channel (channel.close)."""

    def __init__(self, kind, code, text, class_id, method_id):
        super().__init__(f"{kind}.close {code} {text!r} ({class_id},{method_id})")
        self.kind, self.code, self.text = kind, code, text
        self.class_id, self.method_id = class_id, method_id


# ---- encoding --------------------------------------------------------------------------------

def shortstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("B", len(b)) + b


def longstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">I", len(b)) + b


def field_value(v):
    if isinstance(v, bool):
        return b"t" + struct.pack("B", v)
    if isinstance(v, int):
        return b"l" + struct.pack(">q", v)
    if isinstance(v, (str, bytes)):
        return b"S" + longstr(v)
    if isinstance(v, dict):
        return b"F" + table(v)
    if isinstance(v, list):
        return b"A" + longstr(b"".join(field_value(x) for x in v))
    raise TypeError(f"no field type for {v!r}")


def table(d):
    return longstr(b"".join(shortstr(k) + field_value(v) for k, v in d.items()))


def frame(kind, channel, payload):
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + bytes([FRAME_END])


def method(channel, ids, args=b""):
    return frame(FRAME_METHOD, channel, struct.pack(">HH", *ids) + args)


def bits(*flags):
    return struct.pack("B", sum(1 << i for i, f in enumerate(flags) if f))


def start_ok(user="guest", password="guest"):
    props = table({"product": "warren-hostile-tests", "capabilities": {
        "authentication_failure_close": True, "connection.blocked": True}})
    return method(0, CONNECTION_START_OK,
                  props + shortstr("PLAIN") + longstr(f"\0{user}\0{password}") + shortstr("en_US"))


def tune_ok(channel_max, frame_max, heartbeat):
    return method(0, CONNECTION_TUNE_OK, struct.pack(">HIH", channel_max, frame_max, heartbeat))


def connection_open(vhost="/"):
    return method(0, CONNECTION_OPEN, shortstr(vhost) + shortstr("") + bits(False))


def connection_close(code=200, text="bye"):
    return method(0, CONNECTION_CLOSE, struct.pack(">H", code) + shortstr(text) + struct.pack(">HH", 0, 0))


def connection_close_ok():
    return method(0, CONNECTION_CLOSE_OK)


def channel_close_ok(channel):
    return method(channel, CHANNEL_CLOSE_OK)


def queue_delete(channel, name):
    return method(channel, QUEUE_DELETE, struct.pack(">H", 0) + shortstr(name) + bits(False, False, False))


def channel_open(channel):
    return method(channel, CHANNEL_OPEN, shortstr(""))


def queue_declare(channel, name, *, passive=False, durable=False, exclusive=False,
                  auto_delete=False, arguments=None, arguments_table=None):
    """queue.declare; `arguments_table` (encoded bytes) instead of `arguments` sends a table
    as is."""
    if arguments_table is None:
        arguments_table = table(arguments or {})
    return method(channel, QUEUE_DECLARE, struct.pack(">H", 0) + shortstr(name)
                  + bits(passive, durable, exclusive, auto_delete, False) + arguments_table)


def basic_qos(channel, prefetch_count):
    return method(channel, BASIC_QOS, struct.pack(">IH", 0, prefetch_count) + bits(False))


def basic_consume(channel, queue, *, tag="", no_ack=False):
    return method(channel, BASIC_CONSUME, struct.pack(">H", 0) + shortstr(queue) + shortstr(tag)
                  + bits(False, no_ack, False, False) + table({}))


def basic_get(channel, queue, *, no_ack=True):
    return method(channel, BASIC_GET, struct.pack(">H", 0) + shortstr(queue) + bits(no_ack))


def basic_publish(channel, routing_key, body, *, exchange="", content_type=None,
                  headers_table=None):
    """basic.publish, its content header and one body frame. `headers_table` is the encoded
    headers table (bytes, length prefix included), so callers can send tables no encoder
    would produce."""
    props_flags, props = 0, b""
    if content_type is not None:
        props_flags |= 1 << 15
        props += shortstr(content_type)
    if headers_table is not None:
        props_flags |= 1 << 13
        props += headers_table
    header = struct.pack(">HHQH", 60, 0, len(body), props_flags) + props
    return (method(channel, BASIC_PUBLISH, struct.pack(">H", 0) + shortstr(exchange)
                   + shortstr(routing_key) + bits(False, False))
            + frame(FRAME_HEADER, channel, header) + frame(FRAME_BODY, channel, body))


def properties_of(content_type=None, headers_table=None):
    """The property bytes (flags word first) basic_publish sends for these arguments, as
    Connection.get returns them."""
    flags = (content_type is not None) << 15 | (headers_table is not None) << 13
    return (struct.pack(">H", flags) + (shortstr(content_type) if content_type is not None else b"")
            + (headers_table or b""))


def nested_table(depth, kind="F", extra=b""):
    """An encoded headers table holding `depth` levels of nested tables ("F") or arrays ("A")
    below the top-level one: {"n": {"n": ... {}}} or {"n": [[...[]]]}, after the already
    encoded top-level entries `extra`. Built inside out, as bytes: O(depth), no recursion."""
    inner = longstr(b"")
    for _ in range(depth - 1):
        inner = longstr(shortstr("n") + b"F" + inner) if kind == "F" else longstr(b"A" + inner)
    return longstr(extra + (shortstr("n") + kind.encode() + inner if depth else b""))


def table_entries(d):
    """The encoded entries of a table, without its length prefix (for nested_table's extra)."""
    return table(d)[4:]


# ---- decoding --------------------------------------------------------------------------------

def parse_frame(buf):
    """(frame, rest) where frame is (kind, channel, payload), or (None, buf) if incomplete."""
    if len(buf) < 7:
        return None, buf
    kind, channel, size = struct.unpack_from(">BHI", buf)
    if len(buf) < 8 + size:
        return None, buf
    if buf[7 + size] != FRAME_END:
        raise ValueError(f"bad frame end {buf[7 + size]:#x}")
    return (kind, channel, bytes(buf[7:7 + size])), buf[8 + size:]


def method_ids(payload):
    return struct.unpack_from(">HH", payload)


def read_shortstr(payload, offset):
    n = payload[offset]
    return payload[offset + 1:offset + 1 + n].decode(errors="replace"), offset + 1 + n


def parse_close(payload):
    """reply_code, reply_text, class_id, method_id of a connection.close or channel.close."""
    code = struct.unpack_from(">H", payload, 4)[0]
    text, off = read_shortstr(payload, 6)
    class_id, method_id = struct.unpack_from(">HH", payload, off)
    return code, text, class_id, method_id


def parse_tune(payload):
    """channel_max, frame_max, heartbeat of a connection.tune."""
    return struct.unpack_from(">HIH", payload, 4)


def parse_declare_ok(payload):
    """queue, message_count, consumer_count of a queue.declare-ok."""
    name, off = read_shortstr(payload, 4)
    count, consumers = struct.unpack_from(">II", payload, off)
    return name, count, consumers


def closed_error(channel, payload):
    ids = method_ids(payload)
    if ids == CONNECTION_CLOSE or ids == CHANNEL_CLOSE:
        kind = "connection" if ids == CONNECTION_CLOSE else "channel"
        return AmqpClosed(kind, *parse_close(payload))
    return None


# ---- blocking client ---------------------------------------------------------------------------

class Connection:
    """A blocking AMQP connection on a plain socket. `rcvbuf` shrinks SO_RCVBUF before connecting
    (the window the broker sees), for a consumer that is meant to stall."""

    def __init__(self, port, host="127.0.0.1", *, heartbeat=0, channel_max=0, frame_max=0,
                 rcvbuf=None, timeout=10.0, handshake=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""
        # Methods read while waiting for another channel's reply. RabbitMQ runs each channel
        # as its own process, so replies to pipelined requests on different channels can
        # arrive in any order.
        self.stash = []
        self.tune = None
        if handshake:
            self.handshake(heartbeat=heartbeat, channel_max=channel_max, frame_max=frame_max)

    def handshake(self, *, heartbeat=0, channel_max=0, frame_max=0):
        self.sock.sendall(PROTOCOL_HEADER)
        self.expect(0, CONNECTION_START)
        self.sock.sendall(start_ok())
        self.tune = parse_tune(self.expect(0, CONNECTION_TUNE))
        server_channel_max, server_frame_max, _ = self.tune
        # 0 from us means "take the server's"; the spec lets the lower non-zero value win.
        self.sock.sendall(tune_ok(channel_max or server_channel_max,
                                  frame_max or server_frame_max, heartbeat)
                          + connection_open("/"))
        self.expect(0, CONNECTION_OPEN_OK)

    def send(self, data):
        self.sock.sendall(data)

    def read_frame(self):
        while True:
            f, self.buf = parse_frame(self.buf)
            if f is not None:
                return f
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("broker closed the socket")
            self.buf += chunk

    def read_method(self):
        """The next method frame (channel, payload), skipping heartbeats."""
        while True:
            kind, channel, payload = self.read_frame()
            if kind == FRAME_METHOD:
                return channel, payload

    def expect(self, channel, ids):
        """Reads up to the next method on `channel` (other channels' methods are kept for
        later); raises AmqpClosed if the broker closed the connection or that channel instead
        of answering with `ids`. Other methods on `channel` are skipped."""
        while True:
            mine = next((i for i, (ch, _) in enumerate(self.stash) if ch == channel), None)
            if mine is not None:
                ch, payload = self.stash.pop(mine)
            else:
                ch, payload = self.read_method()
                if ch not in (0, channel):
                    self.stash.append((ch, payload))
                    continue
            err = closed_error(ch, payload)
            if err is not None:
                raise err
            if ch == channel and method_ids(payload) == ids:
                return payload

    def open_channel(self, channel):
        self.send(channel_open(channel))
        self.expect(channel, CHANNEL_OPEN_OK)

    def declare(self, channel, name, **kw):
        self.send(queue_declare(channel, name, **kw))
        return parse_declare_ok(self.expect(channel, QUEUE_DECLARE_OK))

    def get(self, channel, queue):
        """basic.get with auto-ack: None if the queue is empty, else (properties, body), the
        properties as the raw bytes of the content header (flags word first)."""
        self.send(basic_get(channel, queue, no_ack=True))
        while True:
            ch, payload = self.read_method()
            err = closed_error(ch, payload)
            if err is not None and ch in (0, channel):
                raise err
            if ch != channel:
                continue
            if method_ids(payload) == BASIC_GET_EMPTY:
                return None
            if method_ids(payload) == BASIC_GET_OK:
                break
        _, _, header = self.read_frame()
        body_size = struct.unpack_from(">Q", header, 4)[0]
        body = b""
        while len(body) < body_size:
            body += self.read_frame()[2]
        return header[12:], body

    def close(self):
        """A clean close: connection.close, wait for close-ok, then the socket."""
        try:
            self.send(connection_close())
            self.expect(0, CONNECTION_CLOSE_OK)
        finally:
            self.sock.close()

    def abort(self):
        self.sock.close()


def wait_eof(sock, timeout):
    """Reads until the broker closes `sock`; returns ("eof"|"reset", seconds waited) or
    ("open", timeout). Any data is discarded."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return "eof", time.monotonic() - start
    except ConnectionResetError:
        return "reset", time.monotonic() - start
    except socket.timeout:
        return "open", timeout


# ---- asyncio client (thousands of connections) ---------------------------------------------------

async def read_frame_async(reader):
    head = await reader.readexactly(7)
    kind, channel, size = struct.unpack(">BHI", head)
    rest = await reader.readexactly(size + 1)
    if rest[-1] != FRAME_END:
        raise ValueError("bad frame end")
    return kind, channel, rest[:-1]


async def expect_async(reader, ids):
    while True:
        kind, channel, payload = await read_frame_async(reader)
        if kind != FRAME_METHOD:
            continue
        err = closed_error(channel, payload)
        if err is not None:
            raise err
        if channel == 0 and method_ids(payload) == ids:
            return payload


class AsyncConnection:
    def __init__(self, reader, writer, tune):
        self.reader, self.writer, self.tune = reader, writer, tune

    async def close(self):
        """Clean close: connection.close, wait for close-ok, then close the socket, as the
        spec has the client do (RabbitMQ waits for it; Warren closes its end at once too)."""
        try:
            self.writer.write(connection_close())
            await expect_async(self.reader, CONNECTION_CLOSE_OK)
        finally:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass

    def abort(self):
        self.writer.transport.abort()


async def open_async(port, host="127.0.0.1", heartbeat=0):
    """TCP connect plus the whole handshake (PLAIN guest/guest, vhost /, heartbeat as given)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(PROTOCOL_HEADER)
        await expect_async(reader, CONNECTION_START)
        writer.write(start_ok())
        tune = parse_tune(await expect_async(reader, CONNECTION_TUNE))
        writer.write(tune_ok(tune[0], tune[1], heartbeat) + connection_open("/"))
        await expect_async(reader, CONNECTION_OPEN_OK)
    except BaseException:
        writer.transport.abort()
        raise
    return AsyncConnection(reader, writer, tune)


# Handshakes in flight at once. Warren listening on one address (--bind 127.0.0.1) has a listen
# backlog of 128, as RabbitMQ by default: more connects at once than that overflow it while the
# accept loop catches up, and each dropped SYN costs a one-second retransmit.
CONCURRENCY = 64


async def open_many(port, n, *, concurrency=CONCURRENCY, heartbeat=0, timeout=30):
    """Opens n connections, at most `concurrency` handshakes in flight, each given `timeout`
    seconds; all or nothing (raises if any failed)."""
    gate = asyncio.Semaphore(concurrency)

    async def one():
        async with gate:
            return await asyncio.wait_for(open_async(port, heartbeat=heartbeat), timeout)

    results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    conns = [r for r in results if isinstance(r, AsyncConnection)]
    errors = [r for r in results if not isinstance(r, AsyncConnection)]
    if errors:
        for c in conns:
            c.abort()
        raise RuntimeError(f"{len(errors)} of {n} handshakes failed; first: {errors[0]!r}")
    return conns


async def close_many(conns, *, concurrency=CONCURRENCY, timeout=30):
    gate = asyncio.Semaphore(concurrency)

    async def one(c):
        async with gate:
            try:
                await asyncio.wait_for(c.close(), timeout)
            except BaseException:
                c.abort()
                raise

    results = await asyncio.gather(*(one(c) for c in conns), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(conns)} closes failed; first: {errors[0]!r}")
