#!/usr/bin/python3
"""Soak: a broker under steady mixed load for a bounded time, its memory sampled over time.

    soak.py SECONDS WORKDIR          (tests/soak/run.sh is the usual front end)

Load, all on loopback, from threads of this process:
- 4 publishers, about 150 messages/s each (QoS 0 50 %, QoS 1 30 %, QoS 2 20 %, 10 to 2000
  bytes), to 9 topics each (soak/p<N>/<a|b|c>/<x|y|z>);
- 1 publisher of retained messages, 20/s, over a fixed set of 500 topics (overwritten);
- 8 steady subscribers, one wildcard filter each, QoS 1 or 2, never disconnected;
- 4 persistent subscribers that go offline for 1 to 4 s and come back to their queue;
- 6 churning clients: connect (3.1.1 or 5, client ids from a fixed pool), subscribe to
  wildcards (the retained set too), read, publish a little, unsubscribe, leave (DISCONNECT,
  FIN or RST), over and over.

Every SAMPLE seconds the broker's resident memory (VmRSS) and its accounted heap
($SYS/broker/heap/current) go to WORKDIR/memory.csv with the connection and message counts.

Verdict (exit status 1 on failure): after a warm-up (the first 20 %, at least 10 s), the
median of the last third must not exceed the median of the first third by more than 10 %
(and 4 MiB) for RSS, and by more than 10 % (and 2 MiB) for the heap; RSS is not judged
under a sanitizer (its quarantine grows by design). Every QoS 1/2 message acknowledged to a
publisher must have reached every steady and persistent subscriber whose filter matches it.
The broker must exit with status 0.

Environment: CULEX_SOAK_BROKER (binary; default build/core/culex), CULEX_SOAK_WORKERS
(default: the number of CPUs), CULEX_SOAK_SAMPLE (seconds, default 5, 2 for runs under 2
minutes).
"""

import csv
import os
import random
import socket
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
os.environ.setdefault("CULEX_TEST_BROKER", os.environ.get("CULEX_SOAK_BROKER") or
                      os.path.join(TOP, "build", "core", "culex"))
os.environ.setdefault("CULEX_TEST_KIND", "culex")

import harness as h  # noqa: E402
import faultlib as fl  # noqa: E402

PUBS, STEADY, OFFLINE, CHURN = 4, 8, 4, 6
PUB_RATE = 150
RETAINED_TOPICS = 500
LEVEL1, LEVEL2 = "abc", "xyz"
TOPICS = ["%s/%s" % (a, b) for a in LEVEL1 for b in LEVEL2]     # 9 per publisher
STEADY_FILTERS = ["soak/#", "soak/+/a/#", "soak/p1/#", "soak/+/+/x", "soak/p2/b/+",
                  "soak/p0/c/z", "soak/+/b/y", "soak/p3/+/+"]
OFFLINE_FILTERS = ["soak/p0/#", "soak/+/c/#", "soak/p3/a/+", "soak/+/+/y"]


def matches(filt, topic):
    f, t = filt.split("/"), topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(f) == len(t)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}
        self.errors = []

    def add(self, key, n=1):
        with self.lock:
            self.c[key] = self.c.get(key, 0) + n

    def error(self, what):
        with self.lock:
            if len(self.errors) < 20:
                self.errors.append(what)


class Worker(threading.Thread):
    def __init__(self, soak, name):
        super().__init__(name=name, daemon=True)
        self.soak = soak
        self.rng = random.Random(name)

    def run(self):
        try:
            self.body()
        except Exception as e:  # noqa: BLE001
            self.soak.stats.error("%s: %r" % (self.name, e))


