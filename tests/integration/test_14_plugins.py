"""The plugin host, end to end: real plugin .so files (tests/plugins/fixtures) loaded by the
real broker: chains and priorities, blocking hooks that do not stall other clients, pending
verdicts, timeouts, ACL and message hooks, kick/publish from a plugin, and refusals of bad
plugins (ABI mismatch, not a culex plugin, missing file)."""
import os
import statistics
import threading
import time
import unittest

from harness import (
    AUTH, CONNACK, P_AUTH_DATA, P_AUTH_METHOD, P_USER_PROPERTY, build_auth, build_connect,
    BrokerTest, FIXTURE, FIXTURES, IS_CULEX, culex_only, run_broker_once, unique,
    RC_NOT_AUTHORIZED, RC_BAD_USERNAME_PASSWORD,
)



def plugin(path=FIXTURE, **opts):
    return ["plugin %s" % path] + ["plugin_opt_%s %s" % (k, v) for k, v in opts.items()]


@culex_only("culex plugin ABI")
class Chains(BrokerTest):
    def test_first_non_defer_wins_by_priority(self):
        """Two plugins: the lower priority runs first and its answer wins; a user neither
        plugin knows falls back to allow_anonymous."""
        b = self.start_broker(plugin(name="denier", priority=1, auth_deny_user="bob") +
                              plugin(name="allower", priority=2, auth_allow_user="bob"))
        c = self.raw(b, 5)
        self.assertEqual(c.connect(unique("c"), username="bob", password="x",
                                   expect_rc=None).rc, RC_BAD_USERNAME_PASSWORD)
        self.raw_connected(b, unique("c"), 5, username="alice", password="x")  # all defer

    def test_priority_order_swapped(self):
        b = self.start_broker(plugin(name="denier", priority=5, auth_deny_user="bob") +
                              plugin(name="allower", priority=2, auth_allow_user="bob"))
        self.raw_connected(b, unique("c"), 5, username="bob", password="x")

    def test_all_defer_uses_allow_anonymous_false(self):
        b = self.start_broker(plugin(auth_allow_user="bob"), allow_anonymous=False)
        self.raw_connected(b, unique("c"), 4, username="bob", password="x")
        c = self.raw(b, 4)
        self.assertEqual(c.connect(unique("c"), expect_rc=None).rc, 5)


@culex_only("culex plugin ABI")
class SlowPlugins(BrokerTest):
    def test_blocking_auth_does_not_stall_others(self):
        """A blocking auth hook taking 500 ms: 50 other clients keep exchanging messages
        with no added latency (p99 printed, asserted well under the plugin's delay)."""
        b = self.start_broker(plugin(auth_delay_ms=500))
        subs, pubs = [], []
        for i in range(50):
            s = self.raw_connected(b, unique("s%d" % i), 4)
            s.subscribe("lat/%d" % i, qos=0)
            subs.append(s)
            pubs.append(self.raw_connected(b, unique("p%d" % i), 4))
        latencies = []
        stop = threading.Event()

        def slow_logins():
            while not stop.is_set():
                c = self.raw(b, 4)
                self.assertEqual(c.connect(unique("slow"), username="u", password="good").rc, 0)
                c.close()

        th = threading.Thread(target=slow_logins)
        th.start()
        try:
            end = time.monotonic() + 1.6
            while time.monotonic() < end:
                for i in range(50):
                    t0 = time.monotonic()
                    pubs[i].publish("lat/%d" % i, b"x", qos=0)
                    subs[i].recv_publish(timeout=2)
                    latencies.append(time.monotonic() - t0)
        finally:
            stop.set()
            th.join()
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print("\nround trips during 500 ms blocking logins: n=%d p50=%.2f ms p99=%.2f ms"
              % (len(latencies), p50 * 1000, p99 * 1000))
        self.assertLess(p99, 0.25)

    def test_bad_password_on_blocking_hook(self):
        b = self.start_broker(plugin(auth_delay_ms=100))
        c = self.raw(b, 5)
        self.assertEqual(c.connect(unique("c"), username="u", password="bad",
                                   expect_rc=None).rc, RC_BAD_USERNAME_PASSWORD)

    def test_pending_verdict_from_another_thread(self):
        b = self.start_broker(plugin(auth_pending_ms=200))
        t0 = time.monotonic()
        self.raw_connected(b, unique("c"), 5, username="u", password="good")
        self.assertGreaterEqual(time.monotonic() - t0, 0.19)
        c = self.raw(b, 5)
        self.assertEqual(c.connect(unique("c"), username="u", password="no",
                                   expect_rc=None).rc, RC_BAD_USERNAME_PASSWORD)

    def test_never_answering_plugin_times_out(self):
        """A plugin that never answers: after its timeout the client is refused and the
        broker logs it; other clients are unaffected."""
        b = self.start_broker(plugin(auth_pending_never=1, auth_timeout_ms=400))
        other = self.raw_connected(b, unique("anon"), 4)  # anonymous: the fixture defers
        c = self.raw(b, 5)
        t0 = time.monotonic()
        rc = c.connect(unique("c"), username="u", password="good", expect_rc=None).rc
        took = time.monotonic() - t0
        self.assertEqual(rc, RC_BAD_USERNAME_PASSWORD)
        self.assertGreaterEqual(took, 0.35)
        self.assertLess(took, 3)
        b.wait_output("did not answer")
        other.ping()

    def test_client_leaving_while_pending(self):
        b = self.start_broker(plugin(auth_pending_ms=300))
        c = self.raw(b, 5)
        from harness import build_connect
        c.send(build_connect(unique("gone"), 5, username="u", password="good"))
        c.abort()
        time.sleep(0.5)
        self.raw_connected(b, unique("after"), 5, username="u", password="good")


