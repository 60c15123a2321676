"""Retained messages: set, replace, clear, QoS, wildcards, retain_available."""

import unittest

from harness import (
    BrokerTest, CONNACK, DISCONNECT, P_CONTENT_TYPE, P_RETAIN_AVAILABLE, P_USER_PROPERTY,
    RC_RETAIN_NOT_SUPPORTED, build_connect, build_publish, unique,
)


class Retain(BrokerTest):

    def collect_until(self, client, end_topic):
        """PUBLISHes received before the one on `end_topic` (acked)."""
        got = []
        while True:
            m = client.recv_publish()
            if m.topic == end_topic:
                return got
            got.append(m)

    def test_retained_sent_to_new_subscriber(self):
        """A retained message is sent to a new subscriber with RETAIN=1 ([MQTT-3.3.1-6],
        [MQTT-3.3.1-8] 3.1.1; [MQTT-3.3.1-9] 5.0)."""
        b = self.start_broker()
        t = unique("ret/")
        for version in (4, 5):
            p = self.raw_connected(b, unique("p"), version)
            p.publish(t, b"state-%d" % version, qos=1, retain=True)
            s = self.raw_connected(b, unique("s"), version)
            s.subscribe(t, qos=1)
            m = s.recv_publish()
            self.assertEqual((m.topic, m.payload, m.retain), (t, b"state-%d" % version, True))

    def test_live_delivery_clears_retain_flag(self):
        """A retained PUBLISH forwarded to an already established subscription has RETAIN=0
        ([MQTT-3.3.1-9] 3.1.1; [MQTT-3.3.1-12] 5.0 with Retain As Published 0)."""
        b = self.start_broker()
        for version in (4, 5):
            t = unique("live/")
            s = self.raw_connected(b, unique("s"), version)
            s.subscribe(t, qos=1)
            p = self.raw_connected(b, unique("p"), version)
            p.publish(t, b"now", qos=1, retain=True)
            m = s.recv_publish()
            self.assertEqual((m.payload, m.retain), (b"now", False))

    def test_retained_replaced(self):
        """A new retained message replaces the one stored for the topic ([MQTT-3.3.1-5])."""
        b = self.start_broker()
        t = unique("repl/")
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t, b"old", qos=1, retain=True)
        p.publish(t, b"new", qos=1, retain=True)
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(t, qos=1)
        self.assertEqual(s.recv_publish().payload, b"new")
        s.expect_nothing(0.1)

    def test_qos0_retained_replaces_and_is_stored(self):
        """A QoS 0 retained message discards the previous one and is stored as the new
        retained message ([MQTT-3.3.1-7] 3.1.1, [MQTT-3.3.1-5] 5.0)."""
        b = self.start_broker()
        t = unique("q0ret/")
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t, b"qos1", qos=1, retain=True)
        p.publish(t, b"qos0", qos=0, retain=True)
        p.ping()
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(t, qos=1)
        m = s.recv_publish()
        self.assertEqual((m.payload, m.qos, m.retain), (b"qos0", 0, True))

    def test_zero_length_retained_clears(self):
        """A retained message with an empty payload removes the retained message and is
        not itself stored ([MQTT-3.3.1-10], [MQTT-3.3.1-11] 3.1.1; [MQTT-3.3.1-6],
        [MQTT-3.3.1-7] 5.0)."""
        b = self.start_broker()
        base = unique("clear")
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(base + "/x", b"stored", qos=1, retain=True)
        p.publish(base + "/x", b"", qos=1, retain=True)
        p.publish(base + "/z", b"marker", qos=1, retain=True)
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(base + "/#", qos=1)
        m = s.recv_publish()
        self.assertEqual(m.topic, base + "/z")
        s.expect_nothing(0.1)

    def test_zero_length_retained_delivered_to_current_subscribers(self):
        """The empty retained message that clears a topic is still delivered to existing
        subscribers as a normal message ([MQTT-3.3.1-10] 3.1.1)."""
        b = self.start_broker()
        t = unique("clearlive/")
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t, b"", qos=1, retain=True)
        m = s.recv_publish()
        self.assertEqual((m.payload, m.retain), (b"", False))

    def test_non_retained_does_not_replace(self):
        """A PUBLISH with RETAIN=0 neither stores nor replaces the retained message
        ([MQTT-3.3.1-12] 3.1.1, [MQTT-3.3.1-8] 5.0)."""
        b = self.start_broker()
        t = unique("keep/")
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t, b"retained", qos=1, retain=True)
        p.publish(t, b"transient", qos=1, retain=False)
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(t, qos=1)
        self.assertEqual(s.recv_publish().payload, b"retained")
        s.expect_nothing(0.1)

    def test_retained_qos_is_minimum(self):
        """A retained message is delivered at the minimum of its QoS and the granted QoS
        ([MQTT-3.8.4-8] 5.0, [MQTT-3.8.4-6] 3.1.1)."""
        b = self.start_broker()
        base = unique("rq")
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(base + "/two", b"2", qos=2, retain=True)
        p.publish(base + "/zero", b"0", qos=0, retain=True)
        p.ping()
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(base + "/two", qos=1)
        self.assertEqual(s.recv_publish().qos, 1)
        s.subscribe(base + "/zero", qos=2)
        self.assertEqual(s.recv_publish().qos, 0)

    def test_wildcard_gets_all_retained(self):
        """A wildcard subscription receives every matching retained message
        ([MQTT-3.3.1-6] 3.1.1, section 3.3.1.3)."""
        b = self.start_broker()
        base = unique("many")
        p = self.raw_connected(b, unique("p"), 4)
        topics = ["%s/%d/v" % (base, i) for i in range(10)]
        for t in topics:
            p.publish(t, t.encode(), qos=1, retain=True)
        p.publish(base + "/other", b"x", qos=1, retain=True)
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(base + "/+/v", qos=1)
        got = sorted(s.recv_publish().topic for _ in topics)
        self.assertEqual(got, sorted(topics))
        s.expect_nothing(0.1)

    def test_resubscribe_resends_retained(self):
        """Re-subscribing with an identical filter re-sends matching retained messages
        ([MQTT-3.8.4-3], Retain Handling 0)."""
        b = self.start_broker()
        t = unique("again/")
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t, b"r", qos=1, retain=True)
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(t, qos=1)
        self.assertTrue(s.recv_publish().retain)
        s.subscribe(t, qos=1)
        m = s.recv_publish()
        self.assertEqual((m.payload, m.retain), (b"r", True))

    def test_retained_outlives_publisher_session(self):
        """Retained messages are not part of the session: they remain after the publisher's
        clean session ends ([MQTT-3.1.2-7] 3.1.1)."""
        b = self.start_broker()
        t = unique("outlive/")
        p = self.raw_connected(b, unique("p"), 4, clean=True)
        p.publish(t, b"still here", qos=1, retain=True)
        p.disconnect()
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(t, qos=0)
        self.assertEqual(s.recv_publish().payload, b"still here")

    def test_retained_keeps_v5_properties(self):
        """A retained message keeps its properties: content type and user properties arrive
        unaltered and in order ([MQTT-3.3.2-17], [MQTT-3.3.2-18], [MQTT-3.3.2-20])."""
        b = self.start_broker()
        t = unique("retprops/")
        props = [(P_CONTENT_TYPE, "application/json"), (P_USER_PROPERTY, ("b", "2")),
                 (P_USER_PROPERTY, ("a", "1")), (P_USER_PROPERTY, ("b", "3"))]
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"{}", qos=1, retain=True, props=props)
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=1)
        m = s.recv_publish()
        self.assertEqual(m.props.get(P_CONTENT_TYPE), "application/json")
        self.assertEqual(m.props.user(), [("b", "2"), ("a", "1"), ("b", "3")])

    def test_paho_retained(self):
        """paho: a retained message published by a v3.1.1 client reaches a later v5
        subscriber flagged retained (section 3.3.1.3)."""
        b = self.start_broker()
        t = unique("pahoret/")
        p = self.paho(b, unique("p"), 4)
        p.publish(t, b"kept", qos=1, retain=True)
        s = self.paho(b, unique("s"), 5)
        s.subscribe(t, qos=1)
        m = s.expect_message(t)
        self.assertEqual((m.payload, m.retain), (b"kept", True))


