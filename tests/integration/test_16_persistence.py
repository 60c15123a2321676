"""Persistence: what a restart (clean, or kill -9) must not lose, at each durability level,
and what a damaged, foreign or full store does.

Each test runs one broker twice (or more) on the same directory: `persistence true` with
`persistence_location` in the broker's temp dir."""

import os
import signal
import subprocess
import threading
import time
import unittest

from harness import (
    P_CONTENT_TYPE, P_MESSAGE_EXPIRY, P_SESSION_EXPIRY, P_SUBSCRIPTION_ID, P_USER_PROPERTY,
    PUBCOMP, PUBLISH, PUBREC, PUBREL, BrokerTest, FIXTURES, Paho, build_ack,
    build_publish, culex_only, unique,
)

STORE = "culex.db"


def persist_lines(sync="batch", extra=()):
    return ["persistence true", "persistence_sync %s" % sync] + list(extra)


class PersistBase(BrokerTest):

    def persistent_broker(self, sync="batch", extra=(), **kw):
        b = self.start_broker(start=False, **kw)
        b.lines = persist_lines(sync, ["persistence_location %s/" % b.tmpdir] + list(extra))
        b.start()
        return b

    def restart(self, b, kill=False):
        """Stops b (SIGTERM, or SIGKILL: a crash) and starts it again on the same files."""
        if kill:
            b.stop(check=False, sig=signal.SIGKILL)
        else:
            b.stop()
        b.returncode = None
        b.start()
        return b


