"""Randomized clients against a live broker, with invariants checked at the end (issue #7).

Fifty client threads run for CULEX_TEST_RANDOM_SECONDS (default 30) seconds, each drawing
its actions from its own random.Random seeded from CULEX_TEST_SEED (default 20240607, printed
in the output: set it to replay a failing run's action sequences; thread timing still
varies):

- 10 checked publishers (MQTT 3.1, 3.1.1 or 5, persistent sessions) publish QoS 1 and 2
  messages with unique ids to their own topics, and vanish at random (DISCONNECT, FIN or
  RST, also between PUBREC and PUBREL); back online they resend what is unacknowledged, as
  the spec requires (PUBLISH with DUP, PUBREL);
- 10 checked subscribers (persistent sessions) subscribe once, before anything is published,
  with QoS 1 or 2, to filters with wildcards that never overlap within one subscriber, and
  never unsubscribe; they vanish at random too (also after receiving a message and before
  acknowledging it) and come back after a while;
- 20 chaos clients do random valid things: connect with random versions, clean or
  persistent sessions, wills, keep alives; subscribe and unsubscribe random filters
  (wildcards, shared subscriptions, v5 options and subscription identifiers); publish QoS
  0/1/2, retained or not, with v5 properties and topic aliases; ping; disconnect in every
  way; reconnect;
- 10 hostile clients send invalid input: garbage, truncated and bit-flipped packets, protocol
  errors, oversized packets, and cut their connections.

Invariants at the end, after the publishers have completed what they had in flight and
the subscribers have reconnected:
- every QoS 1/2 message acknowledged to a checked publisher (PUBACK, PUBCOMP) reached every
  checked subscriber whose filters match it: at least once when delivered at QoS 1,
  exactly once at QoS 2 (and no QoS 2 message ever arrives twice);
- no client (checked or chaos) ever receives a message that matches none of the filters it
  had (possibly) subscribed at that moment;
- a checked client's session is always present when it comes back, and the broker never
  closes a checked client's connection by itself;
- the broker answers, and exits with status 0 (under ASan: no leak, no error).
"""

import os
import random
import socket
import sys
import threading
import time
import unittest

import faultlib as fl
import harness as h
from harness import (
    BrokerTest, unique, build_connect, build_publish, build_subscribe, build_unsubscribe,
    build_ack, build_disconnect, build_pingreq, build_auth, packet, varint, u16, utf8,
    encode_props, sub_options, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK,
    DISCONNECT, P_SESSION_EXPIRY, P_TOPIC_ALIAS, P_TOPIC_ALIAS_MAXIMUM,
    P_MESSAGE_EXPIRY, P_USER_PROPERTY, P_SUBSCRIPTION_ID, P_CONTENT_TYPE, P_PAYLOAD_FORMAT,
    P_RECEIVE_MAXIMUM,
)

SEED = int(os.environ.get("CULEX_TEST_SEED") or 20240607)
SECONDS = float(os.environ.get("CULEX_TEST_RANDOM_SECONDS") or 30)
N_PUB, N_SUB, N_CHAOS, N_HOSTILE = 10, 10, 20, 10
SESSION_EXPIRY = 3600


def topic_matches(filt, topic):
    """MQTT topic filter matching (a filter starting with a wildcard does not match a topic
    starting with $)."""
    if filt.startswith("$share/"):
        filt = filt.split("/", 2)[2]
    if topic.startswith("$") and filt[:1] in ("+", "#"):
        return False
    f, t = filt.split("/"), topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t):
            return False
        if part != "+" and part != t[i]:
            return False
    return len(f) == len(t)


class Run:
    """What the client threads share: the stop signals, the counters, the findings."""

    def __init__(self, port, rng):
        self.port = port
        self.token = "%08x" % rng.getrandbits(32)
        self.base = "rnd/%s" % self.token
        self.stop = threading.Event()       # chaos and hostile clients stop
        self.drain = threading.Event()      # publishers stop publishing and complete
        self.done = threading.Event()       # subscribers stop
        self.lock = threading.Lock()
        self.counts = {}
        self.violations = []
        self.start_barrier = None

    def count(self, key, n=1):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def violation(self, who, what):
        with self.lock:
            if len(self.violations) < 50:
                self.violations.append("%s: %s" % (who, what))

    def checked_payload(self, pub, seq):
        return ("chk:%s:%d:%d" % (self.token, pub, seq)).encode()

    def parse_checked(self, payload):
        try:
            parts = payload.decode().split(":")
        except UnicodeDecodeError:
            return None
        if len(parts) == 4 and parts[0] == "chk" and parts[1] == self.token:
            return (int(parts[2]), int(parts[3]))
        return None


