"""PUBLISH at QoS 0/1/2 in both directions, SUBSCRIBE/UNSUBSCRIBE, wildcards, $-topics."""

import unittest

from harness import (
    BrokerTest, IS_CULEX, culex_only, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, DISCONNECT,
    RC_MALFORMED, RC_PROTOCOL_ERROR, RC_NO_MATCHING_SUBSCRIBERS, RC_NO_SUBSCRIPTION_EXISTED,
    build_ack, build_publish, build_subscribe, sub_options, unique,
)


class QoSFlows(BrokerTest):

    def test_qos0_delivery(self):
        """A QoS 0 message is delivered at QoS 0 with DUP 0 and no packet identifier
        ([MQTT-3.3.1-2], [MQTT-2.2.1-2], section 4.3.1)."""
        b = self.start_broker()
        t = unique("q0/")
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(t, qos=2)
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t, b"hello", qos=0)
        m = s.recv_publish()
        self.assertEqual((m.topic, m.payload, m.qos, m.dup, m.pid), (t, b"hello", 0, False, None))
        self.assertEqual(m.raw, b"\x30" + bytes([2 + len(t) + 5]) + b"\x00" + bytes([len(t)])
                         + t.encode() + b"hello")

    def test_qos1_puback_same_packet_id(self):
        """A QoS 1 PUBLISH is answered with PUBACK 40 02 <same packet id> (3.1.1
        [MQTT-2.3.1-6], 5.0 [MQTT-2.2.1-5], [MQTT-4.3.2-4])."""
        b = self.start_broker()
        c = self.raw_connected(b, unique("c"), 4)
        c.send(build_publish(unique("q1/"), b"x", qos=1, pid=0x1234))
        self.assertEqual(c.expect(PUBACK).raw, b"\x40\x02\x12\x34")

    def test_qos2_inbound_flow(self):
        """A QoS 2 PUBLISH gets PUBREC with the same packet id, and PUBREL gets PUBCOMP:
        50 02 id / 70 02 id ([MQTT-4.3.3-8], [MQTT-4.3.3-11] 5.0; 3.1.1 section 4.3.3)."""
        b = self.start_broker()
        c = self.raw_connected(b, unique("c"), 4)
        c.send(build_publish(unique("q2/"), b"x", qos=2, pid=0x0102))
        self.assertEqual(c.expect(PUBREC).raw, b"\x50\x02\x01\x02")
        c.send(build_ack(PUBREL, 0x0102))
        self.assertEqual(c.expect(PUBCOMP).raw, b"\x70\x02\x01\x02")

    def test_qos1_outbound_flow(self):
        """A QoS 1 delivery carries a non-zero packet id and DUP 0 on first delivery; the
        subscriber's PUBACK completes it ([MQTT-2.2.1-4], [MQTT-3.3.1-1], [MQTT-4.3.2-1])."""
        b = self.start_broker()
        t = unique("q1o/")
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t, b"one", qos=1)
        m = s.recv_publish(ack=False)
        self.assertEqual((m.qos, m.dup), (1, False))
        self.assertNotEqual(m.pid, 0)
        s.send(build_ack(PUBACK, m.pid))
        p.publish(t, b"two", qos=1)
        m2 = s.recv_publish()
        self.assertEqual(m2.payload, b"two")

    def test_qos2_outbound_flow(self):
        """A QoS 2 delivery: the subscriber's PUBREC is answered with PUBREL 62 02 <id>
        (fixed header flags 0010), then PUBCOMP completes it ([MQTT-3.6.1-1],
        [MQTT-4.3.3-4], [MQTT-2.2.1-5])."""
        b = self.start_broker()
        t = unique("q2o/")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=2)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"once", qos=2)
        m = s.recv_publish(ack=False)
        self.assertEqual((m.qos, m.dup, m.payload), (2, False, b"once"))
        s.send(build_ack(PUBREC, m.pid, version=5))
        rel = s.expect(PUBREL)
        self.assertEqual(rel.raw[:4], b"\x62\x02" + m.pid.to_bytes(2, "big"))
        s.send(build_ack(PUBCOMP, m.pid, version=5))
        s.ping()

    def test_pubrel_unknown_packet_id(self):
        """A PUBREL for an unknown packet id is still answered with PUBCOMP for that id
        (reason 0x00 or 0x92 Packet Identifier not found) ([MQTT-4.3.3-11], 3.7.2.1)."""
        b = self.start_broker()
        c = self.raw_connected(b, unique("c"), 5)
        c.send(build_ack(PUBREL, 4321, version=5))
        comp = c.expect(PUBCOMP)
        self.assertEqual(comp.pid, 4321)
        self.assertIn(comp.rc, (0x00, 0x92))

    def test_downgrade_to_granted_qos(self):
        """Delivery QoS is the minimum of the published QoS and the granted QoS
        ([MQTT-3.8.4-8] 5.0, [MQTT-3.8.4-6] 3.1.1)."""
        b = self.start_broker()
        t = unique("down/")
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(t + "/1", qos=1)
        s.subscribe(t + "/0", qos=0)
        s.subscribe(t + "/2", qos=2)
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t + "/1", b"a", qos=2)
        self.assertEqual(s.recv_publish().qos, 1)
        p.publish(t + "/0", b"b", qos=2)
        self.assertEqual(s.recv_publish().qos, 0)
        p.publish(t + "/2", b"c", qos=0)
        self.assertEqual(s.recv_publish().qos, 0)
        p.publish(t + "/2", b"d", qos=1)
        self.assertEqual(s.recv_publish().qos, 1)

    def test_paho_roundtrip_all_qos(self):
        """paho v5 and v3.1.1 clients exchange messages at QoS 0, 1 and 2 with the payload
        intact and the QoS preserved (section 4.3)."""
        b = self.start_broker()
        for version in (4, 5):
            t = unique("paho/")
            s = self.paho(b, unique("s"), version)
            self.assertEqual(s.subscribe(t + "/#", qos=2), [2])
            p = self.paho(b, unique("p"), version)
            for q in (0, 1, 2):
                p.publish("%s/%d" % (t, q), b"payload-%d" % q, qos=q)
                m = s.expect_message("%s/%d" % (t, q))
                self.assertEqual((m.payload, m.qos), (b"payload-%d" % q, q))

    def test_ordering_qos1(self):
        """Messages from one publisher on one topic are delivered in publish order
        (Ordered Topic, [MQTT-4.6.0-6])."""
        b = self.start_broker()
        t = unique("order/")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        for i in range(50):
            p.publish(t, b"%d" % i, qos=1, wait=False)
        got = [int(s.recv_publish().payload) for _ in range(50)]
        self.assertEqual(got, list(range(50)))
        for _ in range(50):
            p.expect(PUBACK)

    def test_fanout_many_subscribers(self):
        """Every matching subscription gets one copy: 12 subscribers (spread over workers)
        each receive the message once ([MQTT-4.5.0-1])."""
        b = self.start_broker()
        t = unique("fan/")
        subs = [self.raw_connected(b, unique("s"), 5 if i % 2 else 4) for i in range(12)]
        for s in subs:
            s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"all", qos=1)
        for s in subs:
            self.assertEqual(s.recv_publish().payload, b"all")
        for s in subs:
            s.expect_nothing(0.05)

    def test_large_payload(self):
        """A 256 KiB payload is delivered byte for byte (payload is opaque, section 3.3.3)."""
        b = self.start_broker()
        t = unique("big/")
        data = bytes(range(256)) * 1024
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t, data, qos=1)
        self.assertEqual(s.recv_publish().payload, data)

    def test_empty_payload(self):
        """A zero-length payload is delivered as such (section 3.3.3)."""
        b = self.start_broker()
        t = unique("empty/")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"", qos=1)
        self.assertEqual(s.recv_publish().payload, b"")

    def test_puback_reason_codes_v5(self):
        """v5 PUBACK/PUBREC carry a success reason code: 0x00, or 0x10 (No matching
        subscribers) when nobody is subscribed (section 3.4.2.1, 3.5.2.1)."""
        b = self.start_broker()
        c = self.raw_connected(b, unique("c"), 5)
        t = unique("rc/")
        ack = c.publish(t, b"x", qos=1)
        self.assertIn(ack.rc, (0x00, RC_NO_MATCHING_SUBSCRIBERS))
        c.send(build_publish(t, b"x", qos=2, pid=77, version=5))
        rec = c.expect(PUBREC)
        self.assertIn(rec.rc, (0x00, RC_NO_MATCHING_SUBSCRIBERS))
        c.send(build_ack(PUBREL, 77, version=5))
        c.expect(PUBCOMP)
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=1)
        self.assertEqual(c.publish(t, b"y", qos=1).rc, 0x00)