@culex_only("culex's persistence (Mosquitto writes snapshots only)")
class RestartRestores(PersistBase):

    def restore_everything(self, sync):
        b = self.persistent_broker(sync)
        t = unique("pr/")
        # retained, with MQTT 5 properties and an expiry far away
        p = self.raw_connected(b, unique("pub"), 5)
        p.publish(t + "/ret", b"kept", qos=1, retain=True,
                  props=[(P_CONTENT_TYPE, "text/plain"), (P_USER_PROPERTY, ("k", "v")),
                         (P_MESSAGE_EXPIRY, 3600)])
        p.publish(t + "/gone", b"x", qos=1, retain=True)
        p.publish(t + "/gone", b"", qos=1, retain=True)      # cleared: must stay cleared
        # an offline MQTT 5 session with subscription options and identifiers
        cid = unique("sess")
        s = self.raw_connected(b, cid, 5, clean=True, props=[(P_SESSION_EXPIRY, 3600)])
        s.subscribe(t + "/q/#", qos=2, sub_id=7, no_local=True, rap=True, retain_handling=2)
        s.subscribe(t + "/other", qos=1, sub_id=9)
        s.subscribe("$share/grp/" + t + "/shared", qos=1, sub_id=11)
        s.subscribe(t + "/dropped", qos=1)
        s.unsubscribe(t + "/dropped")
        s.disconnect()
        for i in range(5):
            p.publish(t + "/q/a", b"q%d" % i, qos=1 + i % 2)
        p.publish(t + "/q/a", b"zero", qos=0)                # QoS 0 is not queued offline
        p.publish(t + "/dropped", b"no", qos=1)
        # a 3.1.1 persistent session
        cid3 = unique("v3")
        c3 = self.raw_connected(b, cid3, 4, clean=False)
        c3.subscribe(t + "/v3", qos=1)
        c3.disconnect()
        p.publish(t + "/v3", b"for-v3", qos=1)
        p.disconnect()

        self.restart(b)

        s = self.raw(b, 5)
        ack = s.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 3600)])
        self.assertTrue(ack.session_present)
        got = [s.recv_publish() for _ in range(5)]
        self.assertEqual([m.payload for m in got], [b"q%d" % i for i in range(5)])
        self.assertEqual([m.qos for m in got], [1 + i % 2 for i in range(5)])
        self.assertEqual([m.props.get(P_SUBSCRIPTION_ID) for m in got], [7] * 5)   # subscription identifier
        s.expect_nothing(0.3)
        # the subscription options came back: No Local (own message not delivered) and
        # the identifier on a new message
        s.publish(t + "/q/own", b"own", qos=1)
        s.expect_nothing(0.3)
        p = self.raw_connected(b, unique("pub2"), 5)
        p.publish(t + "/other", b"o", qos=1)
        m = s.recv_publish()
        self.assertEqual((m.payload, m.props.get(P_SUBSCRIPTION_ID)), (b"o", 9))
        p.publish(t + "/dropped", b"no", qos=1)
        s.expect_nothing(0.3)
        p.publish(t + "/shared", b"sh", qos=1)            # the shared subscription too
        m = s.recv_publish()
        self.assertEqual((m.payload, m.props.get(P_SUBSCRIPTION_ID)), (b"sh", 11))
        # retained: the value, its properties, and the cleared topic stays cleared
        r = self.raw_connected(b, unique("r"), 5)
        r.subscribe(t + "/+", qos=1)
        m = r.recv_publish()
        self.assertEqual((m.topic, m.payload, m.retain), (t + "/ret", b"kept", True))
        self.assertEqual(m.props.get(P_CONTENT_TYPE), "text/plain")
        self.assertEqual(m.props.user(), [("k", "v")])
        self.assertTrue(0 < m.props.get(P_MESSAGE_EXPIRY) <= 3600)
        r.expect_nothing(0.3)
        # the 3.1.1 session
        c3 = self.raw(b, 4)
        self.assertTrue(c3.connect(cid3, clean=False).session_present)
        self.assertEqual(c3.recv_publish().payload, b"for-v3")
        self.assertIn("restored", b.output())

    def test_restore_batch(self):
        self.restore_everything("batch")

    def test_restore_always(self):
        self.restore_everything("always")

    def test_restore_none(self):
        """`none` writes nothing per change: the snapshot at exit carries it all."""
        self.restore_everything("none")

    def test_inflight_qos2_mid_flow(self):
        """A QoS 2 delivery that reached PUBREL before the restart continues with PUBREL
        and the same packet id; one still waiting for PUBREC is sent again with DUP and
        the same id; an incoming QoS 2 not yet released is not delivered twice."""
        b = self.persistent_broker("always")
        t = unique("q2/")
        cid = unique("rx")
        s = self.raw_connected(b, cid, 4, clean=False)
        s.subscribe(t, qos=2)
        p = self.raw_connected(b, unique("tx"), 4, clean=False)
        p.publish(t, b"one", qos=2)
        m1 = s.recv_publish(ack=False)
        s.send(build_ack(PUBREC, m1.pid))
        rel = s.expect(PUBREL)
        self.assertEqual(rel.pid, m1.pid)
        p.publish(t, b"two", qos=2)
        m2 = s.recv_publish(ack=False)                      # no PUBREC sent for it
        # the publisher's side: PUBLISH acknowledged with PUBREC, PUBREL not sent yet
        pcid = unique("tx2")
        p2 = self.raw_connected(b, pcid, 4, clean=False)
        p2.send(build_publish(t, b"three", qos=2, pid=77))
        self.assertEqual(p2.expect(PUBREC).pid, 77)
        three = s.recv_publish(ack=False)
        self.assertEqual(three.payload, b"three")
        time.sleep(0.2)

        self.restart(b, kill=True)

        s = self.raw(b, 4)
        self.assertTrue(s.connect(cid, clean=False).session_present)
        seen = []
        for _ in range(3):
            seen.append(s.recv(5))
        rels = [x for x in seen if x.type == PUBREL]
        pubs = [x for x in seen if x.type == PUBLISH]
        self.assertEqual([x.pid for x in rels], [m1.pid])
        self.assertEqual(sorted((x.payload, x.pid, x.dup) for x in pubs),
                         sorted([(b"two", m2.pid, True), (b"three", three.pid, True)]))
        s.send(build_ack(PUBCOMP, m1.pid))
        for x in pubs:
            s.ack(x)
        # the publisher sends "three" again (DUP) after reconnecting: acknowledged, not
        # delivered a second time; PUBREL completes it
        p2 = self.raw(b, 4)
        self.assertTrue(p2.connect(pcid, clean=False).session_present)
        p2.send(build_publish(t, b"three", qos=2, pid=77, dup=True))
        self.assertEqual(p2.expect(PUBREC).pid, 77)
        p2.send(build_ack(PUBREL, 77))
        self.assertEqual(p2.expect(PUBCOMP).pid, 77)
        s.expect_nothing(0.4)

    def test_session_expiry_across_restart(self):
        """An MQTT 5 session expiry keeps running while the broker is down; the v3
        persistent_client_expiration too."""
        b = self.persistent_broker("batch", ["persistent_client_expiration 2s"])
        short, long_, v3 = unique("short"), unique("long"), unique("v3")
        c = self.raw_connected(b, short, 5, clean=True, props=[(P_SESSION_EXPIRY, 2)])
        c.subscribe(unique("x/"), qos=1)
        c.disconnect()
        c = self.raw_connected(b, long_, 5, clean=True, props=[(P_SESSION_EXPIRY, 600)])
        c.disconnect()
        c = self.raw_connected(b, v3, 4, clean=False)
        c.disconnect()
        b.stop()
        time.sleep(2.5)
        b.returncode = None
        b.start()
        c = self.raw(b, 5)
        self.assertFalse(c.connect(short, clean=False, props=[(P_SESSION_EXPIRY, 2)])
                         .session_present)
        c = self.raw(b, 5)
        self.assertTrue(c.connect(long_, clean=False, props=[(P_SESSION_EXPIRY, 600)])
                        .session_present)
        c = self.raw(b, 4)
        self.assertFalse(c.connect(v3, clean=False).session_present)

    def test_clean_start_forgets(self):
        """A clean start ends the stored session: after a restart its old subscriptions and
        queued messages are gone, the new session's are there."""
        b = self.persistent_broker("batch")
        cid, t1, t2 = unique("cs"), unique("old/"), unique("new/")
        c = self.raw_connected(b, cid, 4, clean=False)
        c.subscribe(t1, qos=1)
        c.disconnect()
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t1, b"stale", qos=1)
        c = self.raw_connected(b, cid, 5, clean=True, props=[(P_SESSION_EXPIRY, 600)])
        c.subscribe(t2, qos=1)
        c.disconnect()
        p.publish(t1, b"old-topic", qos=1)
        p.publish(t2, b"fresh", qos=1)
        self.restart(b)
        c = self.raw(b, 5)
        self.assertTrue(c.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 600)])
                        .session_present)
        self.assertEqual(c.recv_publish().payload, b"fresh")
        c.expect_nothing(0.3)

    def test_sigusr1_saves_in_none_mode(self):
        """`persistence_sync none` writes only snapshots: SIGUSR1 (as in Mosquitto) and
        autosave_interval write one; a kill -9 after it loses nothing written before."""
        b = self.persistent_broker("none", ["autosave_interval 1"])
        t = unique("usr1")
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t + "/a", b"1", qos=1, retain=True)
        self.assertTrue(b.wait_output("wrote a snapshot", timeout=5), b.output())
        p.publish(t + "/b", b"2", qos=1, retain=True)
        b.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        self.restart(b, kill=True)
        r = self.raw_connected(b, unique("r"), 4)
        r.subscribe(t + "/#", qos=1)
        got = sorted(r.recv_publish().payload for _ in range(2))
        self.assertEqual(got, [b"1", b"2"])