class Conn:
    """A raw connection with the receiving side of the protocol: acknowledges QoS 1/2
    messages (method B for QoS 2: remembers the packet id until PUBREL, across
    connections when the session persists), resolves topic aliases from the broker."""

    def __init__(self, run, rng, name, version):
        self.run = run
        self.rng = rng
        self.name = name
        self.version = version
        self.c = None
        self.aliases_in = {}
        self.qos2_in = set()        # session state: packet ids awaiting PUBREL
        self.connack = None

    def open(self, clean, keepalive=60, will=None, props=None, expect_rc=0):
        self.close(abort=True)
        self.c = h.RawClient(self.run.port, self.version, timeout=10)
        self.aliases_in = {}
        if clean:
            self.qos2_in = set()
        self.run.count("connections")
        self.connack = self.c.connect(self.name, clean=clean, keepalive=keepalive, will=will,
                                      props=props, expect_rc=expect_rc)
        return self.connack

    @property
    def session_present(self):
        return bool(self.connack and self.connack.session_present)

    def send(self, data):
        self.c.send(data)
        self.run.count("packets")

    def close(self, abort=False):
        if self.c is not None:
            (self.c.abort if abort else self.c.close)()
            self.c = None

    def leave(self, how):
        """Ends the connection: 'disconnect', 'fin' or 'rst'."""
        if self.c is None:
            return
        if how == "disconnect":
            self.c.send_quietly(build_disconnect(version=self.version))
            self.close()
        elif how == "fin":
            self.close()
        else:
            self.close(abort=True)

    def poll(self, timeout):
        """Waits up to `timeout` for a packet, then returns it with whatever else has
        already arrived (so that acknowledgements go out at once)."""
        out = []
        wait = timeout
        while True:
            try:
                p = self.c.recv(max(0.0005, wait))
            except socket.timeout:
                return out
            if p.type == PUBLISH and self.version == 5:
                alias = p.props.get(P_TOPIC_ALIAS)
                if alias is not None:
                    if p.topic:
                        self.aliases_in[alias] = p.topic
                    else:
                        p.topic = self.aliases_in.get(alias, "")
            out.append(p)
            wait = 0

    def on_publish(self, p, ack=True):
        """Acknowledges p; returns True if it is new to the application (False for a
        QoS 2 duplicate whose PUBREL has not come yet)."""
        new = True
        if p.qos == 2:
            new = p.pid not in self.qos2_in
            self.qos2_in.add(p.pid)
        if ack:
            if p.qos == 1:
                self.send(build_ack(PUBACK, p.pid, version=self.version))
            elif p.qos == 2:
                self.send(build_ack(PUBREC, p.pid, version=self.version))
        return new

    def on_pubrel(self, p):
        self.qos2_in.discard(p.pid)
        self.send(build_ack(PUBCOMP, p.pid, version=self.version))


class Client(threading.Thread):
    """Base of the client threads: exceptions end the thread and are findings."""

    role = "client"

    def __init__(self, run, index):
        super().__init__(name="%s%d" % (self.role, index), daemon=True)
        self.run_ = run
        self.index = index
        self.rng = random.Random("%d-%s-%d" % (SEED, self.role, index))
        self.error = None

    def run(self):
        try:
            self.body()
        except Exception as e:  # noqa: BLE001
            self.error = "%s: %r" % (self.name, e)

    def sleep(self, a, b):
        time.sleep(self.rng.uniform(a, b))


# --------------------------------------------------------------------------------------------
# Checked publishers
# --------------------------------------------------------------------------------------------

