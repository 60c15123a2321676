"""Tests for tools/culex_bench, the load generator, against the real culex binary.

Each scenario runs for about a second with small numbers at QoS 0, 1 and 2, and the --json
summary is checked: something received, nothing lost, no duplicates at QoS 2, nothing out of
order at QoS 1/2 (each (publisher, subscriber) pair is checked on its own, so this holds for
fan-in too), every message acknowledged, no connection errors. Rates are modest so that the
broker never has a reason to drop (the default queue limits stay far away), which keeps the
test about the generator's bookkeeping and not about overload policy.

Then the failure paths: a broker killed mid-run (culex_bench must stop by itself, exit 1 and
count the dropped connections), a port nobody listens on (exit 2), usage errors, and the
manual listing every option of --help. With the openssl command, TLS runs (a private CA, a
wrong CA, --insecure) against culex and, when installed, Debian's mosquitto.

Environment: CULEX_BENCH (the culex_bench binary), CULEX_BROKER (the culex binary),
CULEX_BENCH_MAN (tools/culex_bench.1); for the password test CULEX_PASSWD (culex_passwd) and
CULEX_AUTH_PLUGIN (the auth_file plugin, which culex loads for password_file). Standard library only; loopback only; every process
started here is stopped by its own PID.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
BENCH = os.environ.get("CULEX_BENCH", "")
BROKER = os.environ.get("CULEX_BROKER", "")
PASSWD = os.environ.get("CULEX_PASSWD", "")
AUTH_PLUGIN = os.environ.get("CULEX_AUTH_PLUGIN", "")  # password_file needs it built
MAN = os.environ.get("CULEX_BENCH_MAN", os.path.join(TOP, "tools", "culex_bench.1"))
MOSQUITTO = "/usr/sbin/mosquitto"
HOST = "127.0.0.1"
RUN_TIMEOUT = 60  # bound on one culex_bench run (sanitizer builds are slow)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_port(port, proc, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError("broker exited with %s before listening" % proc.returncode)
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("broker not listening on %d" % port)


class Broker:
    """A broker process with its own directory and config, stopped by PID."""

    def __init__(self, binary, lines, port=None):
        self.dir = tempfile.mkdtemp(prefix="culex-bench-test-")
        os.chmod(self.dir, 0o755)
        self.port = port or free_port()
        self.conf = os.path.join(self.dir, "broker.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(l.format(port=self.port, dir=self.dir) for l in lines) + "\n")
        self.log = open(os.path.join(self.dir, "broker.out"), "wb")
        self.proc = subprocess.Popen([binary, "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=self.dir, start_new_session=True)
        wait_port(self.port, self.proc)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.log.close()

    def output(self):
        with open(os.path.join(self.dir, "broker.out"), "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def culex_broker():
    return Broker(BROKER, ["workers 1", "listener {port} 127.0.0.1", "allow_anonymous true",
                           "max_queued_messages 100000"])


def bench(port, *args, timeout=RUN_TIMEOUT):
    """Runs culex_bench --json; returns (exit status, parsed summary or None, stderr)."""
    cmd = [BENCH, "--host", HOST, "--port", str(port), "--json", "--quiet"] + list(args)
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    out = p.stdout.decode()
    summary = json.loads(out) if out.strip() else None
    return p.returncode, summary, p.stderr.decode()


@unittest.skipUnless(BENCH and BROKER, "CULEX_BENCH and CULEX_BROKER must be set")
class Scenarios(unittest.TestCase):
    """Every scenario at every QoS against one culex."""

    @classmethod
    def setUpClass(cls):
        cls.broker = culex_broker()

    @classmethod
    def tearDownClass(cls):
        cls.broker.cleanup()

    def run_ok(self, *args):
        rc, s, err = bench(self.broker.port, *args)
        self.assertIsNotNone(s, "no JSON; stderr: %s" % err)
        self.assertEqual(rc, 0, "exit %d: %s\n%s" % (rc, json.dumps(s), err))
        errors = s["connections"]["errors"]
        self.assertEqual(sum(errors.values()), 0, json.dumps(s["connections"]))
        self.assertEqual(s["connections"]["dropped"], 0)
        self.assertEqual(s["connections"]["failed"], 0)
        return s

    def check_messages(self, s, qos, subscribers_per_pub):
        m = s["messages"]
        ctx = json.dumps(s)
        self.assertGreater(m["sent"], 0, ctx)
        self.assertGreater(m["received"], 0, ctx)
        self.assertEqual(m["expected"], m["sent"] * subscribers_per_pub, ctx)
        self.assertEqual(m["lost"], 0, ctx)
        self.assertEqual(m["unexpected"], 0, ctx)
        self.assertEqual(s["drain_ended_by"], "complete", ctx)
        self.assertEqual(m["received"], m["expected"] + m["duplicated"], ctx)
        if qos >= 1:
            self.assertEqual(m["out_of_order"], 0, ctx)
            self.assertEqual(m["acked"], m["sent"], ctx)
            self.assertEqual(m["unacked"], 0, ctx)
            self.assertEqual(m["granted_qos_min"], qos, ctx)
        if qos == 2:
            self.assertEqual(m["duplicated"], 0, ctx)
        lat = s["latency_us"]
        self.assertEqual(lat["count"], m["received"] - m["duplicated"], ctx)
        self.assertTrue(0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"],
                        ctx)
        self.assertGreater(s["rates"]["sent_per_s"], 0)
        self.assertGreater(s["rates"]["received_per_s"], 0)
        cpu = s["cpu"]
        self.assertGreater(cpu["wall_s"], 0)
        self.assertGreaterEqual(cpu["user_s"] + cpu["sys_s"], 0)

    def test_fan_in(self):
        for qos in (0, 1, 2):
            with self.subTest(qos=qos):
                s = self.run_ok("fan-in", "--publishers", "4", "--subscribers", "1",
                                "--qos", str(qos), "--rate", "4000", "--duration", "1")
                self.assertEqual(s["ended_by"], "duration")
                self.assertEqual(s["connections"]["connected"], 5)
                self.check_messages(s, qos, 1)

    def test_fan_out(self):
        for qos in (0, 1, 2):
            with self.subTest(qos=qos):
                s = self.run_ok("fan-out", "--subscribers", "20", "--qos", str(qos),
                                "--rate", "500", "--duration", "1")
                self.assertEqual(s["connections"]["connected"], 21)
                self.check_messages(s, qos, 20)

    def test_pairs(self):
        for qos in (0, 1, 2):
            with self.subTest(qos=qos):
                s = self.run_ok("pairs", "--pairs", "5", "--qos", str(qos), "--rate", "5000",
                                "--duration", "1")
                self.assertEqual(s["connections"]["connected"], 10)
                self.check_messages(s, qos, 1)

    def test_pairs_mqtt5_two_threads(self):
        for qos in (1, 2):
            with self.subTest(qos=qos):
                s = self.run_ok("pairs", "--pairs", "6", "--qos", str(qos), "-V", "5",
                                "--threads", "2", "--rate", "4000", "--duration", "1")
                self.assertEqual(s["mqtt"], "5")
                self.check_messages(s, qos, 1)

    def test_count_flat_out(self):
        # Flat out with a small window: the inflight limit is what holds the publishers.
        s = self.run_ok("fan-in", "--publishers", "3", "--qos", "1", "--count", "3001",
                        "--inflight", "10")
        self.assertEqual(s["ended_by"], "count")
        self.assertEqual(s["messages"]["sent"], 3001)
        self.check_messages(s, 1, 1)

    def test_connections(self):
        s = self.run_ok("connections", "--connections", "200", "--duration", "1",
                        "--connect-rate", "2000")
        self.assertEqual(s["ended_by"], "duration")
        self.assertEqual(s["connections"]["connected"], 200)
        self.assertGreater(s["connections"]["connect_rate"], 0)
        # Paced at 2000/s, 200 connections take about 0.1 s.
        self.assertLess(s["connections"]["connect_rate"], 4000)
        self.assertGreaterEqual(s["run_s"], 0.9)

    def test_many_connections_bind_their_own_ports(self):
        # From 2048 connections to a loopback broker, source ports are chosen by
        # culex_bench (automatic --source-addresses).
        s = self.run_ok("connections", "--connections", "2500", "--duration", "0.3")
        self.assertEqual(s["connections"]["connected"], 2500)

    def test_source_addresses(self):
        s = self.run_ok("connections", "--connections", "20", "--duration", "0.2",
                        "--source-addresses", "3")
        self.assertEqual(s["connections"]["connected"], 20)


@unittest.skipUnless(BENCH and BROKER and os.access(PASSWD, os.X_OK) and
                     os.path.exists(AUTH_PLUGIN), "needs culex_passwd and the auth_file plugin")
class Passwords(unittest.TestCase):
    """--username/--password against a broker with a password file."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="culex-bench-pw-")
        cls.pwfile = os.path.join(cls.dir, "passwd")
        subprocess.run([PASSWD, "-c", "-b", cls.pwfile, "bench", "s3cret"], check=True,
                       timeout=30, stdout=subprocess.DEVNULL)
        # Started as root, culex (like mosquitto) drops its privileges before reading it.
        os.chmod(cls.dir, 0o755)
        os.chmod(cls.pwfile, 0o644)
        cls.broker = Broker(BROKER, ["workers 1", "listener {port} 127.0.0.1",
                                     "allow_anonymous false", "password_file " + cls.pwfile])

    @classmethod
    def tearDownClass(cls):
        cls.broker.cleanup()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_right_password(self):
        for version in ("3.1.1", "5"):
            with self.subTest(version=version):
                rc, s, err = bench(self.broker.port, "pairs", "--pairs", "2", "--qos", "1",
                                   "-u", "bench", "-P", "s3cret", "-V", version,
                                   "--rate", "500", "--duration", "0.5")
                self.assertEqual(rc, 0, err + json.dumps(s))
                self.assertGreater(s["messages"]["received"], 0)
                self.assertEqual(s["messages"]["lost"], 0)

    def test_wrong_password_is_counted(self):
        for version in ("3.1.1", "5"):
            with self.subTest(version=version):
                rc, s, err = bench(self.broker.port, "connections", "--connections", "5",
                                   "-u", "bench", "-P", "wrong", "-V", version,
                                   "--duration", "0.2")
                self.assertEqual(rc, 2, err)
                self.assertEqual(s["connections"]["errors"]["connack_refused"], 5)
                self.assertIn("CONNACK refused", s["connections"]["first_error"])


