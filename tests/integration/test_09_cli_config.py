"""Command line, configuration file and signals (issue #2 "Command line and configuration")."""

import fcntl
import ipaddress
import os
import signal
import time
import unittest

from harness import (
    P_ASSIGNED_CLIENT_ID, RC_PACKET_TOO_LARGE, Broker, BrokerTest, culex_only, mosquitto_departs, free_port, listening_sockets,
    port_accepts, port_is_free, run_broker_once, unique, TIMEOUT,
)


def read_file(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def line_of(broker, directive):
    """1-based line number of the first config line starting with `directive` (the
    harness adds kind-dependent lines at the top, so numbers are looked up)."""
    for n, line in enumerate(broker.config_text().splitlines(), 1):
        if line.startswith(directive):
            return n
    raise AssertionError("%s not in the config" % directive)


def is_loopback(addr):
    return ipaddress.ip_address(addr).is_loopback


class CommandLine(BrokerTest):

    def test_help(self):
        """-h prints the usage, naming the -c and -p options, and exits without serving
        (mosquitto-compatible flags)."""
        rc, out = run_broker_once(["-h"])
        self.assertGreaterEqual(rc, 0, "killed by a signal")
        self.assertIn("-c", out)
        self.assertIn("-p", out)

    @culex_only("--version is a mosquitto 2.1 / culex flag; mosquitto 2.0.11 rejects it")
    def test_version(self):
        """--version prints the name and version and exits 0."""
        rc, out = run_broker_once(["--version"])
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"\d+\.\d+")

    def test_port_option_without_config(self):
        """-p PORT without a config file listens on PORT, on loopback only (local only mode,
        as Mosquitto 2), and allows anonymous clients."""
        port = free_port()
        b = self.start_broker(config=False, args=["-p", str(port)], port=port)
        socks = listening_sockets(b.proc.pid)
        self.assertIn(port, [p for _, p in socks], socks)
        for addr, p in socks:
            self.assertTrue(is_loopback(addr), "listening on non-loopback %s:%d" % (addr, p))
        c = self.raw(b, 4)
        c.connect(unique("c"))

    def test_no_config_local_only_1883(self):
        """Without any configuration the broker listens on port 1883 on loopback only and
        accepts anonymous clients (Mosquitto 2 local only mode). Runs only if 1883 is free
        (a lock file serialises the w1/w4 runs)."""
        lock = open("/tmp/culex-integration-1883.lock", "w")
        self.addCleanup(lock.close)
        end = time.monotonic() + 30
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > end:
                    self.skipTest("another run holds the 1883 lock")
                time.sleep(0.1)
        if not port_is_free(1883) or port_accepts(1883):
            self.skipTest("port 1883 is in use on this machine")
        b = self.start_broker(config=False, port=1883)
        socks = listening_sockets(b.proc.pid)
        self.assertIn(1883, [p for _, p in socks], socks)
        for addr, p in socks:
            self.assertTrue(is_loopback(addr), "listening on non-loopback %s:%d" % (addr, p))
        c = self.raw(b, 5)
        c.connect(unique("c"))
        c.disconnect()

    def test_verbose_logs_connections(self):
        """-v enables all logging: a client connecting shows up with its client id in the
        broker's output."""
        port = free_port()
        b = self.start_broker(config=False, args=["-p", str(port), "-v"], port=port)
        cid = unique("verbose-client-")
        c = self.raw(b, 4)
        c.connect(cid)
        c.disconnect()
        self.assertTrue(b.wait_output(cid), "client id not in -v output")

    def test_listener_port_from_config(self):
        """-c FILE with `listener PORT 127.0.0.1` listens there and only on that address."""
        b = self.start_broker()
        socks = listening_sockets(b.proc.pid)
        self.assertEqual(sorted(set(socks)), [("127.0.0.1", b.port)])

    def test_two_listeners(self):
        """Two `listener` lines open two ports that both serve MQTT and share the broker
        state (a message crosses from one listener to the other)."""
        port2 = free_port()
        b = self.start_broker(["listener %d 127.0.0.1" % port2])
        b.wait_listening(port2)
        t = unique("cross/")
        s = self.raw_connected(port2, unique("s"), 5)
        s.subscribe(t, qos=1)
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"across", qos=1)
        self.assertEqual(s.recv_publish().payload, b"across")