class Publisher(Client):
    role = "pub"
    LEVELS = [(a, b) for a in "abc" for b in "xy"]

    def body(self):
        run, rng = self.run_, self.rng
        self.version = rng.choice((3, 4, 5))
        self.conn = Conn(run, rng, "cp%d" % self.index, self.version)
        self.inflight = {}          # pid -> [seq, qos, topic, state 'sent'|'rec']
        self.order = []             # pids in sending order
        self.acked = []             # (seq, qos, topic)
        self.next_pid = 1
        self.seq = 0
        self.connect(first=True)
        run.start_barrier.wait(30)
        while not run.drain.is_set():
            if self.conn.c is None:
                self.sleep(0, 0.8)
                self.connect()
            if len(self.inflight) < 8:
                self.publish_new()
            if self.conn.c is not None:
                self.handle(self.conn.poll(rng.uniform(0, 0.03)))
            if self.conn.c is not None and rng.random() < 0.01:
                self.vanish()
        # Complete what is in flight: online, no more vanishing.
        end = time.monotonic() + 20
        while self.inflight and time.monotonic() < end:
            if self.conn.c is None:
                self.connect()
            self.handle(self.conn.poll(0.1))
        if self.inflight:
            run.violation(self.name, "%d messages never acknowledged" % len(self.inflight))
        self.conn.leave("disconnect")

    def props(self):
        return [(P_SESSION_EXPIRY, SESSION_EXPIRY)] if self.version == 5 else None

    def connect(self, first=False):
        # 3.1/3.1.1 sessions persist only without Clean Session; v5 with Session Expiry.
        ack = self.conn.open(clean=first and self.version == 5, props=self.props())
        if not first and self.version != 3 and not self.conn.session_present:
            self.run_.violation(self.name, "session not present on reconnect")
        # Resend in order what the broker has not acknowledged [MQTT-4.4.0-1].
        for pid in list(self.order):
            seq, qos, topic, state = self.inflight[pid]
            if state == "sent":
                self.conn.send(build_publish(topic, self.run_.checked_payload(self.index, seq),
                                             qos=qos, pid=pid, dup=True,
                                             version=self.version))
                self.run_.count("resent")
            else:
                self.conn.send(build_ack(PUBREL, pid, version=self.version))
        return ack

    def publish_new(self):
        pid = self.next_pid
        while pid in self.inflight:
            pid = pid % 65535 + 1
        self.next_pid = pid % 65535 + 1
        self.seq += 1
        qos = self.rng.choice((1, 2))
        a, b = self.rng.choice(self.LEVELS)
        topic = "%s/p%d/%s/%s" % (self.run_.base, self.index, a, b)
        self.inflight[pid] = [self.seq, qos, topic, "sent"]
        self.order.append(pid)
        self.conn.send(build_publish(topic, self.run_.checked_payload(self.index, self.seq),
                                     qos=qos, pid=pid, version=self.version))
        self.run_.count("published qos%d" % qos)
        if self.rng.random() < 0.01:
            self.vanish()       # right after PUBLISH, before its acknowledgement

    def done_with(self, pid, acked):
        seq, qos, topic, state = self.inflight.pop(pid)
        self.order.remove(pid)
        if acked:
            self.acked.append((seq, qos, topic))
        else:
            self.run_.count("refused by the broker")

    def handle(self, packets):
        for p in packets:
            e = self.inflight.get(p.pid) if p.pid is not None else None
            if p.type == PUBACK and e and e[1] == 1:
                self.done_with(p.pid, p.rc < 0x80)
            elif p.type == PUBREC and e and e[1] == 2 and e[3] == "sent":
                if p.rc >= 0x80:
                    self.done_with(p.pid, False)
                    continue
                e[3] = "rec"
                if not self.run_.drain.is_set() and self.rng.random() < 0.01:
                    self.vanish()   # between PUBREC and PUBREL
                    return
                self.conn.send(build_ack(PUBREL, p.pid, version=self.version))
            elif p.type == PUBCOMP and e and e[3] == "rec":
                self.done_with(p.pid, True)
            elif p.type == DISCONNECT:
                self.run_.violation(self.name, "DISCONNECT from the broker: %r" % p)
                self.conn.close()
                return
            else:
                self.run_.violation(self.name, "unexpected %r" % p)

    def vanish(self):
        self.conn.leave(self.rng.choice(("disconnect", "fin", "rst")))
        self.run_.count("vanished")


# --------------------------------------------------------------------------------------------
# Checked subscribers
# --------------------------------------------------------------------------------------------

COVERS = [
    ["{p}/#"],
    ["{p}/+/x"],
    ["{p}/a/#", "{p}/b/+"],
    ["{p}/+/+"],
    ["{p}/c/y", "{p}/a/x"],
]