@unittest.skipUnless(BENCH and BROKER, "CULEX_BENCH and CULEX_BROKER must be set")
class Failures(unittest.TestCase):

    def test_broker_killed_mid_run(self):
        broker = culex_broker()
        self.addCleanup(broker.cleanup)
        cmd = [BENCH, "--host", HOST, "--port", str(broker.port), "--json", "--quiet",
               "pairs", "--pairs", "5", "--qos", "1", "--rate", "2000", "--duration", "30"]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            time.sleep(1.5)
            broker.kill()
            killed = time.monotonic()
            out, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertLess(time.monotonic() - killed, 15, "culex_bench did not stop by itself")
        self.assertEqual(p.returncode, 1, err.decode())
        s = json.loads(out.decode())
        self.assertIn(s["ended_by"], ("publishers lost", "subscribers lost"))
        self.assertEqual(s["drain_ended_by"], "complete")  # nothing more could arrive
        self.assertEqual(s["connections"]["dropped"], 10, json.dumps(s))
        self.assertEqual(s["connections"]["errors"]["closed_by_broker"], 10, json.dumps(s))
        self.assertRegex(s["connections"]["first_error"], "closed by the broker|reset by peer")
        self.assertGreater(s["messages"]["received"], 0)
        self.assertLess(s["run_s"], 10)

    def test_nobody_listening(self):
        rc, s, err = bench(free_port(), "fan-in", "--publishers", "2", "--duration", "1",
                           "--connect-timeout", "2")
        self.assertEqual(rc, 2, err)
        self.assertEqual(s["connections"]["connected"], 0)
        self.assertEqual(s["ended_by"], "no subscriber")
        self.assertGreater(s["connections"]["errors"]["connect"], 0)
        self.assertIn("refused", s["connections"]["first_error"])

    def test_silent_broker_times_out(self):
        # A listener that accepts and never answers: every CONNECT times out, and the run
        # ends by itself after --connect-timeout.
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(srv.close)
        srv.bind((HOST, 0))
        srv.listen(64)
        start = time.monotonic()
        rc, s, err = bench(srv.getsockname()[1], "pairs", "--pairs", "2", "--duration", "1",
                           "--connect-timeout", "1")
        self.assertLess(time.monotonic() - start, 10)
        self.assertEqual(rc, 2, err)
        self.assertEqual(s["ended_by"], "no subscriber")
        self.assertEqual(s["connections"]["errors"]["timeout"], 2, json.dumps(s))
        self.assertIn("no CONNACK", s["connections"]["first_error"])

    def test_usage_errors(self):
        for args in (["bogus"], [], ["fan-in", "--qos", "3"], ["fan-out", "--publishers", "2"],
                     ["pairs", "--payload", "10"], ["connections", "--count", "5"],
                     ["fan-in", "--cafile", "x"], ["fan-in", "--duration", "0"]):
            with self.subTest(args=args):
                p = subprocess.run([BENCH] + args, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=10)
                self.assertEqual(p.returncode, 2, p.stderr.decode())
                self.assertIn(b"culex_bench", p.stderr)

    def test_help_and_manual_agree(self):
        p = subprocess.run([BENCH, "--help"], stdout=subprocess.PIPE, timeout=10)
        self.assertEqual(p.returncode, 0)
        helptext = p.stdout.decode()
        with open(MAN) as f:
            man = f.read()
        self.assertIn(".TH CULEX_BENCH 1", man)
        options = sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", helptext)))
        self.assertGreater(len(options), 25)
        missing = [o for o in options if o.replace("-", "\\-") not in man]
        self.assertEqual(missing, [], "options of --help missing from culex_bench.1")