class Publisher(Worker):
    """Publishes at PUB_RATE; records which QoS 1/2 sequence numbers were acknowledged
    (byte per seq: topic index + 1, 0 = not acknowledged)."""

    def __init__(self, soak, index):
        super().__init__(soak, "pub%d" % index)
        self.index = index
        self.acked = bytearray()

    def body(self):
        soak, rng = self.soak, self.rng
        c = h.RawClient(soak.port, 4, timeout=30)
        c.connect("soak-pub%d" % self.index)
        inflight = {}                       # pid -> (seq, topic index, qos, state)
        seq, pid = 0, 1
        t0 = time.monotonic()
        while not soak.stop.is_set():
            # Paced: seq messages by now.
            due = int((time.monotonic() - t0) * PUB_RATE)
            while seq < due and len(inflight) < 10:
                seq += 1
                ti = rng.randrange(len(TOPICS))
                topic = "soak/p%d/%s" % (self.index, TOPICS[ti])
                qos = rng.choices((0, 1, 2), (50, 30, 20))[0]
                payload = b"%d %d " % (self.index, seq) + b"s" * rng.randint(0, 2000)
                if len(self.acked) < seq + 1:
                    self.acked.extend(bytes(4096))
                if qos:
                    while pid in inflight:
                        pid = pid % 65535 + 1
                    inflight[pid] = (seq, ti, qos, "sent")
                    c.send(h.build_publish(topic, payload, qos=qos, pid=pid))
                    pid = pid % 65535 + 1
                else:
                    c.send(h.build_publish(topic, payload))
                soak.stats.add("published qos%d" % qos)
            try:
                p = c.recv(0.005)
            except socket.timeout:
                continue
            e = inflight.get(p.pid)
            if e is None:
                soak.stats.error("%s: unexpected %r" % (self.name, p))
            elif p.type == h.PUBACK or p.type == h.PUBCOMP:
                del inflight[p.pid]
                self.acked[e[0]] = e[1] + 1
            elif p.type == h.PUBREC:
                inflight[p.pid] = e[:3] + ("rec",)
                c.send(h.build_ack(h.PUBREL, p.pid))
        end = time.monotonic() + 30
        while inflight and time.monotonic() < end:
            try:
                p = c.recv(0.1)
            except socket.timeout:
                continue
            e = inflight.get(p.pid)
            if e and p.type in (h.PUBACK, h.PUBCOMP):
                del inflight[p.pid]
                self.acked[e[0]] = e[1] + 1
            elif e and p.type == h.PUBREC:
                c.send(h.build_ack(h.PUBREL, p.pid))
        c.disconnect()


class RetainedPublisher(Worker):
    def body(self):
        soak, rng = self.soak, self.rng
        c = h.RawClient(soak.port, 4, timeout=30)
        c.connect("soak-retainer")
        n = 0
        while not soak.stop.is_set():
            n += 1
            t = "soak/retained/%d" % rng.randrange(RETAINED_TOPICS)
            # Now and then a retained message is cleared (empty payload).
            payload = b"" if rng.random() < 0.05 else b"r" * rng.randint(1, 500)
            c.publish(t, payload, qos=rng.choice((0, 1)), retain=True)
            soak.stats.add("retained published")
            time.sleep(0.05)
        c.disconnect()


