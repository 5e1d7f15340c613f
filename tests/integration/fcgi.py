"""Raw FastCGI 1.0 client for the integration tests.

This module plays the web server's side of FastCGI with nothing hidden: it
encodes any record, including malformed ones (wrong version, lying lengths,
garbage), encodes name-value pairs with 1- or 4-byte lengths on demand, builds
requests as lists of records so tests can pipeline them or interleave many
request ids on one connection, and reads records back until each request's
END_REQUEST arrives. It is checked against real php-fpm (see README.md), but
nothing here depends on php-fpm or on ringfpm: stdlib only.
"""

import errno
import select
import socket
import struct
import time

VERSION_1 = 1
HEADER_LEN = 8
MAX_CONTENT = 65535

BEGIN_REQUEST = 1
ABORT_REQUEST = 2
END_REQUEST = 3
PARAMS = 4
STDIN = 5
STDOUT = 6
STDERR = 7
DATA = 8
GET_VALUES = 9
GET_VALUES_RESULT = 10
UNKNOWN_TYPE = 11

TYPE_NAMES = {
    BEGIN_REQUEST: "BEGIN_REQUEST",
    ABORT_REQUEST: "ABORT_REQUEST",
    END_REQUEST: "END_REQUEST",
    PARAMS: "PARAMS",
    STDIN: "STDIN",
    STDOUT: "STDOUT",
    STDERR: "STDERR",
    DATA: "DATA",
    GET_VALUES: "GET_VALUES",
    GET_VALUES_RESULT: "GET_VALUES_RESULT",
    UNKNOWN_TYPE: "UNKNOWN_TYPE",
}

RESPONDER = 1
AUTHORIZER = 2
FILTER = 3

KEEP_CONN = 1

REQUEST_COMPLETE = 0
CANT_MPX_CONN = 1
OVERLOADED = 2
UNKNOWN_ROLE = 3

DEFAULT_TIMEOUT = 10.0

_HEADER = struct.Struct("!BBHHBB")


class FcgiError(Exception):
    """The peer sent something this client cannot parse."""


class PeerClosed(FcgiError):
    """The connection ended (EOF or reset) before what we waited for arrived."""


class Timeout(FcgiError):
    """What we waited for did not arrive in time."""


# ---- encoding -------------------------------------------------------------


def encode_record(rtype, request_id, content=b"", padding=None, *, version=VERSION_1,
                  content_length=None, padding_length=None, reserved=0,
                  padding_byte=b"\0"):
    """Encode one record.

    padding is the number of padding bytes to append; None pads the content to
    a multiple of 8 as the spec recommends. content_length and padding_length
    override the header fields without changing the bytes sent, to build
    records whose header lies. version and reserved let tests send a header
    that is wrong in other ways.
    """
    content = bytes(content)
    if padding is None:
        padding = (-len(content)) % 8
    if content_length is None:
        if len(content) > MAX_CONTENT:
            raise ValueError("record content too long: %d" % len(content))
        content_length = len(content)
    if padding_length is None:
        padding_length = padding
    header = _HEADER.pack(version & 0xFF, rtype & 0xFF, request_id & 0xFFFF,
                          content_length & 0xFFFF, padding_length & 0xFF, reserved & 0xFF)
    return header + content + padding_byte * padding


def encode_length(n, force_long=False):
    """An NV length: one byte below 128, else four bytes with the top bit set."""
    if n < 128 and not force_long:
        return bytes([n])
    if n > 0x7FFFFFFF:
        raise ValueError("name-value length too large: %d" % n)
    return struct.pack("!I", n | 0x80000000)


def _as_bytes(value):
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


def encode_nv(name, value, long_name=False, long_value=False):
    """Encode one name-value pair; long_* force the 4-byte length form."""
    name = _as_bytes(name)
    value = _as_bytes(value)
    return (encode_length(len(name), long_name) + encode_length(len(value), long_value)
            + name + value)


def encode_params(pairs):
    """Encode pairs (a dict or a sequence of (name, value)) in order."""
    if isinstance(pairs, dict):
        pairs = list(pairs.items())
    return b"".join(encode_nv(name, value) for name, value in pairs)


def decode_nv(data):
    """Decode a name-value stream into a list of (bytes name, bytes value)."""
    data = bytes(data)
    pairs = []
    pos = 0

    def read_length():
        nonlocal pos
        if pos >= len(data):
            raise FcgiError("truncated name-value length")
        if data[pos] < 128:
            pos += 1
            return data[pos - 1]
        if pos + 4 > len(data):
            raise FcgiError("truncated 4-byte name-value length")
        (n,) = struct.unpack_from("!I", data, pos)
        pos += 4
        return n & 0x7FFFFFFF

    while pos < len(data):
        name_len = read_length()
        value_len = read_length()
        if pos + name_len + value_len > len(data):
            raise FcgiError("name-value pair runs past the end")
        name = data[pos:pos + name_len]
        pos += name_len
        value = data[pos:pos + value_len]
        pos += value_len
        pairs.append((name, value))
    return pairs


