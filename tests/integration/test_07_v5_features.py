"""MQTT 5 features: topic aliases, subscription identifiers, subscription options, message
expiry, packet size and receive maximum in both directions, request problem/response
information, property pass-through, server keep alive, assigned client identifier."""

import time
import unittest

from harness import (
    BrokerTest, culex_only, mosquitto_departs, PUBREC, PUBCOMP,
    P_ASSIGNED_CLIENT_ID, P_CONTENT_TYPE, P_CORRELATION_DATA, P_MAXIMUM_PACKET_SIZE,
    P_MESSAGE_EXPIRY, P_PAYLOAD_FORMAT, P_REASON_STRING, P_RECEIVE_MAXIMUM,
    P_REQUEST_PROBLEM_INFO, P_REQUEST_RESPONSE_INFO, P_RESPONSE_INFO, P_RESPONSE_TOPIC,
    P_SERVER_KEEP_ALIVE, P_SESSION_EXPIRY, P_SUB_ID_AVAILABLE, P_SUBSCRIPTION_ID,
    P_TOPIC_ALIAS, P_TOPIC_ALIAS_MAXIMUM, P_USER_PROPERTY, PacketTypes,
    RC_MALFORMED, RC_PACKET_TOO_LARGE, RC_PROTOCOL_ERROR, RC_RECEIVE_MAXIMUM_EXCEEDED,
    RC_TOPIC_ALIAS_INVALID, build_ack, build_publish, unique, v5_props,
)

RECEIVE_MAXIMUM_DEPARTURE = ("mosquitto 2.0.11 refills the whole window after one acknowledgement, "
                             "so more than Receive Maximum messages are unacknowledged")


def collect(client, end_topic, ack=True):
    """PUBLISHes received before the one on `end_topic`."""
    got = []
    while True:
        m = client.recv_publish(ack=ack)
        if m.topic == end_topic:
            return got
        got.append(m)


