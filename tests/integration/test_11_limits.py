"""Limits, keep alive, session takeover and QoS 1/2 redelivery / exactly-once."""

import time
import unittest

from harness import (
    BrokerTest, mosquitto_departs, CONNACK, DISCONNECT, PUBCOMP, PUBREC, PUBREL,
    P_MAXIMUM_QOS, P_SESSION_EXPIRY, RC_KEEP_ALIVE_TIMEOUT, RC_PACKET_TOO_LARGE,
    RC_QOS_NOT_SUPPORTED, RC_SESSION_TAKEN_OVER, build_ack, build_connect,
    build_publish, unique,
)

KEEPALIVE_DEPARTURE = ("mosquitto 2.0.11 checks keep alive coarsely: with Keep Alive 1 s it "
                       "closes the connection after about 5-6 s, not 1.5 s")
INFLIGHT_DEPARTURE = ("mosquitto 2.0.11 refills the whole window after one acknowledgement, "
                      "so more than max_inflight_messages messages are unacknowledged")


class Limits(BrokerTest):

    def test_max_connections(self):
        """max_connections 3: a fourth simultaneous connection is closed without a successful
        CONNACK; once a client leaves, a new one is accepted (mosquitto.conf
        max_connections; issue #2)."""
        b = self.start_broker(["max_connections 3"])
        clients = [self.raw_connected(b, unique("c"), 5) for _ in range(3)]
        extra = self.raw(b, 5)
        extra.send_quietly(build_connect(unique("x"), version=5))
        got = extra.wait_closed()
        for p in got:
            self.assertEqual(p.type, CONNACK, got)
            self.assertGreaterEqual(p.rc, 0x80, got)
        clients[0].disconnect()
        def admitted():
            c = self.raw(b, 5)
            try:
                return c.connect(unique("y")).rc == 0
            except AssertionError:
                return False
        self.wait_until(admitted, what="a free connection slot")
        for c in clients[1:]:
            c.ping()

    def test_max_packet_size_v311(self):
        """max_packet_size 500: a 3.1.1 PUBLISH larger than that closes the connection;
        smaller ones pass (mosquitto.conf max_packet_size; issue #2)."""
        b = self.start_broker(["max_packet_size 500"])
        t = unique("mps/")
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(t, qos=1)
        c = self.raw_connected(b, unique("c"), 4)
        c.publish(t, b"x" * 400, qos=1)
        self.assertEqual(len(s.recv_publish().payload), 400)
        c.send_quietly(build_publish(t, b"x" * 600, qos=1, pid=2))
        self.assertClosedSilently(c)
        s.ping()

    def test_max_packet_size_connect(self):
        """A CONNECT larger than max_packet_size is refused (CONNACK 0x95 or a bare close)."""
        b = self.start_broker(["max_packet_size 300"])
        c = self.raw(b, 5)
        c.send_quietly(build_connect(unique("c"), version=5, password=b"p" * 400))
        self.assertClosedWith(c, (RC_PACKET_TOO_LARGE,), CONNACK, require_packet=False)

    def test_max_inflight_messages_window(self):
        """max_inflight_messages 2: at most two unacknowledged QoS 1 messages are in flight to
        a 3.1.1 client; acknowledging releases the rest, in order."""
        b = self.start_broker(["max_inflight_messages 2"])
        t = unique("inflight/")
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 4)
        for i in range(6):
            p.publish(t, b"%d" % i, qos=1)
        first = [s.recv_publish(ack=False) for _ in range(2)]
        s.expect_nothing(0.3)
        for m in first:
            s.ack(m)
        got = [m.payload for m in first] + [s.recv_publish().payload for _ in range(4)]
        self.assertEqual(got, [b"%d" % i for i in range(6)])

    @mosquitto_departs(INFLIGHT_DEPARTURE)
    def test_max_inflight_messages_after_ack(self):
        """max_inflight_messages 2: with two in flight, one PUBACK releases exactly one more
        message."""
        b = self.start_broker(["max_inflight_messages 2"])
        t = unique("inflight2/")
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 4)
        for i in range(6):
            p.publish(t, b"%d" % i, qos=1)
        first = [s.recv_publish(ack=False) for _ in range(2)]
        s.ack(first[0])
        self.assertEqual(s.recv_publish(ack=False).payload, b"2")
        s.expect_nothing(0.3)

    def test_max_queued_messages_offline(self):
        """max_queued_messages 5: an offline persistent session keeps 5 QoS 1 messages (the
        oldest, in order) and drops the rest, as Mosquitto does."""
        b = self.start_broker(["max_queued_messages 5"])
        cid, t = unique("off"), unique("queued/")
        s = self.raw_connected(b, cid, 4, clean=False)
        s.subscribe(t, qos=1)
        s.disconnect()
        p = self.raw_connected(b, unique("p"), 4)
        for i in range(20):
            p.publish(t, b"%d" % i, qos=1)
        s = self.raw_connected(b, cid, 4, clean=False)
        got = [s.recv_publish().payload for _ in range(5)]
        self.assertEqual(got, [b"%d" % i for i in range(5)])
        s.expect_nothing(0.3)

    def test_max_qos(self):
        """max_qos 1: CONNACK Maximum QoS 1, a QoS 2 subscription is granted QoS 1
        ([MQTT-3.2.2-9], [MQTT-3.2.2-10]), and a QoS 2 PUBLISH gets DISCONNECT 0x9B
        (section 3.2.2.3.4)."""
        b = self.start_broker(["max_qos 1"])
        c = self.raw(b, 5)
        self.assertEqual(c.connect(unique("c")).props.get(P_MAXIMUM_QOS), 1)
        self.assertEqual(c.subscribe(unique("mq/"), qos=2).codes, [1])
        c.send(build_publish(unique("mq/"), b"x", qos=2, pid=5, version=5))
        self.assertClosedWith(c, (RC_QOS_NOT_SUPPORTED,), require_packet=True)

    def test_max_qos_will_refused(self):
        """max_qos 1: a CONNECT with a QoS 2 will is refused with CONNACK 0x9B and closed
        ([MQTT-3.2.2-12])."""
        b = self.start_broker(["max_qos 1"])
        c = self.raw(b, 5)
        c.send(build_connect(unique("c"), version=5,
                             will={"topic": "w", "payload": b"x", "qos": 2}))
        self.assertClosedWith(c, (RC_QOS_NOT_SUPPORTED,), CONNACK, require_packet=True)


