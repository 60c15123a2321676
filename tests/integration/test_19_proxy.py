"""PROXY protocol listeners (`enable_proxy_protocol 1|2`): headers sent by a raw socket,
as a load balancer would. The client address from the header must be what the log shows
and what plugins see (the fixture plugin logs it and decides an ACL on it); a connection
without a valid header is closed with a log line; v2 TLS information serves
proxy_protocol_v2_require_tls and use_identity_as_username behind a TLS-terminating proxy.
"""

import socket
import struct
import time
import unittest

from harness import (BrokerTest, FIXTURE, HOST, TIMEOUT, CONNACK, SUBACK, PUBLISH, Closed,
                     RawClient, build_connect, culex_only, free_port, unique)
from tlsutil import ModuleCerts

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
CERTS = ModuleCerts()
setUpModule, tearDownModule = CERTS.make, CERTS.remove


def v1(src="203.0.113.7", sport=4242, dst="192.0.2.1", dport=1883, fam="TCP4"):
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def tlv(t, value):
    return struct.pack("!BH", t, len(value)) + value


def ssl_tlv(client=0x01, verify=0, version=b"TLSv1.3", cn=None):
    sub = tlv(0x21, version)
    if cn is not None:
        sub += tlv(0x22, cn)
    return tlv(0x20, struct.pack("!BI", client, verify) + sub)


def v2(src="203.0.113.9", sport=5151, dst="192.0.2.1", dport=1883, tlvs=b"", local=False,
       family=socket.AF_INET):
    if family == socket.AF_INET:
        addr = (socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst) +
                struct.pack("!HH", sport, dport))
        fam = 0x11
    else:
        addr = (socket.inet_pton(socket.AF_INET6, src) +
                socket.inet_pton(socket.AF_INET6, dst) + struct.pack("!HH", sport, dport))
        fam = 0x21
    body = addr + tlvs
    return SIG + bytes([0x20 if local else 0x21, fam]) + struct.pack("!H", len(body)) + body


