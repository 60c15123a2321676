"""Will messages: when they are (and are not) published, delay, properties, takeover."""

import socket
import time
import unittest

from harness import (
    BrokerTest, mosquitto_departs, P_CONTENT_TYPE, P_CORRELATION_DATA, P_MESSAGE_EXPIRY,
    P_PAYLOAD_FORMAT, P_RESPONSE_TOPIC, P_SESSION_EXPIRY, P_USER_PROPERTY, P_WILL_DELAY,
    RC_DISCONNECT_WITH_WILL, build_disconnect, packet, unique,
)

KEEPALIVE_DEPARTURE = ("mosquitto 2.0.11 checks keep alive coarsely: with Keep Alive 1 s it "
                       "closes the connection after about 5-6 s, not 1.5 s")


class WillTest(BrokerTest):

    def watcher(self, b, topic, version=5):
        s = self.raw_connected(b, unique("watch"), version)
        s.subscribe(topic, qos=2)
        return s

    def will_client(self, b, topic, payload=b"gone", version=5, qos=0, retain=False,
                    will_props=None, client_id=None, **kw):
        c = self.raw(b, version)
        c.connect(client_id or unique("w"), will={"topic": topic, "payload": payload,
                                                  "qos": qos, "retain": retain,
                                                  "props": will_props}, **kw)
        return c

    def assert_no_will(self, b, watcher, topic, wait=0.2):
        """Publish a marker on the will topic from another client and check it is the
        first message the watcher sees (then a short quiet period)."""
        p = self.raw_connected(b, unique("marker"), 5)
        p.publish(topic, b"marker", qos=1)
        m = watcher.recv_publish()
        self.assertEqual(m.payload, b"marker", "a will was published: %r" % m)
        watcher.expect_nothing(wait)


