"""PROXY protocol against a real HAProxy (Debian's haproxy 2.6): issue 5's "v1 text and v2
binary headers from HAProxy". test_19_proxy builds the headers by hand; here HAProxy writes
them. Each test starts culex, then a throwaway `haproxy -f CONF -db` in the foreground with
its own config in a temp dir (no chroot, no user switch, pidfile and admin socket in the
temp dir), listening on free loopback ports; it is stopped by its PID (SIGUSR1, the soft
stop, after which it exits 0).

HAProxy connects to culex from 127.0.0.2 (`source` on the server line) while clients connect
to HAProxy from 127.0.0.1, so the log cannot confuse the two: culex must report the client's
address and source port (the client socket's own name) and never HAProxy's.

Skipped when /usr/sbin/haproxy is missing (scripts/install-deps.sh --test installs it).
"""

import csv
import os
import re
import signal
import socket
import struct
import unittest

from harness import (BrokerTest, Daemon, FIXTURE, HOST, TIMEOUT, RawClient, build_connect,
                     culex_only, free_port, unique)
from tlsutil import ModuleCerts, run_tool, tls_socket

HAPROXY = "/usr/sbin/haproxy"
PROXY_HOST = "127.0.0.2"    # HAProxy's side of its connections to culex
CERTS = ModuleCerts()
setUpModule, tearDownModule = CERTS.make, CERTS.remove

# Every TLV HAProxy 2.6 can add to a v2 header, the CRC32C of the header among them; the
# UNIQUE_ID TLV needs a unique-id-format on the frontend.
V2_OPTIONS = ("proxy-v2-options "
              "ssl,cert-cn,ssl-cipher,cert-sig,cert-key,authority,crc32c,unique-id")
UNIQUE_ID = "    unique-id-format %{+X}o\\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid\n"

