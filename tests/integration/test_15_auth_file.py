"""password_file and acl_file (the first-party auth_file plugin) through the real broker,
with files written by Debian's mosquitto_passwd: the same semantics as Mosquitto, reload on
SIGHUP, per-listener settings, and clear errors for broken files."""
import os
import shutil
import signal
import subprocess
import time
import unittest

from harness import (
    BrokerTest, HOST, IS_CULEX, culex_only, free_port, run_broker_once, unique,
    RC_NOT_AUTHORIZED, RC_BAD_USERNAME_PASSWORD,
)

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")


def make_passwd(path, users):
    """Writes a password file with mosquitto_passwd (real $7$ hashes)."""
    open(path, "w").close()
    for user, pw in users.items():
        subprocess.run([MOSQUITTO_PASSWD, "-b", path, user, pw], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(path, 0o644)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)


ACL = """# anonymous clients
topic read public/#

user alice
topic readwrite alice/#
topic write sensors/alice
topic deny alice/secret

user bob
topic read sensors/#

pattern readwrite clients/%c/#
pattern write users/%u/out
"""


class FilesBroker(BrokerTest):
    def broker(self, extra=(), anonymous=False, users=None, acl=ACL):
        b = self.start_broker(start=False, allow_anonymous=anonymous)
        make_passwd(b.path("passwd"), users or {"alice": "wonder", "bob": "builder"})
        lines = ["password_file %s" % b.path("passwd")]
        if acl is not None:
            write(b.path("acl"), acl)
            lines.append("acl_file %s" % b.path("acl"))
        b.lines += lines + list(extra)
        b.start()
        return b


@unittest.skipUnless(MOSQUITTO_PASSWD, "needs mosquitto_passwd (mosquitto package)")
class PasswordFile(FilesBroker):
    def test_good_and_bad_passwords(self):
        """Known user with the right password: accepted; wrong password or unknown user:
        refused (v3 rc 5 / v5 0x86); anonymous: allow_anonymous decides."""
        b = self.broker(acl=None)
        self.raw_connected(b, unique("a"), 4, username="alice", password="wonder")
        self.assertEqual(self.raw(b, 4).connect(unique("x"), username="alice", password="no",
                                                expect_rc=None).rc, 5)
        # v5: 0x86 (culex, the precise code) or 0x87 (mosquitto 2.0.11)
        self.assertIn(self.raw(b, 5).connect(unique("x"), username="eve", password="x",
                                             expect_rc=None).rc,
                      (RC_BAD_USERNAME_PASSWORD,) if IS_CULEX else
                      (RC_BAD_USERNAME_PASSWORD, RC_NOT_AUTHORIZED))
        self.assertEqual(self.raw(b, 4).connect(unique("x"), expect_rc=None).rc, 5)

    def test_anonymous_allowed_when_configured(self):
        b = self.broker(anonymous=True, acl=None)
        self.raw_connected(b, unique("anon"), 4)
        self.assertEqual(self.raw(b, 4).connect(unique("x"), username="bob", password="no",
                                                expect_rc=None).rc, 5)

    def test_mosquitto_clients(self):
        """mosquitto_pub with -u/-P against the same file."""
        b = self.broker(acl=None)
        ok = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(b.port), "-u", "alice",
                             "-P", "wonder", "-t", "t", "-m", "x"], timeout=10)
        self.assertEqual(ok.returncode, 0)
        bad = subprocess.run(["mosquitto_pub", "-h", HOST, "-p", str(b.port), "-u", "alice",
                              "-P", "nope", "-t", "t", "-m", "x"], timeout=10,
                             stderr=subprocess.DEVNULL)
        self.assertNotEqual(bad.returncode, 0)