class TopicAliasFromClient(BrokerTest):

    def test_alias_set_and_used(self):
        """A client sets alias 1 with a topic, then publishes with the alias and an empty
        topic; subscribers receive the full topic name ([MQTT-3.3.2-12], 3.3.2.3.4)."""
        b = self.start_broker()
        t = unique("alias/")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"first", qos=1, props=[(P_TOPIC_ALIAS, 1)])
        p.publish("", b"second", qos=1, props=[(P_TOPIC_ALIAS, 1)])
        p.publish("", b"third", qos=0, props=[(P_TOPIC_ALIAS, 1)])
        for payload in (b"first", b"second", b"third"):
            m = s.recv_publish()
            self.assertEqual((m.topic, m.payload), (t, payload))
            self.assertIsNone(m.props.get(P_TOPIC_ALIAS))

    def test_alias_remapped(self):
        """Sending an existing alias with a new topic name replaces the mapping
        (section 3.3.2.3.4)."""
        b = self.start_broker()
        base = unique("remap")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(base + "/#", qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(base + "/a", b"1", qos=1, props=[(P_TOPIC_ALIAS, 2)])
        p.publish(base + "/b", b"2", qos=1, props=[(P_TOPIC_ALIAS, 2)])
        p.publish("", b"3", qos=1, props=[(P_TOPIC_ALIAS, 2)])
        self.assertEqual([s.recv_publish().topic for _ in range(3)],
                         [base + "/a", base + "/b", base + "/b"])

    def test_alias_above_maximum(self):
        """An alias greater than the server's Topic Alias Maximum (10) gets DISCONNECT 0x94
        ([MQTT-3.3.2-9], section 3.3.2.3.4)."""
        b = self.start_broker()
        c = self.raw(b, 5)
        self.assertEqual(c.connect(unique("c")).props.get(P_TOPIC_ALIAS_MAXIMUM), 10)
        c.send(build_publish("x", b"1", props=[(P_TOPIC_ALIAS, 11)], version=5))
        self.assertClosedWith(c, (RC_TOPIC_ALIAS_INVALID,), require_packet=True)

    def test_alias_zero(self):
        """Topic Alias 0 is not permitted ([MQTT-3.3.2-8]): the connection is closed with
        DISCONNECT 0x94 (or 0x81/0x82)."""
        b = self.start_broker()
        c = self.raw_connected(b, unique("c"), 5)
        c.send(build_publish("x", b"1", props=[(P_TOPIC_ALIAS, 0)], version=5))
        self.assertClosedWith(c, (RC_TOPIC_ALIAS_INVALID, RC_PROTOCOL_ERROR, RC_MALFORMED))

    def test_unknown_alias(self):
        """An empty topic with an alias that has no mapping is a Protocol Error: DISCONNECT
        0x82 (section 3.3.2.3.4)."""
        b = self.start_broker()
        c = self.raw_connected(b, unique("c"), 5)
        c.send(build_publish("", b"1", props=[(P_TOPIC_ALIAS, 3)], version=5))
        self.assertClosedWith(c, (RC_PROTOCOL_ERROR,), require_packet=True)

    def test_alias_not_carried_to_new_connection(self):
        """Alias mappings do not survive the network connection, even when the session does
        ([MQTT-3.3.2-7]): using the old alias alone is a Protocol Error."""
        b = self.start_broker()
        cid = unique("c")
        c = self.raw_connected(b, cid, 5, clean=False, props=[(P_SESSION_EXPIRY, 60)])
        c.publish(unique("x/"), b"1", qos=1, props=[(P_TOPIC_ALIAS, 1)])
        c.disconnect()
        c = self.raw_connected(b, cid, 5, clean=False, props=[(P_SESSION_EXPIRY, 60)])
        c.send(build_publish("", b"2", props=[(P_TOPIC_ALIAS, 1)], version=5))
        self.assertClosedWith(c, (RC_PROTOCOL_ERROR,), require_packet=True)

    def test_max_topic_alias_directive(self):
        """The listener directive max_topic_alias sets the CONNACK Topic Alias Maximum and
        is enforced (mosquitto.conf max_topic_alias; [MQTT-3.3.2-9])."""
        b = self.start_broker(["max_topic_alias 3"])
        c = self.raw(b, 5)
        self.assertEqual(c.connect(unique("c")).props.get(P_TOPIC_ALIAS_MAXIMUM), 3)
        c.publish(unique("x/"), b"1", qos=1, props=[(P_TOPIC_ALIAS, 3)])
        c.send(build_publish("x", b"1", props=[(P_TOPIC_ALIAS, 4)], version=5))
        self.assertClosedWith(c, (RC_TOPIC_ALIAS_INVALID,), require_packet=True)


class TopicAliasToClient(BrokerTest):

    def test_no_alias_without_client_maximum(self):
        """The server sends no Topic Alias to a client that did not announce a Topic Alias
        Maximum ([MQTT-3.1.2-27])."""
        b = self.start_broker()
        t = unique("noalias/")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        for i in range(5):
            p.publish(t, b"%d" % i, qos=1)
        for i in range(5):
            m = s.recv_publish()
            self.assertEqual(m.topic, t)
            self.assertFalse(m.props.has(P_TOPIC_ALIAS), m)

    def _aliased_stream(self, b, max_alias, topics, rounds):
        s = self.raw_connected(b, unique("s"), 5, props=[(P_TOPIC_ALIAS_MAXIMUM, max_alias)])
        for t in topics:
            s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        sent = []
        for r in range(rounds):
            for t in topics:
                p.publish(t, b"%s-%d" % (t.encode(), r), qos=1)
                sent.append((t, b"%s-%d" % (t.encode(), r)))
        mapping, used, received = {}, 0, []
        for _ in sent:
            m = s.recv_publish()
            alias = m.props.get(P_TOPIC_ALIAS)
            topic = m.topic
            if alias is not None:
                self.assertTrue(1 <= alias <= max_alias,
                                "alias %d outside 1..%d ([MQTT-3.1.2-26])" % (alias, max_alias))
                if topic:
                    mapping[alias] = topic
                else:
                    self.assertIn(alias, mapping, "alias used before it was set: %r" % m)
                    topic = mapping[alias]
                    used += 1
            else:
                self.assertTrue(topic, "empty topic without alias: %r" % m)
            received.append((topic, m.payload))
        self.assertEqual(received, sent)
        return used

    def test_server_alias_within_client_maximum(self):
        """Aliases the server sends never exceed the client's Topic Alias Maximum and
        always resolve to the right topic ([MQTT-3.1.2-26], [MQTT-3.3.2-10])."""
        b = self.start_broker()
        base = unique("srvalias")
        self._aliased_stream(b, 1, [base + "/a", base + "/b", base + "/c"], rounds=3)

    @culex_only("the broker assigns its own topic aliases to clients that allow them (issue #2; "
                "mosquitto 2.0.11 never sends aliases, a MAY in the spec)")
    def test_server_assigns_aliases(self):
        """The broker assigns topic aliases for repeated topics to a client that announced a
        Topic Alias Maximum, and later PUBLISHes carry the alias with an empty topic
        (issue #2; section 3.3.2.3.4)."""
        b = self.start_broker()
        base = unique("assign")
        used = self._aliased_stream(b, 2, [base + "/a", base + "/b"], rounds=4)
        self.assertGreater(used, 0, "no PUBLISH used a broker-assigned alias")


class SubscriptionIdentifiers(BrokerTest):

    def test_connack_sub_ids_available(self):
        """The CONNACK does not announce Subscription Identifiers Available 0 (3.2.2.3.12:
        absent means supported)."""
        b = self.start_broker()
        c = self.raw(b, 5)
        self.assertNotEqual(c.connect(unique("c")).props.get(P_SUB_ID_AVAILABLE, 1), 0)

    def test_subscription_identifier_delivered(self):
        """A message delivered through a subscription with an identifier carries it; one
        without an identifier carries none ([MQTT-3.3.4-3])."""
        b = self.start_broker()
        base = unique("sid")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(base + "/with", qos=1, sub_id=268435455)
        s.subscribe(base + "/without", qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(base + "/with", b"1", qos=1)
        p.publish(base + "/without", b"2", qos=1)
        self.assertEqual(s.recv_publish().props.all(P_SUBSCRIPTION_ID), [268435455])
        self.assertEqual(s.recv_publish().props.all(P_SUBSCRIPTION_ID), [])

    def test_subscription_identifier_replaced(self):
        """Re-subscribing to the same filter with a new identifier replaces the old one
        ([MQTT-3.8.4-3], section 3.8.2.1.2)."""
        b = self.start_broker()
        t = unique("sidr/")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=1, sub_id=5)
        s.subscribe(t, qos=1, sub_id=6)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"1", qos=1)
        self.assertEqual(s.recv_publish().props.all(P_SUBSCRIPTION_ID), [6])

    def test_overlapping_subscriptions_carry_all_ids(self):
        """With overlapping subscriptions every matching Subscription Identifier is sent:
        in the single copy, or each copy with its own ([MQTT-3.3.4-3], [MQTT-3.3.4-4],
        [MQTT-3.3.4-5])."""
        b = self.start_broker()
        base = unique("ovid")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(base + "/#", qos=0, sub_id=1)
        s.subscribe(base + "/+", qos=1, sub_id=2)
        s.subscribe(base + "/x", qos=2)
        s.subscribe(base + "/end/marker", qos=0)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(base + "/x", b"m", qos=2)
        p.publish(base + "/end/marker", b"end", qos=0)
        copies = collect(s, base + "/end/marker")
        ids = sorted(i for m in copies for i in m.props.all(P_SUBSCRIPTION_ID))
        self.assertEqual(ids, [1, 2])
        self.assertEqual(max(m.qos for m in copies), 2)

    @culex_only("one copy for overlapping subscriptions (issue #2); mosquitto 2.0.11 sends one "
                "copy per matching subscription, which the spec allows")
    def test_overlapping_subscriptions_single_copy(self):
        """Overlapping subscriptions: one copy, at the highest granted QoS, carrying every
        matching Subscription Identifier (issue #2; [MQTT-3.3.4-2], [MQTT-3.3.4-4])."""
        b = self.start_broker()
        base = unique("ov1")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(base + "/#", qos=0, sub_id=1)
        s.subscribe(base + "/+", qos=1, sub_id=2)
        s.subscribe(base + "/x", qos=2, sub_id=3)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(base + "/x", b"m", qos=2)
        p.publish(base + "/y", b"end", qos=0)
        copies = collect(s, base + "/y")
        self.assertEqual(len(copies), 1, copies)
        self.assertEqual(copies[0].qos, 2)
        self.assertEqual(sorted(copies[0].props.all(P_SUBSCRIPTION_ID)), [1, 2, 3])


