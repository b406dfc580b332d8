# Captive DNS: every well-formed query is answered with the access point's address, so the
# phone's connectivity probe (and anything else it asks for) lands on the portal.
#
# Answer policy (docs/portal.md):
#   A or ANY  -> NOERROR, one A record = AP address, TTL 10 s
#   any other type (AAAA, HTTPS, MX...) -> NOERROR with no answer (NODATA), so the client
#             falls back to IPv4 and the A answer; NXDOMAIN would make it give up on the name
#   malformed, a response, not a standard query, not exactly one question -> no reply at all
#
# Wire format (RFC 1035 4.1): header = ID(2) FLAGS(2) QDCOUNT ANCOUNT NSCOUNT ARCOUNT (2 each),
# then the question: labels (len byte + bytes, ending with 0), QTYPE(2), QCLASS(2).
# The answer points back at the question name with the pointer C0 0C.
import socket

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_HDR = const(12)
_TYPE_A = const(1)
_TYPE_ANY = const(255)
_CLASS_IN = const(1)
_CLASS_ANY = const(255)
_MAX_PKT = const(512)
_PER_CALL = const(4)  # datagrams handled per handle() call: bounded work
_TTL = b"\x00\x00\x00\x0a"


def question_end(pkt):
    # Index just past QTYPE/QCLASS of the single question, or -1 if the packet is not a
    # plain standard query we are willing to answer.
    n = len(pkt)
    if n < _HDR + 5:
        return -1
    if pkt[2] & 0x80 or (pkt[2] >> 3) & 0x0F:  # a response, or opcode other than QUERY
        return -1
    if pkt[4] != 0 or pkt[5] != 1:  # QDCOUNT must be 1
        return -1
    i = _HDR
    while True:
        if i >= n:
            return -1
        ln = pkt[i]
        if ln == 0:
            i += 1
            break
        if ln & 0xC0:  # compression or reserved label types have no place in a question
            return -1
        i += 1 + ln
        if i - _HDR > 255:
            return -1
    if i + 4 > n:
        return -1
    if ((pkt[i + 2] << 8) | pkt[i + 3]) not in (_CLASS_IN, _CLASS_ANY):
        return -1
    return i + 4


def answer(pkt, ip4):
    # The reply bytes for a query, or None to stay silent. ip4: 4 bytes.
    end = question_end(pkt)
    if end < 0:
        return None
    qtype = (pkt[end - 4] << 8) | pkt[end - 3]
    has_a = qtype in (_TYPE_A, _TYPE_ANY)
    out = bytearray(pkt[:end])  # ID and question copied; EDNS and the rest dropped
    out[2] = 0x84 | (pkt[2] & 0x01)  # QR, AA, RD copied
    out[3] = 0x80  # RA, RCODE 0
    out[6] = 0
    out[7] = 1 if has_a else 0
    out[8] = out[9] = out[10] = out[11] = 0
    if has_a:
        out += b"\xc0\x0c\x00\x01\x00\x01" + _TTL + b"\x00\x04" + ip4
    return out


def ip_bytes(ip):
    parts = ip.split(".")
    if len(parts) != 4:
        raise ValueError("not an IPv4 address")
    return bytes(int(p) for p in parts)


class CaptiveDns:
    # dns = CaptiveDns(bind_ip, port, answer_ip); poller.register(dns.sock); dns.handle()
    def __init__(self, bind_ip, port, answer_ip):
        self.ip4 = ip_bytes(answer_ip)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        except (OSError, AttributeError):
            pass
        self.sock.bind(socket.getaddrinfo(bind_ip, port)[0][-1])
        self.sock.setblocking(False)
        self.answered = 0
        self.ignored = 0

    def handle(self):
        for _ in range(_PER_CALL):
            try:
                pkt, addr = self.sock.recvfrom(_MAX_PKT)
            except OSError:
                return  # EAGAIN: nothing more waiting
            reply = answer(pkt, self.ip4)
            if reply is None:
                self.ignored += 1
                continue
            try:
                self.sock.sendto(reply, addr)
                self.answered += 1
            except OSError:
                pass

    def close(self):
        self.sock.close()