class Receiver(Worker):
    """A subscriber that records the (publisher, seq) of QoS 1/2 messages in bitmaps."""

    def __init__(self, soak, name, filt, qos, version, offline):
        super().__init__(soak, name)
        self.filt = filt
        self.qos = qos
        self.version = version
        self.offline = offline
        self.got = [bytearray() for _ in range(PUBS)]
        self.qos2_in = set()

    def record(self, p):
        if p.qos == 0 or not p.topic.startswith("soak/p"):
            return
        pub, seq = (int(x) for x in p.payload.split(b" ", 2)[:2])
        bm = self.got[pub]
        if len(bm) <= seq:
            bm.extend(bytes(seq + 4096 - len(bm)))
        if bm[seq] and p.qos == 2:
            self.soak.stats.error("%s: QoS 2 message %d/%d twice" % (self.name, pub, seq))
        bm[seq] = min(bm[seq] + 1, 255)

    def connect(self, first):
        props = [(h.P_SESSION_EXPIRY, 3600)] if self.version == 5 else None
        c = h.RawClient(self.soak.port, self.version, timeout=30)
        ack = c.connect(self.name, clean=first and self.version == 5, props=props)
        if not first and not ack.session_present:
            self.soak.stats.error("%s: session lost" % self.name)
        if first:
            c.subscribe(self.filt, qos=self.qos)
        return c

    def body(self):
        soak, rng = self.soak, self.rng
        c = self.connect(True)
        soak.ready.wait()
        back_at = None
        next_leave = time.monotonic() + rng.uniform(2, 8)
        ping = time.monotonic() + 20
        while not soak.done.is_set():
            if c is not None and time.monotonic() > ping:   # quiet filters: keep alive
                c.send(h.build_pingreq())
                ping = time.monotonic() + 20
            if c is None:
                if time.monotonic() < back_at and not soak.stop.is_set():
                    time.sleep(0.05)
                    continue
                c = self.connect(False)
                soak.stats.add("offline returns")
                next_leave = time.monotonic() + rng.uniform(2, 8)
            if self.offline and not soak.stop.is_set() and time.monotonic() > next_leave:
                (c.abort if rng.random() < 0.5 else c.disconnect)()
                c = None
                back_at = time.monotonic() + rng.uniform(1, 4)
                continue
            try:
                p = c.recv(0.05)
            except socket.timeout:
                continue
            if p.type == h.PUBLISH:
                new = True
                if p.qos == 2:
                    new = p.pid not in self.qos2_in
                    self.qos2_in.add(p.pid)
                    c.send(h.build_ack(h.PUBREC, p.pid, version=self.version))
                elif p.qos == 1:
                    c.send(h.build_ack(h.PUBACK, p.pid, version=self.version))
                if new:
                    self.record(p)
                soak.stats.add("delivered")
            elif p.type == h.PUBREL:
                self.qos2_in.discard(p.pid)
                c.send(h.build_ack(h.PUBCOMP, p.pid, version=self.version))
        if c is not None:
            c.disconnect()


class Churner(Worker):
    FILTERS = ["soak/retained/#", "soak/+/a/x", "soak/p{n}/#", "soak/+/+/z", "soak/p{n}/b/+",
               "soak/retained/+"]

    def body(self):
        soak, rng = self.soak, self.rng
        soak.ready.wait()
        k = 0
        while not soak.stop.is_set():
            k += 1
            v = rng.choice((4, 5))
            c = h.RawClient(soak.port, v, timeout=30)
            try:
                c.connect("soak-%s-%d" % (self.name, k % 20), clean=True)
                soak.stats.add("churn connections")
                filters = []
                for _ in range(rng.randint(1, 3)):
                    f = rng.choice(self.FILTERS).format(n=rng.randrange(PUBS))
                    filters.append((f, rng.randrange(3)))
                c.subscribe(filters)
                end = time.monotonic() + rng.uniform(0, 0.5)
                while time.monotonic() < end:
                    try:
                        p = c.recv(max(0.001, end - time.monotonic()))
                    except socket.timeout:
                        break
                    if p.type == h.PUBLISH and p.qos == 1:
                        c.send(h.build_ack(h.PUBACK, p.pid, version=v))
                    elif p.type == h.PUBLISH and p.qos == 2:
                        c.send(h.build_ack(h.PUBREC, p.pid, version=v))
                    elif p.type == h.PUBREL:
                        c.send(h.build_ack(h.PUBCOMP, p.pid, version=v))
                for i in range(rng.randint(0, 3)):
                    c.send(h.build_publish("soak/churn/%s" % self.name, b"c" * 100,
                                           qos=rng.randrange(2), pid=i + 100, version=v))
                if rng.random() < 0.5:
                    c.send(h.build_unsubscribe(9, [f for f, _ in filters], version=v))
                how = rng.randrange(3)
                if how == 0:
                    c.send_quietly(h.build_disconnect(version=v))
                    c.close()
                elif how == 1:
                    c.close()
                else:
                    c.abort()
            except (OSError, AssertionError, h.Closed) as e:
                soak.stats.error("%s: %r" % (self.name, e))
                c.abort()
            time.sleep(rng.uniform(0, 0.1))