class SubscriptionOptions(BrokerTest):

    def test_no_local(self):
        """No Local = 1: the client's own messages are not sent back to it; other clients'
        are ([MQTT-3.8.3-3])."""
        b = self.start_broker()
        base = unique("nl")
        c = self.raw_connected(b, unique("c"), 5)
        c.subscribe(base + "/t", qos=1, no_local=True)
        c.subscribe(base + "/marker", qos=1)
        c.publish(base + "/t", b"own", qos=1)
        c.publish(base + "/marker", b"marker", qos=1)
        self.assertEqual(c.recv_publish().payload, b"marker")
        other = self.raw_connected(b, unique("o"), 5)
        other.publish(base + "/t", b"other", qos=1)
        self.assertEqual(c.recv_publish().payload, b"other")

    def test_retain_as_published(self):
        """Retain As Published = 1 keeps the RETAIN flag of the PUBLISH on forward; = 0 clears
        it ([MQTT-3.3.1-12], [MQTT-3.3.1-13])."""
        b = self.start_broker()
        base = unique("rap")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(base + "/rap", qos=1, rap=True)
        s.subscribe(base + "/norap", qos=1, rap=False)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(base + "/rap", b"1", qos=1, retain=True)
        p.publish(base + "/rap", b"2", qos=1, retain=False)
        p.publish(base + "/norap", b"3", qos=1, retain=True)
        got = [(m.payload, m.retain) for m in (s.recv_publish() for _ in range(3))]
        self.assertEqual(got, [(b"1", True), (b"2", False), (b"3", False)])

    def test_retain_handling_0(self):
        """Retain Handling 0: retained messages are sent at every subscribe, also when the
        subscription already exists ([MQTT-3.3.1-9])."""
        b = self.start_broker()
        t = unique("rh0/")
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"r", qos=1, retain=True)
        s = self.raw_connected(b, unique("s"), 5)
        for _ in range(2):
            s.subscribe(t, qos=1, retain_handling=0)
            m = s.recv_publish()
            self.assertEqual((m.payload, m.retain), (b"r", True))

    def test_retain_handling_1(self):
        """Retain Handling 1: retained messages are sent only if the subscription did not
        exist ([MQTT-3.3.1-10])."""
        b = self.start_broker()
        t = unique("rh1/")
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"r", qos=1, retain=True)
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=1, retain_handling=1)
        self.assertEqual(s.recv_publish().payload, b"r")
        s.subscribe(t, qos=1, retain_handling=1)
        s.subscribe(t + "/marker", qos=1)
        p.publish(t + "/marker", b"marker", qos=1)
        self.assertEqual(s.recv_publish().payload, b"marker")

    def test_retain_handling_2(self):
        """Retain Handling 2: retained messages are not sent at subscribe
        ([MQTT-3.3.1-11]); later messages are delivered normally."""
        b = self.start_broker()
        t = unique("rh2/")
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"r", qos=1, retain=True)
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=1, retain_handling=2)
        p.publish(t, b"live", qos=1)
        m = s.recv_publish()
        self.assertEqual((m.payload, m.retain), (b"live", False))