class Subscriber(Client):
    role = "sub"

    def body(self):
        run, rng = self.run_, self.rng
        self.version = rng.choice((3, 4, 5))
        self.conn = Conn(run, rng, "cs%d" % self.index, self.version)
        # Filters that never overlap: a cover of some publishers' subtrees, or everything.
        self.filters = {}
        if self.index < 2:
            self.filters["%s/#" % run.base] = rng.choice((1, 2))
        else:
            for pub in rng.sample(range(N_PUB), rng.randint(2, 6)):
                for f in rng.choice(COVERS):
                    self.filters[f.format(p="%s/p%d" % (run.base, pub))] = rng.choice((1, 2))
        self.received = []          # (pub, seq, qos delivered)
        self.conn.open(clean=self.version == 5, props=self.props())
        sa = self.conn.c.subscribe([(f, q) for f, q in self.filters.items()])
        if sa.codes != list(self.filters.values()):
            run.violation(self.name, "SUBACK %r for %r" % (sa.codes, self.filters))
        run.start_barrier.wait(30)
        while not run.done.is_set():
            if self.conn.c is None:
                time.sleep(0 if run.drain.is_set() else rng.uniform(0, 1.5))
                self.conn.open(clean=False, props=self.props())
                if self.version != 3 and not self.conn.session_present:
                    run.violation(self.name, "session not present on reconnect")
            self.handle(self.conn.poll(rng.uniform(0.01, 0.1)))
            if not run.drain.is_set() and rng.random() < 0.02:
                self.conn.leave(rng.choice(("disconnect", "fin", "rst")))
                run.count("vanished")
        self.conn.leave("disconnect")

    def props(self):
        return [(P_SESSION_EXPIRY, SESSION_EXPIRY)] if self.version == 5 else None

    def handle(self, packets):
        run = self.run_
        for i, p in enumerate(packets):
            if p.type == PUBLISH:
                match = [f for f in self.filters if topic_matches(f, p.topic)]
                if not match:
                    run.violation(self.name, "received %r, subscribed to %r"
                                  % (p.topic, sorted(self.filters)))
                # Sometimes gone after receiving and before acknowledging.
                crash = not run.drain.is_set() and self.rng.random() < 0.005
                new = self.conn.on_publish(p, ack=not crash)
                ids = run.parse_checked(p.payload)
                if ids is not None and new:
                    self.received.append((ids[0], ids[1], p.qos))
                run.count("delivered")
                if crash:
                    self.conn.leave("rst")
                    run.count("vanished before acknowledging")
                    return
            elif p.type == PUBREL:
                self.conn.on_pubrel(p)
            elif p.type == DISCONNECT:
                run.violation(self.name, "DISCONNECT from the broker: %r" % p)
                self.conn.close()
                return
            else:
                run.violation(self.name, "unexpected %r" % p)


# --------------------------------------------------------------------------------------------
# Chaos clients: random valid behaviour, checked only for deliveries outside subscriptions
# --------------------------------------------------------------------------------------------

