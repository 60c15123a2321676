"""Flow control towards publishers (issue #9, core/broker/flow.c).

A QoS 1 subscriber slower than its publishers used to lose acknowledged messages once
max_queued_messages filled up. culex now stops reading from a publisher whose message met a
congested session (backlog at half max_queued_messages) until it has drained, so a slow
reader loses nothing; a reader that stops altogether holds publishers back for at most
2 s (flow.h CX_FLOW_STALL_MS), after which its queue limit applies as before.

Real clients: paho-mqtt subscribers made slow by a sleep in their message callback (paho
acknowledges after the callback), mosquitto_pub publishers.
"""

import subprocess
import threading
import time
import unittest

import faultlib as fl
import harness as h
from harness import BrokerTest, culex_only, unique

STALL_S = 2.0               # core/broker/flow.h CX_FLOW_STALL_MS


class SlowReader:
    """A paho v3.1.1 QoS 1 subscriber that sleeps `delay` seconds per message."""

    def __init__(self, test, port, topic, delay, client_id=None):
        self.got = []
        self.cond = threading.Condition()
        self.delay = delay
        self.c = h.mqtt.Client(client_id=client_id or unique("slowreader"),
                               protocol=h.mqtt.MQTTv311, clean_session=True)
        self.c.on_message = self._on_message
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect("127.0.0.1", port, 60)
        self.c.subscribe(topic, 1)
        self.c.loop_start()
        test.addCleanup(self.stop)
        if not subscribed.wait(10):
            raise AssertionError("no SUBACK")

    def _on_message(self, client, userdata, msg):
        time.sleep(self.delay)
        with self.cond:
            self.got.append(msg.payload)
            self.cond.notify_all()

    def wait_count(self, n, timeout):
        with self.cond:
            self.cond.wait_for(lambda: len(self.got) >= n, timeout)
            return len(self.got)

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


def mosquitto_pub_lines(port, topic, lines, qos=1, client_id=None):
    """Publishes each line as a message with mosquitto_pub -l; returns (seconds, rc)."""
    t0 = time.monotonic()
    p = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", str(qos),
                        "-t", topic, "-l", "-i", client_id or unique("pub")],
                       input=("\n".join(lines) + "\n").encode(), capture_output=True,
                       timeout=120)
    return time.monotonic() - t0, p.returncode, p.stderr.decode(errors="replace")


