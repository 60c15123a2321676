"""TLS keys in an OpenSSL engine: `tls_engine pkcs11`, `tls_keyform engine` and a PKCS#11 URI
as `keyfile`, against a real token (SoftHSM 2) through libp11's pkcs11 engine; reload; and
the refusals (unknown engine, key the token has not, wrong or missing PIN,
tls_engine_kpass_sha1 with an engine that cannot take it, bad settings).

The module makes a throwaway SoftHSM token in a temp dir (SOFTHSM2_CONF points to a config
with its own tokendir) and imports the keys of tlsutil.Certs into it. The broker inherits
SOFTHSM2_CONF and PKCS11_MODULE_PATH (libp11 loads that PKCS#11 module rather than
p11-kit-proxy). Needs softhsm2, libengine-pkcs11-openssl and opensc (scripts/install-deps.sh
--test); skipped, saying which is missing, without them.
"""

import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import unittest

from harness import (BrokerTest, IS_CULEX, TIMEOUT, culex_only, free_port, run_broker_once,
                     unique)
from tlsutil import Certs, run_tool, tls_socket

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SOFTHSM_UTIL = "/usr/bin/softhsm2-util"
PIN = "4321"
TOKEN = "culex-test"

CERTS = None
_DIR = None
_ENV_SAVED = {}


def _engines_dir():
    out = subprocess.run(["/usr/bin/openssl", "version", "-e"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, timeout=30).stdout.decode()
    # ENGINESDIR: "/usr/lib/x86_64-linux-gnu/engines-3"
    return out.split('"')[1] if '"' in out else ""


def _missing():
    if not os.path.exists(SOFTHSM_MODULE) or not os.access(SOFTHSM_UTIL, os.X_OK):
        return "SoftHSM 2 (Debian package softhsm2)"
    if not os.path.exists(os.path.join(_engines_dir(), "pkcs11.so")):
        return "libp11's pkcs11 engine (Debian package libengine-pkcs11-openssl)"
    return None


def _run(args):
    p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(args), p.stdout.decode("utf-8", "replace")))


def setUpModule():
    global CERTS, _DIR
    missing = _missing()
    if missing:
        raise unittest.SkipTest("needs %s: scripts/install-deps.sh --test installs it" % missing)
    _DIR = tempfile.mkdtemp(prefix="culex-engine-")
    CERTS = Certs(os.path.join(_DIR, "certs"))
    tokens = os.path.join(_DIR, "tokens")
    os.makedirs(tokens)
    conf = os.path.join(_DIR, "softhsm2.conf")
    with open(conf, "w") as f:
        f.write("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
                % tokens)
    # Under ASan: libp11's own leaks (lsan-libp11.supp says which and why), matched on full
    # stacks since libcrypto has no frame pointers.
    supp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lsan-libp11.supp")
    env = {"SOFTHSM2_CONF": conf, "PKCS11_MODULE_PATH": SOFTHSM_MODULE,
           "LSAN_OPTIONS": ":".join(filter(None, [os.environ.get("LSAN_OPTIONS"),
                                                  "suppressions=" + supp])),
           "ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                  "fast_unwind_on_malloc=0"]))}
    for k, v in env.items():
        _ENV_SAVED[k] = os.environ.get(k)
        os.environ[k] = v
    _run([SOFTHSM_UTIL, "--init-token", "--free", "--label", TOKEN, "--pin", PIN,
          "--so-pin", "87654321"])
    # Certs writes PKCS#8 keys (openssl req -nodes), which softhsm2-util imports as they are.
    for obj, ident in (("server", "01"), ("server2", "02")):
        _run([SOFTHSM_UTIL, "--import", CERTS.path(obj + ".key"), "--token", TOKEN,
              "--label", obj, "--id", ident, "--pin", PIN])
    with open(os.path.join(_DIR, "pin"), "w") as f:
        f.write(PIN)
    with open(os.path.join(_DIR, "wrong-pin"), "w") as f:
        f.write("1111")
    # A broker started as root drops privileges, and SoftHSM re-reads (and locks) the token
    # files on every signature: its user must be able to.
    for root, dirs, files in os.walk(_DIR):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o777)
        for n in files:
            os.chmod(os.path.join(root, n), 0o666)
    os.chmod(_DIR, 0o755)


def tearDownModule():
    for k, v in _ENV_SAVED.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if _DIR:
        shutil.rmtree(_DIR, ignore_errors=True)


def key_uri(obj="server", pin_file="pin"):
    uri = "pkcs11:token=%s;object=%s;type=private" % (TOKEN, obj)
    if pin_file:
        uri += "?pin-source=file:" + os.path.join(_DIR, pin_file)
    return uri


