"""MQTT over WebSockets (`protocol websockets`), plain and over TLS: paho-mqtt with
transport="websockets", and a raw RFC 6455 client for the handshake, fragmentation,
ping/pong, the close handshake, malformed frames, the Origin allow list and plain HTTP
requests that are not upgrades.
"""

import base64
import hashlib
import os
import socket
import ssl
import struct
import unittest

from harness import (BrokerTest, HOST, IS_CULEX, TIMEOUT, CONNACK, PINGRESP, build_connect,
                     build_pingreq, build_publish, build_subscribe, culex_only, free_port,
                     unique, Packet, sub_options)
from tlsutil import ModuleCerts

CERTS = ModuleCerts()
setUpModule, tearDownModule = CERTS.make, CERTS.remove
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WsClosed(Exception):
    pass


class WsClient:
    """A minimal RFC 6455 client over a socket: masked frames out, frames in."""

    def __init__(self, port, path="/mqtt", protocol="mqtt", origin=None, extra="",
                 ctx=None, timeout=TIMEOUT, handshake=True):
        s = socket.create_connection((HOST, port), timeout=timeout)
        if ctx is not None:
            s = ctx.wrap_socket(s, server_hostname="localhost")
        self.sock = s
        self.buf = b""
        self.mqtt = b""      # MQTT bytes unframed but not parsed yet
        self.status = None
        self.headers = {}
        self.key = base64.b64encode(os.urandom(16)).decode()
        if handshake:
            req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n" % (path, port, self.key))
            if protocol:
                req += "Sec-WebSocket-Protocol: %s\r\n" % protocol
            if origin:
                req += "Origin: %s\r\n" % origin
            self.send_raw((req + extra + "\r\n").encode())
            self.read_response()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        self.sock.sendall(data)

    def _fill(self):
        try:
            d = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            d = b""
        if not d:
            raise WsClosed()
        self.buf += d

    def read_response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            k, v = line.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        return self.status

    def accept_ok(self):
        want = base64.b64encode(hashlib.sha1((self.key + GUID).encode()).digest()).decode()
        return self.headers.get("sec-websocket-accept") == want

    @staticmethod
    def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        mbit = 0x80 if mask else 0
        if n < 126:
            hdr = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, mbit | 127, n)
        if not mask:
            return hdr + payload
        key = os.urandom(4)
        return hdr + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

    def send_frame(self, opcode, payload=b"", **kw):
        self.send_raw(self.frame(opcode, payload, **kw))

    def recv_frame(self):
        """(opcode, fin, payload) of the next frame from the server (never masked)."""
        while len(self.buf) < 2:
            self._fill()
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frames must not be masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            while len(self.buf) < 4:
                self._fill()
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            while len(self.buf) < 10:
                self._fill()
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        while len(self.buf) < off + n:
            self._fill()
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, bool(b0 & 0x80), payload

    def recv_mqtt(self):
        """The next MQTT packet from binary frames (which may split or batch packets)."""
        while True:
            p, used = _parse_packet(self.mqtt)
            if p:
                self.mqtt = self.mqtt[used:]
                return p
            op, fin, payload = self.recv_frame()
            assert op in (0, 2), "expected a binary frame, got opcode %d" % op
            self.mqtt += payload

    def expect_close(self):
        """Reads until the server's close frame; returns its code (None if empty). Then the
        TCP connection must end."""
        while True:
            op, fin, payload = self.recv_frame()
            if op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                try:
                    while True:
                        self._fill()
                except WsClosed:
                    pass
                return code

    def wait_eof(self):
        try:
            while True:
                self._fill()
        except WsClosed:
            return self.buf


def _parse_packet(data):
    """(packet, bytes used) or (None, 0)."""
    if len(data) < 2:
        return None, 0
    mult, length, i = 1, 0, 1
    while True:
        if i >= len(data):
            return None, 0
        b = data[i]
        length += (b & 0x7F) * mult
        i += 1
        if not b & 0x80:
            break
        mult *= 128
    if len(data) < i + length:
        return None, 0
    return Packet(data[0] >> 4, data[0] & 15, data[i:i + length], 4), i + length


