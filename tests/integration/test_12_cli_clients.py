"""Interoperability with Mosquitto's own command-line clients, mosquitto_pub and
mosquitto_sub (Debian mosquitto-clients): MQTT 5, 3.1.1 and 3.1 round trips, retained
messages, QoS 2, v5 properties, wills and persistent sessions."""

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
import unittest

from harness import BrokerTest, HOST, TIMEOUT, unique

MOSQUITTO_PUB = shutil.which("mosquitto_pub")
MOSQUITTO_SUB = shutil.which("mosquitto_sub")
STDBUF = shutil.which("stdbuf")
FORMAT = "MSG %t|%q|%r|%p"


class Sub:
    """A mosquitto_sub process (line-buffered through stdbuf, -d for the SUBACK line) whose
    output is read by a thread. Stopped by its own PID."""

    def __init__(self, test, port, args, fmt=FORMAT):
        cmd = [STDBUF, "-oL", MOSQUITTO_SUB, "-h", HOST, "-p", str(port), "-d", "-F", fmt]
        self.proc = subprocess.Popen(cmd + list(args), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.lines = queue.Queue()
        self.seen = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        test.addCleanup(self.stop)
        self.test = test

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def wait_line(self, predicate, timeout=TIMEOUT, what="line"):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                self.test.fail("mosquitto_sub: no %s within %.0f s; output so far: %r"
                               % (what, timeout, self.seen))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.test.fail("mosquitto_sub exited (%s) before %s; output: %r"
                               % (self.proc.wait(), what, self.seen))
            self.seen.append(line)
            if predicate(line):
                return line

    def wait_subscribed(self):
        self.wait_line(lambda l: "received SUBACK" in l, what="SUBACK")

    def message(self, timeout=TIMEOUT):
        """The next formatted message line, without the 'MSG ' prefix."""
        return self.wait_line(lambda l: l.startswith("MSG "), timeout, "message")[4:]

    def wait_exit(self, timeout=TIMEOUT):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.test.fail("mosquitto_sub did not exit within %.0f s" % timeout)

    def stop(self, sig=signal.SIGTERM):
        """Stop by PID; a client that ignores SIGTERM for 1 s is killed."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(1.0)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc.stdout.close()


@unittest.skipUnless(MOSQUITTO_PUB and MOSQUITTO_SUB and STDBUF,
                     "mosquitto_pub, mosquitto_sub and stdbuf are needed")
class CommandLineClients(BrokerTest):

    def setUp(self):
        self.broker = self.start_broker()

    def pub(self, *args, stdin=None):
        """Run mosquitto_pub to completion (bounded) and check it succeeded."""
        cmd = [MOSQUITTO_PUB, "-h", HOST, "-p", str(self.broker.port)] + list(args)
        try:
            r = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("mosquitto_pub %s did not finish" % " ".join(args))
        self.assertEqual(r.returncode, 0, r.stdout)
        return r.stdout

    def sub(self, *args, fmt=FORMAT):
        return Sub(self, self.broker.port, args, fmt)

    def roundtrip(self, version):
        t = unique("cli/")
        s = self.sub("-V", version, "-t", t, "-q", "1", "-C", "1")
        s.wait_subscribed()
        self.pub("-V", version, "-t", t, "-m", "hello " + version, "-q", "1")
        self.assertEqual(s.message(), "%s|1|0|hello %s" % (t, version))
        self.assertEqual(s.wait_exit(), 0)

    def test_roundtrip_v5(self):
        """mosquitto_pub -V mqttv5 to mosquitto_sub -V mqttv5 at QoS 1."""
        self.roundtrip("mqttv5")

    def test_roundtrip_v311(self):
        """mosquitto_pub -V mqttv311 to mosquitto_sub -V mqttv311 at QoS 1."""
        self.roundtrip("mqttv311")

    def test_roundtrip_v31(self):
        """mosquitto_pub -V mqttv31 to mosquitto_sub -V mqttv31 at QoS 1."""
        self.roundtrip("mqttv31")

    def test_mixed_versions(self):
        """A v3.1 publisher reaches v3.1.1 and v5 subscribers."""
        t = unique("mixed/")
        subs = [self.sub("-V", v, "-t", t, "-C", "1") for v in ("mqttv311", "mqttv5")]
        for s in subs:
            s.wait_subscribed()
        self.pub("-V", "mqttv31", "-t", t, "-m", "to everyone")
        for s in subs:
            self.assertEqual(s.message(), "%s|0|0|to everyone" % t)
            self.assertEqual(s.wait_exit(), 0)

    def test_qos2(self):
        """mosquitto_pub -q 2 to mosquitto_sub -q 2: delivered once at QoS 2."""
        t = unique("cliq2/")
        s = self.sub("-V", "mqttv5", "-t", t, "-q", "2", "-C", "2")
        s.wait_subscribed()
        self.pub("-V", "mqttv5", "-t", t, "-m", "exactly once", "-q", "2")
        self.pub("-V", "mqttv311", "-t", t, "-m", "second", "-q", "2")
        self.assertEqual(s.message(), "%s|2|0|exactly once" % t)
        self.assertEqual(s.message(), "%s|2|0|second" % t)
        self.assertEqual(s.wait_exit(), 0)

    def test_retained(self):
        """mosquitto_pub -r stores a retained message that a later mosquitto_sub receives
        with the retain flag set."""
        t = unique("cliret/")
        self.pub("-t", t, "-m", "kept", "-r", "-q", "1")
        s = self.sub("-V", "mqttv5", "-t", t, "-C", "1")
        self.assertEqual(s.message(), "%s|0|1|kept" % t)
        self.assertEqual(s.wait_exit(), 0)

    def test_retained_cleared_with_null(self):
        """mosquitto_pub -r -n (empty retained payload) clears the retained message."""
        base = unique("clicl")
        self.pub("-t", base + "/x", "-m", "old", "-r")
        self.pub("-t", base + "/x", "-n", "-r")
        self.pub("-t", base + "/z", "-m", "marker", "-r")
        s = self.raw_connected(self.broker, unique("check"), 5)
        s.subscribe(base + "/#", qos=0)
        self.assertEqual(s.recv_publish().topic, base + "/z")
        s.expect_nothing(0.1)

    def test_v5_properties(self):
        """v5 properties given with mosquitto_pub -D (user property, content type, response
        topic) reach mosquitto_sub unchanged ([MQTT-3.3.2-15], [MQTT-3.3.2-17],
        [MQTT-3.3.2-20])."""
        t = unique("cliprops/")
        s = self.sub("-V", "mqttv5", "-t", t, "-C", "1", fmt="MSG %C|%R|%P|%p")
        s.wait_subscribed()
        self.pub("-V", "mqttv5", "-t", t, "-m", "body",
                 "-D", "publish", "user-property", "colour", "blue",
                 "-D", "publish", "content-type", "text/plain",
                 "-D", "publish", "response-topic", "reply/here")
        self.assertEqual(s.message(), "text/plain|reply/here|colour:blue|body")
        self.assertEqual(s.wait_exit(), 0)

    def test_lines_from_stdin(self):
        """mosquitto_pub -l sends one message per input line, in order."""
        t = unique("clilines/")
        s = self.sub("-t", t, "-q", "1", "-C", "5")
        s.wait_subscribed()
        self.pub("-t", t, "-l", "-q", "1", stdin=b"".join(b"line %d\n" % i for i in range(5)))
        self.assertEqual([s.message() for _ in range(5)],
                         ["%s|1|0|line %d" % (t, i) for i in range(5)])
        self.assertEqual(s.wait_exit(), 0)

    def test_file_payload(self):
        """mosquitto_pub -f sends a binary file as the payload, byte for byte."""
        t = unique("clifile/")
        data = os.urandom(20000)
        path = self.broker.path("payload.bin")
        with open(path, "wb") as f:
            f.write(data)
        s = self.raw_connected(self.broker, unique("s"), 4)
        s.subscribe(t, qos=1)
        self.pub("-t", t, "-f", path, "-q", "1")
        self.assertEqual(s.recv_publish().payload, data)

    def test_wildcards_and_several_topics(self):
        """mosquitto_sub with several -t filters (with + and #) gets exactly the matching
        messages."""
        base = unique("cliwild")
        s = self.sub("-t", base + "/+/x", "-t", base + "/deep/#", "-C", "4")
        s.wait_subscribed()        # one SUBSCRIBE carries both filters
        for topic in ("/a/x", "/a/y", "/deep", "/deep/1/2", "/b/x"):
            self.pub("-t", base + topic, "-m", topic)
        got = sorted(s.message().split("|")[0] for _ in range(4))
        self.assertEqual(got, sorted([base + "/a/x", base + "/deep", base + "/deep/1/2",
                                      base + "/b/x"]))
        self.assertEqual(s.wait_exit(), 0)

    def test_will_from_mosquitto_sub(self):
        """A mosquitto_sub with --will-topic that dies without DISCONNECT has its will
        published ([MQTT-3.1.2-8])."""
        t = unique("cliwill/")
        w = self.raw_connected(self.broker, unique("w"), 5)
        w.subscribe(t, qos=1)
        s = self.sub("-t", unique("any/"), "--will-topic", t, "--will-payload", "sub died",
                     "--will-qos", "1")
        s.wait_subscribed()
        s.stop(sig=signal.SIGKILL)
        self.assertEqual(w.recv_publish().payload, b"sub died")

    def test_persistent_session(self):
        """mosquitto_sub -c -i ID keeps its session: a QoS 1 message published while it is
        away is delivered when it comes back."""
        t, cid = unique("clisess/"), unique("clisub")
        s = self.sub("-V", "mqttv311", "-c", "-i", cid, "-q", "1", "-t", t, "-E")
        s.wait_subscribed()
        self.assertEqual(s.wait_exit(), 0)     # -E: disconnects once subscribed
        self.pub("-t", t, "-m", "while away", "-q", "1")
        s = self.sub("-V", "mqttv311", "-c", "-i", cid, "-q", "1", "-t", t, "-C", "1")
        self.assertEqual(s.message(), "%s|1|0|while away" % t)
        self.assertEqual(s.wait_exit(), 0)


if __name__ == "__main__":
    unittest.main()
