"""Shared subscriptions ($share/<group>/<filter>), section 4.8.2."""

import socket
import time
import unittest

from harness import (
    BrokerTest, DISCONNECT, SUBACK, mosquitto_departs, P_SHARED_SUB_AVAILABLE,
    P_SUBSCRIPTION_ID, RC_MALFORMED, RC_PROTOCOL_ERROR, RC_TOPIC_FILTER_INVALID,
    REASON_REQUIRED, Closed, build_subscribe, sub_options, unique,
)


class SharedTest(BrokerTest):

    def members(self, b, group, filt, n=2, version=5, qos=1):
        out = []
        for _ in range(n):
            c = self.raw_connected(b, unique("m"), version)
            c.subscribe("$share/%s/%s" % (group, filt), qos=qos)
            out.append(c)
        return out

    def drain(self, clients, n, timeout=5.0):
        """Receive until `n` PUBLISHes arrived in total over `clients`; returns a list of
        payload lists, one per client, and checks nothing more arrives."""
        got = [[] for _ in clients]
        end = time.monotonic() + timeout
        while sum(map(len, got)) < n:
            if time.monotonic() > end:
                self.fail("only %d of %d messages arrived: %r" % (sum(map(len, got)), n, got))
            for i, c in enumerate(clients):
                try:
                    got[i].append(c.recv_publish(timeout=0.02).payload)
                except AssertionError:
                    pass
        for c in clients:
            c.expect_nothing(0.1)
        return got

    def assert_filter_rejected(self, b, filt):
        """The server must refuse the filter: SUBACK with a failure code (>= 0x80), or
        DISCONNECT 0x81/0x82/0x8F and close."""
        c = self.raw_connected(b, unique("bad"), 5)
        c.send(build_subscribe(1, [(filt, sub_options(1))], 5))
        try:
            p = c.recv(timeout=2)
        except Closed:
            if REASON_REQUIRED:
                self.fail("closed without DISCONNECT for filter %r" % filt)
            return
        except socket.timeout:
            self.fail("no answer to SUBSCRIBE %r" % filt)
        if p.type == SUBACK:
            self.assertGreaterEqual(p.codes[0], 0x80, "filter %r accepted: %r" % (filt, p))
            return
        self.assertEqual(p.type, DISCONNECT, p)
        self.assertIn(p.rc, (RC_MALFORMED, RC_PROTOCOL_ERROR, RC_TOPIC_FILTER_INVALID))
        c.wait_closed()


