"""Broker-wide and listener settings from mosquitto.conf that change what clients see:
mount_point, global limits, clientid_prefixes, memory_limit, unix socket listeners,
accept_protocol_versions, retain_available, use_username_as_clientid, SIGHUP reloads and
retained-message expiry."""
import os
import signal
import socket
import time
import unittest

from harness import (
    BrokerTest, CONNACK, RawClient, culex_only, mosquitto_departs, unique, build_connect,
    RC_NOT_AUTHORIZED, RC_QUOTA_EXCEEDED, RC_UNSUPPORTED_PROTOCOL_VERSION,
    RC_RETAIN_NOT_SUPPORTED, free_port, HOST,
)

P_MESSAGE_EXPIRY = 0x02
P_ASSIGNED_CLIENT_ID = 0x12
P_RETAIN_AVAILABLE = 0x25


class MountPoint(BrokerTest):
    @mosquitto_departs("mosquitto 2.0.11 does not strip mount_point from topics it sends")
    def test_mount_point_prefixes_topics_both_ways(self):
        """A client on a listener with mount_point sees topics without the prefix; the
        broker stores and routes them with it, so a client on another listener sees
        `prefix/topic` (mosquitto.conf mount_point)."""
        other = free_port()
        b = self.start_broker(["mount_point tenant1/",
                               "listener %d %s" % (other, HOST), "allow_anonymous true"])
        inside = self.raw_connected(b, unique("in"), 4)
        outside = self.raw_connected(other, unique("out"), 4)
        inside.subscribe("x/#", qos=1)
        outside.subscribe("tenant1/#", qos=1)
        pub = self.raw_connected(b, unique("p"), 4)
        pub.publish("x/y", b"m1", qos=1)
        self.assertEqual(inside.recv_publish().topic, "x/y")
        self.assertEqual(outside.recv_publish().topic, "tenant1/x/y")
        outside.publish("tenant1/x/z", b"m2", qos=1)
        self.assertEqual(inside.recv_publish().topic, "x/z")
        outside.publish("elsewhere/x/z", b"m3", qos=1)
        inside.expect_nothing(0.2)


class GlobalLimits(BrokerTest):
    @culex_only("global_max_clients is a mosquitto 2.1 directive")
    def test_global_max_clients(self):
        """global_max_clients: a CONNECT over the limit is refused (quota exceeded)."""
        b = self.start_broker(["global_max_clients 2"])
        self.raw_connected(b, unique("a"), 5)
        self.raw_connected(b, unique("b"), 5)
        c = self.raw(b, 5)
        c.connect(unique("c"), expect_rc=RC_QUOTA_EXCEEDED)

    @culex_only("global_max_connections is a mosquitto 2.1 directive")
    def test_global_max_connections(self):
        """global_max_connections: sockets over the limit are closed at once."""
        b = self.start_broker(["global_max_connections 1"])
        self.raw_connected(b, unique("a"), 4)
        c = self.raw(b, 4)
        c.send(build_connect(unique("b"), 4))
        self.assertEqual(c.wait_closed(), [])

    def test_clientid_prefixes(self):
        """clientid_prefixes: only client ids with the prefix may connect."""
        b = self.start_broker(["clientid_prefixes good-"])
        self.raw_connected(b, "good-" + unique("a"), 4)
        c = self.raw(b, 4)
        self.assertEqual(c.connect(unique("bad"), expect_rc=None).rc, 5)
        c.wait_closed()

    def test_memory_limit_drops_only_the_offender(self):
        """memory_limit: a publish that would take the broker over the limit is dropped and
        its client disconnected; other clients keep working."""
        b = self.start_broker(["memory_limit 4000000", "max_packet_size 10000000"])
        sub = self.raw_connected(b, unique("s"), 4)
        sub.subscribe("ml/#", qos=0)
        big = self.raw_connected(b, unique("big"), 4)
        big.publish("ml/big", b"x" * 3000000, qos=0)
        big.wait_closed()
        small = self.raw_connected(b, unique("small"), 4)
        small.publish("ml/small", b"ok", qos=0)
        m = sub.recv_publish()
        self.assertEqual((m.topic, m.payload), ("ml/small", b"ok"))


class Listeners(BrokerTest):
    def test_unix_socket_listener(self):
        """`listener 0 /path` serves MQTT on a unix socket."""
        b = self.start_broker(start=False)
        path = b.path("mqtt.sock")
        b.lines += ["listener 0 %s" % path, "allow_anonymous true"]
        b.start()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        end = time.monotonic() + 5
        while True:
            try:
                s.connect(path)
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
        s.sendall(build_connect(unique("u"), 4))
        self.assertEqual(s.recv(4), b"\x20\x02\x00\x00")
        s.close()

    @culex_only("accept_protocol_versions is a mosquitto 2.1 directive")
    def test_accept_protocol_versions(self):
        """accept_protocol_versions 5: a 3.1.1 CONNECT is refused with return code 1, a v5
        one accepted."""
        b = self.start_broker(["accept_protocol_versions 5"])
        c = self.raw(b, 4)
        c.connect(unique("old"), expect_rc=1)
        self.raw_connected(b, unique("new"), 5)

    def test_retain_available_false(self):
        """retain_available false: CONNACK says so and a retained PUBLISH is refused
        (DISCONNECT 0x9A) [MQTT-3.2.2-14]."""
        b = self.start_broker(["retain_available false"])
        c = self.raw(b, 5)
        ack = c.connect(unique("r"))
        self.assertEqual(ack.props.get(P_RETAIN_AVAILABLE), 0)
        c.publish("r/t", b"x", qos=0, retain=True)
        self.assertClosedWith(c, RC_RETAIN_NOT_SUPPORTED)

    def test_use_username_as_clientid(self):
        """use_username_as_clientid: the username becomes the client id, so a second
        connection with the same username takes the session over."""
        b = self.start_broker(["use_username_as_clientid true"])
        user = unique("user")
        a = self.raw(b, 4)
        a.connect(unique("x"), username=user)
        c = self.raw(b, 4)
        c.connect(unique("y"), username=user)
        a.wait_closed()


class Reload(BrokerTest):
    def test_sighup_applies_allow_anonymous(self):
        """SIGHUP re-reads the file: allow_anonymous true -> false refuses new anonymous
        clients without a restart, and anonymous clients already connected are
        disconnected (as mosquitto does)."""
        b = self.start_broker()
        keep = self.raw_connected(b, unique("keep"), 4)
        lines = b.config_text().replace("allow_anonymous true", "allow_anonymous false")
        with open(b.conf_path, "w") as f:
            f.write(lines)
        b.send_signal(signal.SIGHUP)
        end = time.monotonic() + 5
        while True:
            c = self.raw(b, 4)
            rc = c.connect(unique("n"), expect_rc=None).rc
            if rc == 5 or time.monotonic() > end:
                break
            time.sleep(0.05)
        self.assertEqual(rc, 5)
        keep.wait_closed()


class RetainedExpiry(BrokerTest):
    def test_expired_retained_not_delivered(self):
        """A retained message whose Message Expiry Interval has passed is not sent to new
        subscribers [MQTT-3.3.2-5]."""
        b = self.start_broker()
        p = self.raw_connected(b, unique("p"), 5)
        t = unique("exp/")
        p.publish(t, b"short", qos=1, retain=True, props=[(P_MESSAGE_EXPIRY, 1)])
        time.sleep(1.3)
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=1)
        s.expect_nothing(0.3)


if __name__ == "__main__":
    unittest.main()
