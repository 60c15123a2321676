"""CONNECT / CONNACK / PINGREQ / DISCONNECT for MQTT 3.1, 3.1.1 and 5.0."""

import unittest

from harness import (
    BrokerTest, CONNACK, CONNACK_ID_REJECTED, CONNACK_NOT_AUTHORIZED,
    P_AUTH_METHOD, P_RECEIVE_MAXIMUM, P_TOPIC_ALIAS_MAXIMUM, P_SESSION_EXPIRY,
    P_MAXIMUM_PACKET_SIZE, P_REQUEST_RESPONSE_INFO, P_USER_PROPERTY,
    RC_BAD_AUTH_METHOD, RC_MALFORMED, RC_PROTOCOL_ERROR, RC_NOT_AUTHORIZED,
    RC_UNSUPPORTED_PROTOCOL_VERSION, build_connect, build_disconnect, build_publish,
    unique,
)


class ConnectAccepted(BrokerTest):

    def test_v311_connack_bytes(self):
        """A valid 3.1.1 CONNECT with CleanSession=1 gets exactly CONNACK 20 02 00 00:
        return code 0 and Session Present 0 ([MQTT-3.2.2-1] 3.1.1, [MQTT-3.1.4-4] 3.1.1)."""
        b = self.start_broker()
        c = self.raw(b, 4)
        p = c.connect(unique("c"))
        self.assertEqual(p.raw, b"\x20\x02\x00\x00")

    def test_v31_mqisdp_accepted(self):
        """A valid MQTT 3.1 CONNECT (protocol name MQIsdp, level 3) is accepted with
        return code 0 (MQTT 3.1 section 3.2, CONNACK)."""
        b = self.start_broker()
        c = self.raw(b, 3)
        p = c.connect(unique("c"))
        self.assertEqual(p.raw, b"\x20\x02\x00\x00")
        c.ping()

    def test_v5_connack_success(self):
        """A valid 5.0 CONNECT with Clean Start gets CONNACK reason 0x00, Session Present 0
        ([MQTT-3.1.4-5], [MQTT-3.2.2-2])."""
        b = self.start_broker()
        c = self.raw(b, 5)
        p = c.connect(unique("c"))
        self.assertEqual(p.rc, 0)
        self.assertFalse(p.session_present)

    def test_v5_connack_default_limits(self):
        """Defaults equal Mosquitto's (issue #2): the v5 CONNACK announces Receive Maximum
        20 and Topic Alias Maximum 10 (section 3.2.2.3.3 / 3.2.2.3.8)."""
        b = self.start_broker()
        c = self.raw(b, 5)
        p = c.connect(unique("c"))
        self.assertEqual(p.props.get(P_RECEIVE_MAXIMUM), 20, p)
        self.assertEqual(p.props.get(P_TOPIC_ALIAS_MAXIMUM), 10, p)

    def test_v5_connect_with_properties(self):
        """A v5 CONNECT carrying Session Expiry, Receive Maximum, Maximum Packet Size,
        Topic Alias Maximum, Request Response Information and User Properties is accepted
        (section 3.1.2.11)."""
        b = self.start_broker()
        c = self.raw(b, 5)
        p = c.connect(unique("c"), props=[
            (P_SESSION_EXPIRY, 10), (P_RECEIVE_MAXIMUM, 5), (P_MAXIMUM_PACKET_SIZE, 4096),
            (P_TOPIC_ALIAS_MAXIMUM, 3), (P_REQUEST_RESPONSE_INFO, 0),
            (P_USER_PROPERTY, ("k", "v")), (P_USER_PROPERTY, ("k", "v2"))])
        self.assertEqual(p.rc, 0)
        c.ping()

    def test_paho_v311_and_v5(self):
        """paho-mqtt connects with 3.1.1 and 5.0 and gets return/reason code 0
        ([MQTT-3.1.4-4] 3.1.1, [MQTT-3.1.4-5])."""
        b = self.start_broker()
        for version in (4, 5):
            c = self.paho(b, unique("p"), version=version)
            self.assertEqual(c.connack[1], 0)
            self.assertFalse(c.session_present)

    def test_client_id_23_chars(self):
        """The server allows client ids of 1 to 23 characters from [0-9a-zA-Z]
        ([MQTT-3.1.3-5])."""
        b = self.start_broker()
        for version in (4, 5):
            c = self.raw(b, version)
            c.connect("aZ09" * 5 + "xyz")

    def test_long_client_id_accepted(self):
        """Mosquitto (and culex) allow client ids longer than 23 bytes, a MAY in
        [MQTT-3.1.3-5]."""
        b = self.start_broker()
        c = self.raw(b, 4)
        c.connect("x" * 200)

    def test_empty_client_id_v311_clean(self):
        """3.1.1: a zero-length client id with CleanSession=1 is accepted and the server
        assigns an id ([MQTT-3.1.3-6] 3.1.1)."""
        b = self.start_broker()
        c = self.raw(b, 4)
        c.connect("", clean=True)
        c.ping()

    def test_password_without_username_v5(self):
        """5.0 allows a Password without a User Name (section 3.1.2.9)."""
        b = self.start_broker()
        c = self.raw(b, 5)
        c.connect(unique("c"), password=b"secret")
        c.ping()

    def test_pingreq_pingresp(self):
        """PINGREQ is answered with PINGRESP, bytes D0 00 ([MQTT-3.12.4-1])."""
        b = self.start_broker()
        for version in (3, 4, 5):
            c = self.raw(b, version)
            c.connect(unique("c"))
            self.assertEqual(c.ping().raw, b"\xd0\x00")

    def test_disconnect_closes_connection(self):
        """After a client's DISCONNECT the server closes the network connection
        (section 3.14.4: the server closes it if the client has not)."""
        b = self.start_broker()
        for version in (4, 5):
            c = self.raw(b, version)
            c.connect(unique("c"))
            c.send(build_disconnect(version=version))
            self.assertClosedSilently(c)


