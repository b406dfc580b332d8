# A small non-blocking HTTP/1.1 server for the portal: one listening socket, a few
# connections, each a state machine driven by select.poll events, never a blocking call.
#
#   srv = HttpServer(bind_ip, port, handler, poller)
#   srv.event(sock, ev, now)  for each poll event on srv.sock or a connection's socket
#   srv.expire(now)           closes connections past their deadline
#   handler(req) -> (status, content_type, body_bytes, extra_headers_str)
#
# Limits keep a misbehaving client from holding the portal (or the meter loop beside it):
# request head <= HEAD_MAX, body <= BODY_MAX (Content-Length only, no chunked uploads),
# one deadline per connection, at most MAX_CONNS at once. A new client always gets in: when
# all slots are taken, the oldest connection is dropped, so slow or half-open clients cannot
# lock a real browser out. Every response closes the connection.
import errno
import gc
import socket
import time

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

HEAD_MAX = const(2048)
BODY_MAX = const(4096)
MAX_CONNS = const(4)
DEADLINE_MS = const(8000)  # from accept to the last byte of the response
_DISCARD_MAX = const(32768)  # an oversized body up to this is read and dropped before answering
_CHUNK = const(512)  # recv size and send piece: small blocks for a fragmented heap

_READ_HEAD = const(0)
_READ_BODY = const(1)
_DISCARD = const(2)
_WRITE = const(3)

_POLLIN = const(1)
_POLLOUT = const(4)
_POLLERR = const(8)
_POLLHUP = const(16)

REASONS = {200: "OK", 204: "No Content", 302: "Found", 303: "See Other", 400: "Bad Request",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
           413: "Content Too Large", 415: "Unsupported Media Type",
           431: "Request Header Fields Too Large", 501: "Not Implemented",
           503: "Service Unavailable"}

# Headers on every response: nothing cached, nothing loaded from elsewhere, no framing.
_COMMON = ("Connection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
           "Referrer-Policy: no-referrer\r\n"
           "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "
           "img-src data:; form-action 'self'; frame-ancestors 'none'\r\n")


class Request:
    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers  # lower-case name -> str, only the few we use
        self.body = body
        self.on_sent = None  # the handler may set a callable: run once the response is out


_KEEP = ("host", "content-type", "content-length", "origin", "transfer-encoding")


def parse_head(head):
    # bytes up to the blank line -> Request without body, or an int status for a bad head.
    try:
        text = head.decode()
    except UnicodeError:
        return 400
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return 400
    method, target = parts[0], parts[1]
    if method not in ("GET", "HEAD", "POST"):
        return 405  # CONNECT (a browser trying HTTPS through us), PUT, OPTIONS...
    headers = {}
    for line in lines[1:]:
        i = line.find(":")
        if i <= 0:
            return 400
        name = line[:i].strip().lower()
        if name in _KEEP:
            headers[name] = line[i + 1:].strip()
    if target.startswith("http://") or target.startswith("https://"):
        # absolute form (RFC 9112 3.2.2): what a proxy or a captive client may send
        j = target.find("/", target.find("//") + 2)
        target = target[j:] if j > 0 else "/"
    if not target.startswith("/"):
        return 400
    q = target.find("?")
    path, query = (target, "") if q < 0 else (target[:q], target[q + 1:])
    return Request(method, path, query, headers, b"")


class _Conn:
    def __init__(self, sock, now):
        self.sock = sock
        self.state = _READ_HEAD
        self.buf = b""
        self.req = None
        self.need = 0
        self.out = b""
        self.body = None
        self.sent = 0
        self.status = 0
        self.born = now
        self.deadline = time.ticks_add(now, DEADLINE_MS)