class Chaos(Client):
    role = "chaos"

    def body(self):
        run, rng = self.run_, self.rng
        self.conn = None
        self.pending_unsub = {}
        # Filters (without $share/group/) subscribed at any time in the current session: a
        # message matched before an UNSUBSCRIBE may still arrive after the UNSUBACK
        # [MQTT-3.10.4-3], so only the end of the session clears them.
        self.possible = set()
        self.subs = set()           # filters now subscribed ($share/... included)
        self.earlier = set()        # filters of the sessions that ended
        self.pid = 1
        self.alias_max = 0
        self.aliases_out = {}
        run.start_barrier.wait(30)
        self.reconnect()
        actions = [(self.publish, 30), (self.subscribe, 10), (self.unsubscribe, 6),
                   (self.ping, 3), (self.reconnect, 4), (self.read, 10)]
        funcs = [a for a, _ in actions]
        weights = [w for _, w in actions]
        while not run.stop.is_set():
            if self.conn.c is None:
                self.reconnect()
            try:
                rng.choices(funcs, weights)[0]()
                self.read(0.005)
            except (h.Closed, OSError, AssertionError) as e:
                # The broker may close on a rule we broke by chance (more QoS 1/2 in flight
                # than its Receive Maximum): counted, then we reconnect.
                run.count("chaos closed by the broker (%s)" % type(e).__name__)
                if self.conn is not None:
                    self.conn.close()
        if self.conn.c is not None:
            self.conn.leave("disconnect")

    def topic(self):
        run, rng = self.run_, self.rng
        if rng.random() < 0.1:
            return "%s/p%d/%s/%s" % (run.base, rng.randrange(N_PUB), rng.choice("abc"),
                                     rng.choice("xy"))
        return "%s/c/%s/%s" % (run.base, rng.choice(("t", "u", "v", "w")),
                               rng.choice(("1", "2", "3", "4/5")))

    def filt(self):
        run, rng = self.run_, self.rng
        f = rng.choice(["{b}/c/#", "{b}/c/+/1", "{b}/c/t/#", "{b}/c/+/+", "{b}/c/u/4/5",
                        "{b}/+/+/x", "{b}/#", "{b}/c/w/+", "{b}/p{n}/#"]).format(
            b=run.base, n=rng.randrange(N_PUB))
        if rng.random() < 0.15:
            f = "$share/g%d/%s" % (rng.randrange(3), f)
        return f

    def reconnect(self):
        run, rng = self.run_, self.rng
        version = rng.choice((3, 4, 5, 5))
        if self.conn is not None and self.conn.c is not None:
            how = rng.choice(("disconnect", "fin", "rst", "will"))
            if how == "will" and self.conn.version == 5:
                self.conn.c.send_quietly(build_disconnect(0x04, version=5))
                self.conn.close()
            else:
                self.conn.leave("rst" if how == "will" else how)
        old_qos2 = self.conn.qos2_in if self.conn is not None else set()
        self.conn = Conn(run, rng, "ch%d" % self.index, version)
        self.conn.qos2_in = old_qos2
        self.pending_unsub = {}     # UNSUBACKs of an earlier connection never come
        clean = rng.random() < 0.5
        if clean:
            self.end_session()
        props = None
        if version == 5:
            props = [(P_SESSION_EXPIRY, rng.choice((0, 5, SESSION_EXPIRY))),
                     (P_TOPIC_ALIAS_MAXIMUM, rng.choice((0, 5))),
                     (P_RECEIVE_MAXIMUM, rng.choice((5, 100)))]
        will = None
        if rng.random() < 0.3:
            will = {"topic": "%s/c/will/%d" % (run.base, self.index), "payload": b"bye",
                    "qos": rng.randrange(3), "retain": rng.random() < 0.3}
        ack = self.conn.open(clean=clean, keepalive=rng.choice((5, 30, 60)), will=will,
                             props=props)
        if version != 3 and not self.conn.session_present:
            self.end_session()
        self.alias_max = ack.props.get(P_TOPIC_ALIAS_MAXIMUM, 0) if version == 5 else 0
        self.aliases_out = {}
        run.count("chaos reconnections")

    def end_session(self):
        self.earlier |= self.possible
        self.possible, self.subs = set(), set()

    def publish(self):
        rng, v = self.rng, self.conn.version
        topic = self.topic()
        qos = rng.choice((0, 0, 1, 2))
        props = []
        send_topic = topic
        if v == 5:
            if rng.random() < 0.3:
                props.append((P_MESSAGE_EXPIRY, rng.choice((1, 60))))
            if rng.random() < 0.2:
                props.append((P_USER_PROPERTY, ("k", "v%d" % rng.randrange(9))))
            if rng.random() < 0.1:
                props += [(P_CONTENT_TYPE, "text/plain"), (P_PAYLOAD_FORMAT, 1)]
            if self.alias_max and rng.random() < 0.3:
                if topic in self.aliases_out:
                    props.append((P_TOPIC_ALIAS, self.aliases_out[topic]))
                    send_topic = ""
                elif len(self.aliases_out) < self.alias_max:
                    a = len(self.aliases_out) + 1
                    self.aliases_out[topic] = a
                    props.append((P_TOPIC_ALIAS, a))
        retain = rng.random() < 0.1
        payload = b"" if retain and rng.random() < 0.3 else (
            b"chaos %d " % self.index + b"z" * rng.choice((0, 10, 100, 3000)))
        pid = None
        if qos:
            pid = self.pid
            self.pid = self.pid % 65535 + 1
        self.conn.send(build_publish(send_topic, payload, qos=qos, retain=retain, pid=pid,
                                     props=props, version=v))
        self.run_.count("chaos published")

    def subscribe(self):
        rng, v = self.rng, self.conn.version
        filters = []
        for _ in range(rng.randint(1, 3)):
            f = self.filt()
            if v == 5:
                shared = f.startswith("$share/")
                opts = sub_options(rng.randrange(3), False, rng.random() < 0.5,
                                   0 if shared else rng.randrange(3))
            else:
                opts = rng.randrange(3)
            filters.append((f, opts))
        # Possibly active from the moment SUBSCRIBE leaves.
        for f, _ in filters:
            self.subs.add(f)
            self.possible.add(f.split("/", 2)[2] if f.startswith("$share/") else f)
        props = [(P_SUBSCRIPTION_ID, rng.randint(1, 1000))] if v == 5 and \
            rng.random() < 0.3 else None
        pid = self.pid
        self.pid = self.pid % 65535 + 1
        self.conn.send(build_subscribe(pid, filters, v, props))
        self.run_.count("chaos subscribes")

    def unsubscribe(self):
        if not self.subs:
            return
        fs = self.rng.sample(sorted(self.subs), self.rng.randint(1, len(self.subs)))
        pid = self.pid
        self.pid = self.pid % 65535 + 1
        self.conn.send(build_unsubscribe(pid, fs, self.conn.version))
        self.pending_unsub[pid] = fs

    def ping(self):
        self.conn.send(build_pingreq())

    def read(self, timeout=None):
        run = self.run_
        for p in self.conn.poll(self.rng.uniform(0, 0.05) if timeout is None else timeout):
            if p.type == PUBLISH:
                if not any(topic_matches(f, p.topic) for f in self.possible):
                    what = "received %r, possibly subscribed to %r" % (p.topic,
                                                                      sorted(self.possible))
                    if any(topic_matches(f, p.topic) for f in self.earlier):
                        # A message of a session that ended: was bug 5 of
                        # docs/reliability.md (CleanStart.test_no_message_of_the_old_session).
                        what += " (a message of the discarded session)"
                    if what:
                        run.violation(self.name, what)
                self.conn.on_publish(p)
            elif p.type == PUBREL:
                self.conn.on_pubrel(p)
            elif p.type == PUBREC:
                self.conn.send(build_ack(PUBREL, p.pid, version=self.conn.version))
            elif p.type == UNSUBACK:
                for f in self.pending_unsub.pop(p.pid, ()):
                    self.subs.discard(f)
            elif p.type == DISCONNECT:
                run.count("chaos DISCONNECT 0x%02x" % p.rc)
                self.conn.close()
                return
            # PUBACK, PUBCOMP, SUBACK, PINGRESP: nothing to do


