"""Helpers for the fault and random-client tests (test_20_faults.py, test_21_random_clients.py).

* `Bystander`: a well-behaved pair of connections (one publisher, one QoS 1 subscriber on
  its own topic) that keeps exchanging messages in a thread while a test inflicts a fault
  on the broker, and records every round trip's latency. A test asserts that it made
  progress, never failed and stayed under a (generous) latency bound.
* Process figures read from /proc: resident memory, open descriptors, CPU time.

Only the standard library and harness.py; loopback only; every wait is bounded.
"""

import os
import socket
import threading
import time

import harness as h

# Sanitizer builds are several times slower than plain ones; the bounds below are meant to
# catch a stalled worker (seconds), not to measure performance.
def _is_sanitized(path):
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


SANITIZED = _is_sanitized(h.BROKER)
LATENCY_BOUND = 3.0 if SANITIZED else 1.5


class Bystander:
    """Publishes a QoS 1 message to its own topic every `interval` seconds from one
    connection and waits for it on another, recording the round trip. Any failure (a
    timeout, a closed connection, a wrong payload) ends the thread and is kept in
    `errors`."""

    def __init__(self, port, name="bystander", interval=0.05, timeout=10.0, version=4):
        self.port = port
        self.name = name
        self.interval = interval
        self.timeout = timeout
        self.version = version
        self.topic = h.unique(name + "/")
        self.latencies = []
        self.errors = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.started_at = None
        self.stopped_at = None

    def start(self):
        self._thread.start()
        if not self._ready.wait(self.timeout):
            raise AssertionError("%s did not connect within %.0f s" % (self.name, self.timeout))
        if self.errors:
            raise AssertionError("%s could not start: %s" % (self.name, self.errors))
        self.started_at = time.monotonic()
        return self

    def _run(self):
        sub = pub = None
        try:
            sub = h.RawClient(self.port, self.version, timeout=self.timeout)
            sub.connect(h.unique(self.name + "-sub"), keepalive=60)
            sub.subscribe(self.topic, qos=1)
            pub = h.RawClient(self.port, self.version, timeout=self.timeout)
            pub.connect(h.unique(self.name + "-pub"), keepalive=60)
            self._ready.set()
            seq = 0
            while not self._stop.is_set():
                seq += 1
                payload = b"%s %d" % (self.name.encode(), seq)
                t0 = time.monotonic()
                pub.publish(self.topic, payload, qos=1)
                p = sub.recv_publish(timeout=self.timeout)
                if p.payload != payload:
                    raise AssertionError("got %r, expected %r" % (p.payload, payload))
                self.latencies.append(time.monotonic() - t0)
                self._stop.wait(self.interval)
        except Exception as e:  # noqa: BLE001 - every failure is a finding
            self.errors.append("%s after %d round trips: %r"
                               % (self.name, len(self.latencies), e))
        finally:
            self._ready.set()
            for c in (sub, pub):
                if c is not None:
                    c.close()

    def stop(self):
        self._stop.set()
        self._thread.join(self.timeout + 5)
        self.stopped_at = time.monotonic()
        return self

    def percentile(self, q):
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(q * len(s)))]

    def summary(self):
        if not self.latencies:
            return "%s: no round trip" % self.name
        return ("%s: %d round trips, latency p50 %.1f ms, p99 %.1f ms, max %.1f ms"
                % (self.name, len(self.latencies), 1000 * self.percentile(0.5),
                   1000 * self.percentile(0.99), 1000 * max(self.latencies)))

    def check(self, test, bound=None, min_rate=2.0):
        """Stops the bystander and asserts it never failed, made at least `min_rate` round
        trips per second and stayed under `bound` seconds per round trip."""
        if not self._stop.is_set():
            self.stop()
        bound = LATENCY_BOUND if bound is None else bound
        report(test, self.summary())
        test.assertEqual(self.errors, [], "the bystander failed")
        elapsed = (self.stopped_at or time.monotonic()) - self.started_at
        test.assertGreaterEqual(len(self.latencies), int(min_rate * elapsed),
                                "the bystander made too little progress in %.1f s" % elapsed)
        test.assertLess(max(self.latencies), bound, "a bystander round trip took too long")


def report(test, line):
    """Prints a figure (ctest shows it with --output-on-failure or -V)."""
    import sys
    sys.stderr.write("FIGURE %s: %s\n" % (test.id().split(".", 1)[-1], line))


# --------------------------------------------------------------------------------------------
# /proc figures
# --------------------------------------------------------------------------------------------

def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def cpu_seconds(pid):
    """User + system CPU time of the whole process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def raw_socket(port, rcvbuf=None):
    """A connected TCP socket to the broker; with rcvbuf, a small receive buffer is set
    before connecting so that the window stays small (a slow consumer fills up fast)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(h.TIMEOUT)
    s.connect((h.HOST, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def raw_client_on(sock, port, version=4):
    """A harness RawClient around an already connected socket."""
    c = h.RawClient.__new__(h.RawClient)
    c.port = port
    c.version = version
    c.timeout = h.TIMEOUT
    c.sock = sock
    c.buf = b""
    c.eof = False
    c.backlog = []
    c.next_pid = 1
    return c


def sys_value(port, topic, timeout=h.TIMEOUT):
    """The retained value of a $SYS topic, read with a short-lived connection."""
    c = h.RawClient(port, 4, timeout=timeout)
    try:
        c.connect(h.unique("sysreader"))
        c.subscribe(topic, qos=0)
        p = c.expect(h.PUBLISH, timeout)
        return p.payload.decode()
    finally:
        c.close()