class HttpServer:
    def __init__(self, bind_ip, port, handler, poller, log=None):
        self.handler = handler
        self.poller = poller
        self.log = log
        self.conns = []
        self.stats = {"requests": 0, "refused": 0, "timeouts": 0, "evicted": 0, "oom": 0}
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(socket.getaddrinfo(bind_ip, port)[0][-1])
        s.listen(MAX_CONNS + 2)
        s.setblocking(False)
        self.sock = s
        poller.register(s, _POLLIN)

    def close(self):
        for c in list(self.conns):
            self._drop(c)
        try:
            self.poller.unregister(self.sock)
        except (OSError, KeyError, ValueError):
            pass
        self.sock.close()

    def busy(self):
        return len(self.conns)

    # -- events --------------------------------------------------------------------------

    def event(self, obj, ev, now):
        if obj is self.sock:
            self._accept(now)
            return
        for c in self.conns:
            if c.sock is obj:
                break
        else:
            return
        try:
            if ev & (_POLLERR | _POLLHUP) and c.state != _WRITE:
                self._drop(c)
            elif c.state == _WRITE:
                self._write(c)
            else:
                self._read(c, now)
        except MemoryError:
            # a full or fragmented heap costs this one request, never the portal or the
            # meter loop running beside it
            self.stats["oom"] += 1
            self._drop(c)
            gc.collect()

    def expire(self, now):
        for c in list(self.conns):
            if time.ticks_diff(now, c.deadline) >= 0:
                self.stats["timeouts"] += 1
                self._drop(c)

    def _accept(self, now):
        try:
            sock, _ = self.sock.accept()
        except OSError:
            return
        sock.setblocking(False)
        if len(self.conns) >= MAX_CONNS:
            # the slot of the oldest connection goes to the newcomer
            self.stats["evicted"] += 1
            self._drop(min(self.conns, key=lambda c: -time.ticks_diff(now, c.born)))
        c = _Conn(sock, now)
        self.conns.append(c)
        self.poller.register(sock, _POLLIN)

    def _drop(self, c):
        try:
            self.poller.unregister(c.sock)
        except (OSError, KeyError, ValueError):
            pass
        try:
            c.sock.close()
        except OSError:
            pass
        if c in self.conns:
            self.conns.remove(c)

    # -- reading ---------------------------------------------------------------------------

    def _read(self, c, now):
        try:
            data = c.sock.recv(_CHUNK)
        except OSError:
            return  # EAGAIN; a real error shows up as POLLERR/HUP or the deadline
        if not data:
            self._drop(c)  # the client went away before finishing its request
            return
        if c.state == _DISCARD:
            c.need -= len(data)
            if c.need <= 0:
                self._respond_error(c, 413)
            return
        c.buf += data
        if c.state == _READ_HEAD:
            self._head(c)
        elif len(c.buf) >= c.need:
            self._dispatch(c)

    def _head(self, c):
        end = c.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(c.buf) >= HEAD_MAX:
                self._respond_error(c, 431)
            return
        if end > HEAD_MAX:
            self._respond_error(c, 431)
            return
        req = parse_head(c.buf[:end])
        if isinstance(req, int):
            self._respond_error(c, req)
            return
        rest = c.buf[end + 4:]
        c.req = req
        if "transfer-encoding" in req.headers:
            self._respond_error(c, 411)
            return
        n = req.headers.get("content-length", "0") or "0"
        try:
            n = int(n)
        except ValueError:
            n = -1
        if n < 0:
            self._respond_error(c, 400)
        elif n > BODY_MAX:
            if n - len(rest) > _DISCARD_MAX:
                self._respond_error(c, 413)
            else:
                c.state = _DISCARD
                c.need = n - len(rest)
                c.buf = b""
                if c.need <= 0:
                    self._respond_error(c, 413)
        else:
            c.state = _READ_BODY
            c.need = n
            c.buf = rest
            if len(rest) >= n:
                self._dispatch(c)

    def _dispatch(self, c):
        req = c.req
        req.body = c.buf[: c.need]
        c.buf = b""
        self.stats["requests"] += 1
        try:
            status, ctype, body, extra = self.handler(req)
        except Exception as e:  # a bug in a page must not take the portal down
            if self.log:
                self.log("portal: handler error %r" % (e,))
            status, ctype, body, extra = 500, "text/plain", b"internal error\n", ""
        self._start_write(c, status, ctype, body, extra, req.method == "HEAD")

    # -- writing ---------------------------------------------------------------------------

    def _respond_error(self, c, status):
        self.stats["refused"] += 1
        if self.log:
            self.log("portal: refused a request (%d)" % status)
        body = ("%d %s\n" % (status, REASONS.get(status, ""))).encode()
        self._start_write(c, status, "text/plain; charset=utf-8", body, "", False)

    def _start_write(self, c, status, ctype, body, extra, head_only):
        # body: bytes (sent with a Content-Length) or an iterator of str/bytes pieces (a page,
        # streamed and ended by closing the connection, so it is never built in one piece)
        whole = isinstance(body, (bytes, bytearray))
        head = "HTTP/1.1 %d %s\r\n%s%s" % (status, REASONS.get(status, "Error"), _COMMON, extra)
        if whole:
            head += "Content-Length: %d\r\n" % len(body)
        if ctype:
            head += "Content-Type: " + ctype + "\r\n"
        c.status = status
        c.out = (head + "\r\n").encode()
        if whole and len(body) <= _CHUNK:
            c.out += body
            body = None
        c.body = None if head_only else body
        c.sent = 0
        c.state = _WRITE
        try:
            self.poller.modify(c.sock, _POLLOUT)
        except (OSError, AttributeError):
            pass
        self._write(c)

    def _refill(self, c):
        # The next piece to send, at most about _CHUNK bytes, or None at the end.
        body = c.body
        if body is None:
            return None
        if isinstance(body, (bytes, bytearray)):
            c.body = None
            return body
        buf = bytearray()
        while len(buf) < _CHUNK:
            try:
                part = next(body)
            except StopIteration:
                c.body = None
                break
            except Exception as e:  # a bug in a page: end this response, keep the portal
                if self.log:
                    self.log("portal: page error %r" % (e,))
                c.body = None
                break
            buf += part.encode() if isinstance(part, str) else part
        return buf or None

    def _write(self, c):
        for _ in range(2):  # bounded work per event: two pieces at most
            if c.sent >= len(c.out):
                nxt = self._refill(c)
                if nxt is None:
                    done = c.req and c.req.on_sent
                    self._drop(c)
                    if done:
                        done()
                    return
                c.out, c.sent = nxt, 0
            try:
                n = c.sock.send(c.out if c.sent == 0 else memoryview(c.out)[c.sent :])
            except OSError as e:
                if e.args and e.args[0] == errno.EAGAIN:  # the send buffer is full: wait for POLLOUT
                    return
                self._drop(c)
                return
            c.sent += n or 0
            if c.sent < len(c.out):
                return