# An MQTT 3.1.1 CONNECT (empty client id, clean session, keep alive 60), the CONNACK that
# accepts it and a DISCONNECT: HAProxy's tcp-check as an MQTT-level health check.
MQTT_CHECK = ("    option tcp-check\n"
              "    tcp-check connect default\n"
              "    tcp-check send-binary 100c00044d5154540402003c0000\n"
              "    tcp-check expect binary 20020000\n"
              "    tcp-check send-binary e000\n")


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError("closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def parse_tlvs(data):
    """[(type, value)] of a PROXY v2 TLV list."""
    out = []
    while data:
        t, n = struct.unpack("!BH", data[:3])
        out.append((t, data[3:3 + n]))
        data = data[3 + n:]
    return out


class HAProxy(Daemon):
    """A foreground HAProxy with the given frontend/backend sections. `ports` are the
    frontend ports start() waits for; `stats()` reads `show stat` from its admin socket."""

    stop_signal = signal.SIGUSR1     # soft stop: exit 0 once its connections are gone
    conf_name = "haproxy.cfg"
    out_name = "haproxy.out"

    def __init__(self, sections, ports):
        super().__init__(ports[0], "haproxy")
        self.sections = sections
        self.ports = list(ports)
        self.admin = self.path("admin.sock")

    def config_text(self):
        return ("global\n"
                "    pidfile %s\n"
                "    stats socket %s mode 600 level admin\n"
                "    hard-stop-after 3s\n"
                "defaults\n"
                "    mode tcp\n"
                "    timeout connect 2s\n"
                "    timeout client 30s\n"
                "    timeout server 30s\n"
                "    timeout check 2s\n"      # not `inter` (100 ms): sanitizer builds are slow
                % (self.path("haproxy.pid"), self.admin)) + self.sections

    def command(self):
        return [HAPROXY, "-f", self.conf_path, "-db"]

    def start(self, wait_port=None):
        self.spawn()
        for p in self.ports:
            self.wait_listening(p)
        return self

    def stats(self):
        """{(proxy, server): row} from `show stat` (the CSV, columns by name)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2.0)
        try:
            s.connect(self.admin)
            s.sendall(b"show stat\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        text = data.decode().lstrip("# ")
        return {(r["pxname"], r["svname"]): r for r in csv.DictReader(text.splitlines())}


@culex_only("Mosquitto 2.0.11 has no PROXY protocol support")
@unittest.skipUnless(os.access(HAPROXY, os.X_OK),
                     "needs HAProxy (%s, Debian package haproxy: scripts/install-deps.sh "
                     "--test)" % HAPROXY)
class HAProxyTest(BrokerTest):

    def haproxy(self, sections, ports):
        return self.start_custom(HAProxy(sections, ports))

    def front(self, server_line, port, name="fe", bind="", port6=None):
        """A frontend on `port` (and on [::1]:port6) passing TCP to a one-server backend."""
        binds = "    bind %s:%d%s\n" % (HOST, port, bind)
        if port6:
            binds += "    bind [::1]:%d%s\n" % (port6, bind)
        return ("frontend %s\n%s    default_backend %s_be\n%s"
                "backend %s_be\n    server culex %s source %s\n"
                % (name, binds, name, UNIQUE_ID, name, server_line, PROXY_HOST))

    def assert_log(self, b, *needles):
        for n in needles:
            self.assertTrue(b.wait_output(n), "log line with %r missing" % n)

    def roundtrip(self, port, version, **kw):
        """A subscriber and a publisher through HAProxy; a QoS 1 message goes through.
        Returns them as (client id, (address, port) of the client's socket) pairs."""
        topic = unique("ha/")
        sub_id, pub_id = unique("hasub"), unique("hapub")
        sub = self.paho(port, sub_id, version, **kw)
        self.assertEqual(sub.subscribe(topic, 1), [1])
        pub = self.paho(port, pub_id, version, **kw)
        pub.publish(topic, b"through haproxy", qos=1)
        self.assertEqual(sub.expect_message(topic).payload, b"through haproxy")
        return [(sub_id, sub.client.socket().getsockname()),
                (pub_id, pub.client.socket().getsockname())]

    def ipv6_publish(self, b, port, port6, version):
        """mosquitto_pub connects to HAProxy over IPv6 ([::1]) and publishes to a paho
        subscriber; culex must name the client [::1]:port (HAProxy reaches it over IPv4)."""
        topic, cid = unique("ha6/"), unique("hapub6")
        sub = self.paho(port, unique("hasub6"), 5)
        sub.subscribe(topic, 1)
        rc, out = run_tool(["mosquitto_pub", "-h", "::1", "-p", str(port6), "-i", cid,
                            "-t", topic, "-m", "over IPv6", "-q", "1"])
        self.assertEqual(rc, 0, out)
        self.assertEqual(sub.expect_message(topic).payload, b"over IPv6")

        def named():
            out = b.output()
            return any("New client connected from [::1]:%s as %s " % (p, cid) in out
                       for p in re.findall(r"is client \[::1\]:(\d+) \(PROXY protocol v%d\)"
                                           % version, out))
        self.wait_until(named, what="culex naming the IPv6 client [::1]:port")

    def assert_real_addresses(self, b, clients, version, user="-"):
        for cid, (addr, port) in clients:
            self.assertEqual(addr, HOST)
            self.assert_log(b, "is client %s:%d (PROXY protocol v%d)" % (addr, port, version),
                            "New client connected from %s:%d as %s " % (addr, port, cid),
                            "identity id=%s user=%s address=%s:%d " % (cid, user, addr, port))
        out = b.output()
        self.assertIn("New connection from %s:" % PROXY_HOST, out)
        self.assertNotIn("New client connected from %s" % PROXY_HOST, out)

    def tls_bind(self):
        return " ssl crt %s ca-file %s" % (CERTS.pem("server"), CERTS.path("ca.crt"))

    def proxied_broker(self, version, extra=()):
        return self.start_broker(["enable_proxy_protocol %d" % version,
                                  "plugin " + FIXTURE, "plugin_opt_log_identity 1"] +
                                 list(extra))

    def through_haproxy(self, version, send_proxy, paho_versions):
        b = self.proxied_broker(version)
        port, port6 = free_port(), free_port("::1")
        self.haproxy(self.front("%s:%d %s" % (HOST, b.port, send_proxy), port, port6=port6),
                     [port, port6])
        clients = []
        for v in paho_versions:
            clients += self.roundtrip(port, v)
        self.assert_real_addresses(b, clients, version)
        self.ipv6_publish(b, port, port6, version)

    def test_send_proxy_v1(self):
        """`server ... send-proxy` to `enable_proxy_protocol 1`: paho v3.1.1 and v5 clients
        publish and receive through HAProxy; culex logs (and plugins see) each client's own
        address and source port; mosquitto_pub over IPv6 shows as [::1]:port."""
        self.through_haproxy(1, "send-proxy", (4, 5))

    def test_send_proxy_v2(self):
        """`server ... send-proxy-v2` to `enable_proxy_protocol 2`: the same, binary header."""
        self.through_haproxy(2, "send-proxy-v2", (5, 4))

    def test_tls_terminated_at_haproxy(self):
        """HAProxy terminates TLS and verifies client certificates (`ca-file`, `verify
        required`), then `send-proxy-v2-ssl-cn`; culex (`proxy_protocol_v2_require_tls`,
        `require_certificate`, `use_identity_as_username`) takes the certificate's CN as the
        username. The same listener refuses: a plain HAProxy path (no SSL TLV), a TLS client
        without a certificate and one whose certificate HAProxy could not verify (`verify
        optional` with the errors ignored: the TLV's verify field is non-zero)."""
        b = self.proxied_broker(2, ["proxy_protocol_v2_require_tls true",
                                    "require_certificate true",
                                    "use_identity_as_username true"])
        tls_port, plain_port, opt_port = free_port(), free_port(), free_port()
        server = "%s:%d send-proxy-v2-ssl-cn %s" % (HOST, b.port, V2_OPTIONS)
        ssl = self.tls_bind()
        self.haproxy(self.front(server, tls_port, "tls", ssl + " verify required") +
                     self.front(server, plain_port, "plain") +
                     self.front(server, opt_port, "opt", ssl + " verify optional "
                                "ca-ignore-err all crt-ignore-err all"),
                     [tls_port, plain_port, opt_port])

        clients = self.roundtrip(tls_port, 5, tls_context=CERTS.context("client"),
                                 username="someone-else", password="x")
        self.assert_real_addresses(b, clients, 2, user="client1")
        for cid, (addr, port) in clients:
            self.assert_log(b, "New client connected from %s:%d as %s (p5, c1, k60, "
                            "u'client1')." % (addr, port, cid),
                            "identity id=%s user=client1 address=%s:%d CN=client1 " %
                            (cid, addr, port))
        self.assert_log(b, "tls_version=TLSv1.3 cipher=- psk_identity=- verified_by=proxy")

        c = RawClient(plain_port)
        self.addCleanup(c.close)
        c.send(build_connect(unique("plain")))
        self.assertEqual(c.wait_closed(), [])
        self.assert_log(b, "says the client did not use TLS (proxy_protocol_v2_require_tls)")

        for cert in (None, "intruder"):
            s = tls_socket(opt_port, CERTS.context(cert))
            self.addCleanup(s.close)
            s.sendall(build_connect(unique("opt")))
            try:
                self.assertEqual(s.recv(10), b"")
            except (ConnectionResetError, OSError):
                pass
        self.assertTrue(self.wait_until(
            lambda: b.output().count("reports no verified client certificate") >= 2,
            what="two refusals for a missing and an unverified certificate"))
        self.assertNotIn("user=intruder", b.output())

    def test_v2_header_with_every_tlv(self):
        """A v2 header as HAProxy writes it with every TLV (`proxy-v2-options`), caught by the
        test in place of culex: it carries AUTHORITY (the SNI), CRC32C, UNIQUE_ID and the SSL
        TLV with version, CN, cipher, signature and key algorithms. Replayed to culex it is
        accepted (so culex computes HAProxy's CRC32C) and gives the client's address and CN;
        with one address byte changed, culex refuses it for its CRC32C."""
        b = self.proxied_broker(2, ["proxy_protocol_v2_require_tls true",
                                    "require_certificate true",
                                    "use_identity_as_username true"])
        catcher = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(catcher.close)
        catcher.bind((HOST, 0))
        catcher.listen(1)
        catcher.settimeout(TIMEOUT)
        port = free_port()
        self.haproxy(self.front("%s:%d send-proxy-v2-ssl-cn %s"
                                % (HOST, catcher.getsockname()[1], V2_OPTIONS), port, "tls",
                                self.tls_bind() + " verify required"), [port])
        client = tls_socket(port, CERTS.context("client"))
        self.addCleanup(client.close)
        caddr, cport = client.getsockname()
        conn, _ = catcher.accept()
        self.addCleanup(conn.close)
        conn.settimeout(TIMEOUT)
        header = recv_exactly(conn, 16)
        self.assertEqual(header[:13], b"\r\n\r\n\x00\r\nQUIT\n\x21")
        header += recv_exactly(conn, struct.unpack("!H", header[14:16])[0])
        tlvs = dict(parse_tlvs(header[28:]))   # after the IPv4 addresses and ports
        self.assertEqual(sorted(tlvs), [0x02, 0x03, 0x05, 0x20])
        self.assertEqual(tlvs[0x02], b"localhost")
        ssl_client, verify = struct.unpack("!BI", tlvs[0x20][:5])
        self.assertEqual((ssl_client & 0x03, verify), (0x03, 0))  # SSL, CERT_CONN, verified
        sub = dict(parse_tlvs(tlvs[0x20][5:]))
        self.assertEqual(sorted(sub), [0x21, 0x22, 0x23, 0x24, 0x25])
        self.assertEqual(sub[0x22], b"client1")

        cid = unique("replay")
        c = RawClient(b.port)
        self.addCleanup(c.close)
        c.send(header)
        c.connect(cid)
        self.assert_log(b, "is client %s:%d (PROXY protocol v2)" % (caddr, cport),
                        "identity id=%s user=client1 address=%s:%d CN=client1 "
                        % (cid, caddr, cport))
        bad = bytearray(header)
        bad[16] ^= 0x01                        # the first byte of the source address
        c = RawClient(b.port)
        self.addCleanup(c.close)
        c.send(bytes(bad) + build_connect(unique("tampered")))
        self.assertEqual(c.wait_closed(), [])
        self.assert_log(b, "bad PROXY protocol header (PROXY v2: CRC32C mismatch)")

    def test_health_checks(self):
        """HAProxy health checks every 100 ms against PROXY listeners: `check` on a
        send-proxy server (HAProxy puts the PROXY header on its checks by default: v1 names
        the check's own addresses, v2 is a LOCAL header), `check` without the header (HAProxy
        resets it before culex can accept it), `check-send-proxy` on a server without
        send-proxy, and an MQTT-level tcp-check (CONNECT, CONNACK, DISCONNECT) after a v2
        header. HAProxy must see every check pass; culex must log no refusal, warning or
        error and at most two lines per check connection ("New connection", a NOTICE, and
        for v1 "is client", an INFO); a client through HAProxy must still get through."""
        v2_port = free_port()
        b = self.start_broker(["enable_proxy_protocol 1", "listener %d %s" % (v2_port, HOST),
                               "enable_proxy_protocol 2"])
        v1_port = b.port
        kinds = {  # source address: (server line, extra backend lines, expected check status)
            "127.0.0.11": ("%s:%d send-proxy check" % (HOST, v1_port), "", "L4OK"),
            "127.0.0.12": ("%s:%d send-proxy-v2 check" % (HOST, v2_port), "", "L4OK"),
            "127.0.0.13": ("%s:%d check" % (HOST, v2_port), "", "L4OK"),
            "127.0.0.14": ("%s:%d check" % (HOST, v1_port), "", "L4OK"),
            "127.0.0.15": ("%s:%d check check-send-proxy" % (HOST, v1_port), "", "L4OK"),
            "127.0.0.16": ("%s:%d send-proxy-v2 check" % (HOST, v2_port), MQTT_CHECK, "L7OK"),
        }
        port = free_port()
        sections = self.front("%s:%d send-proxy" % (HOST, v1_port), port)
        for src, (server, extra, _) in sorted(kinds.items()):
            sections += ("backend hc%s\n%s    server culex %s inter 100ms rise 1 fall 1 "
                         "source %s\n" % (src.split(".")[-1], extra, server, src))
        ha = self.haproxy(sections, [port])

        def checks(src):
            return b.output().count("New connection from %s:" % src)
        # A plain `check` never reaches culex: HAProxy resets the connection as soon as
        # its SYN-ACK arrives, before the handshake's last ACK, so the kernel drops it
        # from the listen queue. The others are counted in culex's log.
        silent = ("127.0.0.13", "127.0.0.14")
        self.wait_until(lambda: all(checks(src) >= 5 for src in kinds if src not in silent),
                        timeout=10, what="five checks from each backend")
        stats = ha.stats()
        for src, (_, _, status) in kinds.items():
            row = stats[("hc" + src.split(".")[-1], "culex")]
            # "* L4OK" while a check is running
            self.assertEqual((row["status"], row["check_status"].lstrip("* "), row["chkfail"]),
                             ("UP", status, "0"), "health check from %s" % src)

        out = b.output()
        for bad in ("refused", "arning", "rror", "in time", "PROXY protocol header"):
            self.assertNotIn(bad, out)
        lines = out.splitlines()
        for src in kinds:
            n = checks(src)
            mine = [ln for ln in lines if src + ":" in ln]
            self.assertLessEqual(len(mine), 2 * n, "lines about %s's %d checks" % (src, n))
        # v1 checks carry the check's own addresses; v2 checks are LOCAL (no "is client")
        self.assertIn("is client 127.0.0.11:", out)
        self.assertIn("is client 127.0.0.15:", out)
        for src in ("127.0.0.12", "127.0.0.16"):
            self.assertNotIn("is client %s:" % src, out)
        for src in silent:
            self.assertNotIn(src + ":", out)
        self.assertIn("New client connected from 127.0.0.16:", out)

        clients = self.roundtrip(port, 5)
        for cid, (addr, cport) in clients:
            self.assert_log(b, "New client connected from %s:%d as %s " % (addr, cport, cid))


if __name__ == "__main__":
    unittest.main()