class RetainNotAvailable(BrokerTest):

    def test_connack_retain_available_0(self):
        """With retain_available false the v5 CONNACK carries Retain Available 0
        (section 3.2.2.3.5)."""
        b = self.start_broker(["retain_available false"])
        c = self.raw(b, 5)
        self.assertEqual(c.connect(unique("c")).props.get(P_RETAIN_AVAILABLE), 0)

    def test_retained_publish_refused(self):
        """With retained messages unsupported, a v5 PUBLISH with RETAIN=1 is a protocol
        error answered with DISCONNECT 0x9A (section 3.2.2.3.5); a v3.1.1 one closes the
        connection."""
        b = self.start_broker(["retain_available false"])
        c = self.raw_connected(b, unique("c"), 5)
        c.send(build_publish(unique("x/"), b"1", qos=1, pid=1, retain=True, version=5))
        self.assertClosedWith(c, (RC_RETAIN_NOT_SUPPORTED,), DISCONNECT, require_packet=True)
        c = self.raw_connected(b, unique("c"), 4)
        c.send(build_publish(unique("x/"), b"1", qos=1, pid=1, retain=True))
        self.assertClosedSilently(c)

    def test_will_retain_refused(self):
        """With retained messages unsupported, a CONNECT whose Will has Will Retain 1 is
        refused with CONNACK 0x9A and the connection closed ([MQTT-3.2.2-13])."""
        b = self.start_broker(["retain_available false"])
        c = self.raw(b, 5)
        c.send(build_connect(unique("c"), version=5,
                             will={"topic": "w", "payload": b"x", "retain": True}))
        self.assertClosedWith(c, (RC_RETAIN_NOT_SUPPORTED,), CONNACK, require_packet=True)


if __name__ == "__main__":
    unittest.main()
