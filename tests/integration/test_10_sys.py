"""$SYS topics with Mosquitto's names, published every sys_interval (here 1 s)."""

import re
import time
import unittest

from harness import BrokerTest, unique

SYS_WAIT = 4.0     # sys_interval 1: a changed value shows up within about 2 s


class SysWatcher:
    """A client subscribed to $SYS/broker/# that keeps the latest value of each topic."""

    def __init__(self, test, broker):
        self.test = test
        self.client = test.raw_connected(broker, unique("sys"), 4)
        self.client.subscribe("$SYS/broker/#", qos=0)
        self.values = {}
        self.history = {}

    def pump(self, timeout):
        try:
            m = self.client.recv_publish(timeout=timeout)
        except AssertionError:
            return
        value = m.payload.decode("utf-8", "replace")
        self.values[m.topic] = value
        self.history.setdefault(m.topic, []).append((time.monotonic(), value, m.retain))

    def wait(self, topic, predicate=lambda v: True, timeout=SYS_WAIT):
        """Wait until $SYS/broker/<topic> has a value satisfying predicate; return it."""
        full = "$SYS/broker/" + topic
        end = time.monotonic() + timeout
        while True:
            v = self.values.get(full)
            if v is not None and predicate(v):
                return v
            left = end - time.monotonic()
            if left <= 0:
                self.test.fail("%s: last value %r did not satisfy the condition within %.0f s"
                               % (full, v, timeout))
            self.pump(min(left, 0.1))

    def number(self, topic, predicate=lambda n: True, timeout=SYS_WAIT):
        v = self.wait(topic, lambda v: re.match(r"^-?\d+(\.\d+)?$", v.split()[0] if v else "")
                      and predicate(float(v.split()[0])), timeout)
        return float(v.split()[0])