# --------------------------------------------------------------------------------------------
# Hostile clients: invalid input
# --------------------------------------------------------------------------------------------

class Hostile(Client):
    role = "hostile"

    def body(self):
        run = self.run_
        run.start_barrier.wait(30)
        while not run.stop.is_set():
            self.mode = None
            try:
                self.one()
            except h.MalformedFromBroker as e:
                # After a valid CONNECT both sides agree on the version: what the broker
                # sends must parse. (A mutated CONNECT may change the version it answers in.)
                if self.mode is not None and self.mode >= 2:
                    run.violation(self.name, "malformed packet from the broker: %s" % e)
            except (OSError, h.Closed, AssertionError):
                pass
            self.sleep(0, 0.02)

    def valid(self, v):
        rng, b = self.rng, self.run_.base
        t = "%s/h/%d" % (b, rng.randrange(5))
        return rng.choice([
            build_publish(t, b"x" * rng.randrange(50), qos=rng.randrange(3),
                          pid=rng.randint(1, 9), version=v),
            build_subscribe(rng.randint(1, 9), [(t, 1), (b + "/h/#", 2)], v),
            build_unsubscribe(rng.randint(1, 9), [t], v),
            build_ack(rng.choice((PUBACK, PUBREC, PUBREL, PUBCOMP)), rng.randint(1, 9),
                      version=v),
            build_pingreq(),
            build_disconnect(version=v),
        ])

    def mutate(self, pkt):
        rng = self.rng
        b = bytearray(pkt)
        kind = rng.randrange(4)
        if kind == 0:               # flip bits
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
        elif kind == 1:             # truncate
            b = b[:rng.randrange(1, len(b))] if len(b) > 1 else b
        elif kind == 2:             # extra bytes
            b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:                       # random byte values
            for _ in range(rng.randint(1, 3)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)

    def invalid(self, v):
        rng, base = self.rng, self.run_.base
        return rng.choice([
            lambda: build_publish(base + "/h/#", b"wild", version=v),
            lambda: packet(PUBLISH, 6, utf8(base + "/h") + u16(1) + b"qos3"),
            lambda: build_publish(b"\xff\xfe/bad", b"utf8", version=v),
            lambda: build_publish(base + "/nul\0x", b"nul", version=v),
            lambda: packet(8, 0, u16(1) + utf8(base + "/h") + b"\x01"),    # SUBSCRIBE flags 0
            lambda: packet(8, 2, u16(1) + (encode_props(None) if v == 5 else b"")),  # empty
            lambda: b"\x30\xff\xff\xff\xff\x7f",                          # length > 4 bytes
            lambda: build_connect("again", v),                            # second CONNECT
            lambda: build_publish(base + "/big", b"B" * 70000, version=v),  # > max_packet_size
            lambda: packet(PUBLISH, 0, utf8(base + "/h") + varint(9) + b"\x02\0\0\0\x01"
                           b"\x02\0\0\0\x01") if v == 5 else b"\xf0\x00",  # duplicate property
            lambda: build_auth(0x19),                                     # AUTH, no method
            lambda: bytes([0]) + varint(3) + b"abc",                      # packet type 0
            lambda: self.mutate(self.valid(v)),
            lambda: self.mutate(self.valid(v)),
            lambda: self.mutate(self.valid(v)),
        ])()

    def one(self):
        rng, run = self.rng, self.run_
        v = rng.choice((3, 4, 5))
        c = h.RawClient(run.port, v, timeout=2)
        run.count("hostile connections")
        try:
            mode = self.mode = rng.randrange(5)
            if mode == 0:           # garbage instead of CONNECT
                c.send(bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))))
            elif mode == 1:         # mutated CONNECT
                c.send(self.mutate(build_connect("hx%d" % self.index, v)))
            else:                   # valid CONNECT, then some valid and invalid packets
                c.connect("hx%d" % self.index, keepalive=30,
                          clean=rng.random() < 0.7)
                for _ in range(rng.randint(1, 6)):
                    pkt = self.invalid(v) if rng.random() < 0.5 else self.valid(v)
                    if rng.random() < 0.2:      # cut in the middle
                        c.send(pkt[:rng.randrange(1, len(pkt))] if len(pkt) > 1 else pkt)
                        break
                    c.send(pkt)
                    run.count("hostile packets")
            run.count("hostile inputs")
            try:
                c.wait_closed(timeout=rng.choice((0.01, 0.1)))
                run.count("hostile closed by the broker")
            except AssertionError:
                pass
        finally:
            (c.abort if rng.random() < 0.5 else c.close)()


