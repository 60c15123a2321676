"""Sessions: clean session / clean start, session present, offline queueing, expiry."""

import unittest

from harness import (
    BrokerTest, DISCONNECT, P_SESSION_EXPIRY, P_WILL_DELAY, PacketTypes, RC_PROTOCOL_ERROR,
    build_disconnect, unique, v5_props,
)


class SessionV311(BrokerTest):

    def test_session_present_flag(self):
        """CleanSession=0: Session Present is 0 when no session exists and 1 when the stored
        session is resumed ([MQTT-3.2.2-2], [MQTT-3.2.2-3] 3.1.1)."""
        b = self.start_broker()
        cid = unique("sp")
        c = self.raw(b, 4)
        self.assertEqual(c.connect(cid, clean=False).raw, b"\x20\x02\x00\x00")
        c.disconnect()
        c = self.raw(b, 4)
        self.assertEqual(c.connect(cid, clean=False).raw, b"\x20\x02\x01\x00")

    def test_subscriptions_survive_reconnect(self):
        """CleanSession=0: subscriptions are part of the session and apply after reconnect
        without subscribing again ([MQTT-3.1.2-4] 3.1.1)."""
        b = self.start_broker()
        cid, t = unique("subs"), unique("persist/")
        c = self.raw_connected(b, cid, 4, clean=False)
        c.subscribe(t, qos=1)
        c.disconnect()
        c = self.raw_connected(b, cid, 4, clean=False)
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t, b"after", qos=1)
        self.assertEqual(c.recv_publish().payload, b"after")

    def test_offline_messages_queued(self):
        """CleanSession=0: QoS 1 and QoS 2 messages published while the client is offline are
        delivered, in order, when it reconnects ([MQTT-3.1.2-5] 3.1.1)."""
        b = self.start_broker()
        cid, t = unique("queue"), unique("offline/")
        c = self.raw_connected(b, cid, 4, clean=False)
        c.subscribe(t, qos=2)
        c.disconnect()
        p = self.raw_connected(b, unique("p"), 4)
        for i in range(6):
            p.publish(t, b"m%d" % i, qos=1 + i % 2)
        c = self.raw(b, 4)
        self.assertTrue(c.connect(cid, clean=False).session_present)
        got = [c.recv_publish() for _ in range(6)]
        self.assertEqual([m.payload for m in got], [b"m%d" % i for i in range(6)])
        self.assertEqual([m.qos for m in got], [1 + i % 2 for i in range(6)])

    def test_offline_qos0_not_queued(self):
        """QoS 0 messages are not queued for an offline client (Mosquitto's default
        queue_qos0_messages false; the spec lets the server choose, section 3.1.2.4)."""
        b = self.start_broker()
        cid, t = unique("q0"), unique("offq0/")
        c = self.raw_connected(b, cid, 4, clean=False)
        c.subscribe(t, qos=1)
        c.disconnect()
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t, b"qos0", qos=0)
        p.publish(t, b"qos1", qos=1)
        c = self.raw_connected(b, cid, 4, clean=False)
        self.assertEqual(c.recv_publish().payload, b"qos1")
        c.expect_nothing(0.1)

    def test_clean_session_discards_state(self):
        """CleanSession=1 discards the previous session: Session Present 0 and the old
        subscriptions are gone ([MQTT-3.1.2-6], [MQTT-3.2.2-1] 3.1.1)."""
        b = self.start_broker()
        cid, t = unique("clean"), unique("gone/")
        c = self.raw_connected(b, cid, 4, clean=False)
        c.subscribe(t, qos=1)
        c.disconnect()
        c = self.raw(b, 4)
        self.assertFalse(c.connect(cid, clean=True).session_present)
        c.subscribe(t + "/marker", qos=1)
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t, b"old subscription", qos=1)
        p.publish(t + "/marker", b"marker", qos=1)
        self.assertEqual(c.recv_publish().payload, b"marker")
        c.disconnect()
        # and the clean session did not leave a session behind
        c = self.raw(b, 4)
        self.assertFalse(c.connect(cid, clean=False).session_present)

    def test_sessions_are_per_client_id(self):
        """Session state is identified by the client id ([MQTT-3.1.3-2]): another id does
        not see it."""
        b = self.start_broker()
        a = self.raw_connected(b, unique("a"), 4, clean=False)
        a.disconnect()
        c = self.raw(b, 4)
        self.assertFalse(c.connect(unique("other"), clean=False).session_present)