def begin_request(request_id, role=RESPONDER, flags=KEEP_CONN, *, content=None, **kw):
    """A BEGIN_REQUEST record. content overrides the 8-byte body entirely."""
    if content is None:
        content = struct.pack("!HB5x", role & 0xFFFF, flags & 0xFF)
    return encode_record(BEGIN_REQUEST, request_id, content, **kw)


def abort_request(request_id):
    """An ABORT_REQUEST record (no content)."""
    return encode_record(ABORT_REQUEST, request_id)


def _chunks(data, size):
    if size < 1:
        raise ValueError("chunk size must be >= 1")
    size = min(size, MAX_CONTENT)
    return [data[i:i + size] for i in range(0, len(data), size)]


def stream_records(rtype, request_id, data, chunk=32768, terminate=True, padding=None):
    """Records carrying data as a stream (PARAMS, STDIN, DATA).

    data is split into records of at most chunk bytes (a name-value pair may
    straddle two records, as the spec allows); terminate appends the empty
    record that ends the stream.
    """
    records = [encode_record(rtype, request_id, part, padding) for part in _chunks(bytes(data), chunk)]
    if terminate:
        records.append(encode_record(rtype, request_id, b"", padding))
    return records


def params_records(request_id, pairs, chunk=32768, terminate=True, padding=None):
    """PARAMS records for pairs (dict or sequence), ending with an empty one."""
    return stream_records(PARAMS, request_id, encode_params(pairs), chunk, terminate, padding)


def stdin_records(request_id, body=b"", chunk=32768, terminate=True, padding=None):
    """STDIN records for body, ending with an empty one."""
    return stream_records(STDIN, request_id, body, chunk, terminate, padding)


def default_params(script_name="/index.php", query="", method="GET", body=b"", extra=None):
    """The params a web server would send for a simple request, in order."""
    pairs = [
        ("SCRIPT_NAME", script_name),
        ("SCRIPT_FILENAME", "/var/www" + script_name),
        ("REQUEST_METHOD", method),
        ("QUERY_STRING", query),
    ]
    if body or method == "POST":
        pairs.append(("CONTENT_LENGTH", str(len(body))))
    if extra:
        pairs.extend(extra.items() if isinstance(extra, dict) else extra)
    return pairs


def build_request(request_id, params, body=b"", *, role=RESPONDER, keep_conn=True,
                  params_chunk=32768, stdin_chunk=32768, padding=None, terminate_stdin=True):
    """All records of one request, as a list of bytes objects (one per record).

    Keeping records separate lets a test send them all at once (pipelining),
    interleave them with other requests' records (multiplexing) or stop half
    way (incomplete requests).
    """
    flags = KEEP_CONN if keep_conn else 0
    records = [begin_request(request_id, role, flags, padding=padding)]
    records += params_records(request_id, params, params_chunk, True, padding)
    records += stdin_records(request_id, body, stdin_chunk, terminate_stdin, padding)
    return records


def interleave(*record_lists):
    """Round-robin merge of several requests' record lists: r1[0], r2[0], ..., r1[1], ..."""
    out = []
    longest = max((len(r) for r in record_lists), default=0)
    for i in range(longest):
        for records in record_lists:
            if i < len(records):
                out.append(records[i])
    return out


def get_values(names, request_id=0):
    """A GET_VALUES management record asking for names (values left empty)."""
    return encode_record(GET_VALUES, request_id, encode_params([(n, b"") for n in names]))


# ---- decoding -------------------------------------------------------------


class Record:
    """One received record. padding holds the padding bytes as received."""

    __slots__ = ("version", "type", "request_id", "content", "padding", "reserved")

    def __init__(self, version, rtype, request_id, content, padding=b"", reserved=0):
        self.version = version
        self.type = rtype
        self.request_id = request_id
        self.content = content
        self.padding = padding
        self.reserved = reserved

    def __repr__(self):
        name = TYPE_NAMES.get(self.type, str(self.type))
        preview = self.content[:40]
        return "Record(%s, id=%d, len=%d, %r%s)" % (
            name, self.request_id, len(self.content), preview,
            "..." if len(self.content) > 40 else "")


def parse_records(data):
    """Split a complete byte string into records; returns (records, leftover bytes)."""
    data = bytes(data)
    records = []
    pos = 0
    while len(data) - pos >= HEADER_LEN:
        version, rtype, rid, clen, plen, reserved = _HEADER.unpack_from(data, pos)
        end = pos + HEADER_LEN + clen + plen
        if end > len(data):
            break
        content = data[pos + HEADER_LEN:pos + HEADER_LEN + clen]
        records.append(Record(version, rtype, rid, content, data[end - plen:end], reserved))
        pos = end
    return records, data[pos:]