class WillPublished(WillTest):

    def test_will_on_close_without_disconnect(self):
        """The will is published when the network connection closes without DISCONNECT
        ([MQTT-3.1.2-8] 3.1.1/5.0)."""
        b = self.start_broker()
        for version in (3, 4, 5):
            t = unique("will/")
            s = self.watcher(b, t)
            c = self.will_client(b, t, b"bye-%d" % version, version=version)
            c.close()
            m = s.recv_publish()
            self.assertEqual((m.topic, m.payload, m.retain), (t, b"bye-%d" % version, False))

    def test_will_on_connection_reset(self):
        """The will is published when the connection is reset (I/O error) ([MQTT-3.1.2-8])."""
        b = self.start_broker()
        t = unique("reset/")
        s = self.watcher(b, t)
        c = self.will_client(b, t)
        c.abort()
        self.assertEqual(s.recv_publish().payload, b"gone")

    def test_will_on_protocol_error(self):
        """The will is published when the server closes the connection because of a protocol
        error (section 3.1.2.5, [MQTT-3.1.2-8])."""
        b = self.start_broker()
        for version in (4, 5):
            t = unique("perr/")
            s = self.watcher(b, t)
            c = self.will_client(b, t, version=version)
            c.send(packet(3, 6, b"\x00\x01a\x00\x01"))     # PUBLISH with QoS 3
            c.wait_closed()
            self.assertEqual(s.recv_publish().payload, b"gone")

    def test_will_on_disconnect_with_will(self):
        """DISCONNECT with reason 0x04 (Disconnect with Will Message) publishes the will
        (section 3.14.2.1)."""
        b = self.start_broker()
        t = unique("dww/")
        s = self.watcher(b, t)
        c = self.will_client(b, t)
        c.send(build_disconnect(RC_DISCONNECT_WITH_WILL, version=5))
        self.assertEqual(s.recv_publish().payload, b"gone")

    @mosquitto_departs(KEEPALIVE_DEPARTURE)
    def test_will_on_keepalive_timeout(self):
        """A client that stays silent past 1.5 x Keep Alive is disconnected and its will
        published ([MQTT-3.1.2-22], [MQTT-3.1.2-8])."""
        b = self.start_broker()
        t = unique("ka/")
        s = self.watcher(b, t)
        self.will_client(b, t, keepalive=1)
        self.assertEqual(s.recv_publish(timeout=1.5 + 1.0).payload, b"gone")

    def test_will_qos_and_retain(self):
        """Will Retain 1 publishes the will as a retained message at the will QoS
        ([MQTT-3.1.2-15] 5.0, [MQTT-3.1.2-17] 3.1.1)."""
        b = self.start_broker()
        for version in (4, 5):
            t = unique("wret/")
            c = self.will_client(b, t, b"retained will", version=version, qos=2, retain=True)
            c.close()
            live = self.watcher(b, t + "/never")   # make sure the close was processed:
            s = self.raw_connected(b, unique("late"), version)
            deadline = time.monotonic() + 5
            while True:                             # the will is stored asynchronously
                s.subscribe(t, qos=2)
                try:
                    m = s.recv_publish(timeout=0.2)
                    break
                except AssertionError:
                    if time.monotonic() > deadline:
                        raise
            self.assertEqual((m.payload, m.qos, m.retain), (b"retained will", 2, True))
            live.expect_nothing(0)

    def test_will_not_retained_when_will_retain_0(self):
        """Will Retain 0 publishes the will as a non-retained message ([MQTT-3.1.2-14] 5.0,
        [MQTT-3.1.2-16] 3.1.1)."""
        b = self.start_broker()
        t = unique("wnoret/")
        s = self.watcher(b, t)
        c = self.will_client(b, t, qos=1, retain=False)
        c.close()
        self.assertEqual(s.recv_publish().payload, b"gone")
        late = self.raw_connected(b, unique("late"), 5)
        late.subscribe(t, qos=1)
        self.assert_no_will(b, late, t)

    def test_will_payload_binary_exact(self):
        """The will payload is published byte for byte, including NUL and 0xFF bytes
        (section 3.1.3.4)."""
        b = self.start_broker()
        t = unique("wbin/")
        payload = bytes(range(256)) * 4
        s = self.watcher(b, t)
        c = self.will_client(b, t, payload)
        c.close()
        self.assertEqual(s.recv_publish().payload, payload)

    def test_will_properties_passed_through(self):
        """Will properties reach subscribers: payload format, content type, response topic,
        correlation data, user properties in order, message expiry ([MQTT-3.1.3-10],
        [MQTT-3.3.2-4], [MQTT-3.3.2-15], [MQTT-3.3.2-16], [MQTT-3.3.2-20])."""
        b = self.start_broker()
        t = unique("wprops/")
        s = self.watcher(b, t)
        props = [(P_PAYLOAD_FORMAT, 1), (P_CONTENT_TYPE, "text/plain"),
                 (P_RESPONSE_TOPIC, "reply/here"), (P_CORRELATION_DATA, b"\x00\x01\xff"),
                 (P_USER_PROPERTY, ("z", "1")), (P_USER_PROPERTY, ("a", "2")),
                 (P_USER_PROPERTY, ("z", "3")), (P_MESSAGE_EXPIRY, 100)]
        c = self.will_client(b, t, b"text", will_props=props)
        c.close()
        m = s.recv_publish()
        self.assertEqual(m.props.get(P_PAYLOAD_FORMAT), 1)
        self.assertEqual(m.props.get(P_CONTENT_TYPE), "text/plain")
        self.assertEqual(m.props.get(P_RESPONSE_TOPIC), "reply/here")
        self.assertEqual(m.props.get(P_CORRELATION_DATA), b"\x00\x01\xff")
        self.assertEqual(m.props.user(), [("z", "1"), ("a", "2"), ("z", "3")])
        self.assertIn(m.props.get(P_MESSAGE_EXPIRY), (99, 100))

    def test_paho_will(self):
        """paho: a v3.1.1 client's will set with will_set() reaches a paho v5 subscriber
        when the connection drops ([MQTT-3.1.2-8])."""
        b = self.start_broker()
        t = unique("pwill/")
        s = self.paho(b, unique("s"), 5)
        s.subscribe(t, qos=1)
        w = self.paho(b, unique("w"), 4, will={"topic": t, "payload": b"paho gone", "qos": 1})
        w.client.socket().shutdown(socket.SHUT_RDWR)   # drop without DISCONNECT
        self.assertEqual(s.expect_message(t).payload, b"paho gone")


class WillNotPublished(WillTest):

    def test_no_will_on_normal_disconnect(self):
        """A normal DISCONNECT (v5 reason 0x00) discards the will ([MQTT-3.1.2-10] 3.1.1,
        [MQTT-3.14.4-3] 5.0)."""
        b = self.start_broker()
        for version in (4, 5):
            t = unique("nowill/")
            s = self.watcher(b, t)
            c = self.will_client(b, t, version=version)
            c.send(build_disconnect(0 if version == 5 else None, version=version))
            c.wait_closed()
            self.assert_no_will(b, s, t)