class Subscriptions(BrokerTest):

    def test_suback_one_code_per_filter(self):
        """One SUBSCRIBE with three filters gets one SUBACK with the same packet id and the
        granted QoS for each filter, in order ([MQTT-3.8.4-1], [MQTT-3.8.4-2],
        [MQTT-3.9.3-1] 3.1.1/5.0)."""
        b = self.start_broker()
        for version in (4, 5):
            c = self.raw_connected(b, unique("c"), version)
            c.send(build_subscribe(0x4242, [("a/0", 0), ("a/1", 1), ("a/2", 2)], version))
            ack = c.expect(SUBACK)
            self.assertEqual(ack.pid, 0x4242)
            self.assertEqual(ack.codes, [0, 1, 2])

    def test_wildcard_single_level(self):
        """'+' matches exactly one level, including an empty one ([MQTT-4.7.1-2] 5.0,
        [MQTT-4.7.1-3] 3.1.1; section 4.7.1.3 examples)."""
        b = self.start_broker()
        base = unique("plus")
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(base + "/+/c", qos=1)
        p = self.raw_connected(b, unique("p"), 4)
        for topic in (base + "/b/c", base + "/b/d/c", base + "/c", base + "//c", base + "/b/c/d"):
            p.publish(topic, topic.encode(), qos=1)
        s.subscribe(base + "/end", qos=1)
        p.publish(base + "/end", b"end", qos=1)
        got = []
        while True:
            m = s.recv_publish()
            if m.topic == base + "/end":
                break
            got.append(m.topic)
        self.assertEqual(got, [base + "/b/c", base + "//c"])

    def test_wildcard_multi_level(self):
        """'#' matches the parent level and any number of child levels ([MQTT-4.7.1-1],
        section 4.7.1.2: 'sport/#' matches 'sport')."""
        b = self.start_broker()
        base = unique("hash")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(base + "/#", qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        topics = [base, base + "/a", base + "/a/b/c", base + "/", base + "x"]
        for topic in topics:
            p.publish(topic, b"x", qos=1)
        p.publish(base + "/end", b"end", qos=1)
        got = []
        while True:
            m = s.recv_publish()
            if m.topic == base + "/end":
                break
            got.append(m.topic)
        self.assertEqual(got, topics[:4])

    def test_topics_case_sensitive(self):
        """Topic matching is case sensitive and byte exact, without normalisation
        ([MQTT-4.7.3-4], section 4.7.3)."""
        b = self.start_broker()
        base = unique("case")
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(base + "/ABC", qos=1)
        s.subscribe(base + "/end", qos=1)
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(base + "/abc", b"lower", qos=1)
        p.publish(base + "/ABC ", b"space", qos=1)
        p.publish(base + "/ABC", b"exact", qos=1)
        p.publish(base + "/end", b"end", qos=1)
        self.assertEqual(s.recv_publish().payload, b"exact")
        self.assertEqual(s.recv_publish().payload, b"end")

    def test_dollar_topics_not_matched_by_leading_wildcards(self):
        """Filters starting with a wildcard do not match topics starting with '$';
        '$test/#' does ([MQTT-4.7.2-1])."""
        b = self.start_broker()
        tag = unique("d")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe("#", qos=1)
        s.subscribe("+/" + tag, qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        d = self.raw_connected(b, unique("d"), 5)
        d.subscribe("$test/#", qos=1)
        p.publish("$test/" + tag, b"dollar", qos=1)
        self.assertEqual(d.recv_publish().topic, "$test/" + tag)
        p.publish("plain/" + tag, b"marker", qos=1)
        m = s.recv_publish()
        self.assertEqual(m.topic, "plain/" + tag)
        # '#' and '+/<tag>' overlap: one copy only (culex delivers overlapping
        # subscriptions once, at the highest QoS; mosquitto sends one per subscription).
        if not IS_CULEX:
            self.assertEqual(s.recv_publish().topic, "plain/" + tag)
        s.expect_nothing(0.1)

    def test_unsubscribe_stops_delivery(self):
        """UNSUBSCRIBE is answered with UNSUBACK carrying the same packet id, and no
        further messages are delivered for that filter ([MQTT-3.10.4-2], [MQTT-3.10.4-4],
        [MQTT-3.10.4-5])."""
        b = self.start_broker()
        base = unique("unsub")
        for version in (4, 5):
            s = self.raw_connected(b, unique("s"), version)
            s.subscribe(base + "/a", qos=1)
            s.subscribe(base + "/b", qos=1)
            p = self.raw_connected(b, unique("p"), version)
            p.publish(base + "/a", b"1", qos=1)
            self.assertEqual(s.recv_publish().payload, b"1")
            ack = s.unsubscribe(base + "/a")
            if version == 5:
                self.assertEqual(ack.codes, [0x00])
            else:
                self.assertEqual(ack.raw[:2], b"\xb0\x02")
            p.publish(base + "/a", b"2", qos=1)
            p.publish(base + "/b", b"marker", qos=1)
            self.assertEqual(s.recv_publish().topic, base + "/b")
            s.expect_nothing(0.05)

    def test_unsuback_no_subscription_existed(self):
        """v5 UNSUBACK gives 0x00 for a removed subscription and 0x11 (No subscription
        existed) for an unknown filter, in order ([MQTT-3.11.3-1], section 3.11.3)."""
        b = self.start_broker()
        c = self.raw_connected(b, unique("c"), 5)
        c.subscribe("present/x", qos=0)
        ack = c.unsubscribe(["present/x", "absent/x"])
        self.assertEqual(ack.codes, [0x00, RC_NO_SUBSCRIPTION_EXISTED])

    def test_resubscribe_replaces_subscription(self):
        """Subscribing again to an identical filter replaces the subscription (new QoS, one
        copy) rather than adding a second one ([MQTT-3.8.4-3])."""
        b = self.start_broker()
        t = unique("resub/")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=0)
        s.subscribe(t, qos=1)
        s.subscribe(t + "/end", qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"once", qos=1)
        p.publish(t + "/end", b"end", qos=1)
        m = s.recv_publish()
        self.assertEqual((m.payload, m.qos), (b"once", 1))
        self.assertEqual(s.recv_publish().payload, b"end")

    def test_overlapping_subscriptions_max_qos(self):
        """With overlapping subscriptions the message is delivered respecting the maximum
        QoS of all matching subscriptions ([MQTT-3.3.4-2] 5.0, [MQTT-3.3.5-1] 3.1.1)."""
        b = self.start_broker()
        base = unique("ovl")
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(base + "/#", qos=0)
        s.subscribe(base + "/x", qos=2)
        s.subscribe(base + "/end", qos=0)
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(base + "/x", b"m", qos=2)
        p.publish(base + "/end", b"end", qos=0)
        copies = []
        while True:
            m = s.recv_publish()
            if m.topic == base + "/end":
                break
            copies.append(m.qos)
        self.assertIn(2, copies)

    @culex_only("one copy per client for overlapping subscriptions (issue #2); mosquitto "
                "2.0.11 sends one copy per matching subscription, which the spec allows")
    def test_overlapping_subscriptions_single_copy_v311(self):
        """Overlapping subscriptions yield one copy at the highest granted QoS (issue #2;
        [MQTT-3.3.5-1] 3.1.1)."""
        b = self.start_broker()
        base = unique("ovs")
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(base + "/#", qos=0)
        s.subscribe(base + "/+", qos=1)
        s.subscribe(base + "/x", qos=2)
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(base + "/x", b"m", qos=2)
        p.publish(base + "/y", b"end", qos=0)
        m = s.recv_publish()
        self.assertEqual((m.topic, m.qos), (base + "/x", 2))
        self.assertEqual(s.recv_publish().topic, base + "/y")
        s.expect_nothing(0.1)

    def test_invalid_topic_filters_v311(self):
        """3.1.1: a filter with '#' not last, '+'/'#' not alone in their level, or empty is
        invalid; the connection is closed ([MQTT-4.7.1-2], [MQTT-4.7.1-3], [MQTT-4.7.3-1]
        3.1.1)."""
        b = self.start_broker()
        for bad in ("a/#/b", "a+/b", "a/b#", ""):
            c = self.raw_connected(b, unique("c"), 4)
            c.send(build_subscribe(1, [(bad, 0)], 4))
            self.assertClosedSilently(c)

    def test_invalid_topic_filters_v5(self):
        """5.0: an invalid topic filter closes the connection with DISCONNECT 0x81/0x82
        ([MQTT-4.7.1-1], [MQTT-4.7.1-2], [MQTT-4.7.3-1], section 4.13)."""
        b = self.start_broker()
        for bad in ("a/#/b", "a+/b", "a/b#", ""):
            c = self.raw_connected(b, unique("c"), 5)
            c.send(build_subscribe(1, [(bad, sub_options(0))], 5))
            self.assertClosedWith(c, (RC_MALFORMED, RC_PROTOCOL_ERROR), DISCONNECT)


if __name__ == "__main__":
    unittest.main()