class MessageExpiry(BrokerTest):

    def offline_subscriber(self, b, t):
        cid = unique("exp")
        s = self.raw_connected(b, cid, 5, clean=False, props=[(P_SESSION_EXPIRY, 60)])
        s.subscribe(t, qos=1)
        s.disconnect()
        return cid

    def test_expired_message_dropped(self):
        """A queued message whose Message Expiry Interval passes before delivery is not
        delivered ([MQTT-3.3.2-5])."""
        b = self.start_broker()
        t = unique("expd/")
        cid = self.offline_subscriber(b, t)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"short", qos=1, props=[(P_MESSAGE_EXPIRY, 1)])
        p.publish(t, b"long", qos=1, props=[(P_MESSAGE_EXPIRY, 60)])
        time.sleep(2.1)     # the expiry interval has to pass while the client is away
        s = self.raw_connected(b, cid, 5, clean=False, props=[(P_SESSION_EXPIRY, 60)])
        self.assertEqual(s.recv_publish().payload, b"long")
        s.expect_nothing(0.1)

    def test_expiry_decremented_on_forward(self):
        """The forwarded Message Expiry Interval is the received value minus the time the
        message waited in the server ([MQTT-3.3.2-6])."""
        b = self.start_broker()
        t = unique("expdec/")
        cid = self.offline_subscriber(b, t)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"x", qos=1, props=[(P_MESSAGE_EXPIRY, 60)])
        time.sleep(1.6)     # the message has to wait in the server for > 1 s
        s = self.raw_connected(b, cid, 5, clean=False, props=[(P_SESSION_EXPIRY, 60)])
        left = s.recv_publish().props.get(P_MESSAGE_EXPIRY)
        self.assertIsNotNone(left)
        self.assertTrue(55 <= left <= 59, left)

    def test_expiry_forwarded_live(self):
        """A message forwarded immediately carries its Message Expiry Interval (not more than
        sent) ([MQTT-3.3.2-6]); a message without one carries none."""
        b = self.start_broker()
        t = unique("explive/")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"x", qos=1, props=[(P_MESSAGE_EXPIRY, 30)])
        p.publish(t, b"y", qos=1)
        self.assertIn(s.recv_publish().props.get(P_MESSAGE_EXPIRY), (29, 30))
        self.assertIsNone(s.recv_publish().props.get(P_MESSAGE_EXPIRY))

    def test_retained_message_expires(self):
        """An expired retained message is no longer sent to new subscribers; an unexpired one
        is sent with the interval decremented ([MQTT-3.3.2-5], [MQTT-3.3.2-6])."""
        b = self.start_broker()
        base = unique("rexp")
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(base + "/short", b"s", qos=1, retain=True, props=[(P_MESSAGE_EXPIRY, 1)])
        p.publish(base + "/long", b"l", qos=1, retain=True, props=[(P_MESSAGE_EXPIRY, 60)])
        time.sleep(2.1)
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(base + "/#", qos=1)
        m = s.recv_publish()
        self.assertEqual(m.payload, b"l")
        self.assertTrue(55 <= m.props.get(P_MESSAGE_EXPIRY) <= 59, m)
        s.expect_nothing(0.1)