class KeepAlive(BrokerTest):

    @mosquitto_departs(KEEPALIVE_DEPARTURE)
    def test_keepalive_timeout_v5(self):
        """A v5 client silent for 1.5 x Keep Alive (1 s) is disconnected, with DISCONNECT
        0x8D (Keep Alive timeout) before the close ([MQTT-3.1.2-22], section 4.13)."""
        b = self.start_broker()
        c = self.raw(b, 5)
        c.connect(unique("c"), keepalive=1)
        start = time.monotonic()
        self.assertClosedWith(c, (RC_KEEP_ALIVE_TIMEOUT,), timeout=1.5 + 1.0)
        self.assertGreaterEqual(time.monotonic() - start, 1.0)

    @mosquitto_departs(KEEPALIVE_DEPARTURE)
    def test_keepalive_timeout_v311(self):
        """A 3.1.1 client silent for 1.5 x Keep Alive (1 s) is disconnected
        ([MQTT-3.1.2-24] 3.1.1)."""
        b = self.start_broker()
        c = self.raw(b, 4)
        c.connect(unique("c"), keepalive=1)
        start = time.monotonic()
        self.assertClosedSilently(c, timeout=1.5 + 1.0)
        self.assertGreaterEqual(time.monotonic() - start, 1.0)

    def test_activity_keeps_connection(self):
        """A client with Keep Alive 1 that sends PINGREQ every 0.5 s stays connected for
        3 s ([MQTT-3.1.2-20], [MQTT-3.12.4-1])."""
        b = self.start_broker()
        c = self.raw(b, 4)
        c.connect(unique("c"), keepalive=1)
        end = time.monotonic() + 3
        while time.monotonic() < end:
            c.ping(timeout=1)
            time.sleep(0.5)


class Takeover(BrokerTest):

    @mosquitto_departs("mosquitto 2.0.11 closes the old connection on session takeover without "
                       "sending DISCONNECT 0x8E")
    def test_takeover_v5_disconnect_0x8e(self):
        """A second connection with the same client id takes over: the old v5 connection
        gets DISCONNECT 0x8E (Session taken over) and is closed ([MQTT-3.1.4-3])."""
        b = self.start_broker()
        cid = unique("tk")
        old = self.raw_connected(b, cid, 5)
        new = self.raw(b, 5)
        new.connect(cid)
        self.assertClosedWith(old, (RC_SESSION_TAKEN_OVER,), require_packet=True)
        new.ping()

    def test_takeover_closes_old_connection(self):
        """3.1.1 and 5.0: the old connection is closed and the new one works
        ([MQTT-3.1.4-2] 3.1.1, [MQTT-3.1.4-3])."""
        b = self.start_broker()
        for version in (4, 5):
            cid = unique("tk")
            old = self.raw_connected(b, cid, version)
            new = self.raw(b, version)
            new.connect(cid)
            got = old.wait_closed()
            self.assertTrue(all(p.type == DISCONNECT for p in got), got)
            new.ping()

    def test_takeover_resumes_session(self):
        """A takeover with Clean Start 0 resumes the session: Session Present 1 and the old
        subscriptions deliver to the new connection ([MQTT-3.1.2-5], [MQTT-3.2.2-3])."""
        b = self.start_broker()
        cid, t = unique("tks"), unique("takeover/")
        old = self.raw_connected(b, cid, 5, clean=False, props=[(P_SESSION_EXPIRY, 60)])
        old.subscribe(t, qos=1)
        new = self.raw(b, 5)
        self.assertTrue(new.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 60)])
                        .session_present)
        old.wait_closed()
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"to the new connection", qos=1)
        self.assertEqual(new.recv_publish().payload, b"to the new connection")