class SharedDelivery(SharedTest):

    def test_connack_shared_available(self):
        """The v5 CONNACK does not announce Shared Subscription Available 0 (section
        3.2.2.3.13: absent means supported)."""
        b = self.start_broker()
        c = self.raw(b, 5)
        self.assertNotEqual(c.connect(unique("c")).props.get(P_SHARED_SUB_AVAILABLE, 1), 0)

    def test_one_member_per_message(self):
        """Each message matching a shared subscription goes to exactly one member of the
        group (section 4.8.2)."""
        b = self.start_broker()
        t = unique("sh/")
        ms = self.members(b, "g", t, n=3)
        p = self.raw_connected(b, unique("p"), 5)
        for i in range(30):
            p.publish(t, b"%02d" % i, qos=1)
        got = self.drain(ms, 30)
        everything = sorted(x for g in got for x in g)
        self.assertEqual(everything, [b"%02d" % i for i in range(30)])

    def test_each_group_gets_a_copy(self):
        """Each share group gets its own copy of every message; a non-shared subscription
        gets one too (section 4.8.2)."""
        b = self.start_broker()
        t = unique("groups/")
        g1 = self.members(b, "g1", t)
        g2 = self.members(b, "g2", t)
        plain = self.raw_connected(b, unique("plain"), 5)
        plain.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        for i in range(10):
            p.publish(t, b"%d" % i, qos=1)
        want = sorted(b"%d" % i for i in range(10))
        self.assertEqual(sorted(x for g in self.drain(g1, 10) for x in g), want)
        self.assertEqual(sorted(x for g in self.drain(g2, 10) for x in g), want)
        self.assertEqual(sorted(x for g in self.drain([plain], 10) for x in g), want)

    def test_shared_wildcard_filter(self):
        """The filter part of a shared subscription may contain wildcards (section 4.8.2)."""
        b = self.start_broker()
        base = unique("shw")
        ms = self.members(b, "g", base + "/+/#")
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(base + "/a/b/c", b"deep", qos=1)
        p.publish(base + "/a", b"shallow", qos=1)
        p.publish(base, b"nomatch", qos=1)
        got = self.drain(ms, 2)
        self.assertEqual(sorted(x for g in got for x in g), [b"deep", b"shallow"])

    def test_shared_granted_qos_respected(self):
        """A shared subscription's granted QoS is respected: a QoS 2 message reaches a QoS 0
        member at QoS 0 ([MQTT-4.8.2-3])."""
        b = self.start_broker()
        t = unique("shq/")
        (m,) = self.members(b, "g", t, n=1, qos=0)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"x", qos=2)
        self.assertEqual(m.recv_publish().qos, 0)

    def test_shared_subscription_identifier(self):
        """A Subscription Identifier given with a shared subscription is sent with the
        messages delivered through it ([MQTT-3.3.4-3])."""
        b = self.start_broker()
        t = unique("shid/")
        m = self.raw_connected(b, unique("m"), 5)
        m.subscribe("$share/g/" + t, qos=1, sub_id=77)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"x", qos=1)
        self.assertEqual(m.recv_publish().props.all(P_SUBSCRIPTION_ID), [77])

    def test_shared_v311_clients(self):
        """MQTT 3.1.1 clients can use $share/ subscriptions too (as with Mosquitto); one
        member per message."""
        b = self.start_broker()
        t = unique("sh311/")
        ms = self.members(b, "g", t, version=4)
        p = self.raw_connected(b, unique("p"), 4)
        for i in range(10):
            p.publish(t, b"%d" % i, qos=1)
        got = self.drain(ms, 10)
        self.assertEqual(sorted(x for g in got for x in g), sorted(b"%d" % i for i in range(10)))

    def test_unsubscribe_leaves_group(self):
        """After a member unsubscribes, the remaining member receives every message
        ([MQTT-3.10.4-2], section 4.8.2)."""
        b = self.start_broker()
        t = unique("shu/")
        a, c = self.members(b, "g", t)
        a.unsubscribe("$share/g/" + t)
        p = self.raw_connected(b, unique("p"), 5)
        for i in range(6):
            p.publish(t, b"%d" % i, qos=1)
        got = self.drain([a, c], 6)
        self.assertEqual(got[0], [])
        self.assertEqual(len(got[1]), 6)

    @mosquitto_departs("mosquitto 2.0.11 sends retained messages to new shared subscriptions")
    def test_retained_not_sent_to_shared(self):
        """Retained messages are not sent when a shared subscription is made (section 4.8.2,
        section 3.3.1.3: retained messages go to new Non-shared Subscriptions)."""
        b = self.start_broker()
        t = unique("shret/")
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"retained", qos=1, retain=True)
        (m,) = self.members(b, "g", t, n=1)
        p.publish(t, b"live", qos=1)
        self.assertEqual(m.recv_publish().payload, b"live")

    @mosquitto_departs("mosquitto 2.0.11 drops an unacknowledged QoS 1 message when the shared "
                       "subscriber it was sent to leaves, instead of sending it to another member")
    def test_unacked_message_goes_to_other_member(self):
        """A QoS 1 message sent to a member that leaves (its session ends) without acking
        is sent to another member of the group (section 4.8.2: the server SHOULD send it to
        another subscribed client; issue #2)."""
        b = self.start_broker()
        t = unique("shl/")
        a, c = self.members(b, "g", t)
        p = self.raw_connected(b, unique("p"), 5)
        victim = None
        for i in range(10):
            p.publish(t, b"m%d" % i, qos=1)
            try:
                m = a.recv_publish(timeout=0.3, ack=False)
                victim = m.payload
                break
            except AssertionError:
                c.recv_publish()          # went to the other member: ack it, try again
        self.assertIsNotNone(victim, "no message reached member a")
        a.close()                          # leaves without PUBACK; session expiry 0
        m = c.recv_publish(timeout=3)
        self.assertEqual(m.payload, victim)


class SharedInvalid(SharedTest):

    def test_share_name_with_wildcard_rejected(self):
        """A ShareName must not contain '+' or '#' ([MQTT-4.8.2-2])."""
        b = self.start_broker()
        self.assert_filter_rejected(b, "$share/g+/t")
        self.assert_filter_rejected(b, "$share/g#/t")

    @mosquitto_departs("mosquitto 2.0.11 accepts '$share//t' (empty ShareName)")
    def test_empty_share_name_rejected(self):
        """A ShareName must be at least one character long ([MQTT-4.8.2-1])."""
        b = self.start_broker()
        self.assert_filter_rejected(b, "$share//t")

    @mosquitto_departs("mosquitto 2.0.11 accepts '$share/g' (no topic filter) as a plain filter")
    def test_shared_without_filter_rejected(self):
        """The ShareName must be followed by '/' and a topic filter ([MQTT-4.8.2-2])."""
        b = self.start_broker()
        self.assert_filter_rejected(b, "$share/g")

    @mosquitto_departs("mosquitto 2.0.11 accepts No Local on a shared subscription")
    def test_no_local_on_shared_is_protocol_error(self):
        """No Local = 1 on a shared subscription is a Protocol Error ([MQTT-3.8.3-4]):
        DISCONNECT 0x82."""
        b = self.start_broker()
        c = self.raw_connected(b, unique("nl"), 5)
        c.send(build_subscribe(1, [("$share/g/" + unique("t"), sub_options(1, no_local=True))], 5))
        self.assertClosedWith(c, (RC_PROTOCOL_ERROR,), DISCONNECT, timeout=2)


if __name__ == "__main__":
    unittest.main()