@culex_only("culex plugin ABI")
class AclAndMessages(BrokerTest):
    def test_acl_publish_subscribe_receive(self):
        b = self.start_broker(plugin(acl_deny_prefix="secret/"))
        s = self.raw_connected(b, unique("s"), 5)
        ack = s.subscribe("secret/#", qos=1, expect_codes=None)
        self.assertEqual(ack.codes, [RC_NOT_AUTHORIZED])
        s.subscribe("open/#", qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        self.assertEqual(p.publish("secret/x", b"no", qos=1).rc, RC_NOT_AUTHORIZED)
        p.publish("open/x", b"yes", qos=1)
        self.assertEqual(s.recv_publish().payload, b"yes")

    def test_message_rewrite_and_drop(self):
        b = self.start_broker(plugin(msg_upper_prefix="up/", msg_drop_prefix="drop/"))
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe("#", qos=1)
        p = self.raw_connected(b, unique("p"), 4)
        p.publish("drop/x", b"gone", qos=1)
        p.publish("up/x", b"hello", qos=1)
        m = s.recv_publish()
        self.assertEqual((m.topic, m.payload), ("up/x", b"HELLO"))
        s.expect_nothing(0.2)

    def test_message_user_properties_rewritten(self):
        """A MESSAGE hook replaces the user properties (MQTT 5)."""
        b = self.start_broker(plugin(msg_tag_prefix="tag/"))
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe("tag/#", qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish("tag/x", b"v", qos=1, props=[(P_USER_PROPERTY, ("a", "1"))])
        m = s.recv_publish()
        self.assertEqual(m.props.all(P_USER_PROPERTY), [("a", "1"), ("via", "fixture")])

    def test_unsubscribe_denied(self):
        b = self.start_broker(plugin(acl_deny_prefix="secret/"))
        c = self.raw_connected(b, unique("c"), 5)
        self.assertEqual(c.unsubscribe("secret/x").codes, [RC_NOT_AUTHORIZED])
        self.assertEqual(c.unsubscribe("open/x").codes, [0x11])

    def test_kick_and_publish_from_plugin(self):
        t = unique("tick/")
        b = self.start_broker(plugin(kick_client="kickme", tick_topic=t))
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe(t, qos=0)
        self.assertTrue(s.recv_publish(timeout=3).payload.isdigit())
        k = self.raw(b, 5)
        k.connect("kickme")
        k.wait_closed()


@culex_only("culex plugin ABI")
class EnhancedAuth(BrokerTest):
    """MQTT 5 enhanced authentication (§4.12) through a plugin."""

    def ext(self, b, data, cid=None):
        c = self.raw(b, 5)
        c.send(build_connect(cid or unique("e"), 5,
                             props=[(P_AUTH_METHOD, "TEST"), (P_AUTH_DATA, data)]))
        return c

    def test_challenge_response(self):
        b = self.start_broker(plugin(ext_method="TEST"))
        c = self.ext(b, b"hello")
        a = c.expect(AUTH)
        self.assertEqual(a.rc, 0x18)
        self.assertEqual(a.props.get(P_AUTH_DATA), b"challenge")
        c.send(build_auth(0x18, [(P_AUTH_METHOD, "TEST"), (P_AUTH_DATA, b"response")]))
        ack = c.expect(CONNACK)
        self.assertEqual(ack.rc, 0)
        self.assertEqual(ack.props.get(P_AUTH_METHOD), "TEST")
        self.assertEqual(ack.props.get(P_AUTH_DATA), b"welcome")
        c.ping()
        # re-authentication on the live connection
        c.send(build_auth(0x19, [(P_AUTH_METHOD, "TEST"), (P_AUTH_DATA, b"again")]))
        a = c.expect(AUTH)
        self.assertEqual((a.rc, a.props.get(P_AUTH_DATA)), (0, b"reok"))
        c.send(build_auth(0x19, [(P_AUTH_METHOD, "TEST"), (P_AUTH_DATA, b"wrong")]))
        self.assertClosedWith(c, RC_NOT_AUTHORIZED)

    def test_direct_success_and_failure(self):
        b = self.start_broker(plugin(ext_method="TEST"))
        c = self.ext(b, b"direct")
        self.assertEqual(c.expect(CONNACK).rc, 0)
        bad = self.ext(b, b"nonsense")
        self.assertClosedWith(bad, RC_NOT_AUTHORIZED, packet_type=CONNACK)
        c2 = self.ext(b, b"hello")
        c2.expect(AUTH)
        c2.send(build_auth(0x18, [(P_AUTH_METHOD, "TEST"), (P_AUTH_DATA, b"nope")]))
        self.assertClosedWith(c2, RC_NOT_AUTHORIZED, packet_type=CONNACK)

    def test_unknown_method(self):
        b = self.start_broker(plugin(ext_method="TEST"))
        c = self.raw(b, 5)
        c.send(build_connect(unique("e"), 5, props=[(P_AUTH_METHOD, "OTHER")]))
        self.assertClosedWith(c, 0x8C, packet_type=CONNACK)


@culex_only("culex plugin ABI")
class AbiStability(BrokerTest):
    def test_plugin_built_against_abi_1_0_loads(self):
        """A plugin compiled against the frozen ABI 1.0 header (tests/abi/include) loads
        and works in this broker."""
        path = os.path.join(FIXTURES, "fixture_abi10.so")
        b = self.start_broker(plugin(path, auth_deny_user="mallory"))
        c = self.raw(b, 5)
        self.assertEqual(c.connect(unique("c"), username="mallory", password="x",
                                   expect_rc=None).rc, RC_BAD_USERNAME_PASSWORD)
        self.raw_connected(b, unique("c"), 5, username="alice", password="x")


@culex_only("culex plugin ABI")
class BadPlugins(BrokerTest):
    def refused(self, lines):
        b = self.start_broker(lines, start=False)
        b.write_config()
        rc, out = run_broker_once(["-c", b.conf_path])
        self.assertNotEqual(rc, 0, out)
        return b, out

    def test_abi_major_mismatch(self):
        path = os.path.join(FIXTURES, "abi_major2.so")
        b, out = self.refused(plugin(path))
        self.assertIn(path, out)
        self.assertIn("ABI", out)
        self.assertIn(b.conf_path + ":", out)

    def test_not_a_culex_plugin(self):
        path = os.path.join(FIXTURES, "not_culex.so")
        b, out = self.refused(plugin(path))
        self.assertIn("not a culex plugin", out)

    def test_missing_plugin_file(self):
        path = "/nonexistent/go-auth.so"
        b, out = self.refused(plugin(path))
        self.assertIn(path, out)


if __name__ == "__main__":
    unittest.main()