class SessionV5(BrokerTest):

    def test_clean_start_discards_session(self):
        """Clean Start 1 discards an existing session and Session Present is 0
        ([MQTT-3.1.2-4], [MQTT-3.2.2-2])."""
        b = self.start_broker()
        cid = unique("cs")
        c = self.raw_connected(b, cid, 5, clean=False, props=[(P_SESSION_EXPIRY, 60)])
        c.subscribe("x/" + cid, qos=1)
        c.disconnect()
        c = self.raw(b, 5)
        self.assertFalse(c.connect(cid, clean=True, props=[(P_SESSION_EXPIRY, 60)])
                         .session_present)
        c.disconnect()
        c = self.raw(b, 5)
        p = c.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 60)])
        self.assertTrue(p.session_present)     # the session made by the clean connection
        p2 = self.raw_connected(b, unique("p"), 5)
        c.subscribe("x/" + cid + "/marker", qos=1)
        p2.publish("x/" + cid, b"old", qos=1)
        p2.publish("x/" + cid + "/marker", b"marker", qos=1)
        self.assertEqual(c.recv_publish().payload, b"marker")

    def test_session_expiry_absent_ends_session(self):
        """Without a Session Expiry Interval (0) the session ends when the connection
        closes: Session Present 0 on return ([MQTT-3.1.2-6], section 3.1.2.11.2)."""
        b = self.start_broker()
        cid = unique("se0")
        c = self.raw_connected(b, cid, 5, clean=False)
        c.disconnect()
        c = self.raw(b, 5)
        self.assertFalse(c.connect(cid, clean=False).session_present)

    def test_session_resumed_with_expiry(self):
        """With a Session Expiry Interval > 0 the session is kept after the connection
        closes and resumed with Session Present 1, including queued messages
        ([MQTT-3.1.2-5], [MQTT-3.1.2-23], [MQTT-3.2.2-3])."""
        b = self.start_broker()
        cid, t = unique("se"), unique("sexp/")
        c = self.raw_connected(b, cid, 5, clean=False, props=[(P_SESSION_EXPIRY, 60)])
        c.subscribe(t, qos=1)
        c.disconnect()
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"while away", qos=1)
        c = self.raw(b, 5)
        self.assertTrue(c.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 60)])
                        .session_present)
        self.assertEqual(c.recv_publish().payload, b"while away")

    def test_session_expires(self):
        """After the Session Expiry Interval (1 s) the session is discarded: Session
        Present 0 (section 3.1.2.11.2). The session's end is observed through its will
        (Will Delay 30 s is cut short by the session end, [MQTT-3.1.2-8])."""
        b = self.start_broker()
        cid, t = unique("sx"), unique("sxwill/")
        w = self.raw_connected(b, unique("watch"), 5)
        w.subscribe(t, qos=1)
        c = self.raw_connected(b, cid, 5, clean=False, props=[(P_SESSION_EXPIRY, 1)],
                               will={"topic": t, "payload": b"ended",
                                     "props": [(P_WILL_DELAY, 30)]})
        c.close()
        self.assertEqual(w.recv_publish(timeout=1 + 2.5).payload, b"ended")
        c = self.raw(b, 5)
        self.assertFalse(c.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 60)])
                         .session_present)

    def test_disconnect_sets_session_expiry_zero(self):
        """A DISCONNECT with Session Expiry Interval 0 ends a session that was opened with
        a non-zero interval (section 3.14.2.2.2)."""
        b = self.start_broker()
        cid = unique("dse")
        c = self.raw_connected(b, cid, 5, clean=False, props=[(P_SESSION_EXPIRY, 60)])
        c.send(build_disconnect(0, [(P_SESSION_EXPIRY, 0)], version=5))
        c.wait_closed()
        c = self.raw(b, 5)
        self.assertFalse(c.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 60)])
                         .session_present)

    def test_disconnect_sets_session_expiry_longer(self):
        """A DISCONNECT can extend a non-zero Session Expiry Interval; the session is kept
        (section 3.14.2.2.2)."""
        b = self.start_broker()
        cid = unique("dsl")
        c = self.raw_connected(b, cid, 5, clean=False, props=[(P_SESSION_EXPIRY, 1)])
        c.send(build_disconnect(0, [(P_SESSION_EXPIRY, 120)], version=5))
        c.wait_closed()
        c = self.raw(b, 5)
        self.assertTrue(c.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 60)])
                        .session_present)

    def test_disconnect_session_expiry_from_zero_is_error(self):
        """A DISCONNECT with a non-zero Session Expiry Interval after a CONNECT with 0 is a
        Protocol Error: the server answers DISCONNECT 0x82 ([MQTT-3.14.2-2])."""
        b = self.start_broker()
        c = self.raw_connected(b, unique("dz"), 5)
        c.send(build_disconnect(0, [(P_SESSION_EXPIRY, 30)], version=5))
        self.assertClosedWith(c, (RC_PROTOCOL_ERROR,), DISCONNECT)

    def test_paho_persistent_session(self):
        """paho v5 with Clean Start 0 and a Session Expiry Interval resumes its session:
        Session Present 1 and the subscription still delivers ([MQTT-3.2.2-3])."""
        b = self.start_broker()
        cid, t = unique("pp"), unique("pahosess/")
        props = v5_props(PacketTypes.CONNECT, SessionExpiryInterval=60)
        c = self.paho(b, cid, 5, clean=False, props=props)
        c.subscribe(t, qos=1)
        c.disconnect()
        c = self.paho(b, cid, 5, clean=False, props=props)
        self.assertTrue(c.session_present)
        p = self.paho(b, unique("p"), 4)
        p.publish(t, b"resumed", qos=1)
        self.assertEqual(c.expect_message(t).payload, b"resumed")


if __name__ == "__main__":
    unittest.main()