class Redelivery(BrokerTest):
    """Unacknowledged QoS 1/2 messages and PUBRELs are resent on reconnect with Clean Start 0,
    with their original packet ids and DUP set ([MQTT-4.4.0-1], [MQTT-3.3.1-1])."""

    def persistent(self, b, cid, version):
        kw = {"clean": False}
        if version == 5:
            kw["props"] = [(P_SESSION_EXPIRY, 60)]
        c = self.raw(b, version)
        c.connect(cid, **kw)
        return c

    def test_qos1_redelivered_with_dup(self):
        """An unacknowledged QoS 1 message is resent after reconnect with DUP 1 and the same
        packet id, for 3.1.1 and 5.0 ([MQTT-4.4.0-1], [MQTT-3.3.1-1])."""
        b = self.start_broker()
        for version in (4, 5):
            cid, t = unique("rd"), unique("redeliver/")
            s = self.persistent(b, cid, version)
            s.subscribe(t, qos=1)
            p = self.raw_connected(b, unique("p"), version)
            p.publish(t, b"unacked", qos=1)
            first = s.recv_publish(ack=False)
            self.assertFalse(first.dup)
            s.close()
            s = self.persistent(b, cid, version)
            again = s.recv_publish(ack=False)
            self.assertEqual((again.payload, again.pid, again.dup, again.qos),
                             (b"unacked", first.pid, True, 1))
            s.ack(again)
            s.expect_nothing(0.1)

    def test_qos2_publish_redelivered_with_dup(self):
        """A QoS 2 PUBLISH that was not PUBREC'd is resent after reconnect with DUP 1 and the
        same packet id ([MQTT-4.4.0-1])."""
        b = self.start_broker()
        cid, t = unique("rd2"), unique("redeliver2/")
        s = self.persistent(b, cid, 5)
        s.subscribe(t, qos=2)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"exactly once", qos=2)
        first = s.recv_publish(ack=False)
        s.close()
        s = self.persistent(b, cid, 5)
        again = s.recv_publish(ack=False)
        self.assertEqual((again.payload, again.pid, again.dup, again.qos),
                         (b"exactly once", first.pid, True, 2))
        s.ack(again)
        s.expect_nothing(0.1)

    def test_qos2_pubrel_resent(self):
        """After the client's PUBREC, a reconnect makes the server resend PUBREL (not the
        PUBLISH) with the same packet id ([MQTT-4.4.0-1], [MQTT-4.3.3-6])."""
        b = self.start_broker()
        for version in (4, 5):
            cid, t = unique("rel"), unique("pubrel/")
            s = self.persistent(b, cid, version)
            s.subscribe(t, qos=2)
            p = self.raw_connected(b, unique("p"), version)
            p.publish(t, b"x", qos=2)
            m = s.recv_publish(ack=False)
            s.send(build_ack(PUBREC, m.pid, version=version))
            s.expect(PUBREL)
            s.close()
            s = self.persistent(b, cid, version)
            rel = s.expect(PUBREL, strict=True)
            self.assertEqual(rel.pid, m.pid)
            self.assertEqual(rel.raw[0], 0x62)
            s.send(build_ack(PUBCOMP, m.pid, version=version))
            s.expect_nothing(0.1)

    def test_messages_queued_behind_inflight(self):
        """On reconnect the unacknowledged in-flight message comes first (DUP 1), then the
        messages queued while offline, in order ([MQTT-4.4.0-1], [MQTT-4.6.0-6])."""
        b = self.start_broker()
        cid, t = unique("ord"), unique("order/")
        s = self.persistent(b, cid, 4)
        s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t, b"0", qos=1)
        first = s.recv_publish(ack=False)
        s.close()
        for i in range(1, 4):
            p.publish(t, b"%d" % i, qos=1)
        s = self.persistent(b, cid, 4)
        got = [s.recv_publish() for _ in range(4)]
        self.assertEqual([m.payload for m in got], [b"0", b"1", b"2", b"3"])
        self.assertTrue(got[0].dup)
        self.assertEqual(got[0].pid, first.pid)


