#!/usr/bin/python3
"""Persistence benchmark (printed, never asserted): QoS 1 throughput at each durability level
against memory only, and restart time with many retained messages.

    tests/bench/persist/bench_persist.py [--broker build/core/culex] [--mosquitto /usr/sbin/mosquitto]
                                         [--messages 100000] [--retained 1000000] [--runs 3]

Throughput: one publisher process sends QoS 1 messages with up to 1000 in flight to one
subscriber process holding a persistent session (clean session 0), which acknowledges each;
the figure is messages per second until the subscriber has them all. Both clients are raw
sockets with pre-built packets, so the broker is what is measured, but on a 2-core machine
they share the CPU with it: compare the ratios in one run, not the absolute numbers.

Restart: the broker is filled with N retained messages (distinct topics, 64-byte payloads),
stopped cleanly, and started again; the figure is the time from exec until it accepts a
connection, with the store's size. Mosquitto (if installed) runs the same two workloads with
`persistence true` (its snapshot is written at exit)."""

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def connect_pkt(cid, clean=True):
    body = utf8("MQTT") + bytes([4, 0x02 if clean else 0x00]) + struct.pack("!H", 60) + utf8(cid)
    return b"\x10" + varint(len(body)) + body


def publish_pkt(topic, payload, qos, pid=0, retain=False):
    body = utf8(topic) + (struct.pack("!H", pid) if qos else b"") + payload
    return bytes([0x30 | (qos << 1) | (1 if retain else 0)]) + varint(len(body)) + body