class WebSocketTest(BrokerTest):

    def ws_broker(self, extra=(), tls=False, **kw):
        self.wsport = free_port()
        lines = ["listener %d %s" % (self.wsport, HOST), "protocol websockets"]
        if tls:
            lines += CERTS.server_lines()
        return self.start_broker(lines + list(extra), **kw)

    def ws(self, **kw):
        c = WsClient(self.wsport, **kw)
        self.addCleanup(c.close)
        return c

    def assert_log(self, b, *needles):
        if IS_CULEX:
            for n in needles:
                self.assertTrue(b.wait_output(n), "log line with %r missing" % n)

    # -- paho ---------------------------------------------------------------------------

    def test_paho_over_websockets(self):
        b = self.ws_broker()
        ws = self.paho(self.wsport, unique("ws"), transport="websockets")
        tcp = self.paho(b, unique("tcp"))
        topic = unique("ws/")
        ws.subscribe(topic, 1)
        tcp.publish(topic, b"to the browser", qos=1)
        self.assertEqual(ws.expect_message(topic).payload, b"to the browser")
        tcp.subscribe(topic + "/up", 1)
        big = os.urandom(200000)
        ws.publish(topic + "/up", big, qos=1)
        self.assertEqual(tcp.expect_message(topic + "/up").payload, big)

    def test_paho_over_secure_websockets(self):
        b = self.ws_broker(["log_type all"], tls=True)
        ws = self.paho(self.wsport, unique("wss"), transport="websockets",
                       tls_context=CERTS.context(), ws_path="/any/path")
        self.assertEqual(ws.client.socket()._socket.version(), "TLSv1.3")
        topic = unique("wss/")
        ws.subscribe(topic, 2)
        ws.publish(topic, b"over wss", qos=2)
        self.assertEqual(ws.expect_message(topic).payload, b"over wss")
        self.assert_log(b, "path /any/path, subprotocol mqtt")

    def test_session_resumed_across_workers(self):
        """Reconnections to a persistent session move to the session's worker with their
        WebSocket (and TLS) state."""
        b = self.ws_broker(tls=True)
        cid = unique("wshand")
        topic = unique("wshand/")
        pub = self.paho(b, unique("pub"))
        kw = dict(transport="websockets", tls_context=CERTS.context(), version=4, clean=False)
        c = self.paho(self.wsport, cid, **kw)
        c.subscribe(topic, 1)
        c.stop()
        for i in range(6):
            pub.publish(topic, b"queued %d" % i, qos=1)
            c = self.paho(self.wsport, cid, **kw)
            self.assertTrue(c.session_present)
            self.assertEqual(c.expect_message(topic).payload, b"queued %d" % i)
            pub.publish(topic, b"live %d" % i, qos=1)
            self.assertEqual(c.expect_message(topic).payload, b"live %d" % i)
            c.stop()

    # -- raw handshake and frames --------------------------------------------------------

    def test_handshake_fragmentation_and_ping(self):
        self.ws_broker()
        c = self.ws(path="/")
        self.assertEqual(c.status, 101)
        self.assertTrue(c.accept_ok())
        self.assertEqual(c.headers.get("sec-websocket-protocol"), "mqtt")
        # CONNECT split over two frames, a ping between them (control frames may
        # interleave with a fragmented message)
        pkt = build_connect(unique("frag"))
        c.send_frame(2, pkt[:5], fin=False)
        c.send_frame(9, b"are you there")
        c.send_frame(0, pkt[5:], fin=True)
        op, fin, payload = c.recv_frame()
        self.assertEqual((op, fin, payload), (10, True, b"are you there"))
        self.assertEqual(c.recv_mqtt().type, CONNACK)
        # two packets in one frame, and one packet byte by byte in single-byte frames
        c.send_frame(2, build_pingreq() + build_pingreq())
        self.assertEqual(c.recv_mqtt().type, PINGRESP)
        self.assertEqual(c.recv_mqtt().type, PINGRESP)
        for i, byte in enumerate(build_pingreq()):
            c.send_frame(2, bytes([byte]))
        self.assertEqual(c.recv_mqtt().type, PINGRESP)

    def test_close_handshake(self):
        b = self.ws_broker(["log_type all"])
        c = self.ws()
        c.send_frame(2, build_connect(unique("bye")))
        self.assertEqual(c.recv_mqtt().type, CONNACK)
        c.send_frame(8, struct.pack("!H", 1000) + b"done")
        self.assertEqual(c.expect_close(), 1000)
        self.assert_log(b, "WebSocket close from 127.0.0.1:")

    def test_disconnect_then_close_frame_in_one_write_drops_no_packet(self):
        """DISCONNECT followed at once by the close frame: the will is not sent, since the
        bytes before the close frame are handled first."""
        b = self.ws_broker()
        watcher = self.paho(b, unique("watch"))
        topic = unique("will/")
        watcher.subscribe(topic)
        c = self.ws()
        c.send_frame(2, build_connect(unique("w"), will={"topic": topic, "payload": b"dead"}))
        self.assertEqual(c.recv_mqtt().type, CONNACK)
        c.send_raw(c.frame(2, b"\xe0\x00") + c.frame(8, struct.pack("!H", 1000)))
        c.expect_close()
        watcher.publish(topic + "x", b"")   # a round trip; the will would have come first
        self.assertEqual(watcher.take_messages(topic), [])

    def test_http_request_that_is_not_an_upgrade(self):
        b = self.ws_broker()
        c = self.ws(handshake=False)
        c.send_raw(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(c.read_response(), 400)
        c.wait_eof()
        self.assert_log(b, "is not a WebSocket upgrade")

    def test_bad_upgrades(self):
        b = self.ws_broker()
        c = self.ws(handshake=False)
        c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Version: 13\r\n\r\n")
        self.assertEqual(c.read_response(), 400)   # no key
        c = self.ws(handshake=False)
        c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   b"Sec-WebSocket-Version: 8\r\n\r\n")
        self.assertEqual(c.read_response(), 426)   # old version
        c = self.ws(protocol="chat")               # offers only another subprotocol
        self.assertEqual(c.status, 400)
        c = self.ws(handshake=False)
        c.send_raw(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")   # raw MQTT
        self.assertEqual(c.read_response(), 400)
        self.assert_log(b, "WebSocket handshake from 127.0.0.1:", "refused")
        self.paho(self.wsport, unique("ok"), transport="websockets")   # unharmed

    def test_headers_too_large(self):
        self.ws_broker()
        c = self.ws(extra="X-Padding: " + "a" * 9000 + "\r\n")
        self.assertEqual(c.status, 431)

    def test_malformed_frames(self):
        b = self.ws_broker()
        cases = [
            (dict(opcode=2, payload=build_pingreq(), mask=False), 1002),   # unmasked
            (dict(opcode=1, payload=b"text"), 1003),                       # text frame
            (dict(opcode=2, payload=b"x", rsv=4), 1002),                   # reserved bit
            (dict(opcode=3, payload=b"x"), 1002),                          # reserved opcode
            (dict(opcode=9, payload=b"p" * 126), 1002),                    # long ping
            (dict(opcode=0, payload=b"x"), 1002),                          # stray continuation
            (dict(opcode=2, payload=b"", length=1 << 40), 1009),           # too big
        ]
        for kw, code in cases:
            c = self.ws()
            opcode = kw.pop("opcode")
            payload = kw.pop("payload")
            c.send_frame(opcode, payload, **kw)
            self.assertEqual(c.expect_close(), code, "frame %r" % ((opcode, kw),))
        self.assert_log(b, "WebSocket protocol error from 127.0.0.1:")
        self.paho(self.wsport, unique("ok"), transport="websockets")

    @culex_only("mosquitto 2.0 reads websockets_origin differently")
    def test_origin_allow_list(self):
        b = self.ws_broker(["websockets_origin https://good.example",
                            "websockets_origin http://also.example:8080"])
        self.assertEqual(self.ws(origin="https://good.example").status, 101)
        self.assertEqual(self.ws(origin="HTTP://ALSO.example:8080").status, 101)
        self.assertEqual(self.ws(origin="https://evil.example").status, 403)
        self.assertEqual(self.ws().status, 403)    # no Origin at all
        self.assert_log(b, "Origin https://evil.example is not in websockets_origin",
                        "no Origin header")

    def test_mqtt_protocol_error_closes_with_a_close_frame(self):
        self.ws_broker()
        c = self.ws()
        c.send_frame(2, build_publish("t", b"x"))        # not CONNECT
        self.assertEqual(c.expect_close(), 1000)


if __name__ == "__main__":
    unittest.main()