@culex_only("flow control towards publishers; mosquitto drops at max_queued_messages")
class FlowControl(BrokerTest):

    def sys_int(self, broker, topic):
        return int(fl.sys_value(broker.port, "$SYS/broker/" + topic))

    def test_slow_reader_loses_nothing(self):
        """One publisher, 2000 QoS 1 messages, a reader taking 1 ms a message, a queue
        limit of 100: every message arrives, in order, and none is dropped."""
        b = self.start_broker(["max_queued_messages 100", "sys_interval 1"])
        topic = unique("fc/slow/")
        r = SlowReader(self, b.port, topic, 0.001)
        lines = ["m%05d" % i for i in range(2000)]
        took, rc, err = mosquitto_pub_lines(b.port, topic, lines)
        self.assertEqual(rc, 0, err)
        n = r.wait_count(len(lines), 60)
        fl.report(self, "2000 QoS 1 messages to a reader at ~1 ms each (queue limit 100): "
                  "published in %.2f s, %d received" % (took, n))
        self.assertEqual([g.decode() for g in r.got], lines)
        time.sleep(1.2)
        self.assertEqual(self.sys_int(b, "publish/messages/dropped"), 0)
        self.assertNotIn("has read nothing", b.output())

    def test_fan_in_loses_nothing(self):
        """Eight publishers, 300 QoS 1 messages each, to one slow reader with a queue limit
        of 50: all 2400 arrive, each publisher's in its order."""
        b = self.start_broker(["max_queued_messages 50", "sys_interval 1"])
        topic = unique("fc/fanin/")
        r = SlowReader(self, b.port, topic, 0.0005)
        results = []
        def pub(k):
            results.append(mosquitto_pub_lines(b.port, topic,
                                               ["p%d-%04d" % (k, i) for i in range(300)]))
        threads = [threading.Thread(target=pub, args=(k,)) for k in range(8)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        n = r.wait_count(2400, 60)
        fl.report(self, "8 x 300 QoS 1 messages to one slow reader (queue limit 50): %d "
                  "received in %.2f s" % (n, time.monotonic() - t0))
        self.assertTrue(all(rc == 0 for _, rc, _ in results), results)
        got = [g.decode() for g in r.got]
        self.assertEqual(len(got), 2400)
        for k in range(8):
            mine = [g for g in got if g.startswith("p%d-" % k)]
            self.assertEqual(mine, ["p%d-%04d" % (k, i) for i in range(300)])
        time.sleep(1.2)
        self.assertEqual(self.sys_int(b, "publish/messages/dropped"), 0)

    def test_own_topic_no_deadlock(self):
        """A slow client that receives what it publishes (its acknowledgements come in on
        the connection a held-back publisher would stop reading) is never held back for
        its own session: 1000 messages round trip without a stall."""
        b = self.start_broker(["max_queued_messages 20"])
        topic = unique("fc/self/")
        got = []
        done = threading.Event()
        c = h.mqtt.Client(client_id=unique("selfpub"), protocol=h.mqtt.MQTTv311)
        def on_message(client, userdata, msg):
            time.sleep(0.0005)
            got.append(msg.payload)
            if len(got) == 1000:
                done.set()
        c.on_message = on_message
        c.connect("127.0.0.1", b.port, 60)
        c.subscribe(topic, 1)
        c.loop_start()
        self.addCleanup(c.loop_stop)
        t0 = time.monotonic()
        for i in range(1000):
            c.publish(topic, b"%d" % i, 1)
        self.assertTrue(done.wait(60), "only %d of 1000 arrived" % len(got))
        took = time.monotonic() - t0
        fl.report(self, "1000 QoS 1 messages to the publisher's own slow subscription "
                  "(queue limit 20): %.2f s" % took)
        self.assertEqual(got, [b"%d" % i for i in range(1000)])
        self.assertNotIn("has read nothing", b.output())
        c.disconnect()

    def test_crossed_publishers_no_deadlock(self):
        """Two slow clients, each publishing 1000 QoS 1 messages to the other: each is held
        back for a session that waits for the other's acknowledgements. Those are still
        read while a client is held back, so nobody stalls and nothing is lost (Mosquitto
        2.0.11 with the same queue limit delivered 554 and 606 of the 1000 here)."""
        b = self.start_broker(["max_queued_messages 20", "sys_interval 1"])
        base = unique("fc/crossed/")
        ends = {}
        for name in ("a", "b"):
            ends[name] = SlowReader(self, b.port, base + name, 0.001)
        def run(me, other):
            for i in range(1000):
                ends[me].c.publish(base + other, b"%d" % i, 1)
        t0 = time.monotonic()
        threads = [threading.Thread(target=run, args=("a", "b")),
                   threading.Thread(target=run, args=("b", "a"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        na, nb = ends["a"].wait_count(1000, 60), ends["b"].wait_count(1000, 60)
        fl.report(self, "two slow clients publishing 1000 QoS 1 messages to each other (queue "
                  "limit 20): %d and %d received in %.2f s" % (na, nb, time.monotonic() - t0))
        for name in ("a", "b"):
            self.assertEqual(ends[name].got, [b"%d" % i for i in range(1000)])
        self.assertNotIn("has read nothing", b.output())
        time.sleep(1.2)
        self.assertEqual(self.sys_int(b, "publish/messages/dropped"), 0)

    def test_stalled_reader_holds_publishers_briefly(self):
        """A subscriber that never reads holds its publisher back for about 2 s, then no
        longer: the publisher completes, a second subscriber on the same topic gets every
        message, a bystander on another topic is not slowed, and the broker says which
        client stalled."""
        b = self.start_broker(["max_queued_messages 100"])
        topic = unique("fc/stall/")
        stalled = fl.raw_client_on(fl.raw_socket(b.port, rcvbuf=4096), b.port, 4)
        self.addCleanup(stalled.close)
        stalled.connect(unique("stalled"))
        stalled.subscribe(topic, qos=1)
        fast = SlowReader(self, b.port, topic, 0)
        by = fl.Bystander(b.port).start()
        self.addCleanup(by.stop)
        lines = ["s%04d" % i for i in range(1000)]
        took, rc, err = mosquitto_pub_lines(b.port, topic, lines)
        self.assertEqual(rc, 0, err)
        n = fast.wait_count(len(lines), 30)
        fl.report(self, "1000 QoS 1 messages with a stalled and a fast subscriber: published "
                  "in %.2f s (stall limit %.0f s); the fast one got %d" % (took, STALL_S, n))
        self.assertEqual([g.decode() for g in fast.got], lines)
        self.assertGreater(took, STALL_S * 0.8)
        self.assertLess(took, STALL_S + 8)
        b.wait_output("has read nothing")
        by.check(self)


if __name__ == "__main__":
    unittest.main()