class PacketSize(BrokerTest):

    def test_server_maximum_packet_size(self):
        """max_packet_size is announced as Maximum Packet Size in the CONNACK, and a larger
        packet from the client gets DISCONNECT 0x95 (section 3.2.2.3.6, 4.13)."""
        b = self.start_broker(["max_packet_size 1000"])
        c = self.raw(b, 5)
        self.assertEqual(c.connect(unique("c")).props.get(P_MAXIMUM_PACKET_SIZE), 1000)
        c.publish(unique("ok/"), b"x" * 900, qos=1)
        c.send(build_publish(unique("big/"), b"x" * 1000, qos=1, pid=9, version=5))
        self.assertClosedWith(c, (RC_PACKET_TOO_LARGE,), require_packet=True)

    def test_client_maximum_packet_size(self):
        """The server does not send a packet larger than the client's Maximum Packet Size: it
        drops that message and continues with the next ([MQTT-3.1.2-24], [MQTT-3.1.2-25])."""
        b = self.start_broker()
        t = unique("cmps/")
        s = self.raw_connected(b, unique("s"), 5, props=[(P_MAXIMUM_PACKET_SIZE, 200)])
        s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"x" * 300, qos=1)
        p.publish(t, b"fits", qos=1)
        m = s.recv_publish()
        self.assertEqual(m.payload, b"fits")
        self.assertLessEqual(len(m.raw), 200)