# --------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------

class RandomClients(BrokerTest):

    def test_random_clients(self):
        """50 random clients for CULEX_TEST_RANDOM_SECONDS, then the invariants of the
        module docstring."""
        sys.stderr.write("\nCULEX_TEST_SEED=%d CULEX_TEST_RANDOM_SECONDS=%g (set them to replay)\n"
                         % (SEED, SECONDS))
        b = self.start_broker(["max_queued_messages 0", "max_packet_size 65536",
                               "max_inflight_messages 20"])
        run = Run(b.port, random.Random(SEED))
        run.start_barrier = threading.Barrier(N_PUB + N_SUB + N_CHAOS + N_HOSTILE + 1)
        pubs = [Publisher(run, i) for i in range(N_PUB)]
        subs = [Subscriber(run, i) for i in range(N_SUB)]
        chaos = [Chaos(run, i) for i in range(N_CHAOS)]
        hostile = [Hostile(run, i) for i in range(N_HOSTILE)]
        everyone = pubs + subs + chaos + hostile
        for t in everyone:
            t.start()
        run.start_barrier.wait(30)      # subscriptions are in place
        t0 = time.monotonic()
        time.sleep(SECONDS)
        run.stop.set()
        for t in chaos + hostile:
            t.join(30)
        ran = time.monotonic() - t0
        run.drain.set()
        for t in pubs:
            t.join(60)
        pubs_done = time.monotonic() - t0 - ran

        # What each subscriber must have received.
        acked = {}                      # (pub, seq) -> (qos, topic)
        for p in pubs:
            for seq, qos, topic in getattr(p, "acked", []):
                acked[(p.index, seq)] = (qos, topic)
        expected = {}
        for s in subs:
            exp = {}
            for key, (qos, topic) in acked.items():
                match = [q for f, q in getattr(s, "filters", {}).items()
                         if topic_matches(f, topic)]
                if match:
                    exp[key] = min(qos, match[0])
            expected[s] = exp

        def complete():
            return all(set(exp) <= {(p, q) for p, q, _ in list(getattr(s, "received", []))}
                       for s, exp in expected.items())

        end = time.monotonic() + 30
        while time.monotonic() < end and not complete():
            time.sleep(0.1)
        drained = time.monotonic() - t0 - ran
        run.done.set()
        for t in subs:
            t.join(30)

        errors = [t.error for t in everyone if t.error] + \
            ["%s still running" % t.name for t in everyone if t.is_alive()]
        lost, dup_qos2, dup_qos1 = [], [], 0
        delivered_checked = 0
        for s in subs:
            got = {}
            for p, q, qos in s.received:
                got.setdefault((p, q), []).append(qos)
            delivered_checked += len(s.received)
            for key, qos in expected[s].items():
                n = len(got.get(key, []))
                if n == 0:
                    lost.append("%s missed %r (QoS %d)" % (s.name, key, qos))
            for key, qs in got.items():
                if len(qs) > 1 and 2 in qs:
                    dup_qos2.append("%s got %r %d times" % (s.name, key, len(qs)))
                elif len(qs) > 1:
                    dup_qos1 += len(qs) - 1

        # The broker still answers.
        probe = self.raw_connected(b, unique("probe"))
        probe.ping()
        probe.disconnect()

        c = run.counts
        fl.report(self, "seed %d, %.1f s + %.1f s to drain (publishers done after %.1f s); %d "
                  "connections, %d packets from well-behaved clients; %d hostile connections, "
                  "%d hostile inputs"
                  % (SEED, ran, drained, pubs_done, c.get("connections", 0), c.get("packets", 0),
                     c.get("hostile connections", 0), c.get("hostile inputs", 0)))
        fl.report(self, "checked: %d QoS 1 + %d QoS 2 published, %d acknowledged, %d resent "
                  "after reconnecting, %d refused; %d expected deliveries, %d received "
                  "(%d QoS 1 duplicates), lost %d, QoS 2 duplicates %d; clients vanished "
                  "%d times (%d before acknowledging)"
                  % (c.get("published qos1", 0), c.get("published qos2", 0), len(acked),
                     c.get("resent", 0), c.get("refused by the broker", 0),
                     sum(len(e) for e in expected.values()), delivered_checked, dup_qos1,
                     len(lost), len(dup_qos2), c.get("vanished", 0),
                     c.get("vanished before acknowledging", 0)))
        fl.report(self, "chaos: %d published, %d subscribe packets, %d reconnections; %s"
                  % (c.get("chaos published", 0), c.get("chaos subscribes", 0),
                     c.get("chaos reconnections", 0),
                     ", ".join("%s %d" % (k, v) for k, v in sorted(c.items())
                               if k.startswith("chaos closed") or
                               k.startswith("chaos DISCONNECT"))))
        self.assertEqual(errors, [], "client threads failed")
        self.assertEqual(run.violations, [], "invariants broken")
        self.assertEqual(lost[:20], [], "%d acknowledged messages not delivered" % len(lost))
        self.assertEqual(dup_qos2[:20], [], "QoS 2 messages delivered more than once")
        self.assertGreater(len(acked), 100, "too little traffic to mean anything")