@culex_only("culex's persistence")
class CrashLosesNothing(PersistBase):

    def publish_and_kill(self, sync, n, kill_after):
        """A paho publisher sends n QoS 1 messages (100 in flight) to a persistent offline
        subscriber; the broker is killed with SIGKILL once kill_after were acknowledged.
        Returns (broker, subscriber id, topic, acknowledged payloads)."""
        # unlimited queue: every message must be kept for the offline subscriber
        b = self.persistent_broker(sync, ["max_queued_messages 0"])
        cid, t = unique("sink"), unique("load/")
        s = self.raw_connected(b, cid, 4, clean=False)
        s.subscribe(t, qos=1)
        s.disconnect()
        acked = set()
        lock = threading.Lock()
        enough = threading.Event()
        pub = Paho(b.port, unique("src"), 4, connect=False)
        self.addCleanup(pub.stop)

        # paho numbers messages 1, 2, 3... in publish order: message id m carries payload
        # m - 1 (checked below). Nothing here may hold a lock around paho's own calls.
        def on_publish(client, userdata, mid):
            with lock:
                acked.add(b"%06d" % (mid - 1))
                if len(acked) >= kill_after:
                    enough.set()
        pub.client.on_publish = on_publish
        pub.client.max_inflight_messages_set(100)
        pub.client.max_queued_messages_set(0)
        pub.connect()
        for i in range(n):
            info = pub.client.publish(t, b"%06d" % i, qos=1)
            self.assertEqual(info.mid, i + 1)
        enough.wait(60)
        b.stop(check=False, sig=signal.SIGKILL)
        with lock:
            got_acks = set(acked)
        pub.stop()
        return b, cid, t, got_acks

    def drain(self, b, cid, expect):
        b.returncode = None
        b.start()
        s = self.raw(b, 4)
        self.assertTrue(s.connect(cid, clean=False).session_present)
        seen = []
        while True:
            try:
                m = s.recv_publish(timeout=1.5)
            except AssertionError:
                break
            seen.append(m.payload)
        missing = expect - set(seen)
        return seen, missing

    def test_kill9_always_loses_no_acknowledged_message(self):
        b, cid, t, acked = self.publish_and_kill("always", 20000, 3000)
        self.assertGreaterEqual(len(acked), 3000)
        seen, missing = self.drain(b, cid, acked)
        self.assertEqual(missing, set(), "acknowledged but lost: %d of %d"
                         % (len(missing), len(acked)))
        # in publish order; a QoS 1 duplicate could only repeat a message already seen
        firsts = [x for i, x in enumerate(seen) if x not in seen[:i]]
        self.assertEqual(firsts, sorted(firsts))
        print("\nkill -9 (always): %d acknowledged, %d delivered after restart, %d extra"
              % (len(acked), len(seen), len(set(seen) - acked)))

    def test_kill9_always_keeps_acknowledged_subscriptions(self):
        """Under `always` a SUBACK, like a PUBACK, is sent once the subscription is on disk:
        a kill -9 right after it keeps the subscription."""
        b = self.persistent_broker("always")
        cid, t = unique("subs"), unique("acked")
        c = self.raw_connected(b, cid, 5, clean=True, props=[(P_SESSION_EXPIRY, 600)])
        for i in range(20):
            c.subscribe("%s/%d" % (t, i), qos=1, sub_id=i + 1)
        c.unsubscribe("%s/0" % t)
        b.stop(check=False, sig=signal.SIGKILL)
        b.returncode = None
        b.start()
        c = self.raw(b, 5)
        self.assertTrue(c.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 600)])
                        .session_present)
        p = self.raw_connected(b, unique("p"), 4)
        for i in range(20):
            p.publish("%s/%d" % (t, i), b"%d" % i, qos=1)
        got = sorted(c.recv_publish().props.get(P_SUBSCRIPTION_ID) for _ in range(19))
        self.assertEqual(got, list(range(2, 21)))
        c.expect_nothing(0.3)

    def test_kill9_batch_loses_nothing_older_than_the_batch(self):
        """batch: whatever was acknowledged persistence_batch_ms before the crash is there."""
        b = self.persistent_broker("batch", ["persistence_batch_ms 50"])
        cid, t = unique("sink"), unique("batch/")
        s = self.raw_connected(b, cid, 4, clean=False)
        s.subscribe(t, qos=1)
        s.disconnect()
        p = self.raw_connected(b, unique("p"), 4)
        for i in range(200):
            p.publish(t, b"%03d" % i, qos=1)
        p.publish(t + "/r", b"retained", qos=1, retain=True)
        time.sleep(0.5)
        seen, missing = self.drain(self.restart_killed(b), cid, {b"%03d" % i for i in range(200)})
        self.assertEqual(missing, set())
        self.assertEqual(seen, [b"%03d" % i for i in range(200)])

    def restart_killed(self, b):
        b.stop(check=False, sig=signal.SIGKILL)
        return b


