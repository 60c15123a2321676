"""Malformed packets and protocol errors, sent as hand-built bytes.

Each test connects a well-behaved bystander first, then a raw client that misbehaves. The
broker must close the bad connection (for MQTT 5 with the right reason code in a CONNACK or
DISCONNECT, see harness.REASON_REQUIRED), must not crash, and the bystander must keep working
through the whole test (section 4.13, issue #2 "Behaviour under bad input")."""

import unittest

from harness import (
    BrokerTest, mosquitto_departs, CONNACK, DISCONNECT, PINGREQ, PUBLISH,
    PUBACK, PUBREL, UNSUBSCRIBE, P_AUTH_METHOD, P_PAYLOAD_FORMAT, P_RESPONSE_TOPIC,
    P_SESSION_EXPIRY, P_SUBSCRIPTION_ID, P_USER_PROPERTY, P_CONTENT_TYPE,
    RC_BAD_AUTH_METHOD, RC_CLIENT_ID_NOT_VALID, RC_MALFORMED, RC_PROTOCOL_ERROR,
    RC_TOPIC_NAME_INVALID, build_auth, build_connect, build_publish, build_subscribe,
    build_unsubscribe, packet, u16, utf8, varint, unique,
)

CLOSE_TIMEOUT = 2.0


class MalformedTest(BrokerTest):

    def setUp(self):
        self.broker = self.start_broker()
        self.bystander = self.raw_connected(self.broker, unique("bystander"), 5)
        self.by_topic = unique("bystander/")
        self.bystander.subscribe(self.by_topic, qos=1)
        self.addCleanup(self.check_bystander)

    def check_bystander(self):
        """The bystander's round trip still works and new clients can connect."""
        self.bystander.publish(self.by_topic, b"still alive", qos=1)
        self.assertEqual(self.bystander.recv_publish().payload, b"still alive")
        fresh = self.raw_connected(self.broker, unique("fresh"), 4)
        fresh.ping()
        fresh.disconnect()

    def connected(self, version=5):
        return self.raw_connected(self.broker, unique("bad"), version)

    def send_bad(self, data, allowed, version=5, connect=True, packet_type=DISCONNECT,
                 require_packet=None):
        """Send `data` (after a valid CONNECT if `connect`) and assert the connection is
        closed, for v5 with a reason code in `allowed` (a tuple; None = bare close)."""
        c = self.connected(version) if connect else self.raw(self.broker, version)
        c.send_quietly(data)
        if version != 5 or allowed is None:
            return self.assertClosedSilently(c, timeout=CLOSE_TIMEOUT)
        return self.assertClosedWith(c, allowed, packet_type, timeout=CLOSE_TIMEOUT,
                                     require_packet=require_packet)