@unittest.skipUnless(MOSQUITTO_PASSWD, "needs mosquitto_passwd (mosquitto package)")
class AclFile(FilesBroker):
    def test_publish_and_receive_rules(self):
        """write/readwrite/deny for publish; read for delivery; deny beats grants; pattern
        %c and %u; anonymous section."""
        b = self.broker(anonymous=True)
        alice = self.raw_connected(b, "alice-dev", 5, username="alice", password="wonder")
        bob = self.raw_connected(b, unique("bob"), 5, username="bob", password="builder")
        anon = self.raw_connected(b, unique("anon"), 5)
        for c in (alice, bob, anon):
            c.subscribe("#", qos=1)
        # alice may write alice/x and sensors/alice, not alice/secret or bob's topics
        self.assertIn(alice.publish("alice/x", b"1", qos=1).rc, (0, 0x10))
        self.assertEqual(alice.publish("alice/secret", b"2", qos=1).rc, RC_NOT_AUTHORIZED)
        self.assertEqual(alice.publish("sensors/bob", b"3", qos=1).rc, RC_NOT_AUTHORIZED)
        self.assertIn(alice.publish("sensors/alice", b"4", qos=1).rc, (0, 0x10))
        self.assertIn(alice.publish("clients/alice-dev/x", b"5", qos=1).rc, (0, 0x10))
        self.assertIn(alice.publish("users/alice/out", b"6", qos=1).rc, (0, 0x10))
        self.assertEqual(alice.publish("users/bob/out", b"7", qos=1).rc, RC_NOT_AUTHORIZED)
        # bob reads sensors/# only (and his pattern topics)
        got = bob.recv_publish()
        self.assertEqual((got.topic, got.payload), ("sensors/alice", b"4"))
        bob.expect_nothing(0.2)
        # alice receives what she may read: alice/x, clients/alice-dev/x (not write-only ones)
        seen = {alice.recv_publish().topic for _ in range(2)}
        self.assertEqual(seen, {"alice/x", "clients/alice-dev/x"})
        alice.expect_nothing(0.2)
        anon.expect_nothing(0.2)  # public/# only

    def test_anonymous_section(self):
        b = self.broker(anonymous=True)
        anon = self.raw_connected(b, unique("anon"), 5)
        anon.subscribe("public/#", qos=1)
        self.assertEqual(anon.publish("public/x", b"no", qos=1).rc, RC_NOT_AUTHORIZED)
        alice = self.raw_connected(b, unique("a"), 5, username="alice", password="wonder")
        self.assertEqual(alice.publish("public/x", b"no", qos=1).rc, RC_NOT_AUTHORIZED)

    @culex_only("observed: mosquitto 2.0.11 keeps the old password file after this SIGHUP")
    def test_sighup_reloads_both_files(self):
        """SIGHUP re-reads the password and ACL files; a broken file keeps the old one and
        the log says why (file and line)."""
        b = self.broker()
        make_passwd(b.path("passwd"), {"carol": "singer"})
        write(b.path("acl"), "user carol\ntopic readwrite carol/#\n")
        b.send_signal(signal.SIGHUP)
        end = time.monotonic() + 5
        while True:
            rc = self.raw(b, 4).connect(unique("c"), username="carol", password="singer",
                                        expect_rc=None).rc
            if rc == 0 or time.monotonic() > end:
                break
            time.sleep(0.05)
        self.assertEqual(rc, 0)
        carol = self.raw_connected(b, unique("c"), 5, username="carol", password="singer")
        self.assertIn(carol.publish("carol/x", b"1", qos=1).rc, (0, 0x10))
        self.assertEqual(carol.publish("alice/x", b"1", qos=1).rc, RC_NOT_AUTHORIZED)
        # a broken password file on reload: the old users stay
        write(b.path("passwd"), "this line has no colon\n")
        b.send_signal(signal.SIGHUP)
        b.wait_output("passwd:1")
        self.raw_connected(b, unique("c"), 4, username="carol", password="singer")


@unittest.skipUnless(MOSQUITTO_PASSWD, "needs mosquitto_passwd (mosquitto package)")
class PerListener(BrokerTest):
    def test_each_listener_its_own_files(self):
        """per_listener_settings true: each listener has its own password file and
        allow_anonymous."""
        b = self.start_broker(start=False, listener=False, allow_anonymous=None)
        p2 = free_port()
        make_passwd(b.path("p1"), {"one": "1111"})
        make_passwd(b.path("p2"), {"two": "2222"})
        b.lines += ["per_listener_settings true",
                    "listener %d %s" % (b.port, HOST), "allow_anonymous false",
                    "password_file %s" % b.path("p1"),
                    "listener %d %s" % (p2, HOST), "allow_anonymous true",
                    "password_file %s" % b.path("p2")]
        b.start()
        b.wait_listening(p2)
        self.raw_connected(b, unique("a"), 4, username="one", password="1111")
        self.assertEqual(self.raw(b, 4).connect(unique("a"), username="two", password="2222",
                                                expect_rc=None).rc, 5)
        self.assertEqual(self.raw(b, 4).connect(unique("a"), expect_rc=None).rc, 5)
        self.raw_connected(p2, unique("a"), 4, username="two", password="2222")
        self.raw_connected(p2, unique("a"), 4)  # anonymous allowed on the second
        self.assertEqual(self.raw(p2, 4).connect(unique("a"), username="one", password="1111",
                                                 expect_rc=None).rc, 5)


class BrokenFiles(BrokerTest):
    def refused(self, lines):
        b = self.start_broker(start=False)
        b.lines += lines(b)
        b.write_config()
        rc, out = run_broker_once(["-c", b.conf_path])
        self.assertNotEqual(rc, 0, out)
        return b, out

    @culex_only("mosquitto 2.0.11 skips a malformed line silently and starts")
    def test_malformed_password_line(self):
        def lines(b):
            write(b.path("pw"), "alice:$7$101$abc$def\nno colon here\n")
            return ["password_file %s" % b.path("pw")]
        b, out = self.refused(lines)
        self.assertIn(b.path("pw") + ":2", out)

    def test_malformed_acl_line(self):
        def lines(b):
            write(b.path("acl"), "user alice\ntopic sideways a/b\n")
            return ["acl_file %s" % b.path("acl")]
        b, out = self.refused(lines)
        self.assertIn(b.path("acl"), out)
        if IS_CULEX:
            self.assertIn(b.path("acl") + ":2", out)  # mosquitto names the file only

    def test_missing_password_file(self):
        b, out = self.refused(lambda b: ["password_file %s" % b.path("nope")])
        self.assertIn(b.path("nope"), out)

    @culex_only("plugin_opt_ checking of culex plugins")
    def test_unknown_plugin_option(self):
        def lines(b):
            write(b.path("pw"), "")
            return ["password_file %s" % b.path("pw")] if False else [
                "plugin %s" % os.path.join(os.path.dirname(os.path.dirname(
                    os.path.abspath(os.environ.get("CULEX_TEST_BROKER", "culex")))),
                    "plugins", "auth_file.so"),
                "plugin_opt_password_file %s" % b.path("pw"),
                "plugin_opt_frobnicate yes"]
        b, out = self.refused(lines)
        self.assertIn("frobnicate", out)


if __name__ == "__main__":
    unittest.main()