class ConfigFile(BrokerTest):

    def refused(self, lines=(), files=None, listener=True):
        """Start a broker on a config that must be refused: it must exit non-zero within
        the timeout, never accept a connection on its port, and not die of a signal.
        Returns (broker, output)."""
        b = Broker(lines, listener=listener)
        self._brokers.append(b)
        for name, text in (files or {}).items():
            path = b.path(name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        b.spawn()
        end = time.monotonic() + TIMEOUT
        accepted = False
        while b.proc.poll() is None and time.monotonic() < end:
            accepted = accepted or port_accepts(b.port, timeout=0.05)
            time.sleep(0.01)
        if b.proc.poll() is None:
            b.stop(check=False)
            self.fail("broker kept running on a bad configuration\n" + b.output())
        b.stop(check=False)
        self.assertGreater(b.returncode, 0, "exit status %r\n%s" % (b.returncode, b.output()))
        self.assertFalse(accepted, "broker accepted connections before refusing its config")
        return b, b.output()

    def test_unknown_directive(self):
        """An unknown directive makes the broker exit non-zero before listening, with an
        error naming the file, the line and the directive (issue #2)."""
        b, out = self.refused(["max_connections 10", "no_such_directive 42"])
        self.assertIn("%s:%d" % (b.conf_path, line_of(b, "no_such_directive")), out)
        self.assertIn("no_such_directive", out)

    def test_bad_value(self):
        """An invalid value (allow_anonymous maybe) is refused naming file:line and the
        directive (issue #2)."""
        b, out = self.refused(["allow_anonymous maybe"])
        self.assertIn("%s:%d" % (b.conf_path, line_of(b, "allow_anonymous maybe")), out)
        self.assertIn("allow_anonymous", out)

    def test_missing_config_file(self):
        """-c with a file that does not exist exits non-zero and names the file."""
        path = "/nonexistent/culex-%s.conf" % unique("x")
        rc, out = run_broker_once(["-c", path])
        self.assertGreater(rc, 0, out)
        self.assertIn(path, out)

    @culex_only("--test-config is a mosquitto 2.1 / culex flag; mosquitto 2.0.11 lacks it")
    def test_test_config_ok(self):
        """--test-config on a valid file exits 0 without serving."""
        b = Broker(["max_keepalive 60"])
        self._brokers.append(b)
        b.write_config()
        rc, out = run_broker_once(["-c", b.conf_path, "--test-config"])
        self.assertEqual(rc, 0, out)
        self.assertFalse(port_accepts(b.port))

    @culex_only("--test-config is a mosquitto 2.1 / culex flag; mosquitto 2.0.11 lacks it")
    def test_test_config_bad(self):
        """--test-config on a bad file exits non-zero naming file:line and the directive."""
        b = Broker(["max_keepalive 60", "frobnicate on"])
        self._brokers.append(b)
        b.write_config()
        rc, out = run_broker_once(["-c", b.conf_path, "--test-config"])
        self.assertGreater(rc, 0, out)
        self.assertIn("%s:%d" % (b.conf_path, line_of(b, "frobnicate")), out)
        self.assertIn("frobnicate", out)

    @culex_only("`workers` is a culex directive")
    def test_workers_invalid(self):
        """`workers` takes a positive number: `workers 0` and `workers lots` are refused
        naming the directive."""
        for value in ("0", "lots"):
            b, out = self.refused(["workers %s" % value])
            self.assertIn("workers", out)

    def test_trailing_comment(self):
        """A trailing '# comment' after a directive's value is tolerated as Mosquitto does
        (real configs have `allow_anonymous true  # ...`)."""
        b = self.start_broker(["allow_anonymous true  # anyone may connect",
                               "max_keepalive 60 # one minute"], allow_anonymous=None)
        self.assertEqual(self.raw(b, 4).connect(unique("c")).rc, 0)

    def test_listener_refuses_anonymous_by_default(self):
        """Once a listener is configured, allow_anonymous defaults to false (Mosquitto 2):
        an anonymous client gets CONNACK 5."""
        b = self.start_broker(allow_anonymous=None)
        self.assertEqual(self.raw(b, 4).connect(unique("c"), expect_rc=None).rc, 5)

    def test_include_dir(self):
        """include_dir loads every *.conf file of the folder (here a second listener) and
        ignores other files."""
        port2, port3 = free_port(), free_port()
        b = Broker()
        self._brokers.append(b)
        conf_d = b.path("conf.d")
        os.makedirs(conf_d)
        with open(os.path.join(conf_d, "listener.conf"), "w") as f:
            f.write("listener %d 127.0.0.1\n" % port2)
        with open(os.path.join(conf_d, "ignored.conf.sample"), "w") as f:
            f.write("listener %d 127.0.0.1\nthis is not a directive\n" % port3)
        os.chmod(conf_d, 0o755)
        b.lines = ["include_dir %s" % conf_d]
        self.addCleanup(self._stop_broker, b)
        b.start()
        b.wait_listening(port2)
        c = self.raw_connected(port2, unique("c"), 4)
        c.ping()
        self.assertFalse(port_accepts(port3))

    def test_include_dir_error_names_file(self):
        """An error inside a file loaded by include_dir names that file and its line."""
        b = Broker()
        self._brokers.append(b)
        conf_d = b.path("conf.d")
        os.makedirs(conf_d)
        bad = os.path.join(conf_d, "20-bad.conf")
        with open(bad, "w") as f:
            f.write("# comment\n\nbogus_directive yes\n")
        os.chmod(conf_d, 0o755)
        b.lines = ["include_dir %s" % conf_d]
        b.spawn()
        rc = b.wait_exit()
        b.stop(check=False)
        self.assertIsNotNone(rc, "broker kept running")
        self.assertGreater(rc, 0)
        self.assertIn(bad + ":3", b.output())
        self.assertIn("bogus_directive", b.output())

    def test_deprecated_port_and_bind_address(self):
        """The deprecated `port N` + `bind_address 127.0.0.1` pair still defines the default
        listener."""
        port = free_port()
        b = self.start_broker(["port %d" % port, "bind_address 127.0.0.1"], listener=False,
                              port=port)
        self.assertEqual(sorted(set(listening_sockets(b.proc.pid))), [("127.0.0.1", port)])
        self.raw(b, 4).connect(unique("c"))

    def mounted(self):
        port2 = free_port()
        b = self.start_broker(["listener %d 127.0.0.1" % port2, "mount_point mnt/"])
        b.wait_listening(port2)
        return b, port2

    def test_mount_point_prefixes_incoming(self):
        """`mount_point` prefixes the topics a listener's clients publish: a publish to 'a'
        on the mounted listener is seen as 'mnt/a' by other clients (mosquitto.conf(5))."""
        b, port2 = self.mounted()
        t = unique("mp")
        outside = self.raw_connected(b, unique("o"), 4)
        outside.subscribe("mnt/#", qos=1)
        inside = self.raw_connected(port2, unique("i"), 4)
        inside.publish(t, b"from inside", qos=1)
        m = outside.recv_publish()
        self.assertEqual((m.topic, m.payload), ("mnt/" + t, b"from inside"))

    def test_mount_point_confines_subscriptions(self):
        """A client on a mounted listener only receives messages under the mount point: its
        subscription to 't' matches 'mnt/t', not 't' (mosquitto.conf(5) mount_point)."""
        b, port2 = self.mounted()
        t = unique("mpc")
        inside = self.raw_connected(port2, unique("i"), 5)
        inside.subscribe(t, qos=1)
        outside = self.raw_connected(b, unique("o"), 5)
        outside.publish(t, b"outside the mount", qos=1)
        outside.publish("mnt/" + t, b"inside the mount", qos=1)
        self.assertEqual(inside.recv_publish().payload, b"inside the mount")
        inside.expect_nothing(0.1)

    @mosquitto_departs("mosquitto 2.0.11 does not remove the mount point from topics sent to "
                       "clients of a mounted listener, contrary to mosquitto.conf(5)")
    def test_mount_point_stripped_outgoing(self):
        """Messages sent to a client of a mounted listener have the mount point removed from
        the topic (mosquitto.conf(5): "This prefix is removed when any messages are sent to
        the client")."""
        b, port2 = self.mounted()
        t = unique("mps")
        inside = self.raw_connected(port2, unique("i"), 5)
        inside.subscribe(t, qos=1)
        outside = self.raw_connected(b, unique("o"), 5)
        outside.publish("mnt/" + t, b"to inside", qos=1)
        m = inside.recv_publish()
        self.assertEqual((m.topic, m.payload), (t, b"to inside"))

    def test_auto_id_prefix(self):
        """The deprecated `auto_id_prefix` sets the prefix of assigned client ids
        ([MQTT-3.2.2-16] Assigned Client Identifier; mosquitto.conf auto_id_prefix)."""
        b = self.start_broker(["auto_id_prefix zz-"])
        c = self.raw(b, 5)
        self.assertTrue(c.connect("").props.get(P_ASSIGNED_CLIENT_ID, "").startswith("zz-"))

    def test_message_size_limit(self):
        """The deprecated `message_size_limit` drops larger payloads: v5 gets PUBACK 0x95
        (Packet too large), 3.1.1 a plain PUBACK; the message is not delivered, smaller ones
        are (mosquitto.conf message_size_limit)."""
        b = self.start_broker(["message_size_limit 100"])
        t = unique("msl/")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=1)
        c5 = self.raw_connected(b, unique("c"), 5)
        self.assertEqual(c5.publish(t, b"x" * 200, qos=1).rc, RC_PACKET_TOO_LARGE)
        c4 = self.raw_connected(b, unique("c"), 4)
        c4.publish(t, b"x" * 200, qos=1)
        c4.publish(t, b"small", qos=1)
        self.assertEqual(s.recv_publish().payload, b"small")
        s.expect_nothing(0.1)

    def test_pid_file(self):
        """`pid_file` receives the broker's PID."""
        b = self.start_broker(start=False)
        b.lines.append("pid_file %s" % b.path("broker.pid"))
        b.start()
        pid = self.wait_until(lambda: read_file(b.path("broker.pid")).strip(), what="pid file")
        self.assertEqual(int(pid), b.proc.pid)

    def test_log_dest_file(self):
        """`log_dest file PATH` writes the log to PATH."""
        b = self.start_broker(start=False)
        log = b.path("broker.log")
        b.lines += ["log_dest file %s" % log, "log_type all"]
        b.start()
        cid = unique("logged-")
        c = self.raw(b, 4)
        c.connect(cid)
        self.wait_until(lambda: cid in read_file(log), what="client id in the log file")

    def test_per_listener_settings(self):
        """per_listener_settings true: allow_anonymous applies per listener (one listener
        accepts anonymous clients, the other refuses them)."""
        port1, port2 = free_port(), free_port()
        b = self.start_broker(["per_listener_settings true",
                               "listener %d 127.0.0.1" % port1, "allow_anonymous true",
                               "listener %d 127.0.0.1" % port2, "allow_anonymous false"],
                              listener=False, allow_anonymous=None, port=port1)
        b.wait_listening(port2)
        self.assertEqual(self.raw(port1, 4).connect(unique("c")).rc, 0)
        self.assertEqual(self.raw(port2, 4).connect(unique("c"), expect_rc=None).rc, 5)