@culex_only("culex's store format")
class DamagedOrForeignStore(PersistBase):

    def fill(self, b, t, n):
        p = self.raw_connected(b, unique("p"), 4)
        for i in range(n):
            p.publish("%s/%03d" % (t, i), b"v%03d" % i, qos=1, retain=True)
        p.disconnect()

    def retained(self, b, t, n_max):
        r = self.raw_connected(b, unique("r"), 4)
        r.subscribe(t + "/#", qos=0)
        got = set()
        while True:
            try:
                got.add(r.recv_publish(timeout=0.5).payload)
            except AssertionError:
                return got

    def test_corrupt_middle_keeps_the_rest(self):
        b = self.persistent_broker("batch")
        t = unique("cor")
        self.fill(b, t, 100)
        b.stop()
        path = b.path(STORE)
        with open(path, "rb") as f:
            data = bytearray(f.read())
        mid = len(data) // 2
        for i in range(mid, mid + 8):
            data[i] ^= 0xFF
        with open(path, "wb") as f:
            f.write(data)
        b.returncode = None
        b.start()
        got = self.retained(b, t, 100)
        self.assertGreaterEqual(len(got), 97, "lost more than the damaged record")
        self.assertIn("damaged", b.output())
        copies = [n for n in os.listdir(b.tmpdir) if n.startswith(STORE + ".corrupt-")]
        self.assertEqual(len(copies), 1, os.listdir(b.tmpdir))
        with open(b.path(copies[0]), "rb") as f:
            self.assertEqual(f.read(), bytes(data))
        # rewritten clean: the next start reports no damage
        b.stop()
        b.returncode = None
        b.start()
        self.assertEqual(self.retained(b, t, 100), got)

    def test_torn_tail_is_dropped(self):
        b = self.persistent_broker("batch")
        t = unique("torn")
        self.fill(b, t, 20)
        b.stop()
        path = b.path(STORE)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size - 5)
        b.returncode = None
        b.start()
        got = self.retained(b, t, 20)
        self.assertGreaterEqual(len(got), 19)
        self.assertFalse([n for n in os.listdir(b.tmpdir) if ".corrupt-" in n])

    def test_missing_directory_starts_and_opens_later(self):
        """Mosquitto starts when persistence_location does not exist; so does culex, says
        so, serves from memory, and opens the store once the directory appears."""
        b = self.start_broker(start=False)
        where = b.path("later")
        b.lines = persist_lines("batch", ["persistence_location %s/" % where])
        b.start()
        self.assertIn("does not exist", b.output())
        t = unique("late")
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t, b"before", qos=1, retain=True)
        os.mkdir(where)
        os.chmod(where, 0o777)
        self.assertTrue(b.wait_output("is open", timeout=8), b.output())
        self.restart(b, kill=True)
        r = self.raw_connected(b, unique("r"), 4)
        r.subscribe(t, qos=1)
        self.assertEqual(r.recv_publish().payload, b"before")

    def test_foreign_file_refused_untouched(self):
        b = self.start_broker(start=False)
        foreign = b.path("data.db")
        with open(foreign, "wb") as f:
            f.write(b"SQLite format 3\x00" + b"\x01" * 200)
        os.chmod(foreign, 0o666)       # writable by the user the broker drops to
        with open(foreign, "rb") as f:
            before = f.read()
        b.lines = ["persistence true", "persistence_location %s" % b.tmpdir,
                   "persistence_file data.db"]
        b.spawn()
        self.assertNotEqual(b.wait_exit(10), None)
        self.assertNotEqual(b.proc.returncode, 0)
        b.stop(check=False)
        self.assertIn("data.db", b.output())
        self.assertIn("is not a culex store", b.output())
        with open(foreign, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_mosquitto_db_named(self):
        b = self.start_broker(start=False)
        mdb = b.path("mosquitto.db")
        with open(mdb, "wb") as f:
            f.write(b"\x00\xb5\x00mosquitto db" + b"\x00" * 64)
        os.chmod(mdb, 0o666)
        b.lines = ["persistence true", "persistence_location %s" % b.tmpdir,
                   "persistence_file mosquitto.db"]
        b.spawn()
        self.assertNotEqual(b.wait_exit(10), None)
        b.stop(check=False)
        self.assertIn("Mosquitto database", b.output())
        # with culex's default file name the broker starts and says it does not read it
        b.lines = ["persistence true", "persistence_location %s" % b.tmpdir]
        b.returncode = None
        b.start()
        self.assertIn("is not read by culex", b.output())


@culex_only("culex's persistence")
class DiskFull(PersistBase):

    def start_limited(self, sync, limit):
        """The broker under RLIMIT_FSIZE: the store cannot grow past `limit` bytes."""
        b = self.start_broker(start=False, workers=1)
        b.lines = persist_lines(sync, ["persistence_location %s/" % b.tmpdir])
        real_command = b.command

        def command():
            return ["prlimit", "--fsize=%d" % limit, "--"] + real_command()
        b.command = command
        b.start()
        return b

    def fill_until_refused(self, b):
        """`always`: QoS 1 to an offline persistent subscriber until the store refuses;
        then a restart without the limit delivers every acknowledged message."""
        t = unique("full/")
        cid = unique("sink")
        s = self.raw_connected(b, cid, 4, clean=False)
        s.subscribe(t, qos=1)
        s.disconnect()
        p = self.raw_connected(b, unique("p"), 5)
        acked, refused = [], 0
        for i in range(2000):
            ack = p.publish(t, b"%04d" % i + b"x" * 400, qos=1)
            if ack.rc == 0 or ack.rc == 0x10:
                acked.append(b"%04d" % i)
            else:
                self.assertEqual(ack.rc, 0x80)
                refused += 1
                if refused >= 3:
                    break
        self.assertGreater(refused, 0, "the store never filled up")
        self.assertTrue(b.wait_output("cannot write"), b.output())
        # QoS 0 keeps flowing
        q = self.raw_connected(b, unique("q0"), 4)
        q.subscribe(t + "/zero", qos=0)
        p.publish(t + "/zero", b"still", qos=0)
        self.assertEqual(q.recv_publish().payload, b"still")
        return cid, acked

    def check_delivered(self, b, cid, acked):
        s = self.raw(b, 4)
        self.assertTrue(s.connect(cid, clean=False).session_present)
        seen = []
        while True:
            try:
                seen.append(s.recv_publish(timeout=1.0).payload[:4])
            except AssertionError:
                break
        self.assertEqual(set(acked) - set(seen), set())

    def test_always_refuses_when_full_and_keeps_older_data(self):
        """RLIMIT_FSIZE: writes past 64 KiB fail with EFBIG."""
        b = self.start_limited("always", 64 * 1024)
        cid, acked = self.fill_until_refused(b)
        b.stop()
        del b.command             # back to the plain command line
        b.returncode = None
        b.start()
        self.check_delivered(b, cid, acked)

    def test_always_on_a_full_tmpfs(self):
        """A real ENOSPC: the store on a 256 KiB tmpfs (needs root and mount)."""
        b = self.start_broker(start=False, workers=1)
        where = b.path("small")
        os.mkdir(where)
        if os.geteuid() != 0 or subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0777", "tmpfs", where],
                stderr=subprocess.DEVNULL).returncode != 0:
            self.skipTest("cannot mount a tmpfs here")
        self.addCleanup(subprocess.run, ["umount", "-l", where])
        b.lines = persist_lines("always", ["persistence_location %s/" % where])
        b.start()
        cid, acked = self.fill_until_refused(b)
        self.assertIn("No space left on device", b.output())
        self.restart(b)            # on the same full file system
        self.check_delivered(b, cid, acked)

    def test_batch_keeps_serving_when_full(self):
        b = self.start_limited("batch", 32 * 1024)
        t = unique("fullb")
        r = self.raw_connected(b, unique("r"), 4)
        r.subscribe(t + "/#", qos=1)
        p = self.raw_connected(b, unique("p"), 4)
        for i in range(300):
            p.publish(t + "/x", b"y" * 300, qos=1, retain=True)
            r.recv_publish()
        self.assertTrue(b.wait_output("cannot write", timeout=5), b.output())
        p.publish(t + "/after", b"ok", qos=1)
        self.assertEqual(r.recv_publish().payload, b"ok")