class SysWatcher(Worker):
    def body(self):
        soak = self.soak
        c = h.RawClient(soak.port, 4, timeout=30)
        c.connect("soak-sys")
        c.subscribe("$SYS/broker/#", qos=0)
        ping = time.monotonic() + 20
        while not soak.done.is_set():
            if time.monotonic() > ping:     # it only receives: keep alive
                c.send(h.build_pingreq())
                ping = time.monotonic() + 20
            try:
                p = c.recv(0.2)
            except socket.timeout:
                continue
            if p.type == h.PUBLISH:
                soak.sys[p.topic] = p.payload.decode("utf-8", "replace")
        c.disconnect()


class Soak:
    def __init__(self, seconds, workdir):
        self.seconds = seconds
        self.workdir = workdir
        self.stop = threading.Event()
        self.done = threading.Event()
        self.ready = threading.Event()
        self.stats = Stats()
        self.sys = {}
        self.samples = []

    def sys_int(self, name):
        try:
            return int(self.sys.get("$SYS/broker/" + name, "0").split()[0])
        except ValueError:
            return 0

    def run(self):
        workers = int(os.environ.get("CULEX_SOAK_WORKERS") or os.cpu_count() or 2)
        sample = float(os.environ.get("CULEX_SOAK_SAMPLE") or (2 if self.seconds < 120 else 5))
        b = h.Broker(["sys_interval 2", "max_queued_messages 5000", "max_packet_size 1048576"],
                     workers=workers, name="soak")
        b.cleanup()                     # its own temporary directory: WORKDIR instead
        b.tmpdir = self.workdir
        b.conf_path = os.path.join(self.workdir, "broker.conf")
        b.log_path = os.path.join(self.workdir, "broker.log")
        b.start()
        self.port = b.port
        pid = b.proc.pid
        print("soak: %s, %d workers, %g s, samples every %g s, in %s"
              % (h.BROKER, workers, self.seconds, sample, self.workdir), flush=True)
        pubs = [Publisher(self, i) for i in range(PUBS)]
        receivers = [Receiver(self, "steady%d" % i, STEADY_FILTERS[i], 1 + i % 2,
                              4 if i % 2 else 5, False) for i in range(STEADY)]
        receivers += [Receiver(self, "offline%d" % i, OFFLINE_FILTERS[i], 1 + (i + 1) % 2,
                               5 if i % 2 else 4, True) for i in range(OFFLINE)]
        others = [RetainedPublisher(self, "retainer"), SysWatcher(self, "sys")]
        others += [Churner(self, "churn%d" % i) for i in range(CHURN)]
        for t in receivers + others:
            t.start()
        time.sleep(1.0)                 # subscriptions in place
        self.ready.set()
        for t in pubs:
            t.start()
        t0 = time.monotonic()
        csv_path = os.path.join(self.workdir, "memory.csv")
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["seconds", "rss_kib", "heap_bytes", "clients_connected",
                        "publish_received", "publish_sent", "publish_dropped"])
            nxt = t0
            while True:
                now = time.monotonic()
                if now >= t0 + self.seconds:
                    break
                if now >= nxt:
                    row = [round(now - t0, 1), fl.rss_kb(pid), self.sys_int("heap/current"),
                           self.sys_int("clients/connected"),
                           self.sys_int("publish/messages/received"),
                           self.sys_int("publish/messages/sent"),
                           self.sys_int("publish/messages/dropped")]
                    w.writerow(row)
                    f.flush()
                    self.samples.append(row)
                    nxt += sample
                if not b.alive():
                    self.stats.error("the broker died")
                    break
                time.sleep(0.1)
        self.stop.set()
        for t in pubs + others[:1] + others[2:]:
            t.join(60)
        # Let the subscribers catch up, then stop them.
        expected = self.expected(pubs, receivers)
        end = time.monotonic() + 60
        while time.monotonic() < end and self.missing(expected, receivers, first=True):
            time.sleep(0.5)
        self.done.set()
        for t in receivers + others[1:2]:
            t.join(30)
        rc = b.stop(check=False)
        return self.verdict(b, rc, pubs, receivers, expected)

    def expected(self, pubs, receivers):
        """For each receiver, per publisher, the acknowledged sequence numbers it must have."""
        out = {}
        for r in receivers:
            per_pub = []
            for p in pubs:
                topic_ok = [matches(r.filt, "soak/p%d/%s" % (p.index, t)) for t in TOPICS]
                per_pub.append([seq for seq, ti in enumerate(p.acked)
                                if ti and topic_ok[ti - 1]])
            out[r] = per_pub
        return out

    def missing(self, expected, receivers, first=False):
        """Expected deliveries not received (with first: 1 as soon as one is found)."""
        n = 0
        for r in receivers:
            for pi, seqs in enumerate(expected[r]):
                bm = r.got[pi]
                for s in seqs:
                    if s >= len(bm) or not bm[s]:
                        if first:
                            return 1
                        n += 1
        return n

    def verdict(self, b, rc, pubs, receivers, expected):
        ok = True
        s = self.samples
        warm = max(10.0, 0.2 * self.seconds)
        after = [r for r in s if r[0] >= warm]
        lines = []
        if len(after) >= 6:
            third = len(after) // 3
            first, last = after[:third], after[-third:]
            rss1 = statistics.median(r[1] for r in first)
            rss3 = statistics.median(r[1] for r in last)
            heap1 = statistics.median(r[2] for r in first)
            heap3 = statistics.median(r[2] for r in last)
            rss_bound = max(0.10 * rss1, 4096)
            heap_bound = max(0.10 * heap1, 2 << 20)
            lines.append("RSS after warm-up (%.0f s): first third median %d KiB, last third %d "
                         "KiB (%+d KiB, bound %+d KiB); max %d KiB"
                         % (warm, rss1, rss3, rss3 - rss1, rss_bound, max(r[1] for r in s)))
            lines.append("heap ($SYS/broker/heap/current): first third %.1f MiB, last third %.1f "
                         "MiB (%+.2f MiB, bound %+.2f MiB)"
                         % (heap1 / 2**20, heap3 / 2**20, (heap3 - heap1) / 2**20,
                            heap_bound / 2**20))
            if rss3 - rss1 > rss_bound and not fl.SANITIZED:
                ok = False
                lines.append("FAIL: RSS grew")
            if heap3 - heap1 > heap_bound:
                ok = False
                lines.append("FAIL: heap grew")
        else:
            ok = False
            lines.append("FAIL: only %d samples after warm-up" % len(after))
        c = self.stats.c
        n_exp = sum(len(x) for per in expected.values() for x in per)
        lost = self.missing(expected, receivers)
        lines.append("load: %d QoS 0 + %d QoS 1 + %d QoS 2 published (%d/s), %d retained, %d "
                     "deliveries, %d churning connections, %d offline returns"
                     % (c.get("published qos0", 0), c.get("published qos1", 0),
                        c.get("published qos2", 0),
                        sum(c.get("published qos%d" % q, 0) for q in range(3)) / self.seconds,
                        c.get("retained published", 0), c.get("delivered", 0),
                        c.get("churn connections", 0), c.get("offline returns", 0)))
        lines.append("QoS 1/2: %d acknowledged deliveries expected, %d lost"
                     % (n_exp, lost))
        if lost:
            ok = False
            lines.append("FAIL: messages lost")
        if self.stats.errors:
            ok = False
            lines.append("FAIL: errors: %s" % self.stats.errors)
        if rc != 0:
            ok = False
            lines.append("FAIL: broker exit status %s" % rc)
        lines.append("PASS" if ok else "FAIL")
        with open(os.path.join(self.workdir, "summary.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print("\n".join(lines), flush=True)
        if not ok:
            print("broker log: %s" % b.log_path)
        return 0 if ok else 1


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 600
    workdir = sys.argv[2] if len(sys.argv) > 2 else None
    if not workdir:
        import tempfile
        workdir = tempfile.mkdtemp(prefix="culex-soak-")
    os.makedirs(workdir, exist_ok=True)
    sys.exit(Soak(seconds, workdir).run())


if __name__ == "__main__":
    main()