class ReceiveMaximum(BrokerTest):

    def test_client_receive_maximum_window(self):
        """The server sends no more unacknowledged QoS 1/2 PUBLISHes than the client's
        Receive Maximum (2) ([MQTT-3.3.4-9]); acknowledging releases the rest."""
        b = self.start_broker()
        t = unique("crm/")
        s = self.raw_connected(b, unique("s"), 5, props=[(P_RECEIVE_MAXIMUM, 2)])
        s.subscribe(t, qos=2)
        p = self.raw_connected(b, unique("p"), 5)
        for i in range(5):
            p.publish(t, b"%d" % i, qos=1 + i % 2)
        first = [s.recv_publish(ack=False) for _ in range(2)]
        s.expect_nothing(0.3)
        for m in first:
            s.ack(m)
        got = [m.payload for m in first]
        while len(got) < 5:
            got.append(s.recv_publish().payload)
        self.assertEqual(got, [b"%d" % i for i in range(5)])

    @mosquitto_departs(RECEIVE_MAXIMUM_DEPARTURE)
    def test_client_receive_maximum_after_ack(self):
        """With Receive Maximum 2 and two messages in flight, one acknowledgement releases
        exactly one more message ([MQTT-3.3.4-9])."""
        b = self.start_broker()
        t = unique("crma/")
        s = self.raw_connected(b, unique("s"), 5, props=[(P_RECEIVE_MAXIMUM, 2)])
        s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        for i in range(5):
            p.publish(t, b"%d" % i, qos=1)
        first = [s.recv_publish(ack=False) for _ in range(2)]
        s.ack(first[0])
        self.assertEqual(s.recv_publish(ack=False).payload, b"2")
        s.expect_nothing(0.3)

    @mosquitto_departs("mosquitto 2.0.11 answers PUBLISHes beyond its Receive Maximum with "
                       "PUBREC 0x97 instead of DISCONNECT 0x93")
    def test_server_receive_maximum_exceeded(self):
        """A client that sends more unacknowledged QoS 2 PUBLISHes than the server's Receive
        Maximum (20) is disconnected with 0x93 ([MQTT-3.3.4-7], section 3.3.4 / 4.9)."""
        b = self.start_broker()
        c = self.raw(b, 5)
        limit = c.connect(unique("c")).props.get(P_RECEIVE_MAXIMUM, 65535)
        self.assertEqual(limit, 20)
        for pid in range(1, limit + 1):
            c.send(build_publish("rm/x", b"x", qos=2, pid=pid, version=5))
            rec = c.expect(PUBREC)
            self.assertLess(rec.rc, 0x80, rec)
        c.send(build_publish("rm/x", b"x", qos=2, pid=limit + 1, version=5))
        self.assertClosedWith(c, (RC_RECEIVE_MAXIMUM_EXCEEDED,), require_packet=True, timeout=2)

    def test_server_receive_maximum_slot_released(self):
        """Completing QoS 2 flows (PUBREL/PUBCOMP) frees Receive Maximum slots: a client can
        keep 20 flows open, complete them and open 20 more (section 4.9)."""
        b = self.start_broker()
        c = self.raw_connected(b, unique("c"), 5)
        for rnd in range(2):
            pids = range(1 + rnd * 20, 21 + rnd * 20)
            for pid in pids:
                c.send(build_publish("rm/y", b"x", qos=2, pid=pid, version=5))
            for pid in pids:
                self.assertLess(c.expect(PUBREC).rc, 0x80)
            for pid in pids:
                c.send(build_ack(6, pid, version=5))
            for pid in pids:
                c.expect(PUBCOMP)