@culex_only("culex's plugin ABI")
class PluginStore(PersistBase):
    """A third-party store (tests/plugins/fixtures/store_fixture.c) replaces culex's own:
    it gets every record through CULEX_EV_PERSIST and hands them back at start-up."""

    def test_plugin_store_restores(self):
        b = self.start_broker(start=False)
        b.lines = ["plugin %s" % os.path.join(FIXTURES, "store_fixture.so"),
                   "plugin_opt_store_file %s" % b.path("plugin.store")]
        b.start()
        t, cid = unique("ps"), unique("ps-sess")
        s = self.raw_connected(b, cid, 5, clean=True, props=[(P_SESSION_EXPIRY, 600)])
        s.subscribe(t + "/q", qos=1, sub_id=3)
        s.disconnect()
        p = self.raw_connected(b, unique("p"), 4)
        p.publish(t + "/r", b"kept", qos=1, retain=True)
        p.publish(t + "/q", b"queued", qos=1)
        p.disconnect()
        self.restart(b, kill=True)
        self.assertIn("store_fixture restored", b.output())
        self.assertFalse(os.path.exists(b.path(STORE)))
        s = self.raw(b, 5)
        self.assertTrue(s.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 600)])
                        .session_present)
        m = s.recv_publish()
        self.assertEqual((m.payload, m.props.get(P_SUBSCRIPTION_ID)), (b"queued", 3))
        r = self.raw_connected(b, unique("r"), 4)
        r.subscribe(t + "/r", qos=1)
        self.assertEqual(r.recv_publish().payload, b"kept")


if __name__ == "__main__":
    unittest.main()