class ExactlyOnce(BrokerTest):
    """The server, as QoS 2 receiver, must not deliver a message twice when the sender
    resends the PUBLISH (DUP 1) before PUBREL (section 4.3.3, [MQTT-4.3.3-10])."""

    def test_v311_qos2_beyond_max_inflight_not_refused(self):
        """A 3.1.1 client is never told the broker's Receive Maximum, so it may have more
        QoS 2 messages awaiting PUBREL than max_inflight_messages (20 by default): they are
        all acknowledged and the connection stays (found by culex_bench)."""
        b = self.start_broker()
        t = unique("q2many/")
        p = self.raw_connected(b, unique("p"), 4)
        for pid in range(1, 41):
            p.send(build_publish(t, b"%d" % pid, qos=2, pid=pid))
        for pid in range(1, 41):
            self.assertEqual(p.expect(PUBREC).pid, pid)
        for pid in range(1, 41):
            p.send(build_ack(PUBREL, pid))
            self.assertEqual(p.expect(PUBCOMP).pid, pid)

    def sub(self, b, t):
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=2)
        return s

    def test_duplicate_publish_before_pubrel(self):
        """A QoS 2 PUBLISH resent with DUP 1 before PUBREL is acknowledged again (PUBREC,
        same id) but delivered only once ([MQTT-4.3.3-10])."""
        b = self.start_broker()
        t = unique("eo/")
        s = self.sub(b, t)
        p = self.raw_connected(b, unique("p"), 5)
        p.send(build_publish(t, b"once", qos=2, pid=7, version=5))
        self.assertEqual(p.expect(PUBREC).pid, 7)
        p.send(build_publish(t, b"once", qos=2, pid=7, dup=True, version=5))
        self.assertEqual(p.expect(PUBREC).pid, 7)
        p.send(build_ack(PUBREL, 7, version=5))
        self.assertEqual(p.expect(PUBCOMP).pid, 7)
        p.publish(t, b"marker", qos=2)
        self.assertEqual(s.recv_publish().payload, b"once")
        self.assertEqual(s.recv_publish().payload, b"marker")
        s.expect_nothing(0.1)

    def test_duplicate_publish_after_reconnect(self):
        """The QoS 2 receive state survives a reconnect (Clean Start 0): a PUBLISH resent
        with DUP 1 on the new connection is not delivered a second time
        ([MQTT-4.4.0-1], [MQTT-4.3.3-10])."""
        b = self.start_broker()
        t = unique("eor/")
        s = self.sub(b, t)
        cid = unique("pub")
        props = [(P_SESSION_EXPIRY, 60)]
        p = self.raw_connected(b, cid, 5, clean=False, props=props)
        p.send(build_publish(t, b"once", qos=2, pid=9, version=5))
        p.expect(PUBREC)
        p.close()
        p = self.raw(b, 5)
        self.assertTrue(p.connect(cid, clean=False, props=props).session_present)
        p.send(build_publish(t, b"once", qos=2, pid=9, dup=True, version=5))
        self.assertEqual(p.expect(PUBREC).pid, 9)
        p.send(build_ack(PUBREL, 9, version=5))
        p.expect(PUBCOMP)
        p.publish(t, b"marker", qos=1)
        got = []
        while True:
            m = s.recv_publish()
            if m.payload == b"marker":
                break
            got.append(m.payload)
        self.assertEqual(got, [b"once"])

    def test_same_packet_id_after_pubcomp_is_new(self):
        """Once PUBCOMP has been sent the packet id is free: a new QoS 2 PUBLISH with the same
        id is a new message and is delivered ([MQTT-4.3.3-12])."""
        b = self.start_broker()
        t = unique("eon/")
        s = self.sub(b, t)
        p = self.raw_connected(b, unique("p"), 5)
        for payload in (b"first", b"second"):
            p.send(build_publish(t, payload, qos=2, pid=11, version=5))
            p.expect(PUBREC)
            p.send(build_ack(PUBREL, 11, version=5))
            p.expect(PUBCOMP)
        self.assertEqual([s.recv_publish().payload for _ in range(2)], [b"first", b"second"])

    def test_qos1_duplicate_may_be_redelivered(self):
        """QoS 1 is at least once: a PUBLISH resent with DUP 1 is acknowledged again and the
        subscriber gets the message at least once (section 4.3.2)."""
        b = self.start_broker()
        t = unique("alo/")
        s = self.sub(b, t)
        p = self.raw_connected(b, unique("p"), 5)
        p.send(build_publish(t, b"alo", qos=1, pid=3, version=5))
        p.send(build_publish(t, b"alo", qos=1, pid=3, dup=True, version=5))
        p.expect(4)
        p.expect(4)
        self.assertEqual(s.recv_publish().payload, b"alo")


if __name__ == "__main__":
    unittest.main()