class CleanStart(BrokerTest):

    def test_no_message_of_the_old_session(self):
        """A client with a persistent session subscribed to a busy topic disconnects and
        comes back with Clean Start (3.1.1: Clean Session): the old session is discarded
        [MQTT-3.1.2-4], so nothing routed to it may arrive on the new one, which has no
        subscription. Found by test_random_clients; 100 rounds under a QoS 1 flood."""
        b = self.start_broker()
        stop = threading.Event()
        flooder = self.raw_connected(b, unique("flooder"))

        def flood():
            i = 0
            while not stop.is_set():
                i += 1
                flooder.send_quietly(build_publish("cs/%d" % (i % 7), b"m%d" % i, qos=1,
                                                   pid=i % 60000 + 1))
                if i % 50 == 0:
                    time.sleep(0.001)
                if i % 1000 == 0:
                    flooder.backlog, flooder.buf = [], b""
        t = threading.Thread(target=flood, daemon=True)
        t.start()
        self.addCleanup(t.join, 5)
        self.addCleanup(stop.set)
        cid = unique("cs")
        stale = []
        for i in range(100):
            v = 5 if i % 2 else 4
            old = self.raw(b, v)
            old.connect(cid, clean=v == 5, props=[(P_SESSION_EXPIRY, 60)] if v == 5 else None)
            old.subscribe("cs/#", qos=1)
            time.sleep(0.01)
            old.disconnect(wait=False)
            new = self.raw(b, v)
            new.connect(cid, clean=True)
            try:
                stale.append((i, new.expect(PUBLISH, timeout=0.05)))
            except AssertionError:
                pass
            new.disconnect(wait=False)
        stop.set()
        self.assertEqual(stale, [], "messages of the old session in the new one")


if __name__ == "__main__":
    unittest.main()