class WillDelay(WillTest):

    def test_will_delay_interval(self):
        """With a Will Delay Interval of 1 s the will is published after the delay, not at
        the close (section 3.1.3.2.2, [MQTT-3.1.2-8])."""
        b = self.start_broker()
        t = unique("delay/")
        s = self.watcher(b, t)
        c = self.will_client(b, t, will_props=[(P_WILL_DELAY, 1)],
                             props=[(P_SESSION_EXPIRY, 60)])
        c.close()
        start = time.monotonic()
        m = s.recv_publish(timeout=1 + 2.5)
        self.assertGreaterEqual(time.monotonic() - start, 0.9)
        self.assertEqual(m.payload, b"gone")

    def test_will_delay_cancelled_by_reconnect(self):
        """If the client reconnects to its session before the Will Delay Interval passes,
        the will is not published ([MQTT-3.1.3-9])."""
        b = self.start_broker()
        t = unique("cancel/")
        cid = unique("wd")
        s = self.watcher(b, t)
        c = self.will_client(b, t, client_id=cid, will_props=[(P_WILL_DELAY, 1)],
                             clean=False, props=[(P_SESSION_EXPIRY, 60)])
        c.close()
        r = self.raw(b, 5)
        r.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 60)])
        # the delay is 1 s; give the broker 1.5 s more before concluding
        s.expect_nothing(2.5)

    def test_will_at_session_end_before_delay(self):
        """The will is published when the session ends even if the Will Delay Interval has
        not elapsed (Session Expiry 1 s, Will Delay 30 s) ([MQTT-3.1.2-8],
        section 3.1.3.2.2)."""
        b = self.start_broker()
        t = unique("sessend/")
        s = self.watcher(b, t)
        c = self.will_client(b, t, will_props=[(P_WILL_DELAY, 30)],
                             props=[(P_SESSION_EXPIRY, 1)])
        c.close()
        self.assertEqual(s.recv_publish(timeout=1 + 2.5).payload, b"gone")


class WillOnTakeover(WillTest):
    """Section 3.1.4 (CONNECT actions): on takeover the existing connection's will is
    sent unless the new connection has Clean Start 0 and the will has a Will Delay > 0;
    with Will Delay 0 it is sent at the close, with Clean Start 1 because the old
    session ends. Will Delay 30 s / Session Expiry 60 s keep the timers out of the way."""

    def takeover(self, b, t, delay, clean):
        cid = unique("tk")
        s = self.watcher(b, t)
        old = self.will_client(b, t, client_id=cid, clean=False,
                               will_props=[(P_WILL_DELAY, delay)] if delay else None,
                               props=[(P_SESSION_EXPIRY, 60)])
        new = self.raw(b, 5)
        new.connect(cid, clean=clean, props=[(P_SESSION_EXPIRY, 60)])
        old.wait_closed()
        return s

    @mosquitto_departs("mosquitto 2.0.11 does not send the will on takeover by a Clean Start 0 "
                       "connection when the Will Delay is 0")
    def test_takeover_will_delay_0_resume(self):
        """Takeover by a Clean Start 0 connection: a will with Will Delay 0 is sent at the
        close of the existing connection (section 3.1.4, [MQTT-3.1.2-8])."""
        b = self.start_broker()
        t = unique("tk0/")
        s = self.takeover(b, t, delay=0, clean=False)
        self.assertEqual(s.recv_publish(timeout=2).payload, b"gone")

    def test_takeover_will_delay_0_clean(self):
        """Takeover by a Clean Start 1 connection: a will with Will Delay 0 is sent
        (section 3.1.4, [MQTT-3.1.2-8])."""
        b = self.start_broker()
        t = unique("tk1/")
        s = self.takeover(b, t, delay=0, clean=True)
        self.assertEqual(s.recv_publish(timeout=2).payload, b"gone")

    @mosquitto_departs("mosquitto 2.0.11 does not send a delayed will when a Clean Start 1 "
                       "connection takes over and so ends the old session")
    def test_takeover_will_delay_clean_session_ends(self):
        """Takeover by a Clean Start 1 connection ends the old session, so its will is sent
        even though its Will Delay (30 s) has not elapsed (section 3.1.4,
        [MQTT-3.1.2-8])."""
        b = self.start_broker()
        t = unique("tk2/")
        s = self.takeover(b, t, delay=30, clean=True)
        self.assertEqual(s.recv_publish(timeout=2).payload, b"gone")

    def test_takeover_will_delay_resume_not_sent(self):
        """Takeover by a Clean Start 0 connection while the will has Will Delay > 0: the
        will is not sent ([MQTT-3.1.3-9], section 3.1.4)."""
        b = self.start_broker()
        t = unique("tk3/")
        s = self.takeover(b, t, delay=30, clean=False)
        self.assert_no_will(b, s, t, wait=0.5)


if __name__ == "__main__":
    unittest.main()
