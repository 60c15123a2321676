"""TLS listeners: certificates, client certificates, CRL, PSK, identity as username,
reload, and the refusals (wrong CA, expired, revoked, plain TCP to a TLS port, TLS to a
plain port), each with its log line.

Certificates are made by tlsutil.Certs with the openssl CLI in a temp dir, once for the
module. Clients: paho-mqtt over Python's ssl (TLS 1.2 and 1.3), raw TLS sockets, and
mosquitto_pub/mosquitto_sub (--cafile/--cert/--key, --psk).
"""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import unittest

from harness import (BrokerTest, FIXTURE, HOST, IS_CULEX, TIMEOUT, CONNACK, build_connect,
                     build_publish, culex_only, free_port, run_broker_once, unique, RawClient)
from tlsutil import ModuleCerts, PSK_KEYS, run_tool, tls_socket

CERTS = ModuleCerts()
setUpModule, tearDownModule = CERTS.make, CERTS.remove


class TLSTest(BrokerTest):

    def tls_broker(self, require=False, extra=(), cafile=True, **kw):
        return self.start_broker(CERTS.server_lines(cafile=cafile, require=require,
                                                    extra=extra), **kw)

    def tls_paho(self, broker, cert=None, tls_version=None, client_id=None, **kw):
        return self.paho(broker, client_id or unique("tls"),
                         tls_context=CERTS.context(cert, version=tls_version), **kw)

    def assert_refused(self, port, ctx, connect=True):
        """The TLS handshake fails, or (TLS 1.3, where the server judges the client's
        certificate after the client finished) the connection closes without CONNACK."""
        try:
            s = tls_socket(port, ctx)
        except (ssl.SSLError, OSError):
            return
        try:
            s.settimeout(TIMEOUT)
            if connect:
                s.sendall(build_connect(unique("x")))
            data = s.recv(100)
            self.assertEqual(data, b"", "expected the broker to refuse, got %r" % data)
        except (ssl.SSLError, OSError):
            pass
        finally:
            s.close()

    def assert_log(self, b, *needles):
        if not IS_CULEX:
            return
        for n in needles:
            self.assertTrue(b.wait_output(n), "log line with %r missing" % n)

    # -- happy paths ----------------------------------------------------------------------

    def test_pubsub_over_tls12_and_tls13(self):
        b = self.tls_broker()
        for ver, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3,
                                                                  "TLSv1.3")):
            sub = self.tls_paho(b, tls_version=ver)
            pub = self.tls_paho(b, tls_version=ver)
            self.assertEqual(sub.client.socket().version(), name)
            topic = unique("tls/")
            sub.subscribe(topic, 1)
            pub.publish(topic, b"x" * 70000, qos=1)   # several TLS records
            self.assertEqual(sub.expect_message(topic).payload, b"x" * 70000)
            sub.stop()
            pub.stop()

    def test_plain_listener_stays_plain(self):
        """A TLS listener beside the plain one: each speaks only its own transport."""
        tport = free_port()
        b = self.start_broker(["listener %d %s" % (tport, HOST)] + CERTS.server_lines())
        plain = self.raw_connected(b, unique("plain"))
        self.assertTrue(plain.is_open())
        tls = self.tls_paho(tport)
        topic = unique("mix/")
        tls.subscribe(topic)
        plain.publish(topic, b"across")
        self.assertEqual(tls.expect_message(topic).payload, b"across")

    def test_tls_version_minimum(self):
        b = self.tls_broker(extra=["tls_version tlsv1.3"])
        self.assertRaises((ssl.SSLError, OSError), tls_socket, b.port,
                          CERTS.context(version=ssl.TLSVersion.TLSv1_2))
        self.tls_paho(b, tls_version=ssl.TLSVersion.TLSv1_3)
        self.assert_log(b, "failed: unsupported protocol")

    def test_client_certificate_required(self):
        b = self.tls_broker(require=True)
        c = self.tls_paho(b, cert="client")
        self.assertTrue(c.client.is_connected())
        self.assert_refused(b.port, CERTS.context(version=ssl.TLSVersion.TLSv1_2))
        self.assert_log(b, "failed: peer did not return a certificate")
        self.assert_refused(b.port, CERTS.context(version=ssl.TLSVersion.TLSv1_3))

    def test_client_certificate_not_required(self):
        """require_certificate false (the default): clients are not asked for one."""
        b = self.tls_broker()
        self.tls_paho(b)
        self.tls_paho(b, cert="client")

    def test_session_resumed_across_workers(self):
        """A persistent session lives on one worker; reconnections accepted by the others
        are handed over to it with their TLS state (workers 4)."""
        b = self.tls_broker()
        cid = unique("hand")
        topic = unique("hand/")
        pub = self.tls_paho(b)
        c = self.tls_paho(b, client_id=cid, version=4, clean=False)
        c.subscribe(topic, 1)
        c.stop()
        for i in range(6):
            pub.publish(topic, b"queued %d" % i, qos=1)
            c = self.tls_paho(b, client_id=cid, version=4, clean=False)
            self.assertTrue(c.session_present)
            self.assertEqual(c.expect_message(topic).payload, b"queued %d" % i)
            pub.publish(topic, b"live %d" % i, qos=1)
            self.assertEqual(c.expect_message(topic).payload, b"live %d" % i)
            c.stop()

    # -- refusals -------------------------------------------------------------------------

    def test_wrong_ca(self):
        b = self.tls_broker(require=True)
        # a client certificate from a CA the broker does not trust
        for ver in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            self.assert_refused(b.port, CERTS.context("intruder", version=ver))
        self.assert_log(b, "certificate verify failed (unable to get local issuer certificate)")
        # a client that does not trust the broker's CA gives up itself
        self.assertRaises(ssl.SSLCertVerificationError, tls_socket, b.port,
                          CERTS.context("client", ca="other-ca.crt"))
        self.assert_log(b, "tlsv1 alert unknown ca")
        self.tls_paho(b, cert="client")   # the broker is fine

    def test_expired_client_certificate(self):
        b = self.tls_broker(require=True)
        self.assert_refused(b.port, CERTS.context("expired", version=ssl.TLSVersion.TLSv1_2))
        self.assert_log(b, "certificate verify failed (certificate has expired)")

    @culex_only("disable_client_cert_date_checks is mosquitto 2.1")
    def test_expired_accepted_without_date_checks(self):
        b = self.tls_broker(require=True, extra=["disable_client_cert_date_checks true"])
        self.tls_paho(b, cert="expired")

    def test_revoked_client_certificate(self):
        b = self.tls_broker(require=True, extra=["crlfile " + CERTS.path("crl.pem")])
        for ver in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            self.assert_refused(b.port, CERTS.context("revoked", version=ver))
        self.assert_log(b, "certificate verify failed (certificate revoked)")
        self.tls_paho(b, cert="client")   # not revoked

    def test_plain_tcp_to_tls_port(self):
        b = self.tls_broker()
        c = RawClient(b.port)
        self.addCleanup(c.close)
        c.send(build_connect(unique("plain")))
        got = c.wait_closed()
        self.assertFalse([p for p in got if p.type == CONNACK])
        self.assert_log(b, "(the client sent MQTT without TLS)")

    def test_tls_to_plain_port(self):
        b = self.start_broker()
        self.assertRaises((ssl.SSLError, OSError), tls_socket, b.port, CERTS.context())
        self.assert_log(b, "did not start with CONNECT (a TLS handshake: this listener has no "
                           "TLS)")

    def test_garbage_and_stalled_handshakes_hold_nobody(self):
        b = self.tls_broker()
        stalled = socket.create_connection((HOST, b.port), timeout=TIMEOUT)
        self.addCleanup(stalled.close)
        stalled.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # half a ClientHello
        junk = socket.create_connection((HOST, b.port), timeout=TIMEOUT)
        self.addCleanup(junk.close)
        junk.sendall(b"\x16\x03\x01\x00\x05" + os.urandom(64))  # a record of garbage
        try:
            self.assertIn(junk.recv(100)[:1], (b"", b"\x15"))  # an alert, or closed
        except ConnectionResetError:
            pass
        c = self.tls_paho(b)   # served while the stalled one waits
        c.publish("x", b"y", qos=1)
        self.assert_log(b, "TLS handshake with 127.0.0.1:")

    def test_stalled_handshakes_are_closed_in_time(self):
        """A TLS handshake, a WebSocket upgrade and a PROXY header that stall are closed by
        the CONNECT timer (20 s after accept), each named in the log, while other clients
        are served. (About 21 s: the one slow test of the transports.)"""
        wsport, pport = free_port(), free_port()
        b = self.tls_broker(extra=["listener %d %s" % (wsport, HOST), "protocol websockets",
                                   "listener %d %s" % (pport, HOST), "enable_proxy_protocol 2"])
        stalled = []
        for port, data in ((b.port, b"\x16\x03\x01\x02\x00\x01\x00"),
                           (wsport, b"GET /mqtt HTTP/1.1\r\nHost: x\r\n"),
                           (pport, b"PROXY TCP4 1.2.3.4 ")):
            s = socket.create_connection((HOST, port), timeout=TIMEOUT)
            self.addCleanup(s.close)
            s.sendall(data)
            stalled.append(s)
        c = self.tls_paho(b)
        c.publish("t", b"served meanwhile", qos=1)
        for s in stalled:
            s.settimeout(26)
            try:
                while s.recv(1024):
                    pass
            except ConnectionResetError:
                pass
        self.assert_log(b, "did not complete its TLS handshake in time",
                        "did not complete its WebSocket handshake in time",
                        "did not complete its PROXY protocol header in time")

    # -- identity -------------------------------------------------------------------------

    def test_identity_as_username_with_acl_and_password_file(self):
        b = self.start_broker(start=False, allow_anonymous=False)
        acl = b.path("acl")
        with open(acl, "w") as f:
            f.write("user client1\ntopic readwrite acme/#\n")
        pw = b.path("passwd")
        with open(pw, "w") as f:
            f.write("someone:$7$101$abc$def\n")   # client1 is not in it: not consulted
        os.chmod(acl, 0o644)
        os.chmod(pw, 0o644)
        b.lines = CERTS.server_lines(require=True, extra=[
            "use_identity_as_username true", "acl_file " + acl, "password_file " + pw])
        b.start()
        c = self.tls_paho(b, cert="client", username="ignored", password="ignored")
        topic = unique("acme/")
        c.subscribe(topic)
        c.publish(topic, b"mine", qos=1)
        self.assertEqual(c.expect_message(topic).payload, b"mine")
        other = unique("other/")
        c.subscribe(other)
        c.publish(other, b"not mine", qos=1)      # denied by the ACL: never delivered
        c.publish(topic, b"marker", qos=1)
        self.assertEqual(c.expect_message(topic).payload, b"marker")
        self.assertEqual(c.take_messages(other), [])
        self.assert_log(b, "u'client1')")
        # a certificate without a CN is not a user
        raw = tls_socket(b.port, CERTS.context("nocn"))
        self.addCleanup(raw.close)
        raw.sendall(build_connect(unique("nocn")))
        data = raw.recv(10)
        self.assertEqual(data[:1], b"\x20")            # CONNACK ...
        self.assertEqual(data[3], 5)                   # ... not authorised
        self.assert_log(b, "the client certificate has no usable CN")

    @culex_only("the fixture plugin is a culex plugin")
    def test_certificate_fields_for_plugins(self):
        b = self.tls_broker(require=True, extra=[
            "use_subject_as_username true", "plugin " + FIXTURE, "plugin_opt_log_identity 1"])
        cid = unique("fields")
        self.tls_paho(b, cert="client", client_id=cid)
        self.assertTrue(b.wait_output("identity id=%s user=OU=Dev,O=Acme,CN=client1" % cid),
                        b.output())
        out = b.output()
        self.assertIn("CN=client1 O=Acme subject=OU=Dev,O=Acme,CN=client1 "
                      "issuer=CN=culex test CA serial=", out)
        self.assertIn("tls_version=TLSv1.3", out)
        self.assertRegex(out, r"sha256=[0-9a-f]{64} ")

    # -- PSK ------------------------------------------------------------------------------

    def test_psk(self):
        pport = free_port()
        b = self.start_broker(["psk_file " + CERTS.path("psk.txt"),
                               "listener %d %s" % (pport, HOST), "psk_hint culex-test",
                               "use_identity_as_username true"] +
                              (["plugin " + FIXTURE, "plugin_opt_log_identity 1"]
                               if IS_CULEX else []))
        sub = self.paho(b, unique("psksub"))
        topic = unique("psk/")
        sub.subscribe(topic)
        # mosquitto_pub (TLS 1.3 with the PSK) ...
        rc, out = run_tool(["mosquitto_pub", "-h", HOST, "-p", str(pport), "--psk",
                            PSK_KEYS["sensor7"], "--psk-identity", "sensor7", "-t", topic,
                            "-m", "via mosquitto_pub"])
        self.assertEqual(rc, 0, out)
        self.assertEqual(sub.expect_message(topic).payload, b"via mosquitto_pub")
        # ... and a TLS 1.2 PSK cipher suite (openssl s_client carries raw MQTT)
        p = subprocess.Popen(["openssl", "s_client", "-connect", "%s:%d" % (HOST, pport),
                              "-psk", PSK_KEYS["client1"], "-psk_identity", "client1",
                              "-tls1_2", "-quiet"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
        try:
            p.stdin.write(build_connect(unique("s_client")) +
                          build_publish(topic, b"via TLS 1.2 PSK"))
            p.stdin.flush()
            self.assertEqual(sub.expect_message(topic).payload, b"via TLS 1.2 PSK")
        finally:
            os.kill(p.pid, signal.SIGKILL)
            p.communicate()
        self.assert_log(b, "u'sensor7')", "psk_identity=sensor7", "u'client1')")
        rc, out = run_tool(["mosquitto_pub", "-h", HOST, "-p", str(pport), "--psk",
                            "0badc0de", "--psk-identity", "sensor7", "-t", topic, "-m", "no"])
        self.assertNotEqual(rc, 0)
        rc, out = run_tool(["mosquitto_pub", "-h", HOST, "-p", str(pport), "--psk",
                            "0badc0de", "--psk-identity", "nobody", "-t", topic, "-m", "no"])
        self.assertNotEqual(rc, 0)
        self.assert_log(b, "TLS handshake with 127.0.0.1:")
        self.assertEqual(sub.take_messages(topic), [])

    # -- mosquitto's own clients ----------------------------------------------------------

    def test_mosquitto_clients_with_client_certificates(self):
        b = self.tls_broker(require=True)
        topic = unique("cli/")
        tls = ["--cafile", CERTS.path("ca.crt"), "--cert", CERTS.path("client.crt"),
               "--key", CERTS.path("client.key")]
        rc, out = run_tool(["mosquitto_pub", "-h", HOST, "-p", str(b.port), "-t", topic,
                            "-m", "hello tls", "-q", "1", "-r"] + tls)
        self.assertEqual(rc, 0, out)
        rc, out = run_tool(["mosquitto_sub", "-h", HOST, "-p", str(b.port), "-t", topic,
                            "-C", "1", "-W", "5"] + tls)
        self.assertEqual(rc, 0, out)
        self.assertEqual(out.strip(), "hello tls")
        # without a client certificate the same command is refused
        rc, out = run_tool(["mosquitto_pub", "-h", HOST, "-p", str(b.port), "-t", topic,
                            "-m", "x", "--cafile", CERTS.path("ca.crt")])
        self.assertNotEqual(rc, 0)

    # -- reload ---------------------------------------------------------------------------

    def test_reload_certificates_keeps_clients(self):
        b = self.start_broker(start=False)
        crt, key = b.path("srv.crt"), b.path("srv.key")
        shutil.copy(CERTS.path("server.crt"), crt)
        shutil.copy(CERTS.path("server.key"), key)
        os.chmod(key, 0o644)
        b.lines = ["certfile " + crt, "keyfile " + key]
        b.start()
        old = self.tls_paho(b)
        first = tls_socket(b.port, CERTS.context())
        self.addCleanup(first.close)
        der = first.getpeercert(binary_form=True)
        with open(CERTS.path("server.crt")) as f:
            self.assertEqual(der, ssl.PEM_cert_to_DER_cert(f.read()))
        shutil.copy(CERTS.path("server2.crt"), crt)
        shutil.copy(CERTS.path("server2.key"), key)
        b.send_signal(signal.SIGHUP)
        self.assert_log(b, "uses the reloaded TLS certificates")
        if IS_CULEX:
            s = tls_socket(b.port, CERTS.context())
            self.addCleanup(s.close)
            with open(CERTS.path("server2.crt")) as f:
                self.assertEqual(s.getpeercert(binary_form=True),
                                 ssl.PEM_cert_to_DER_cert(f.read()))
        topic = unique("reload/")
        old.subscribe(topic)                      # the old connection still works
        old.publish(topic, b"still here", qos=1)
        self.assertEqual(old.expect_message(topic).payload, b"still here")
        # a broken key on the next reload keeps the current certificates
        with open(key, "w") as f:
            f.write("not a key\n")
        b.send_signal(signal.SIGHUP)
        self.assert_log(b, "keeps its previous TLS settings")
        self.tls_paho(b)

    # -- configuration errors -------------------------------------------------------------

    @culex_only("culex's messages")
    def test_bad_files_refused_at_start(self):
        d = tempfile.mkdtemp(prefix="culex-tlsconf-")
        self.addCleanup(shutil.rmtree, d, True)
        conf = os.path.join(d, "c.conf")
        badpsk = os.path.join(d, "psk")
        with open(badpsk, "w") as f:
            f.write("good:0011\nbad:xyz1\n")
        cases = [
            (CERTS.server_lines()[:1] + ["keyfile /nonexistent/key.pem"],
             "keyfile /nonexistent/key.pem"),
            (["certfile " + CERTS.path("server.crt"), "keyfile " + CERTS.path("client.key")],
             "key values mismatch"),
            (CERTS.server_lines(extra=["crlfile " + CERTS.path("ca.key")]), "crlfile"),
            (["psk_file " + badpsk, "listener %d" % free_port(), "psk_hint h"],
             "psk_file %s:2: key is not hexadecimal" % badpsk),
            (CERTS.server_lines(extra=["ciphers NOSUCHCIPHER"]), "ciphers NOSUCHCIPHER"),
        ]
        for lines, needle in cases:
            with open(conf, "w") as f:
                f.write("listener %d 127.0.0.1\n" % free_port())
                f.write("\n".join(lines) + "\n")
            rc, out = run_broker_once(["-c", conf, "--test-config"])
            self.assertEqual(rc, 1, out)
            self.assertIn(needle, out)
            self.assertRegex(out, r"c\.conf:[13]: listener: ")

    def test_mosquitto_accepted_oddities_warn(self):
        """Mosquitto 2.0.11 starts with require_certificate and no CA (nobody can then
        connect with TLS) and with TLS-only settings on a plain listener (ignored): culex
        starts too, and says what each one means."""
        d = tempfile.mkdtemp(prefix="culex-tlsconf-")
        self.addCleanup(shutil.rmtree, d, True)
        conf = os.path.join(d, "c.conf")
        cases = [
            (CERTS.server_lines(cafile=False, require=True), "every TLS client of this listener "
                                                              "is refused"),
            (["cafile " + CERTS.path("ca.crt")], "cafile has no effect"),
        ]
        for lines, needle in cases:
            with open(conf, "w") as f:
                f.write("listener %d 127.0.0.1\n" % free_port())
                f.write("\n".join(lines) + "\n")
            rc, out = run_broker_once(["-c", conf, "--test-config"])
            self.assertEqual(rc, 0, out)
            self.assertIn(needle, out)


if __name__ == "__main__":
    unittest.main()