class Signals(BrokerTest):

    def test_sigterm_exits_0(self):
        """SIGTERM: clean shutdown, exit status 0, even with clients connected."""
        b = self.start_broker()
        self.raw_connected(b, unique("c"), 5).subscribe("x", qos=1)
        self.assertEqual(b.stop(check=True, sig=signal.SIGTERM), 0)

    def test_sigint_exits_0(self):
        """SIGINT: clean shutdown, exit status 0."""
        b = self.start_broker()
        self.raw_connected(b, unique("c"), 4)
        self.assertEqual(b.stop(check=True, sig=signal.SIGINT), 0)

    def test_sighup_keeps_serving(self):
        """SIGHUP reloads the configuration but keeps serving: an existing connection and its
        subscription keep working and new connections are accepted."""
        b = self.start_broker()
        t = unique("hup/")
        s = self.raw_connected(b, unique("s"), 5)
        s.subscribe(t, qos=1)
        for _ in range(3):
            b.send_signal(signal.SIGHUP)
        s.ping()
        p = self.raw_connected(b, unique("p"), 5)
        p.publish(t, b"after hup", qos=1)
        self.assertEqual(s.recv_publish().payload, b"after hup")
        self.assertTrue(b.alive())

    def test_sighup_reloads_allow_anonymous(self):
        """SIGHUP re-reads what Mosquitto reloads: changing allow_anonymous true -> false
        makes new anonymous connections fail (CONNACK 5) while the broker keeps running."""
        b = self.start_broker()
        self.assertEqual(self.raw(b, 4).connect(unique("c")).rc, 0)
        b.allow_anonymous = False
        b.write_config()
        b.send_signal(signal.SIGHUP)
        def refused():
            c = self.raw(b, 4)
            rc = c.connect(unique("c"), expect_rc=None).rc
            c.close()
            return rc == 5
        self.wait_until(refused, what="reload to refuse anonymous clients", interval=0.05)

    def test_sighup_reloads_logging(self):
        """SIGHUP reloads logging: after switching `log_dest file` to a new file with
        `log_type all`, new connections are logged there."""
        b = self.start_broker(start=False)
        first, second = b.path("first.log"), b.path("second.log")
        b.lines = ["log_dest file %s" % first, "log_type error"]
        b.start()
        b.lines = ["log_dest file %s" % second, "log_type all"]
        b.write_config()
        b.send_signal(signal.SIGHUP)
        def logged():
            cid = unique("hup-log-")
            c = self.raw(b, 4)
            c.connect(cid)
            c.disconnect()
            return cid in read_file(second)
        self.wait_until(logged, what="connections logged to the reloaded log file",
                        interval=0.05)

    def test_sigusr2_dumps_subscriptions(self):
        """SIGUSR2 writes the subscription tree to the log: the levels of a subscribed
        filter appear in the output after the signal."""
        b = self.start_broker()
        level = unique("usr2probe").replace("-", "x")
        s = self.raw_connected(b, unique("s"), 4)
        s.subscribe("dump/%s/leaf" % level, qos=1)
        mark = len(b.output())
        b.send_signal(signal.SIGUSR2)
        s.ping()
        s.ping()
        found = b.wait_output(level, timeout=1.0) and level in b.output()[mark:]
        if not found:
            # mosquitto prints the tree with stdio to a pipe, flushed at exit
            b.stop(check=True)
            found = level in b.output()[mark:]
        self.assertTrue(found, "subscription tree not in output:\n" + b.output()[mark:])


if __name__ == "__main__":
    unittest.main()