class Sys(BrokerTest):

    def setUp(self):
        self.broker = self.start_broker(["sys_interval 1"])
        self.sys = SysWatcher(self, self.broker)

    def test_version(self):
        """$SYS/broker/version names the broker and a version number, and is kept as a
        retained message, so a client subscribing later gets it at once (as Mosquitto)."""
        v = self.sys.wait("version")
        self.assertRegex(v, r"\d+\.\d+")
        late = self.raw_connected(self.broker, unique("late"), 5)
        late.subscribe("$SYS/broker/version", qos=0)
        m = late.recv_publish(timeout=SYS_WAIT)
        self.assertEqual((m.payload.decode(), m.retain), (v, True))

    def test_uptime(self):
        """$SYS/broker/uptime is '<N> seconds' and grows."""
        first = self.sys.wait("uptime", lambda v: re.match(r"^\d+ seconds$", v))
        n0 = int(first.split()[0])
        self.sys.wait("uptime", lambda v: int(v.split()[0]) > n0)

    def test_sys_interval(self):
        """Periodic topics are refreshed every sys_interval: two uptime updates arrive less
        than 2.5 s apart."""
        self.sys.wait("uptime")
        n = len(self.sys.history["$SYS/broker/uptime"])
        self.sys.wait("uptime", lambda v: len(self.sys.history["$SYS/broker/uptime"]) >= n + 2,
                      timeout=5)
        times = [t for t, _, _ in self.sys.history["$SYS/broker/uptime"]]
        self.assertLess(times[-1] - times[-2], 2.5)

    def test_clients_connected(self):
        """$SYS/broker/clients/connected counts connected clients (the watcher plus 3), and
        goes down when they leave."""
        others = [self.raw_connected(self.broker, unique("c"), 4) for _ in range(3)]
        self.sys.number("clients/connected", lambda n: n == 4)
        for c in others:
            c.disconnect()
        self.sys.number("clients/connected", lambda n: n == 1)

    def test_clients_disconnected_total_maximum(self):
        """clients/disconnected counts persistent sessions of offline clients, clients/total
        is connected + disconnected, clients/maximum is at least the peak connected."""
        c = self.raw_connected(self.broker, unique("c"), 4, clean=False)
        c.subscribe("x/y", qos=1)
        c2 = self.raw_connected(self.broker, unique("c"), 4)
        self.sys.number("clients/connected", lambda n: n == 3)
        c.disconnect()
        self.sys.number("clients/disconnected", lambda n: n == 1)
        self.sys.number("clients/total", lambda n: n == 3)
        self.sys.number("clients/maximum", lambda n: n >= 3)
        c2.close()

    def test_messages_received_and_sent(self):
        """messages/received and messages/sent count messages through the broker; ten
        published and delivered messages raise both by at least ten."""
        r0 = self.sys.number("messages/received")
        s0 = self.sys.number("messages/sent")
        t = unique("count/")
        sub = self.raw_connected(self.broker, unique("s"), 4)
        sub.subscribe(t, qos=1)
        pub = self.raw_connected(self.broker, unique("p"), 4)
        for i in range(10):
            pub.publish(t, b"%d" % i, qos=1)
        for i in range(10):
            sub.recv_publish()
        self.sys.number("messages/received", lambda n: n >= r0 + 10)
        self.sys.number("messages/sent", lambda n: n >= s0 + 10)

    def test_bytes_received_and_sent(self):
        """bytes/received and bytes/sent grow by at least the payload bytes moved."""
        b0 = self.sys.number("bytes/received")
        s0 = self.sys.number("bytes/sent")
        t = unique("bytes/")
        sub = self.raw_connected(self.broker, unique("s"), 4)
        sub.subscribe(t, qos=0)
        pub = self.raw_connected(self.broker, unique("p"), 4)
        pub.publish(t, b"x" * 5000, qos=1)
        sub.recv_publish()
        self.sys.number("bytes/received", lambda n: n >= b0 + 5000)
        self.sys.number("bytes/sent", lambda n: n >= s0 + 5000)

    def test_subscriptions_count(self):
        """subscriptions/count counts subscriptions: the watcher's one plus three more, and
        back down after unsubscribing."""
        c = self.raw_connected(self.broker, unique("c"), 5)
        for f in ("a/b", "a/+", "a/#"):
            c.subscribe(f, qos=0)
        self.sys.number("subscriptions/count", lambda n: n == 4)
        c.unsubscribe(["a/b", "a/+"])
        self.sys.number("subscriptions/count", lambda n: n == 2)

    def test_retained_messages_count(self):
        """'retained messages/count' grows by the number of retained messages stored."""
        n0 = self.sys.number("retained messages/count")
        p = self.raw_connected(self.broker, unique("p"), 4)
        base = unique("retcount")
        for i in range(5):
            p.publish("%s/%d" % (base, i), b"r", qos=1, retain=True)
        self.sys.number("retained messages/count", lambda n: n >= n0 + 5)

    def test_load_averages(self):
        """load/messages/received/1min, 5min, 15min and load/bytes/... are published as
        decimal numbers."""
        for topic in ("load/messages/received/1min", "load/messages/sent/5min",
                      "load/bytes/received/15min", "load/connections/1min"):
            self.sys.number(topic)

    def test_heap_where_known(self):
        """heap/current and heap/maximum, when published, are byte counts with
        maximum >= current (they depend on the build, so absence is allowed)."""
        self.sys.wait("uptime", lambda v: int(v.split()[0]) >= 1)
        cur = self.sys.values.get("$SYS/broker/heap/current")
        top = self.sys.values.get("$SYS/broker/heap/maximum")
        if cur is None and top is None:
            self.skipTest("this build publishes no heap figures")
        self.assertGreaterEqual(int(top), int(cur))

    def test_wildcards_do_not_see_sys(self):
        """A '#' subscriber does not receive $SYS messages ([MQTT-4.7.2-1])."""
        c = self.raw_connected(self.broker, unique("all"), 4)
        c.subscribe("#", qos=0)
        n0 = self.sys.number("uptime")
        self.sys.number("uptime", lambda n: n > n0)     # $SYS was published since
        marker = unique("marker/")
        c.publish(marker, b"m", qos=1)
        self.assertEqual(c.recv_publish().topic, marker)
        c.expect_nothing(0.1)


if __name__ == "__main__":
    unittest.main()