def engine_lines(obj="server", cert=None, pin_file="pin"):
    return ["certfile " + CERTS.path((cert or obj) + ".crt"), "tls_engine pkcs11",
            "tls_keyform engine", "keyfile " + key_uri(obj, pin_file)]


def server_cert_der(name):
    with open(CERTS.path(name + ".crt")) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class EngineKey(BrokerTest):

    def tls_paho(self, broker, **kw):
        return self.paho(broker, unique("eng"), tls_context=CERTS.context(), **kw)

    def test_pubsub_with_token_key(self):
        """The server key never leaves the token: the handshake is signed by SoftHSM through
        the pkcs11 engine; mosquitto_pub and paho (TLS 1.2 and 1.3) exchange messages."""
        b = self.start_broker(engine_lines())
        for ver in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            s = tls_socket(b.port, CERTS.context(version=ver))
            self.assertEqual(s.getpeercert(binary_form=True), server_cert_der("server"))
            s.close()
        sub = self.tls_paho(b)
        topic = unique("engine/")
        sub.subscribe(topic, 1)
        rc, out = run_tool(["mosquitto_pub", "-h", "localhost", "-p", str(b.port), "--cafile",
                            CERTS.path("ca.crt"), "-t", topic, "-m", "signed by the token",
                            "-q", "1"])
        self.assertEqual(rc, 0, out)
        self.assertEqual(sub.expect_message(topic).payload, b"signed by the token")

    def test_mosquitto_sub_receives(self):
        b = self.start_broker(engine_lines())
        topic = unique("engine/")
        sub = subprocess.Popen(["mosquitto_sub", "-h", "localhost", "-p", str(b.port),
                                "--cafile", CERTS.path("ca.crt"), "-t", topic, "-C", "1",
                                "-W", "10"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
        self.addCleanup(lambda: sub.poll() is None and os.kill(sub.pid, signal.SIGKILL))
        self.assertTrue(b.wait_output("New client connected"), b.output())
        pub = self.tls_paho(b)
        pub.publish(topic, b"to mosquitto_sub", qos=1)
        out, _ = sub.communicate(timeout=TIMEOUT * 2)
        self.assertEqual(sub.returncode, 0, out)
        self.assertEqual(out.strip(), b"to mosquitto_sub")

    def test_parallel_handshakes(self):
        """Handshakes on every worker at once all sign through the one engine key."""
        b = self.start_broker(engine_lines())
        errors = []

        def one():
            try:
                for _ in range(4):
                    s = tls_socket(b.port, CERTS.context())
                    s.close()
            except Exception as e:   # reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT * 4)
        self.assertEqual(errors, [])
        self.tls_paho(b)

    def test_engine_with_pem_key(self):
        """tls_engine without tls_keyform engine: the engine is loaded (as an accelerator)
        and the key is still the PEM file."""
        b = self.start_broker(["certfile " + CERTS.path("server.crt"),
                               "keyfile " + CERTS.path("server.key"), "tls_engine pkcs11"])
        self.tls_paho(b)

    def test_reload_takes_the_new_token_key(self):
        """SIGHUP builds a new context: the engine loads the key named by the new keyfile
        URI; connected clients keep theirs. A key the token has not keeps the previous
        context."""
        b = self.start_broker(engine_lines("server"))
        old = self.tls_paho(b)
        b.lines = engine_lines("server2")
        b.write_config()
        b.send_signal(signal.SIGHUP)
        if not IS_CULEX:
            return
        self.assertTrue(b.wait_output("uses the reloaded TLS certificates"), b.output())
        s = tls_socket(b.port, CERTS.context())
        self.assertEqual(s.getpeercert(binary_form=True), server_cert_der("server2"))
        s.close()
        topic = unique("reload/")
        old.subscribe(topic)
        old.publish(topic, b"still here", qos=1)
        self.assertEqual(old.expect_message(topic).payload, b"still here")
        b.lines = engine_lines("nosuchkey", cert="server")
        b.write_config()
        b.send_signal(signal.SIGHUP)
        self.assertTrue(b.wait_output("keeps its previous TLS settings"), b.output())
        self.assertIn("engine pkcs11 cannot load this key", b.output())
        s = tls_socket(b.port, CERTS.context())
        self.assertEqual(s.getpeercert(binary_form=True), server_cert_der("server2"))
        s.close()


class EngineConfigErrors(BrokerTest):

    def refused(self, lines, *needles):
        """culex exits non-zero at start, naming the file, line and the reason; under ASan
        nothing leaks on that path."""
        d = tempfile.mkdtemp(prefix="culex-engconf-")
        self.addCleanup(shutil.rmtree, d, True)
        conf = os.path.join(d, "c.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\n" % free_port())
            f.write("\n".join(lines) + "\n")
        rc, out = run_broker_once(["-c", conf])
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, r"c\.conf:\d+: ")
        for n in needles:
            self.assertIn(n, out)
        self.assertNotIn("Sanitizer", out)
        return out

    @culex_only("culex's messages")
    def test_unknown_engine(self):
        self.refused(engine_lines()[:1] + ["tls_engine nosuchengine", "tls_keyform engine",
                                           "keyfile " + key_uri()],
                     "c.conf:1: listener: TLS: tls_engine nosuchengine: cannot load this "
                     "OpenSSL engine")

    @culex_only("culex's messages")
    def test_engine_that_fails_to_init(self):
        """OpenSSL's padlock engine loads but cannot initialise on a CPU without VIA
        PadLock (`openssl engine -t padlock` says "unavailable")."""
        p = subprocess.run(["/usr/bin/openssl", "engine", "-t", "padlock"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        if b"[ unavailable ]" not in p.stdout:
            self.skipTest("padlock initialises on this CPU: %r" % p.stdout)
        self.refused(engine_lines()[:1] + ["tls_engine padlock", "tls_keyform engine",
                                           "keyfile " + key_uri()],
                     "c.conf:1: listener: TLS: tls_engine padlock: the engine failed to "
                     "initialise")

    @culex_only("culex's messages")
    def test_pkcs11_module_missing(self):
        """libp11 loads its PKCS#11 module on first use, not in ENGINE_init: a module that
        does not load shows when the key is loaded."""
        saved = os.environ["PKCS11_MODULE_PATH"]
        os.environ["PKCS11_MODULE_PATH"] = "/nonexistent/libnothing.so"
        self.addCleanup(os.environ.__setitem__, "PKCS11_MODULE_PATH", saved)
        self.refused(engine_lines(), "c.conf:1: listener: TLS: keyfile pkcs11:",
                     "engine pkcs11 cannot load this key")

    @culex_only("culex's messages")
    def test_key_not_in_token(self):
        self.refused(engine_lines("nosuchkey", cert="server"),
                     "c.conf:1: listener: TLS: keyfile pkcs11:token=%s;object=nosuchkey" % TOKEN,
                     "engine pkcs11 cannot load this key")

    @culex_only("culex's messages")
    def test_wrong_or_missing_pin(self):
        """A wrong PIN fails the login; without a PIN the engine would ask, and culex never
        lets it prompt (no terminal): both fail at start instead of hanging."""
        self.refused(engine_lines(pin_file="wrong-pin"), "engine pkcs11 cannot load this key")
        self.refused(engine_lines(pin_file=None), "engine pkcs11 cannot load this key")

    @culex_only("culex's messages")
    def test_kpass_sha1_with_pkcs11(self):
        """pkcs11 has no SECRET_MODE control, so it cannot take a password's SHA-1 (Mosquitto
        2.0.11 fails here too: 'Unable to set engine secret mode sha'): refused, saying how
        to give the PIN instead. The hash is never passed as a PIN."""
        self.refused(engine_lines() + ["tls_engine_kpass_sha1 "
                                       "7110eda4d09e062aa5e4a390b0a572ac0d2c0220"],
                     "tls_engine_kpass_sha1: engine pkcs11 has no SECRET_MODE control",
                     "pin-source=file:")

    @culex_only("culex's messages")
    def test_bad_settings(self):
        self.refused(["certfile " + CERTS.path("server.crt"), "tls_keyform engine",
                      "keyfile " + key_uri()],
                     "c.conf:1: listener: tls_keyform engine needs tls_engine")
        self.refused(engine_lines() + ["tls_engine_kpass_sha1 7110eda4"],
                     "c.conf:6: tls_engine_kpass_sha1: expected 40 hexadecimal digits")
        self.refused(engine_lines() + ["tls_engine_kpass_sha1 "
                                       "7110eda4d09e062aa5e4a390b0a572ac0d2c022z"],
                     "expected 40 hexadecimal digits")
        self.refused(["certfile " + CERTS.path("server.crt"), "tls_engine pkcs11",
                      "tls_keyform der", "keyfile " + key_uri()],
                     "c.conf:4: tls_keyform: invalid value 'der' (expected pem or engine)")


if __name__ == "__main__":
    unittest.main()