def parse_end_request(content):
    """(app_status, protocol_status) from an END_REQUEST body."""
    if len(content) != 8:
        raise FcgiError("END_REQUEST content length %d, expected 8" % len(content))
    app_status, protocol_status = struct.unpack_from("!IB", content)
    return app_status, protocol_status


def split_headers(stdout):
    """Split CGI output into ([(name, value), ...], body). Accepts CRLF or LF."""
    stdout = bytes(stdout)
    crlf = stdout.find(b"\r\n\r\n")
    lf = stdout.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        head, body = stdout[:crlf], stdout[crlf + 4:]
    elif lf >= 0:
        head, body = stdout[:lf], stdout[lf + 2:]
    else:
        return [], stdout
    headers = []
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        if not line:
            continue
        name, _, value = line.partition(b":")
        headers.append((name.decode("latin-1").strip(), value.decode("latin-1").strip()))
    return headers, body


class Response:
    """Everything received for one request id, up to and including END_REQUEST."""

    def __init__(self, request_id):
        self.request_id = request_id
        self.records = []
        self.stdout = b""
        self.stderr = b""
        self.app_status = None
        self.protocol_status = None
        self.complete = False

    def add(self, record):
        self.records.append(record)
        if record.type == STDOUT:
            self.stdout += record.content
        elif record.type == STDERR:
            self.stderr += record.content
        elif record.type == END_REQUEST:
            self.app_status, self.protocol_status = parse_end_request(record.content)
            self.complete = True

    @property
    def headers(self):
        return split_headers(self.stdout)[0]

    @property
    def body(self):
        return split_headers(self.stdout)[1]

    def header(self, name, default=None):
        """The first header called name (case-insensitive), or default."""
        lname = name.lower()
        for hname, value in self.headers:
            if hname.lower() == lname:
                return value
        return default

    def status_code(self):
        """The CGI Status: code as int; 200 when absent."""
        value = self.header("Status")
        if value is None:
            return 200
        return int(value.split()[0])

    def parsed(self):
        """(headers, body, stderr, app_status, protocol_status)."""
        headers, body = split_headers(self.stdout)
        return headers, body, self.stderr, self.app_status, self.protocol_status

    def __repr__(self):
        return "Response(id=%d, complete=%s, proto=%s, app=%s, stdout=%r, stderr=%r)" % (
            self.request_id, self.complete, self.protocol_status, self.app_status,
            self.stdout[:200], self.stderr[:200])


# ---- connections -----------------------------------------------------------