class BeforeConnect(MalformedTest):

    def test_publish_before_connect(self):
        """The first packet must be CONNECT; a PUBLISH first closes the connection without
        any answer ([MQTT-3.1.0-1])."""
        for version in (4, 5):
            self.send_bad(build_publish("x", b"1", version=version), None, version,
                          connect=False)

    def test_pingreq_before_connect(self):
        """A PINGREQ before CONNECT closes the connection without PINGRESP ([MQTT-3.1.0-1])."""
        self.send_bad(packet(PINGREQ, 0, b""), None, 4, connect=False)

    def test_garbage_before_connect(self):
        """Bytes that are not MQTT at all (an HTTP request) close the connection
        ([MQTT-3.1.0-1], section 4.13)."""
        self.send_bad(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", None, 4, connect=False)

    def test_connect_remaining_length_too_long(self):
        """A remaining length encoded in more than 4 bytes is malformed
        ([MQTT-1.5.5-1], section 1.5.5): the connection is closed."""
        self.send_bad(b"\x10\xff\xff\xff\xff\x7f", None, 4, connect=False)

    def test_connect_truncated_v311(self):
        """3.1.1: a CONNECT whose client id length runs past the packet is closed
        ([MQTT-3.1.4-1] 3.1.1)."""
        body = utf8("MQTT") + bytes([4, 2]) + u16(60) + u16(10) + b"abc"
        self.send_bad(packet(1, 0, body), None, 4, connect=False)

    def test_connect_truncated_v5(self):
        """5.0: a CONNECT whose client id length runs past the packet is malformed: CONNACK
        0x81 and close ([MQTT-3.1.4-1])."""
        body = utf8("MQTT") + bytes([5, 2]) + u16(60) + b"\x00" + u16(10) + b"abc"
        self.send_bad(packet(1, 0, body), (RC_MALFORMED,), 5, connect=False,
                      packet_type=CONNACK)

    def test_connect_truncated_properties(self):
        """5.0: a CONNECT whose property length runs past the packet is malformed: CONNACK
        0x81 and close ([MQTT-3.1.4-1], section 2.2.2)."""
        body = utf8("MQTT") + bytes([5, 2]) + u16(60) + b"\x20" + b"\x11\x00\x00"
        self.send_bad(packet(1, 0, body), (RC_MALFORMED,), 5, connect=False,
                      packet_type=CONNACK)

    def test_connect_duplicate_property(self):
        """5.0: Session Expiry Interval twice in CONNECT is a Protocol Error: CONNACK 0x82
        (section 3.1.2.11.2)."""
        data = build_connect(unique("c"), version=5,
                             props=[(P_SESSION_EXPIRY, 1), (P_SESSION_EXPIRY, 2)])
        self.send_bad(data, (RC_PROTOCOL_ERROR,), 5, connect=False, packet_type=CONNACK)

    def test_connect_invalid_utf8_client_id(self):
        """A client id that is not valid UTF-8 is malformed ([MQTT-1.5.4-1],
        [MQTT-3.1.3-4]): 3.1.1 closed, 5.0 CONNACK 0x81 (or 0x85) and close."""
        self.send_bad(build_connect(b"bad\xff\xfeid", version=4), None, 4, connect=False)
        self.send_bad(build_connect(b"bad\xff\xfeid", version=5),
                      (RC_MALFORMED, RC_CLIENT_ID_NOT_VALID), 5, connect=False,
                      packet_type=CONNACK)

    def test_connect_will_topic_wildcard(self):
        """A will topic is a Topic Name and must not contain wildcards ([MQTT-3.3.2-2],
        [MQTT-3.1.3-11]): the CONNECT is refused (CONNACK 0x81/0x82/0x90) and closed."""
        data = build_connect(unique("c"), version=5, will={"topic": "will/#", "payload": b"x"})
        self.send_bad(data, (RC_MALFORMED, RC_PROTOCOL_ERROR, RC_TOPIC_NAME_INVALID), 5,
                      connect=False, packet_type=CONNACK)


class FixedHeader(MalformedTest):

    def test_remaining_length_five_bytes(self):
        """A remaining length longer than 4 bytes after CONNECT: DISCONNECT 0x81 (section
        1.5.5, 2.1.4)."""
        self.send_bad(b"\x30\xff\xff\xff\xff\x7f", (RC_MALFORMED,))
        self.send_bad(b"\x30\xff\xff\xff\xff\x7f", None, 4)

    def test_reserved_packet_type_0(self):
        """Packet type 0 is reserved: the connection is closed with 0x81/0x82 (section
        2.1.2)."""
        self.send_bad(b"\x00\x00", (RC_MALFORMED, RC_PROTOCOL_ERROR))
        self.send_bad(b"\x00\x00", None, 4)

    def test_subscribe_reserved_flags(self):
        """SUBSCRIBE fixed header flags must be 0010 ([MQTT-3.8.1-1]): DISCONNECT 0x81."""
        self.send_bad(build_subscribe(1, [("a", 0)], 5, flags=0), (RC_MALFORMED,))
        self.send_bad(build_subscribe(1, [("a", 0)], 4, flags=0), None, 4)

    def test_unsubscribe_reserved_flags(self):
        """UNSUBSCRIBE fixed header flags must be 0010 ([MQTT-3.10.1-1]): DISCONNECT 0x81."""
        data = packet(UNSUBSCRIBE, 0, u16(1) + b"\x00" + utf8("a"))
        self.send_bad(data, (RC_MALFORMED,))

    def test_pubrel_reserved_flags(self):
        """PUBREL fixed header flags must be 0010 ([MQTT-3.6.1-1]): DISCONNECT 0x81."""
        self.send_bad(packet(PUBREL, 0, u16(1)), (RC_MALFORMED,))

    @mosquitto_departs("mosquitto 2.0.11 ignores reserved fixed-header flag bits on PINGREQ "
                       "and answers it")
    def test_pingreq_reserved_flags(self):
        """Reserved fixed header flag bits set on PINGREQ make a Malformed Packet
        ([MQTT-2.1.3-1]): DISCONNECT 0x81."""
        self.send_bad(packet(PINGREQ, 1, b""), (RC_MALFORMED,))

    def test_publish_qos_3(self):
        """A PUBLISH with both QoS bits set (QoS 3) is malformed ([MQTT-3.3.1-4]):
        DISCONNECT 0x81; 3.1.1 closed."""
        data = packet(PUBLISH, 6, utf8("a") + u16(1) + b"\x00")
        self.send_bad(data, (RC_MALFORMED,))
        self.send_bad(packet(PUBLISH, 6, utf8("a") + u16(1)), None, 4)

    def test_puback_too_short(self):
        """A PUBACK with a remaining length of 1 cannot hold its packet id: DISCONNECT 0x81
        (section 3.4.2)."""
        self.send_bad(packet(PUBACK, 0, b"\x01"), (RC_MALFORMED,))


class PublishErrors(MalformedTest):

    def test_topic_longer_than_packet(self):
        """A PUBLISH whose topic length runs past the packet is malformed: DISCONNECT 0x81."""
        self.send_bad(packet(PUBLISH, 0, u16(50) + b"short"), (RC_MALFORMED,))
        self.send_bad(packet(PUBLISH, 0, u16(50) + b"short"), None, 4)

    def test_truncated_properties(self):
        """A PUBLISH whose property length runs past the packet is malformed: DISCONNECT 0x81
        (section 2.2.2)."""
        self.send_bad(packet(PUBLISH, 0, utf8("a") + b"\x05\x01"), (RC_MALFORMED,))

    def test_property_truncated_inside(self):
        """A property whose value is cut short (a UTF-8 string property of length 40 with 3
        bytes) is malformed: DISCONNECT 0x81."""
        props = b"\x03" + u16(40) + b"abc"
        self.send_bad(packet(PUBLISH, 0, utf8("a") + varint(len(props)) + props),
                      (RC_MALFORMED,))

    def test_invalid_utf8_topic(self):
        """A topic that is not well-formed UTF-8 is malformed ([MQTT-1.5.4-1]): 0xFF,
        an overlong NUL (C0 80) and a UTF-16 surrogate (ED A0 80) each get DISCONNECT 0x81;
        3.1.1 is closed."""
        for bad in (b"a/\xff", b"a/\xc0\x80", b"a/\xed\xa0\x80"):
            self.send_bad(build_publish(bad, b"x", version=5), (RC_MALFORMED,))
            self.send_bad(build_publish(bad, b"x", version=4), None, 4)

    def test_nul_in_topic(self):
        """A UTF-8 string must not contain U+0000 ([MQTT-1.5.4-2]): DISCONNECT 0x81."""
        self.send_bad(build_publish(b"a\x00b", b"x", version=5), (RC_MALFORMED,))
        self.send_bad(build_publish(b"a\x00b", b"x", version=4), None, 4)

    def test_invalid_utf8_user_property(self):
        """A User Property that is not valid UTF-8 is malformed ([MQTT-1.5.7-1]):
        DISCONNECT 0x81."""
        props = bytes([P_USER_PROPERTY]) + u16(1) + b"k" + u16(2) + b"\xff\xfe"
        self.send_bad(packet(PUBLISH, 0, utf8("a") + varint(len(props)) + props),
                      (RC_MALFORMED,))

    def test_wildcard_in_topic_name(self):
        """A PUBLISH topic must not contain wildcards ([MQTT-3.3.2-2]): closed with
        DISCONNECT 0x90 (Topic Name invalid), 0x82 or 0x81; 3.1.1 closed."""
        for topic in ("a/+", "a/#", "+", "#"):
            for qos in (0, 1):
                self.send_bad(build_publish(topic, b"x", qos=qos, pid=1, version=5),
                              (RC_TOPIC_NAME_INVALID, RC_PROTOCOL_ERROR, RC_MALFORMED))
        self.send_bad(build_publish("a/#", b"x", version=4), None, 4)

    def test_empty_topic_without_alias(self):
        """A zero-length topic without a Topic Alias is a Protocol Error (section 3.3.2.1,
        3.3.2.3.4): DISCONNECT 0x82; in 3.1.1 it is invalid ([MQTT-4.7.3-1]) and closed."""
        self.send_bad(build_publish("", b"x", version=5), (RC_PROTOCOL_ERROR,))
        self.send_bad(build_publish("", b"x", version=4), None, 4)

    def test_packet_id_zero(self):
        """A QoS 1 or 2 PUBLISH must have a non-zero packet id ([MQTT-2.2.1-3]): closed with
        DISCONNECT 0x82 (or 0x81); 3.1.1 closed."""
        for qos in (1, 2):
            self.send_bad(build_publish("a", b"x", qos=qos, pid=0, version=5),
                          (RC_PROTOCOL_ERROR, RC_MALFORMED))
            self.send_bad(build_publish("a", b"x", qos=qos, pid=0, version=4), None, 4)

    def test_duplicate_property(self):
        """A property other than User Property / Subscription Identifier given twice is a
        Protocol Error (section 3.3.2.3.2): DISCONNECT 0x82."""
        self.send_bad(build_publish("a", b"x", version=5,
                                    props=[(P_PAYLOAD_FORMAT, 0), (P_PAYLOAD_FORMAT, 0)]),
                      (RC_PROTOCOL_ERROR,))
        self.send_bad(build_publish("a", b"x", version=5,
                                    props=[(P_CONTENT_TYPE, "a"), (P_CONTENT_TYPE, "b")]),
                      (RC_PROTOCOL_ERROR,))

    def test_duplicate_user_property_is_fine(self):
        """User Property may appear more than once (section 3.3.2.3.7): such a PUBLISH is
        accepted, not an error."""
        c = self.connected(5)
        ack = c.publish(unique("dupok/"), b"x", qos=1, props=[
            (P_USER_PROPERTY, ("a", "1")), (P_USER_PROPERTY, ("a", "1"))])
        self.assertLess(ack.rc, 0x80)

    def test_property_not_allowed_in_publish(self):
        """A property that is not defined for PUBLISH (Session Expiry Interval) makes the
        packet invalid: DISCONNECT 0x81 or 0x82 (section 2.2.2.2)."""
        self.send_bad(build_publish("a", b"x", version=5, props=[(P_SESSION_EXPIRY, 5)]),
                      (RC_MALFORMED, RC_PROTOCOL_ERROR))

    def test_unknown_property(self):
        """An unknown property identifier (0x7F) cannot be parsed: DISCONNECT 0x81."""
        self.send_bad(build_publish("a", b"x", version=5, props=[(0x7F, b"\x00")]),
                      (RC_MALFORMED,))

    @mosquitto_departs("mosquitto 2.0.11 accepts a Subscription Identifier in a PUBLISH from a "
                       "client")
    def test_subscription_identifier_from_client(self):
        """A PUBLISH from a client must not contain a Subscription Identifier
        ([MQTT-3.3.4-6]): DISCONNECT 0x82."""
        self.send_bad(build_publish("a", b"x", version=5, props=[(P_SUBSCRIPTION_ID, 5)]),
                      (RC_PROTOCOL_ERROR, RC_MALFORMED))

    @mosquitto_departs("mosquitto 2.0.11 accepts a Response Topic containing wildcards")
    def test_response_topic_wildcard(self):
        """The Response Topic is a Topic Name and must not contain wildcards
        ([MQTT-3.3.2-14]): the connection is closed (0x82, 0x81 or 0x90)."""
        self.send_bad(build_publish("a", b"x", version=5, props=[(P_RESPONSE_TOPIC, "r/#")]),
                      (RC_PROTOCOL_ERROR, RC_MALFORMED, RC_TOPIC_NAME_INVALID))


class SubscribeErrors(MalformedTest):

    @mosquitto_departs("mosquitto 2.0.11 answers a SUBSCRIBE without topic filters with 0x81 "
                       "(Malformed) instead of 0x82 (Protocol Error)")
    def test_subscribe_without_filters(self):
        """A SUBSCRIBE with no topic filter is a Protocol Error ([MQTT-3.8.3-2]):
        DISCONNECT 0x82."""
        self.send_bad(build_subscribe(1, [], 5), (RC_PROTOCOL_ERROR,))

    def test_subscribe_without_filters_v311(self):
        """3.1.1: a SUBSCRIBE with no payload is a protocol violation ([MQTT-3.8.3-3]
        3.1.1): closed."""
        self.send_bad(build_subscribe(1, [], 4), None, 4)

    @mosquitto_departs("mosquitto 2.0.11 answers an UNSUBSCRIBE without topic filters with 0x81 "
                       "(Malformed) instead of 0x82 (Protocol Error)")
    def test_unsubscribe_without_filters(self):
        """An UNSUBSCRIBE with no topic filter is a Protocol Error ([MQTT-3.10.3-2]):
        DISCONNECT 0x82."""
        self.send_bad(build_unsubscribe(1, [], 5), (RC_PROTOCOL_ERROR,))

    def test_subscription_options_reserved_bits(self):
        """Reserved bits 6-7 of the subscription options must be 0 ([MQTT-3.8.3-5]):
        DISCONNECT 0x81."""
        self.send_bad(build_subscribe(1, [("a", 0xC0)], 5), (RC_MALFORMED,))

    def test_subscribe_qos_3_v311(self):
        """3.1.1: requested QoS 3 (or reserved bits) in SUBSCRIBE closes the connection
        ([MQTT-3-8.3-4] 3.1.1)."""
        self.send_bad(build_subscribe(1, [("a", 3)], 4), None, 4)
        self.send_bad(build_subscribe(1, [("a", 0x40)], 4), None, 4)

    @mosquitto_departs("mosquitto 2.0.11 answers Maximum QoS 3 in SUBSCRIBE with 0x81 instead "
                       "of 0x82")
    def test_subscribe_qos_3(self):
        """Maximum QoS 3 in the subscription options is a Protocol Error (section 3.8.3.1):
        DISCONNECT 0x82."""
        self.send_bad(build_subscribe(1, [("a", 3)], 5), (RC_PROTOCOL_ERROR,))

    @mosquitto_departs("mosquitto 2.0.11 answers Retain Handling 3 with 0x81 instead of 0x82")
    def test_retain_handling_3(self):
        """Retain Handling 3 is a Protocol Error (section 3.8.3.1): DISCONNECT 0x82."""
        self.send_bad(build_subscribe(1, [("a", 0x30)], 5), (RC_PROTOCOL_ERROR,))

    @mosquitto_departs("mosquitto 2.0.11 answers Subscription Identifier 0 with 0x81 instead of "
                       "0x82")
    def test_subscription_identifier_zero(self):
        """A Subscription Identifier of 0 is a Protocol Error (section 3.8.2.1.2):
        DISCONNECT 0x82."""
        self.send_bad(build_subscribe(1, [("a", 0)], 5, props=[(P_SUBSCRIPTION_ID, 0)]),
                      (RC_PROTOCOL_ERROR,))

    def test_invalid_utf8_filter(self):
        """A topic filter that is not valid UTF-8 is malformed ([MQTT-3.8.3-1],
        [MQTT-1.5.4-1]): DISCONNECT 0x81."""
        self.send_bad(build_subscribe(1, [(b"a/\xff", 0)], 5), (RC_MALFORMED,))
        self.send_bad(build_subscribe(1, [(b"a/\xff", 0)], 4), None, 4)


class StateErrors(MalformedTest):

    def test_second_connect(self):
        """A second CONNECT on a connection is a Protocol Error ([MQTT-3.1.0-2]):
        DISCONNECT 0x82; 3.1.1 closed."""
        self.send_bad(build_connect(unique("again"), version=5), (RC_PROTOCOL_ERROR,))
        self.send_bad(build_connect(unique("again"), version=4), None, 4)

    def test_auth_without_authentication_method(self):
        """AUTH on a connection that did not use an Authentication Method is a Protocol Error
        (section 4.12): DISCONNECT 0x82 (0x8C accepted while AUTH goes to an extension
        point that only answers "bad authentication method")."""
        self.send_bad(build_auth(0x18, [(P_AUTH_METHOD, "X")]),
                      (RC_PROTOCOL_ERROR, RC_BAD_AUTH_METHOD))

    def test_connection_survives_other_errors(self):
        """Closing one bad connection does not disturb another connection of the same
        client id prefix or its subscriptions (issue #2: no effect on other clients)."""
        good = self.connected(5)
        t = unique("good/")
        good.subscribe(t, qos=1)
        self.send_bad(packet(PUBLISH, 6, utf8("a") + u16(1) + b"\x00"), (RC_MALFORMED,))
        good.publish(t, b"fine", qos=1)
        self.assertEqual(good.recv_publish().payload, b"fine")


if __name__ == "__main__":
    unittest.main()