def make_certs(d):
    """A CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA."""
    def ssl(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=culex-bench CA")
    ssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    ssl("req", "-x509", *ec, "-keyout", "other.key", "-out", "other.crt", "-days", "2",
        "-subj", "/CN=other")
    ssl("req", *ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=bench")
    ssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "client.crt", "-days", "2")
    for name in os.listdir(d):
        os.chmod(os.path.join(d, name), 0o644)


class TlsBase:
    """--tls, --cafile and --insecure against a broker with a TLS listener."""
    binary = None
    extra = []

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="culex-bench-tls-")
        os.chmod(cls.dir, 0o755)
        make_certs(cls.dir)
        d = cls.dir
        cls.broker = Broker(cls.binary, cls.extra + [
            "listener {port} 127.0.0.1", "allow_anonymous true",
            "cafile %s/ca.crt" % d, "certfile %s/server.crt" % d, "keyfile %s/server.key" % d,
            "max_queued_messages 100000"])
        cls.strict = Broker(cls.binary, cls.extra + [
            "listener {port} 127.0.0.1", "allow_anonymous true", "require_certificate true",
            "cafile %s/ca.crt" % d, "certfile %s/server.crt" % d, "keyfile %s/server.key" % d])

    @classmethod
    def tearDownClass(cls):
        cls.broker.cleanup()
        cls.strict.cleanup()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_client_certificate(self):
        ca = os.path.join(self.dir, "ca.crt")
        rc, s, err = bench(self.strict.port, "pairs", "--pairs", "2", "--qos", "1", "--tls",
                           "--cafile", ca, "--cert", os.path.join(self.dir, "client.crt"),
                           "--key", os.path.join(self.dir, "client.key"), "--rate", "500",
                           "--duration", "0.5")
        self.assertEqual(rc, 0, err + json.dumps(s))
        self.assertGreater(s["messages"]["received"], 0)
        # Without a certificate the broker refuses the handshake (TLS 1.3 may report it
        # only at the first read, as a closed connection).
        rc, s, err = bench(self.strict.port, "pairs", "--pairs", "1", "--tls", "--cafile", ca,
                           "--duration", "0.5", "--connect-timeout", "3")
        self.assertEqual(rc, 2, err + json.dumps(s))
        self.assertEqual(s["connections"]["connected"], 0, json.dumps(s))

    def test_verified(self):
        rc, s, err = bench(self.broker.port, "pairs", "--pairs", "3", "--qos", "1", "--tls",
                           "--cafile", os.path.join(self.dir, "ca.crt"), "--rate", "1000",
                           "--duration", "1")
        self.assertEqual(rc, 0, err + json.dumps(s))
        self.assertTrue(s["tls"])
        self.assertEqual(s["messages"]["lost"], 0)
        self.assertGreater(s["messages"]["received"], 0)

    def test_wrong_ca_fails_insecure_works(self):
        rc, s, err = bench(self.broker.port, "pairs", "--pairs", "1", "--tls", "--cafile",
                           os.path.join(self.dir, "other.crt"), "--duration", "0.5")
        self.assertEqual(rc, 2, err)
        self.assertGreater(s["connections"]["errors"]["tls"], 0, json.dumps(s))
        self.assertIn("certificate", s["connections"]["first_error"])
        rc, s, err = bench(self.broker.port, "pairs", "--pairs", "1", "--tls", "--insecure",
                           "--qos", "2", "--rate", "500", "--duration", "0.5")
        self.assertEqual(rc, 0, err + json.dumps(s))
        self.assertEqual(s["messages"]["lost"], 0)
        self.assertGreater(s["messages"]["received"], 0)


HAVE_OPENSSL = shutil.which("openssl") is not None


@unittest.skipUnless(BENCH and BROKER and HAVE_OPENSSL, "needs culex and openssl")
class TlsCulex(TlsBase, unittest.TestCase):
    binary = BROKER
    extra = ["workers 1"]


@unittest.skipUnless(BENCH and os.access(MOSQUITTO, os.X_OK) and HAVE_OPENSSL,
                     "needs Debian's mosquitto and openssl")
class TlsMosquitto(TlsBase, unittest.TestCase):
    binary = MOSQUITTO
    # Started as root, mosquitto would switch to the mosquitto user.
    extra = ["user root"] if os.geteuid() == 0 else []


if __name__ == "__main__":
    unittest.main()