class ProxyTest(BrokerTest):

    def proxy_broker(self, version=2, extra=(), plugin=True, **kw):
        lines = ["enable_proxy_protocol %d" % version]
        if plugin:
            lines += ["plugin " + FIXTURE, "plugin_opt_log_identity 1"]
        return self.start_broker(lines + list(extra), **kw)

    def proxied(self, b, header, client_id=None, chunks=False, **kw):
        c = RawClient(b.port)
        self.addCleanup(c.close)
        if chunks:
            for i in range(len(header)):
                c.send(header[i:i + 1])
                time.sleep(0.001)
        else:
            c.send(header)
        if client_id is not None:
            c.connect(client_id, **kw)
        return c

    def assert_log(self, b, *needles):
        for n in needles:
            self.assertTrue(b.wait_output(n), "log line with %r missing" % n)

    def test_v1_real_address_in_log_and_for_plugins(self):
        b = self.proxy_broker(1)
        cid = unique("v1")
        c = self.proxied(b, v1(), cid)
        self.assertTrue(c.is_open())
        self.assert_log(b, "is client 203.0.113.7:4242 (PROXY protocol v1)",
                        "New client connected from 203.0.113.7:4242 as " + cid,
                        "identity id=%s user=- address=203.0.113.7:4242" % cid)

    def test_v2_ipv4_ipv6_and_v1_on_a_v2_listener(self):
        b = self.proxy_broker(2)
        self.proxied(b, v2(), unique("v2"))
        self.proxied(b, v2("2001:db8::42", 6000, "2001:db8::1", 1883, family=socket.AF_INET6),
                     unique("v26"))
        self.proxied(b, v1("198.51.100.3", 7000), unique("v1on2"))
        self.assert_log(b, "is client 203.0.113.9:5151 (PROXY protocol v2)",
                        "is client [2001:db8::42]:6000 (PROXY protocol v2)",
                        "is client 198.51.100.3:7000 (PROXY protocol v1)")

    def test_header_in_single_bytes(self):
        b = self.proxy_broker(2)
        self.proxied(b, v2(tlvs=tlv(0xE0, b"x" * 300)), unique("slow"), chunks=True)
        self.proxied(b, v1(), unique("slow1"), chunks=True)
        self.assert_log(b, "is client 203.0.113.9:5151", "is client 203.0.113.7:4242")

    def test_acl_decides_on_the_real_address(self):
        b = self.proxy_broker(2, extra=["plugin_opt_acl_address_prefix 203.0.113."])
        inside = self.proxied(b, v2("203.0.113.50", 1000), unique("in"))
        outside = self.proxied(b, v2("198.51.100.50", 1000), unique("out"))
        topic = unique("acl/")
        inside.subscribe(topic, 1, expect_codes=[1])
        sub = outside.subscribe(topic, 1)
        self.assertGreaterEqual(sub.codes[0], 0x80)   # refused for the outside address
        outside.publish(topic, b"from outside", qos=1)
        inside.publish(topic, b"from inside", qos=1)
        self.assertEqual(inside.recv_publish().payload, b"from inside")
        inside.expect_nothing(0.2)

    def test_no_header_is_refused(self):
        b = self.proxy_broker(2, plugin=False)
        c = RawClient(b.port)
        self.addCleanup(c.close)
        c.send(build_connect(unique("bare")))
        self.assertEqual(c.wait_closed(), [])
        self.assert_log(b, "refused: bad PROXY protocol header (")
        # and garbage, and a header that lies about its length
        for junk in (b"GET / HTTP/1.1\r\n\r\n", SIG + b"\x21\x11\xff\xff" + b"\x00" * 12,
                     b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n"):
            c = RawClient(b.port)
            self.addCleanup(c.close)
            c.send(junk)
            if junk.startswith(SIG):
                c.sock.shutdown(socket.SHUT_WR)    # the header can never complete
            self.assertEqual(c.wait_closed(), [])
        self.assertTrue(self.proxied(b, v1(), unique("ok")).is_open())

    def test_v2_refused_on_a_v1_listener(self):
        b = self.proxy_broker(1, plugin=False)
        c = self.proxied(b, v2())
        self.assertEqual(c.wait_closed(), [])
        self.assert_log(b, "bad PROXY protocol header")

    def test_local_keeps_the_socket_address(self):
        b = self.proxy_broker(2)
        cid = unique("local")
        self.proxied(b, v2(local=True), cid)
        self.assert_log(b, "identity id=%s user=- address=127.0.0.1:" % cid)

    def test_require_tls(self):
        b = self.proxy_broker(2, extra=["proxy_protocol_v2_require_tls true"])
        c = self.proxied(b, v2())
        self.assertEqual(c.wait_closed(), [])
        self.assert_log(b, "says the client did not use TLS")
        c = self.proxied(b, v1())
        self.assertEqual(c.wait_closed(), [])
        cid = unique("tls")
        self.proxied(b, v2(tlvs=ssl_tlv()), cid)
        self.assert_log(b, "identity id=%s user=- address=203.0.113.9:5151" % cid,
                        "tls_version=TLSv1.3 cipher=- psk_identity=- verified_by=proxy")

    def test_identity_from_a_tls_terminating_proxy(self):
        b = self.proxy_broker(2, extra=["require_certificate true",
                                        "use_identity_as_username true"])
        cid = unique("dev")
        self.proxied(b, v2(tlvs=ssl_tlv(client=0x03, cn=b"device42")), cid,
                     username="ignored", password="ignored")
        self.assert_log(b, "identity id=%s user=device42" % cid, "u'device42')")
        # a certificate the proxy could not verify, or none: refused
        for tl in (ssl_tlv(client=0x03, verify=1, cn=b"device42"), ssl_tlv(client=0x01)):
            c = self.proxied(b, v2(tlvs=tl))
            self.assertEqual(c.wait_closed(), [])
        self.assert_log(b, "reports no verified client certificate")

    def test_proxy_then_tls(self):
        port = free_port()
        b = self.start_broker(["listener %d %s" % (port, HOST), "enable_proxy_protocol 2",
                               "plugin " + FIXTURE, "plugin_opt_log_identity 1"] +
                              CERTS.server_lines(require=True))
        raw = socket.create_connection((HOST, port), timeout=TIMEOUT)
        raw.sendall(v2("203.0.113.77", 4444))
        s = CERTS.context("client").wrap_socket(raw, server_hostname="localhost")
        self.addCleanup(s.close)
        cid = unique("ptls")
        s.sendall(build_connect(cid))
        self.assertEqual(s.recv(4)[:1], b"\x20")
        self.assert_log(b, "identity id=%s user=- address=203.0.113.77:4444 CN=client1" % cid)

    def test_proxy_then_websockets(self):
        port = free_port()
        b = self.start_broker(["listener %d %s" % (port, HOST), "enable_proxy_protocol 1",
                               "protocol websockets"])
        s = socket.create_connection((HOST, port), timeout=TIMEOUT)
        self.addCleanup(s.close)
        s.sendall(v1("198.51.100.23", 2323) +
                  b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
        self.assertTrue(s.recv(200).startswith(b"HTTP/1.1 101"))
        pkt = build_connect(unique("pws"))
        key = b"\x01\x02\x03\x04"
        s.sendall(bytes([0x82, 0x80 | len(pkt)]) + key +
                  bytes(x ^ key[i % 4] for i, x in enumerate(pkt)))
        self.assertEqual(s.recv(10)[:3], b"\x82\x04\x20")
        self.assert_log(b, "New client connected from 198.51.100.23:2323")


if __name__ == "__main__":
    unittest.main()