class ConnectRefused(BrokerTest):

    def test_unsupported_protocol_level(self):
        """An unsupported protocol level gets CONNACK return code 0x01 (3.1.1 format) or
        reason 0x84 (5.0 format) and the connection is closed ([MQTT-3.1.2-2])."""
        b = self.start_broker()
        c = self.raw(b, 4)
        c.send(build_connect(unique("c"), version=6))
        got = c.wait_closed()
        self.assertEqual(len(got), 1, got)
        p = got[0]
        self.assertEqual(p.type, CONNACK)
        if len(p.body) == 2:
            self.assertEqual(p.raw, b"\x20\x02\x00\x01")
        else:
            self.assertEqual(p.body[1], RC_UNSUPPORTED_PROTOCOL_VERSION)

    def test_bad_protocol_name(self):
        """A wrong protocol name ("MQTX") is not accepted: the connection is closed
        without a successful CONNACK ([MQTT-3.1.2-1])."""
        b = self.start_broker()
        for version in (4, 5):
            c = self.raw(b, version)
            c.send(build_connect(unique("c"), version=version, protocol_name="MQTX"))
            got = c.wait_closed()
            for p in got:
                self.assertEqual(p.type, CONNACK, got)
                self.assertNotEqual(p.rc, 0, got)

    def test_reserved_flag_v311(self):
        """3.1.1: the reserved CONNECT flag must be 0, else the server disconnects
        ([MQTT-3.1.2-3] 3.1.1)."""
        b = self.start_broker()
        c = self.raw(b, 4)
        c.send(build_connect(unique("c"), version=4, flags_extra=0x01))
        self.assertClosedSilently(c)

    def test_reserved_flag_v5(self):
        """5.0: a set reserved CONNECT flag is a Malformed Packet; the connection is closed,
        with CONNACK 0x81 ([MQTT-3.1.2-3], [MQTT-3.1.4-1])."""
        b = self.start_broker()
        c = self.raw(b, 5)
        c.send(build_connect(unique("c"), version=5, flags_extra=0x01))
        self.assertClosedWith(c, (RC_MALFORMED,), CONNACK)

    def test_will_qos_without_will_flag(self):
        """Will QoS must be 0 when the Will Flag is 0 ([MQTT-3.1.2-11] 5.0 / 3.1.1):
        v3.1.1 is closed, v5 closed with CONNACK 0x81."""
        b = self.start_broker()
        c = self.raw(b, 4)
        c.send(build_connect(unique("c"), version=4, flags_extra=0x08))
        self.assertClosedSilently(c)
        c = self.raw(b, 5)
        c.send(build_connect(unique("c"), version=5, flags_extra=0x08))
        self.assertClosedWith(c, (RC_MALFORMED, RC_PROTOCOL_ERROR), CONNACK)

    def test_will_retain_without_will_flag(self):
        """Will Retain must be 0 when the Will Flag is 0 ([MQTT-3.1.2-13] 5.0,
        [MQTT-3.1.2-15] 3.1.1)."""
        b = self.start_broker()
        c = self.raw(b, 4)
        c.send(build_connect(unique("c"), version=4, flags_extra=0x20))
        self.assertClosedSilently(c)
        c = self.raw(b, 5)
        c.send(build_connect(unique("c"), version=5, flags_extra=0x20))
        self.assertClosedWith(c, (RC_MALFORMED, RC_PROTOCOL_ERROR), CONNACK)

    def test_will_qos_3(self):
        """Will QoS 3 is invalid ([MQTT-3.1.2-12] 5.0, [MQTT-3.1.2-14] 3.1.1)."""
        b = self.start_broker()
        will = {"topic": "w", "payload": b"x", "qos": 3}
        c = self.raw(b, 4)
        c.send(build_connect(unique("c"), version=4, will=will))
        self.assertClosedSilently(c)
        c = self.raw(b, 5)
        c.send(build_connect(unique("c"), version=5, will=will))
        self.assertClosedWith(c, (RC_MALFORMED, RC_PROTOCOL_ERROR), CONNACK)

    def test_password_without_username_v311(self):
        """3.1.1: Password Flag set without User Name Flag is invalid; the connection is
        closed ([MQTT-3.1.2-22] 3.1.1)."""
        b = self.start_broker()
        c = self.raw(b, 4)
        c.send(build_connect(unique("c"), version=4, password=b"pw"))
        self.assertClosedSilently(c)

    def test_empty_client_id_v311_persistent(self):
        """3.1.1: a zero-length client id with CleanSession=0 gets CONNACK 0x02 (identifier
        rejected) and the connection is closed ([MQTT-3.1.3-8] 3.1.1)."""
        b = self.start_broker()
        c = self.raw(b, 4)
        c.send(build_connect("", version=4, clean=False))
        got = c.wait_closed()
        self.assertEqual([p.raw for p in got], [b"\x20\x02\x00" + bytes([CONNACK_ID_REJECTED])])

    def test_anonymous_refused_v311(self):
        """With allow_anonymous false, a 3.1.1 client without credentials gets CONNACK
        return code 5 (not authorized), Session Present 0, then the connection is closed
        ([MQTT-3.2.2-4], [MQTT-3.2.2-5] 3.1.1)."""
        b = self.start_broker(allow_anonymous=False)
        c = self.raw(b, 4)
        c.send(build_connect(unique("c"), version=4))
        got = c.wait_closed()
        self.assertEqual([p.raw for p in got],
                         [b"\x20\x02\x00" + bytes([CONNACK_NOT_AUTHORIZED])])

    def test_anonymous_refused_v5(self):
        """With allow_anonymous false, a v5 client without credentials gets CONNACK 0x87
        (not authorized, as Mosquitto), Session Present 0, then the connection is closed
        ([MQTT-3.2.2-6], [MQTT-3.2.2-7])."""
        b = self.start_broker(allow_anonymous=False)
        c = self.raw(b, 5)
        c.send(build_connect(unique("c"), version=5))
        got = c.wait_closed()
        self.assertEqual(len(got), 1, got)
        self.assertEqual(got[0].type, CONNACK)
        self.assertEqual(got[0].rc, RC_NOT_AUTHORIZED)
        self.assertFalse(got[0].session_present)

    def test_unsupported_auth_method(self):
        """A CONNECT with an Authentication Method the server does not support gets
        CONNACK 0x8C (bad authentication method) and the connection is closed
        ([MQTT-4.12.0-1])."""
        b = self.start_broker()
        c = self.raw(b, 5)
        c.send(build_connect(unique("c"), version=5, props=[(P_AUTH_METHOD, "SCRAM-SHA-1")]))
        got = c.wait_closed()
        self.assertEqual(len(got), 1, got)
        self.assertEqual(got[0].type, CONNACK)
        self.assertIn(got[0].rc, (RC_BAD_AUTH_METHOD, RC_NOT_AUTHORIZED))
        self.assertFalse(got[0].session_present)

    def test_refused_connect_processes_nothing_after(self):
        """After refusing a CONNECT the server processes nothing the client sent after it:
        a retained PUBLISH pipelined behind a refused CONNECT is not stored
        ([MQTT-3.1.4-6] 5.0, [MQTT-3.1.4-5] 3.1.1)."""
        b = self.start_broker()
        topic = unique("refused/")
        c = self.raw(b, 5)
        c.send(build_connect(unique("c"), version=5, props=[(P_AUTH_METHOD, "NOPE")])
               + build_publish(topic, b"must not be stored", retain=True, version=5))
        got = c.wait_closed()
        self.assertEqual([p.type for p in got], [CONNACK])
        self.assertGreaterEqual(got[0].rc, 0x80)
        # a subscription to topic/# gets every retained message under it (the parent
        # topic included, [MQTT-4.7.1-2]) right after the SUBACK; only the marker is there
        s = self.raw_connected(b, unique("s"), 5)
        s.publish(topic + "/marker", b"m", qos=1, retain=True)
        s.subscribe(topic + "/#", qos=1)
        m = s.recv_publish()
        self.assertEqual(m.topic, topic + "/marker")
        s.expect_nothing(0.2)

if __name__ == "__main__":
    unittest.main()