class ProblemAndResponseInformation(BrokerTest):

    def test_request_problem_information_0(self):
        """With Request Problem Information 0 the server sends no Reason String or User
        Property on packets other than PUBLISH, CONNACK, DISCONNECT ([MQTT-3.1.2-29])."""
        b = self.start_broker()
        c = self.raw(b, 5)
        c.connect(unique("c"), props=[(P_REQUEST_PROBLEM_INFO, 0)])
        acks = [c.publish(unique("nobody/"), b"x", qos=1)]
        c.send(build_publish(unique("nobody/"), b"x", qos=2, pid=50, version=5))
        acks.append(c.expect(PUBREC))
        c.send(build_ack(6, 50, version=5))
        acks.append(c.expect(PUBCOMP))
        acks.append(c.subscribe("a/b", qos=1))
        acks.append(c.unsubscribe(["a/b", "never/subscribed"]))
        for a in acks:
            self.assertFalse(a.props.has(P_REASON_STRING), a)
            self.assertFalse(a.props.has(P_USER_PROPERTY), a)

    def test_request_response_information_0(self):
        """Without Request Response Information (or 0) the CONNACK carries no Response
        Information ([MQTT-3.1.2-28])."""
        b = self.start_broker()
        for props in ([], [(P_REQUEST_RESPONSE_INFO, 0)]):
            c = self.raw(b, 5)
            self.assertFalse(c.connect(unique("c"), props=props).props.has(P_RESPONSE_INFO))

    def test_request_response_information_1(self):
        """Request Response Information 1 is accepted; Response Information, if the server
        returns it, is a non-empty UTF-8 string (section 3.2.2.3.15)."""
        b = self.start_broker()
        c = self.raw(b, 5)
        p = c.connect(unique("c"), props=[(P_REQUEST_RESPONSE_INFO, 1)])
        info = p.props.get(P_RESPONSE_INFO)
        if info is not None:
            self.assertTrue(info)

    def test_reason_strings_are_utf8(self):
        """Reason Strings sent by the server (if any) on acks are well-formed UTF-8 (the
        reader rejects anything else) and the acks carry reason codes (section 3.4.2.2.2)."""
        b = self.start_broker()
        c = self.raw_connected(b, unique("c"), 5)
        ack = c.publish(unique("nobody/"), b"x", qos=1)
        self.assertIn(ack.rc, (0x00, 0x10))
        reason = ack.props.get(P_REASON_STRING)
        if reason is not None:
            self.assertIsInstance(reason, str)