def subscribe_pkt(pid, topic, qos):
    body = struct.pack("!H", pid) + utf8(topic) + bytes([qos])
    return b"\x82" + varint(len(body)) + body


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection((HOST, port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def packets(self):
        """Yields (type byte, body) of every whole packet received, reading as needed."""
        while True:
            data = self.s.recv(1 << 20)
            if not data:
                return
            self.buf += data
            while len(self.buf) >= 2:
                n, mult, i, whole = 0, 1, 1, False
                while i < len(self.buf) and i <= 4:
                    b = self.buf[i]
                    n += (b & 127) * mult
                    mult *= 128
                    i += 1
                    if not b & 128:
                        whole = True
                        break
                if not whole or len(self.buf) < i + n:
                    break
                yield self.buf[0], bytes(self.buf[i:i + n])
                del self.buf[:i + n]

    def handshake(self, pkt):
        self.s.sendall(pkt)
        for t, body in self.packets():
            return t, body


def wait_port(port, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection((HOST, port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.005)
    return False


def subscriber(port, cid, topic, n, ready, done_q):
    c = Conn(port)
    c.handshake(connect_pkt(cid, clean=False))
    c.s.sendall(subscribe_pkt(1, topic, 1))
    got = 0
    acks = bytearray()
    first = None
    for t, body in c.packets():
        if t & 0xF0 == 0x90:
            ready.set()
            continue
        if t & 0xF0 != 0x30:
            continue
        if first is None:
            first = time.monotonic()
        tl = struct.unpack("!H", body[:2])[0]
        pid = body[2 + tl:4 + tl]
        acks += b"\x40\x02" + pid
        got += 1
        if len(acks) >= 4096 or got == n:
            c.s.sendall(acks)
            acks.clear()
        if got == n:
            break
    done_q.put(time.monotonic())
    c.s.close()


def publisher(port, topic, n, window, payload, start_q):
    c = Conn(port)
    c.handshake(connect_pkt("bench-pub"))
    start_q.put(time.monotonic())
    sent = acked = 0
    pid = 0
    batch = bytearray()
    while sent < n and sent - acked < window:
        pid = pid % 65535 + 1
        batch += publish_pkt(topic, payload, 1, pid)
        sent += 1
    c.s.sendall(batch)
    for t, body in c.packets():
        if t & 0xF0 != 0x40:
            continue
        acked += 1
        if acked == n:
            break
        if sent < n:
            pid = pid % 65535 + 1
            c.s.sendall(publish_pkt(topic, payload, 1, pid))
            sent += 1
    c.s.close()


class Broker:
    def __init__(self, exe, kind, lines):
        self.exe, self.kind = exe, kind
        self.dir = tempfile.mkdtemp(prefix="culex-bench-")
        os.chmod(self.dir, 0o777)
        self.port = free_port()
        conf = ["listener %d %s" % (self.port, HOST), "allow_anonymous true",
                "max_queued_messages 0", "max_inflight_messages 0"] + lines
        if kind == "mosquitto":
            conf = [l for l in conf if not l.startswith("persistence_sync")]
        conf = [l.replace("@DIR@", self.dir) for l in conf]
        self.conf = os.path.join(self.dir, "b.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        self.proc = None

    def start(self):
        self.log = open(os.path.join(self.dir, "out"), "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([self.exe, "-c", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=self.dir)
        if not wait_port(self.port):
            raise RuntimeError("broker did not start:\n" + self.output())
        # The port listens before the state is restored: ready means a CONNACK.
        c = Conn(self.port)
        c.handshake(connect_pkt("bench-ready"))
        c.s.close()
        return time.monotonic() - t0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(300)
        self.log.close()

    def output(self):
        with open(os.path.join(self.dir, "out"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def store_bytes(self):
        total = 0
        for name in os.listdir(self.dir):
            if name.endswith(".db"):
                total += os.path.getsize(os.path.join(self.dir, name))
        return total

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def throughput(exe, kind, lines, n):
    b = Broker(exe, kind, lines)
    b.start()
    try:
        ctx = mp.get_context("fork")
        ready, done_q, start_q = ctx.Event(), ctx.Queue(), ctx.Queue()
        sub = ctx.Process(target=subscriber, args=(b.port, "bench-sub", "bench/t", n, ready,
                                                   done_q))
        sub.start()
        ready.wait(10)
        pub = ctx.Process(target=publisher, args=(b.port, "bench/t", n, 1000, b"x" * 64,
                                                  start_q))
        pub.start()
        t0 = start_q.get(timeout=60)
        t1 = done_q.get(timeout=600)
        pub.join(60)
        sub.join(60)
        return n / (t1 - t0)
    finally:
        b.stop()
        b.cleanup()


def fill_retained(port, n):
    c = Conn(port)
    c.handshake(connect_pkt("bench-fill"))
    payload = b"r" * 64
    batch = bytearray()
    for i in range(n):
        batch += publish_pkt("bench/r/%d/%d" % (i // 1000, i % 1000), payload, 0, retain=True)
        if len(batch) > 1 << 20:
            c.s.sendall(batch)
            batch.clear()
    c.s.sendall(batch)
    # a round trip: everything before it has been handled
    c.s.sendall(b"\xc0\x00")
    for t, _ in c.packets():
        if t == 0xD0:
            break
    c.s.close()


def restart(exe, kind, lines, n):
    b = Broker(exe, kind, lines)
    b.start()
    try:
        fill_retained(b.port, n)
        t0 = time.monotonic()
        b.stop()
        stop_s = time.monotonic() - t0
        size = b.store_bytes()
        start_s = b.start()
        restored = [l for l in b.output().splitlines() if "restored" in l or "Restored" in l]
        b.stop()
        return start_s, stop_s, size, restored[-1] if restored else ""
    finally:
        b.cleanup()


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--broker", default=os.path.join(here, "../../../build/core/culex"))
    ap.add_argument("--mosquitto", default="/usr/sbin/mosquitto")
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--retained", type=int, default=1000000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1,
                    help="culex workers (default 1: with 2 clients on 2 workers, whether they "
                         "share one is a lottery that swamps the durability figures)")
    a = ap.parse_args()
    user = ["user root"] if os.geteuid() == 0 else []
    culex_user = user + ["workers %d" % a.workers]
    persist = ["persistence true", "persistence_location @DIR@/"] + user
    cases = [("culex", a.broker, "memory only", culex_user),
             ("culex", a.broker, "none", persist + culex_user[len(user):] +
              ["persistence_sync none"]),
             ("culex", a.broker, "batch (100 ms)", persist + culex_user[len(user):] +
              ["persistence_sync batch"]),
             ("culex", a.broker, "always", persist + culex_user[len(user):] +
              ["persistence_sync always"])]
    if os.path.exists(a.mosquitto):
        cases += [("mosquitto", a.mosquitto, "memory only", user),
                  ("mosquitto", a.mosquitto, "persistence true", persist)]
    print("QoS 1, %d messages of 64 bytes, 1 publisher (1000 in flight) -> 1 persistent "
          "subscriber; median of %d runs; culex with %d worker(s)" % (a.messages, a.runs,
                                                                      a.workers))
    print("%-10s %-18s %12s %8s" % ("broker", "durability", "msgs/s", "ratio"))
    base = None
    for kind, exe, name, lines in cases:
        rates = [throughput(exe, kind, lines, a.messages) for _ in range(a.runs)]
        med = statistics.median(rates)
        if base is None:
            base = med
        print("%-10s %-18s %12.0f %8.2f   (runs: %s)" % (kind, name, med, med / base,
                                                         ", ".join("%.0f" % r for r in rates)))
        sys.stdout.flush()
    if a.retained:
        print("\nRestart with %d retained messages (distinct topics, 64-byte payloads)" %
              a.retained)
        print("%-10s %-18s %10s %10s %10s" % ("broker", "durability", "start s", "stop s",
                                              "store MB"))
        for kind, exe, name, lines in cases:
            if name == "memory only" or (kind == "culex" and name != "batch (100 ms)"):
                continue
            runs = [restart(exe, kind, lines, a.retained) for _ in range(a.runs)]
            print("%-10s %-18s %10.2f %10.2f %10.1f   %s" % (
                kind, name, statistics.median(r[0] for r in runs),
                statistics.median(r[1] for r in runs), runs[-1][2] / 1e6, runs[-1][3][:90]))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