def connect(address, timeout=DEFAULT_TIMEOUT):
    """Open a stream socket to address: a unix socket path (str) or (host, port).

    An IPv6 host may be given with or without brackets.
    """
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = address
    else:
        host, port = address
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        target = (host, port)
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except BaseException:
        sock.close()
        raise
    if sock.family != socket.AF_UNIX:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Connection:
    """A FastCGI connection from the web server's side.

    Received records are kept in order; records that belong to no request a
    caller is waiting for stay queued for the next read, so a test may read
    responses of interleaved requests in any order.
    """

    def __init__(self, address, timeout=DEFAULT_TIMEOUT):
        self.address = address
        self.timeout = timeout
        self.sock = connect(address, timeout)
        self._buf = b""
        self.pending = []   # records received but not yet claimed
        self.eof = False
        self.reset = False

    # -- context manager
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def fileno(self):
        return self.sock.fileno()

    # -- sending
    def send(self, *chunks):
        """Send raw bytes or lists of records, concatenated, in one sendall."""
        data = bytearray()
        for chunk in chunks:
            if isinstance(chunk, (list, tuple)):
                for part in chunk:
                    data += part
            else:
                data += chunk
        self.sock.sendall(bytes(data))

    def try_send(self, *chunks):
        """Like send, but returns False instead of raising if the peer is gone."""
        try:
            self.send(*chunks)
            return True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            return False

    # -- receiving
    def _fill(self, deadline):
        """Receive more bytes into the buffer. False on EOF/reset; raises Timeout."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("timed out waiting for data from %r" % (self.address,))
        ready, _, _ = select.select([self.sock], [], [], remaining)
        if not ready:
            raise Timeout("timed out waiting for data from %r" % (self.address,))
        try:
            data = self.sock.recv(262144)
        except (ConnectionResetError, ConnectionAbortedError):
            self.eof = True
            self.reset = True
            return False
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                return True
            raise
        if not data:
            self.eof = True
            return False
        self._buf += data
        return True

    def read_record(self, timeout=None):
        """The next record from the wire (ignores pending). Raises PeerClosed/Timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self._buf) >= HEADER_LEN:
                version, rtype, rid, clen, plen, reserved = _HEADER.unpack_from(self._buf)
                total = HEADER_LEN + clen + plen
                if version != VERSION_1:
                    raise FcgiError("peer sent record with version %d" % version)
                if len(self._buf) >= total:
                    content = self._buf[HEADER_LEN:HEADER_LEN + clen]
                    padding = self._buf[HEADER_LEN + clen:total]
                    self._buf = self._buf[total:]
                    return Record(version, rtype, rid, content, padding, reserved)
            if not self._fill(deadline):
                detail = " (%d stray bytes)" % len(self._buf) if self._buf else ""
                raise PeerClosed("connection closed by peer%s" % detail)

    def next_record(self, timeout=None):
        """The oldest unclaimed record, from pending or from the wire."""
        if self.pending:
            return self.pending.pop(0)
        return self.read_record(timeout)

    def read_responses(self, request_ids, timeout=None):
        """Read until END_REQUEST arrived for every id; returns {id: Response}.

        Records for other ids (including management records, id 0) are left
        in self.pending. Raises Timeout or PeerClosed if some END_REQUEST
        never comes; the exception carries the partial responses as .responses.
        """
        wanted = list(request_ids)
        responses = {rid: Response(rid) for rid in wanted}
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        # Claim what is already queued first.
        keep = []
        for record in self.pending:
            resp = responses.get(record.request_id)
            if resp is not None and not resp.complete:
                resp.add(record)
            else:
                keep.append(record)
        self.pending = keep
        while not all(r.complete for r in responses.values()):
            try:
                record = self.read_record(max(0.0, deadline - time.monotonic()))
            except FcgiError as e:
                missing = sorted(rid for rid, r in responses.items() if not r.complete)
                e.responses = responses
                e.args = ("%s; no END_REQUEST yet for ids %s" % (e.args[0] if e.args else e,
                                                                 _fmt_ids(missing)),)
                raise
            resp = responses.get(record.request_id)
            if resp is not None and not resp.complete:
                resp.add(record)
            else:
                self.pending.append(record)
        return responses

    def read_response(self, request_id=1, timeout=None):
        """Read until END_REQUEST for one id; returns its Response."""
        return self.read_responses([request_id], timeout)[request_id]

    def read_management(self, rtype, timeout=None):
        """Read until a record of rtype with request id 0 arrives; returns it."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        for i, record in enumerate(self.pending):
            if record.type == rtype and record.request_id == 0:
                return self.pending.pop(i)
        while True:
            record = self.read_record(max(0.0, deadline - time.monotonic()))
            if record.type == rtype and record.request_id == 0:
                return record
            self.pending.append(record)

    def request(self, params, body=b"", request_id=1, keep_conn=True, timeout=None, **kw):
        """Send one whole request and read its Response."""
        self.send(build_request(request_id, params, body, keep_conn=keep_conn, **kw))
        return self.read_response(request_id, timeout)

    def get_values(self, names, timeout=None):
        """Send GET_VALUES for names; returns {name(str): value(str)} from the result."""
        self.send(get_values(names))
        record = self.read_management(GET_VALUES_RESULT, timeout)
        return {n.decode("latin-1"): v.decode("latin-1") for n, v in decode_nv(record.content)}

    def abort(self, request_id):
        """Send ABORT_REQUEST for request_id."""
        self.send(abort_request(request_id))

    def wait_closed(self, timeout=3.0):
        """True if the peer closes (EOF or reset) within timeout, False otherwise.

        Records that arrive meanwhile are kept in self.pending, so a test can
        still inspect what was sent before the close.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.pending.append(self.read_record(max(0.0, deadline - time.monotonic())))
            except PeerClosed:
                return True
            except Timeout:
                return False
            except FcgiError:
                # Unparseable bytes: drop them and keep waiting for the close.
                self._buf = b""

    def is_open(self, wait=0.05):
        """True if nothing says the peer closed within wait seconds (no bytes consumed)."""
        if self.eof:
            return False
        ready, _, _ = select.select([self.sock], [], [], wait)
        if not ready:
            return True
        try:
            data = self.sock.recv(65536, socket.MSG_PEEK)
        except (ConnectionResetError, ConnectionAbortedError):
            return False
        return bool(data)


def _fmt_ids(ids):
    if len(ids) > 10:
        return "%s ... (%d ids)" % (ids[:10], len(ids))
    return str(ids)


def simple_request(address, script_name="/index.php", query="", body=b"", extra=None,
                   keep_conn=False, timeout=DEFAULT_TIMEOUT):
    """One request on a fresh connection; returns the Response."""
    method = "POST" if body else "GET"
    with Connection(address, timeout) as conn:
        return conn.request(default_params(script_name, query, method, body, extra), body,
                            keep_conn=keep_conn, timeout=timeout)