class PropertiesPassThrough(BrokerTest):

    def test_publish_properties_unchanged(self):
        """Payload Format Indicator, Content Type, Response Topic, Correlation Data and User
        Properties (order and duplicates kept) are forwarded unaltered ([MQTT-3.3.2-4],
        [MQTT-3.3.2-15], [MQTT-3.3.2-16], [MQTT-3.3.2-17], [MQTT-3.3.2-18],
        [MQTT-3.3.2-20])."""
        b = self.start_broker()
        t = unique("props/")
        props = [(P_PAYLOAD_FORMAT, 1), (P_CONTENT_TYPE, "application/x-culex; v=1"),
                 (P_RESPONSE_TOPIC, "reply/" + t), (P_CORRELATION_DATA, b"\x00\xffcorr"),
                 (P_USER_PROPERTY, ("k", "1")), (P_USER_PROPERTY, ("a", "")),
                 (P_USER_PROPERTY, ("k", "2")), (P_USER_PROPERTY, ("\u00e9\u4e2d", "\u2603"))]
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=2)
        p = self.raw_connected(b, unique("p"), 5)
        for qos in (0, 1, 2):
            p.publish(t, "h\u00e9".encode(), qos=qos, props=props)
            m = s.recv_publish()
            self.assertEqual(m.props.get(P_PAYLOAD_FORMAT), 1)
            self.assertEqual(m.props.get(P_CONTENT_TYPE), "application/x-culex; v=1")
            self.assertEqual(m.props.get(P_RESPONSE_TOPIC), "reply/" + t)
            self.assertEqual(m.props.get(P_CORRELATION_DATA), b"\x00\xffcorr")
            self.assertEqual(m.props.user(), [p_[1] for p_ in props if p_[0] == P_USER_PROPERTY])

    def test_paho_properties_roundtrip(self):
        """paho v5: properties set through paho's Properties API arrive at a paho subscriber
        unchanged ([MQTT-3.3.2-17], [MQTT-3.3.2-20])."""
        b = self.start_broker()
        t = unique("pprops/")
        s = self.paho(b, unique("s"), 5)
        s.subscribe(t, qos=1)
        p = self.paho(b, unique("p"), 5)
        props = v5_props(PacketTypes.PUBLISH, ContentType="text/plain", ResponseTopic="r/1",
                         CorrelationData=b"id-7", UserProperty=[("a", "1"), ("b", "2")])
        p.publish(t, b"hi", qos=1, props=props)
        m = s.expect_message(t)
        self.assertEqual(m.properties.ContentType, "text/plain")
        self.assertEqual(m.properties.ResponseTopic, "r/1")
        self.assertEqual(m.properties.CorrelationData, b"id-7")
        self.assertEqual(m.properties.UserProperty, [("a", "1"), ("b", "2")])

    def test_v5_message_to_v311_subscriber(self):
        """A v5 message with properties reaches a 3.1.1 subscriber with the same topic,
        payload and QoS (properties cannot be expressed in 3.1.1)."""
        b = self.start_broker()
        t = unique("mixed/")
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"payload", qos=1, props=[(P_USER_PROPERTY, ("k", "v")),
                                               (P_MESSAGE_EXPIRY, 30)])
        m = s.recv_publish()
        self.assertEqual((m.topic, m.payload, m.qos), (t, b"payload", 1))


class KeepAliveAndIdentity(BrokerTest):

    def test_server_keep_alive(self):
        """With max_keepalive 10 a client asking for 60 s gets Server Keep Alive 10 in the
        CONNACK ([MQTT-3.1.2-21], section 3.2.2.3.14); a client asking for 5 s keeps 5
        ([MQTT-3.2.2-22])."""
        b = self.start_broker(["max_keepalive 10"])
        c = self.raw(b, 5)
        self.assertEqual(c.connect(unique("c"), keepalive=60).props.get(P_SERVER_KEEP_ALIVE), 10)
        c = self.raw(b, 5)
        self.assertIn(c.connect(unique("c"), keepalive=5).props.get(P_SERVER_KEEP_ALIVE),
                      (None, 5))

    def test_assigned_client_identifier(self):
        """A zero-length client id gets an Assigned Client Identifier in the CONNACK, unique
        per client ([MQTT-3.1.3-6], [MQTT-3.1.3-7], [MQTT-3.2.2-16])."""
        b = self.start_broker()
        ids = set()
        for _ in range(3):
            c = self.raw(b, 5)
            cid = c.connect("").props.get(P_ASSIGNED_CLIENT_ID)
            self.assertTrue(cid)
            ids.add(cid)
        self.assertEqual(len(ids), 3)

    def test_assigned_client_identifier_not_sent_when_given(self):
        """A client that supplies its id gets no Assigned Client Identifier (3.2.2.3.7)."""
        b = self.start_broker()
        c = self.raw(b, 5)
        self.assertFalse(c.connect(unique("c")).props.has(P_ASSIGNED_CLIENT_ID))

    def test_assigned_client_identifier_session(self):
        """The assigned id names a real session: with Clean Start 0 and a Session Expiry the
        client can reconnect under it and gets Session Present 1 ([MQTT-3.1.3-7])."""
        b = self.start_broker()
        c = self.raw(b, 5)
        cid = c.connect("", clean=False, props=[(P_SESSION_EXPIRY, 60)]).props.get(
            P_ASSIGNED_CLIENT_ID)
        c.disconnect()
        c = self.raw(b, 5)
        self.assertTrue(c.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 60)])
                        .session_present)


if __name__ == "__main__":
    unittest.main()
