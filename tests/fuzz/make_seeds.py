#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/) and the
libFuzzer dictionaries (tests/fuzz/dict/).

    tests/fuzz/make_seeds.py            # rewrites corpus/ and dict/ next to this script

Deterministic (fixed salts, no randomness), standard library only, so running it again gives
the same files and `git diff` shows what a change to the seeds did. Each target's corpus
directory is emptied first: seeds are only what this script writes. Inputs found by fuzzing
belong in regressions/, never here.

Sources of the seeds:
 - MQTT: packets built here from the specs (3.1, 3.1.1, 5.0), including the byte arrays of
   tests/unit/mqtt/test_codec.c (mosquitto_pub/_sub captures) and its edge cases;
 - config, password and ACL files: short examples written for this corpus;
 - WebSocket: upgrade requests shaped like those of tests/unit/net/test_ws.c (curl, Chrome,
   Firefox) and frames built here from RFC 6455, including its §5.7 examples;
 - PROXY protocol: v1 lines and v2 headers built here from HAProxy's spec, the addresses
   and TLVs of tests/unit/net/test_proxy.c;
 - the crypt(3) and argon2 hashes below were made once on Debian 12 with libxcrypt
   (python3 crypt.crypt) and the argon2 command-line tool, password "secret", fixed salts;
 - config.dict: the directive names of docs/config-reference.md.
"""
import base64
import hashlib
import os
import re
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
DICTS = os.path.join(HERE, "dict")
ROOT = os.path.dirname(os.path.dirname(HERE))


def reset_dir(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


# ---- MQTT encoding ---------------------------------------------------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def s(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack(">H", len(b)) + b


def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v)


def pkt(b0, body=b""):
    return bytes([b0]) + varint(len(body)) + body


# Properties (MQTT 5 §2.2.2.2): one function per value type.
def p_byte(i, v):
    return bytes([i, v])


def p_u16(i, v):
    return bytes([i]) + u16(v)


def p_u32(i, v):
    return bytes([i]) + u32(v)


def p_var(i, v):
    return bytes([i]) + varint(v)


def p_str(i, v):
    return bytes([i]) + s(v)


def p_pair(k, v):
    return bytes([0x26]) + s(k) + s(v)


def props(*items):
    body = b"".join(items)
    return varint(len(body)) + body


NAME = {3: "MQIsdp", 4: "MQTT", 5: "MQTT"}


def connect(ver, cid="c", clean=True, keepalive=60, will=None, user=None, pw=None,
            cprops=b"", wprops=b"", bridge=False):
    flags = 0x02 if clean else 0
    payload = s(cid)
    if will:
        topic, msg, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        if ver == 5:
            payload += props(wprops)
        payload += s(topic) + s(msg)
    if user is not None:
        flags |= 0x80
        payload += s(user)
    if pw is not None:
        flags |= 0x40
        payload += s(pw)
    body = s(NAME[ver]) + bytes([ver | (0x80 if bridge else 0), flags]) + u16(keepalive)
    if ver == 5:
        body += props(cprops)
    return pkt(0x10, body + payload)


def connack(ver, rc=0, sp=False, cprops=b""):
    body = bytes([1 if sp else 0, rc])
    if ver == 5:
        body += props(cprops)
    return pkt(0x20, body)


def publish(ver, topic, payload=b"", qos=0, pid=1, retain=False, dup=False, pprops=b""):
    b0 = 0x30 | (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    body = s(topic)
    if qos:
        body += u16(pid)
    if ver == 5:
        body += props(pprops)
    return pkt(b0, body + (payload.encode() if isinstance(payload, str) else payload))


def ack(ver, t, pid=1, rc=None, aprops=None):
    b0 = (t << 4) | (0x02 if t == 6 else 0)
    body = u16(pid)
    if ver == 5 and rc is not None:
        body += bytes([rc])
        if aprops is not None:
            body += props(aprops)
    return pkt(b0, body)


def subscribe(ver, entries, pid=1, sprops=b""):
    body = u16(pid)
    if ver == 5:
        body += props(sprops)
    for f, o in entries:
        body += s(f) + bytes([o])
    return pkt(0x82, body)


def suback(ver, codes, pid=1, sprops=b"", t=9):
    body = u16(pid)
    if ver == 5:
        body += props(sprops)
    if ver == 5 or t == 9:
        body += bytes(codes)
    return pkt(t << 4, body)


def unsubscribe(ver, filters, pid=1, uprops=b""):
    body = u16(pid)
    if ver == 5:
        body += props(uprops)
    for f in filters:
        body += s(f)
    return pkt(0xA2, body)


def reason(t, rc=None, rprops=None):
    body = b""
    if rc is not None:
        body += bytes([rc])
        if rprops is not None:
            body += props(rprops)
    return pkt(t << 4, body)


PINGREQ = pkt(0xC0)
PINGRESP = pkt(0xD0)
DISCONNECT = pkt(0xE0)

UPS = p_pair("k1", "v1") + p_pair("key two", "")


def mqtt_seeds():
    t = "mqtt_decode"
    # Mode byte: version 0 = 3.1, 1 = 3.1.1, 2 = 5, 3 = broker; | 4 server; | 8 capped arena.
    mode_of = {3: 0, 4: 1, 5: 2}
    for ver in (3, 4, 5):
        m = mode_of[ver]
        v5 = ver == 5
        tag = {3: "v31", 4: "v311", 5: "v5"}[ver]
        cp = (p_u32(0x11, 0xFFFFFFFF) + p_u16(0x21, 100) + p_u32(0x27, 1 << 20) +
              p_u16(0x22, 10) + p_byte(0x19, 1) + p_byte(0x17, 0) + UPS +
              p_str(0x15, "SCRAM-SHA-1") + p_str(0x16, b"\x01\x02")) if v5 else b""
        wp = (p_u32(0x18, 30) + p_byte(0x01, 1) + p_u32(0x02, 3600) + p_str(0x03, "text/plain") +
              p_str(0x08, "resp/x") + p_str(0x09, b"\x00\x01") + p_pair("k1", "v1")) if v5 else b""
        client = [
            ("connect-min", connect(ver)),
            ("connect-empty-id", connect(ver, cid="", clean=False)),
            ("connect-full", connect(ver, cid="client-\u00e9", keepalive=65535,
                                     will=("will/topic", b"bye\x00bin", 2, True), user="user",
                                     pw=b"p\x00w", cprops=cp, wprops=wp, bridge=not v5)),
            ("publish-qos0", publish(ver, "a/b", "hello")),
            ("publish-qos1-dup-retain", publish(ver, "a/b", "", qos=1, pid=1, retain=True,
                                                dup=True)),
            ("publish-qos2-utf8", publish(ver, "caf\u00e9/\U0001F600", b"\x00\x01\x02 payload",
                                          qos=2, pid=65535,
                                          pprops=(p_byte(0x01, 0) + p_u32(0x02, 10) +
                                                  p_str(0x03, "application/json") +
                                                  p_str(0x08, "reply/here") +
                                                  p_str(0x09, b"\xff\x00") + p_u16(0x23, 3) +
                                                  UPS))),
            ("puback", ack(ver, 4, 42)),
            ("pubrec", ack(ver, 5, 42)),
            ("pubrel", ack(ver, 6, 42)),
            ("pubcomp", ack(ver, 7, 42)),
            ("subscribe-one", subscribe(ver, [("a/+/c", 0)], pid=7)),
            ("subscribe-many", subscribe(ver, [("a/+/c", 0), ("#", 0x2D if v5 else 1),
                                               ("$share/grp/x/#", 0x1A if v5 else 2),
                                               ("\u00e9/+", 1)], pid=7,
                                         sprops=p_var(0x0B, 300) + UPS)),
            ("unsubscribe", unsubscribe(ver, ["a/b", "+/#", "$share/g/t"], pid=9,
                                        uprops=p_pair("k1", "v1"))),
            ("pingreq", PINGREQ),
            ("disconnect", DISCONNECT),
        ]
        if v5:
            client += [
                ("connect-password-no-user", connect(5, pw=b"pw")),
                ("publish-alias-empty-topic", publish(5, "", "x", pprops=p_u16(0x23, 3))),
                ("puback-rc", ack(5, 4, 42, rc=0x10)),
                ("pubrel-rc-props", ack(5, 6, 42, rc=0x92,
                                        aprops=p_str(0x1F, "why") + p_pair("k1", "v1"))),
                ("disconnect-will", reason(14, 0x04)),
                ("disconnect-props", reason(14, 0x00, p_u32(0x11, 0) + p_str(0x1F, "bye"))),
                ("auth-continue", reason(15, 0x18, p_str(0x15, "SCRAM-SHA-1") +
                                         p_str(0x16, "n,,n=user,r=abc"))),
                ("auth-reauth", reason(15, 0x19, p_str(0x15, "SCRAM-SHA-1"))),
            ]
        server = [
            ("connack", connack(ver)),
            ("connack-session-present", connack(ver, sp=True)),
            ("connack-refused", connack(ver, rc=0x87 if v5 else 4,
                                        cprops=(p_u32(0x11, 7) + p_u16(0x21, 65535) +
                                                p_byte(0x24, 1) + p_byte(0x25, 0) +
                                                p_u32(0x27, 268435460) +
                                                p_str(0x12, "auto-1") + p_u16(0x22, 5) +
                                                p_str(0x1F, "nope") + UPS + p_byte(0x28, 1) +
                                                p_byte(0x29, 0) + p_byte(0x2A, 1) +
                                                p_u16(0x13, 20) + p_str(0x1A, "ri") +
                                                p_str(0x1C, "other:1883") +
                                                p_str(0x15, "m") + p_str(0x16, "d")))),
            ("publish-qos1", publish(ver, "a/b", "hi", qos=1, pid=2,
                                     pprops=p_var(0x0B, 1) + p_var(0x0B, 300) +
                                     p_var(0x0B, 268435455))),
            ("puback", ack(ver, 4, 2)),
            ("suback", suback(ver, [0, 1, 2, 0x80, 0x8F, 0x9E, 0xA2] if v5 else [0, 1, 2, 0x80],
                              pid=7, sprops=p_str(0x1F, "partly"))),
            ("unsuback", suback(ver, [0x00, 0x11, 0x87], pid=7, t=11)),
            ("pingresp", PINGRESP),
        ]
        if v5:
            server += [
                ("disconnect-moved", reason(14, 0x9D, p_str(0x1C, "elsewhere") + UPS)),
                ("disconnect-taken-over", reason(14, 0x8E)),
                ("auth-success", reason(15)),
            ]
        for name, b in client:
            write(t, "%s-client-%s" % (tag, name), bytes([m]) + b)
        for name, b in server:
            write(t, "%s-server-%s" % (tag, name), bytes([m | 4]) + b)
        # A whole session in one stream, and the same as the broker sees it.
        stream = b"".join(b for _, b in client)
        write(t, "%s-client-stream" % tag, bytes([m]) + stream)
        write(t, "%s-server-stream" % tag, bytes([m | 4]) + b"".join(b for _, b in server))
        session = connect(ver) + b"".join(b for n, b in client if not n.startswith("connect"))
        write(t, "broker-%s-session" % tag, bytes([3]) + session)
        # Capped arena: arrays that do not fit in 64 bytes.
        big_sub = subscribe(ver, [("t/%d" % i, 1) for i in range(12)], pid=3)
        write(t, "%s-client-subscribe-capped" % tag, bytes([m | 8]) + big_sub)

    # tests/unit/mqtt/test_codec.c: captures and edge cases.
    mosq_conn = bytes([0x10, 0x17, 0x00, 0x04]) + b"MQTT" + bytes([0x04, 0x02, 0x00, 0x3C, 0x00,
                                                                    0x0B]) + b"mosq-abcdef"
    write(t, "capture-mosquitto-pub-311", bytes([3]) + mosq_conn +
          bytes([0x30, 0x0B, 0x00, 0x04]) + b"testhello" + bytes([0xE0, 0x00]))
    mosq_conn5 = bytes([0x10, 0x18, 0x00, 0x04]) + b"MQTT" + bytes([0x05, 0x02, 0x00, 0x3C,
                                                                     0x00, 0x00, 0x0B]) + \
        b"mosq-abcdef"
    pub5 = bytes([0x32, 0x11, 0x00, 0x03]) + b"a/b" + bytes([0x00, 0x01, 0x07, 0x26, 0x00,
                                                              0x01]) + b"k" + \
        bytes([0x00, 0x01]) + b"v" + b"hi"
    write(t, "capture-mosquitto-pub-v5", bytes([3]) + mosq_conn5 + pub5)
    write(t, "capture-v5-server-puback-connack", bytes([6, 0x40, 0x02, 0x00, 0x01, 0x20, 0x09,
                                                        0x00, 0x00, 0x06, 0x22, 0x00, 0x0A,
                                                        0x21, 0x00, 0x14]))
    v31 = bytes([0x10, 0x11, 0x00, 0x06]) + b"MQIsdp" + bytes([0x03, 0x02, 0x00, 0x3C, 0x00,
                                                               0x03]) + b"abc"
    write(t, "capture-v31-connect", bytes([3]) + v31)
    write(t, "capture-v31-server-connack", bytes([4, 0x20, 0x02, 0x00, 0x02]))
    write(t, "capture-mosquitto-sub-311", bytes([1, 0x82, 0x08, 0x00, 0x01, 0x00, 0x03]) +
          b"a/#" + bytes([0x00]))
    write(t, "capture-v5-subscribe-options", bytes([2, 0x82, 0x09, 0x00, 0x01, 0x00, 0x00,
                                                    0x03]) + b"a/#" + bytes([0x1D]))
    write(t, "edge-non-minimal-length", bytes([1, 0xC0, 0x80, 0x00, 0x30, 0x85, 0x80, 0x00,
                                               0x00, 0x01]) + b"thi")
    write(t, "edge-v5-non-minimal-props", bytes([2, 0x30, 0x07, 0x00, 0x01]) + b"t" +
          bytes([0x80, 0x00]) + b"hi")
    write(t, "edge-five-byte-length", bytes([1, 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]))
    write(t, "edge-truncated", bytes([1, 0x30, 0x05, 0x00, 0x01]) + b"t")
    write(t, "edge-v31-missing-credentials", bytes([0]) + pkt(0x10, s("MQIsdp") +
                                                               bytes([3, 0xC2]) + u16(60) +
                                                               s("abc")))
    write(t, "edge-v31-dup-pubrel", bytes([0]) + pkt(0x6A, u16(5)) + pkt(0x8A, u16(6) +
                                                                       s("a") + b"\x00"))
    write(t, "edge-bad-protocol-level", bytes([3]) + pkt(0x10, s("MQTT") + bytes([6, 2]) +
                                                         u16(60) + s("c")))
    write(t, "edge-bridge-bit", bytes([3]) + connect(4, bridge=True) + PINGREQ)

    t = "mqtt_props"
    # Context byte: cx_pctx order in core/mqtt/codec_internal.h.
    ctx = dict(CONNECT=0, WILL=1, CONNACK=2, PUBLISH_C=3, PUBLISH_S=4, PUBACK=5, PUBREC=6,
               PUBREL=7, PUBCOMP=8, SUBSCRIBE=9, SUBACK=10, UNSUBSCRIBE=11, UNSUBACK=12,
               DISCONNECT_C=13, DISCONNECT_S=14, AUTH=15)
    blocks = {
        "CONNECT": p_u32(0x11, 60) + p_u16(0x21, 20) + p_u32(0x27, 1024) + p_u16(0x22, 5) +
        p_byte(0x19, 1) + p_byte(0x17, 1) + UPS + p_str(0x15, "m") + p_str(0x16, b"\x00d"),
        "WILL": p_u32(0x18, 5) + p_byte(0x01, 1) + p_u32(0x02, 9) + p_str(0x03, "c/t") +
        p_str(0x08, "r/t") + p_str(0x09, "cd") + p_pair("a", "b"),
        "CONNACK": p_u32(0x11, 7) + p_u16(0x21, 1) + p_byte(0x24, 0) + p_byte(0x25, 1) +
        p_u32(0x27, 99) + p_str(0x12, "id") + p_u16(0x22, 0) + p_str(0x1F, "r") +
        p_byte(0x28, 0) + p_byte(0x29, 1) + p_byte(0x2A, 0) + p_u16(0x13, 5) +
        p_str(0x1A, "i") + p_str(0x1C, "s") + p_str(0x15, "m") + p_str(0x16, "d"),
        "PUBLISH_C": p_byte(0x01, 1) + p_u32(0x02, 1) + p_str(0x03, "ct") + p_str(0x08, "rt") +
        p_str(0x09, "cd") + p_u16(0x23, 1) + UPS,
        "PUBLISH_S": p_var(0x0B, 1) + p_var(0x0B, 128) + p_var(0x0B, 16384) +
        p_var(0x0B, 2097152) + p_u16(0x23, 65535) + p_pair("k", "v"),
        "PUBACK": p_str(0x1F, "why") + UPS,
        "PUBREC": p_str(0x1F, ""),
        "PUBREL": p_pair("", ""),
        "PUBCOMP": p_str(0x1F, "\u00e9"),
        "SUBSCRIBE": p_var(0x0B, 300) + UPS,
        "SUBACK": p_str(0x1F, "partly"),
        "UNSUBSCRIBE": p_pair("k1", "v1"),
        "UNSUBACK": p_str(0x1F, "x") + p_pair("a", "b"),
        "DISCONNECT_C": p_u32(0x11, 0) + p_str(0x1F, "bye") + p_str(0x1C, "srv"),
        "DISCONNECT_S": p_str(0x1F, "moved") + p_str(0x1C, "elsewhere") + UPS,
        "AUTH": p_str(0x15, "SCRAM-SHA-1") + p_str(0x16, "n,,n=user") + p_str(0x1F, "r") + UPS,
    }
    for name, block in blocks.items():
        c = ctx[name]
        write(t, "%s" % name.lower(), bytes([c]) + props(block))
        write(t, "%s-capped" % name.lower(), bytes([c | 0x10]) + props(block))
    write(t, "empty", bytes([0, 0]))
    write(t, "non-minimal-length", bytes([5, 0x86, 0x00]) + p_str(0x1F, "ab"))
    write(t, "many-user-props", bytes([3]) + props(b"".join(p_pair("k%d" % i, "v")
                                                            for i in range(20))))
    write(t, "many-user-props-capped", bytes([3 | 0x10]) +
          props(b"".join(p_pair("k%d" % i, "v") for i in range(20))))


# ---- config files --------------------------------------------------------------------------

CONFIGS = {
    "empty": "",
    "listener": "listener 1883\n",
    "local-only-settings": "max_connections 10\nallow_anonymous false\n",
    "booleans": "retain_available false\nqueue_qos0_messages true\nset_tcp_nodelay 1\n"
                "connection_messages 0\nlistener 1883\n",
    "limits": "max_inflight_messages 100\nsys_interval 0\nmax_keepalive 65535\n"
              "max_queued_messages -5\nglobal_max_clients -20\nlistener 1883\n"
              "max_connections -7\nmax_qos 1\nmax_topic_alias 0\nmax_topic_alias_broker 100\n",
    "sizes": "max_packet_size 4096 # 4 KiB\nmemory_limit 1000000\nmax_queued_bytes 0\n"
             "max_inflight_bytes 65536\nmessage_size_limit 1048576\npacket_buffer_size 8192\n"
             "listener 1883\n",
    "durations": "persistent_client_expiration 14d\nretain_expiry_interval 60\nlistener 1883\n",
    "strings": "pid_file /tmp/my broker.pid\nlog_timestamp_format %Y-%m-%d %H:%M:%S\n"
               "user first\nuser   mqtt  \npersistence_location /var/lib/culex/\n"
               "clientid_prefixes sec-\nauto_id_prefix gen-\n",
    "listeners": "listener 0 /run/culex.sock\nlistener 1884 127.0.0.1\n"
                 "listener 1885 ::1\naccept_protocol_versions 3, 4\n"
                 "listener 1886\naccept_protocol_versions 5 # v5 only\n"
                 "bind_interface eth0\nuse_username_as_clientid true\n"
                 "mount_point tenant/a/\nprotocol mqtt\nsocket_domain ipv4\n",
    "per-listener": "per_listener_settings true\nlistener 1883\nallow_anonymous true\n"
                    "password_file /etc/culex/passwd\nlistener 8883\nacl_file /etc/culex/acl\n"
                    "allow_zero_length_clientid false\nauto_id_prefix x-\n",
    "plugins": "plugin /usr/lib/culex/auth_file.so\nplugin_opt_password_file /etc/passwd\n"
               "auth_opt_hasher_iterations 180000   # comment\nlistener 1883\n"
               "global_plugin /usr/lib/culex/other.so\nplugin_opt_a b c\n"
               "auth_plugin_deny_special_chars false\n",
    "named-plugins": "plugin_load auth /usr/lib/culex/auth.so\nplugin_opt_x 1\nlistener 1883\n"
                     "plugin_use auth\nlistener 1884\nplugin_use auth\nplugin_load idle /x.so\n",
    "password-acl": "password_file /etc/culex/passwd\nacl_file /etc/culex/acl\n"
                    "listener 1883\nallow_anonymous false\n",
    "logging": "log_type all\nlog_type error\nlog_dest file /var/log/culex.log  # file\n"
               "log_dest stdout  # console\nlog_dest syslog\nlog_facility 5\n"
               "log_timestamp false\nlistener 1883\n",
    "persistence": "persistence false\npersistence_file x.db\nautosave_interval 60\n"
                   "autosave_on_changes true\nlistener 1883\n",
    "workers": "workers 3\nlistener 1883\n",
    "windows": "\ufeff# written on Windows\r\nlistener 1883\r\n\r\n   # indented comment\r\n"
               "\tmax_connections 5 \t\r\nmount_point site/\r\n",
    "no-final-newline": "listener 1883\nmax_qos 1",
    "extra-values": "listener 1883\nmax_connections 10 20\nmax_connections 30 40\n",
    "deprecated": "retry_interval 20\nallow_duplicate_messages false\nmessage_size_limit 10\n"
                  "listener 1883\n",
    "unsupported": "listener 8883\ncafile /etc/ssl/ca.pem\ncertfile /etc/ssl/c.pem\n"
                   "keyfile /etc/ssl/k.pem\nlistener 9001\nprotocol websockets\n"
                   "connection bridge1\naddress 10.0.0.1:1883\ntopic # both 0\n",
    "bridge-scope": "topic a/# out 1\n",
    "errors-equals": "listener 1883\nallow_anonymous = false\n",
    "errors-unknown": "bogus_directive 1\nsys_interval ten\nmax_qos 7\n",
    "errors-range": "max_keepalive -1\nworkers 0\nmax_packet_size 19\nmemory_limit -1\n"
                    "persistent_client_expiration 5x\n",
    "errors-utf8": "user \xff\xfe\n",
    "errors-listener": "listener 0\nlistener 70000\nlistener\nsocket_domain ipv5\n",
    "include-dir": "sys_interval 5\ninclude_dir /etc/culex/conf.d\nmax_qos 1\n\x00"
                   "listener 2001\nmax_connections 3\n",
    "include-dir-errors": "include_dir /x\nbogus_in_main 1\n\x00listener 1883\nmax_qos 7\n"
                          "bogus 1\n",
    "include-nested": "include_dir conf.d\n\x00include_dir /tmp\n",
    "include-no-value": "include_dir\n",
    "include-plugin-opt": "plugin /x.so\ninclude_dir d\n\x00plugin_opt_a b\n",
}


def config_seeds():
    for name, text in CONFIGS.items():
        # Latin-1 keeps "\xff\xfe" as the two raw bytes; everything else is ASCII or the BOM.
        data = text.encode("utf-8") if name == "windows" else text.encode("latin-1")
        write("config", name, data)


# ---- password files --------------------------------------------------------------------------

def b64(b):
    return base64.b64encode(b).decode()


def mosq6(pw, salt):
    return "$6$%s$%s" % (b64(salt), b64(hashlib.sha512(pw + salt).digest()))


def mosq7(pw, salt, it):
    return "$7$%d$%s$%s" % (it, b64(salt), b64(hashlib.pbkdf2_hmac("sha512", pw, salt, it, 64)))


def goauth(alg, pw, salt, it, n):
    return "PBKDF2$%s$%d$%s$%s" % (alg, it, b64(salt),
                                   b64(hashlib.pbkdf2_hmac(alg, pw, salt, it, n)))


def goauth_raw(alg, pw, salt, it, n):
    return "PBKDF2$%s$%d$%s$%s" % (alg, it, salt.decode(),
                                   b64(hashlib.pbkdf2_hmac(alg, pw, salt, it, n)))


CRYPT = {
    "sha256crypt": "$5$rounds=1000$saltsaltsalt$jeQ3Wbe2JixnvtlZtYweZUFjfxf4JtmzGAyxAW53.M2",
    "sha256crypt-default": "$5$saltsaltsalt$TihBZCRsJxAxHgKub.mCOdu9X7QLi980jJxe7T2aZg7",
    "sha512crypt": "$6$rounds=1000$saltsaltsalt$eX3bxJXT3.ujpABOqZ7ph4r9D9Fn0.qoDqJgZU6cTq8xPf"
                   "k2.Fmq2bf1GgjAlb6X1QXE7sMOtwZRTxjI1OZvT1",
    "sha512crypt-default": "$6$saltsaltsalt$PMWE8DTlam1JU37Piyk43bHcMxTJq6sgu5DKB0/tGPjanN35jcY6"
                           "8QkpDfPFUGPWX5uCxIQkSPzMmqEiVNgts.",
    "bcrypt": "$2b$04$abcdefghijklmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIrW",
    "yescrypt": "$y$j9T$abcdefghijklmnop$3dL1LkYnZM.OVXuVdnnaKVDlLYT92dRwOzDZ5XiVCe.",
    "argon2id": "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$Sm3MnLdCFk0Af+croKgebRoqqmhbKd88"
                "iiW3yUOXn78",
}


def password_seeds():
    pw = b"secret"
    salt = b"saltsaltsalt"
    h = {
        "mosq6": mosq6(pw, salt),
        "mosq7": mosq7(pw, salt, 10),
        "mosq7-default": mosq7(pw, b"0123456789abcdef0123456789abcdef", 1000),
        "goauth-sha256": goauth("sha256", pw, b"0123456789abcdef", 10, 32),
        "goauth-sha512": goauth("sha512", pw, b"0123456789abcdef", 10, 64),
        "goauth-raw-salt": goauth_raw("sha256", pw, b"plain-salt", 10, 32),
    }
    h.update(CRYPT)
    for name, enc in h.items():
        write("password_file", "one-" + name, "secret:%s\n" % enc)
    write("password_file", "all-schemes",
          "".join("user-%s:%s\n" % (n, e) for n, e in h.items()))
    write("password_file", "mosquitto-passwd",
          "# written by mosquitto_passwd\nalice:%s\nbob:%s\n" % (h["mosq7"], h["mosq6"]))
    write("password_file", "blanks-and-comments",
          "\n   \n# comment\n  carol : %s  \n\t# indented\n" % h["mosq6"])
    write("password_file", "duplicate-users",
          "dave:%s\neve:%s\ndave:%s\n" % (h["mosq6"], h["mosq7"], h["goauth-sha256"]))
    write("password_file", "dropped-entries",
          ":%s\nfrank:\ngrace:plaintext\nheidi:$7$abc$x$y\n" % h["mosq6"])
    write("password_file", "no-colon", "just a line without a separator\n")
    write("password_file", "crlf", "ivan:%s\r\njudy:%s\r\n" % (h["mosq6"], h["bcrypt"]))
    write("password_file", "nul-byte", b"kim:" + h["mosq6"].encode() + b"\x00\n")
    write("password_file", "no-final-newline", "leo:" + h["sha256crypt"])
    write("password_file", "colon-in-hash", "mallory:a:b:c\n")
    write("password_file", "big-iterations",
          "oscar:$7$2147483647$%s$%s\n" % (b64(salt), b64(bytes(64))))
    write("password_file", "argon2-shapes",
          "p1:$argon2i$v=19$m=64,t=2,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA\n"
          "p2:$argon2d$m=32,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA\n"
          "p3:$argon2id$v=19$m=47104,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA\n")


# ---- ACL files ---------------------------------------------------------------------------------

ACLS = {
    "empty": "",
    "anonymous": "topic read public/#\ntopic write public/in\ntopic readwrite both/+\n"
                 "topic deny public/secret\n",
    "users": "user alice\ntopic readwrite alice/#\ntopic read $SYS/#\n"
             "user bob\ntopic write bob/out\ntopic deny bob/out/private\n",
    "patterns": "pattern readwrite users/%u/#\npattern read clients/%c/status\n"
                "pattern deny secret/%u\npattern write +/%c/+\n",
    "mosquitto-example": "# This affects access control for clients with no username.\n"
                         "topic read $SYS/#\n\n# This only affects clients with username "
                         "\"roger\".\nuser roger\ntopic foo/bar\n\n# This affects all clients."
                         "\npattern write $SYS/broker/connection/%c/state\n",
    "one-word": "topic read\ntopic deny\n",
    "spaces": "  topic   read   a topic with spaces  \n\tuser  name with spaces \t\n"
              "topic x\r\n",
    "wildcards": "topic #\ntopic +\ntopic +/+/#\ntopic $share/g/#\n",
    "errors-keyword": "topics read a\n",
    "errors-access": "topic readonly a/b\n",
    "errors-missing": "topic\n",
    "errors-user": "user\n",
    "errors-hash": "topic a/#/b\n",
    "errors-plus": "topic a/b+\n",
    "errors-subst": "pattern read a/x%u/b\n",
    "comments": "# only\n#comment\n   # indented\n",
}


def acl_seeds():
    for name, text in ACLS.items():
        write("acl_file", name, text)
    write("acl_file", "nul-byte", b"topic read a/b\x00c\ntopic write d\n")


# ---- WebSocket (RFC 6455) ------------------------------------------------------------------

WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3


def ws_request(target="/mqtt", fields=None, method="GET", version="HTTP/1.1"):
    if fields is None:
        fields = [("Host", "localhost:8080"), ("Connection", "Upgrade"),
                  ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"),
                  ("Sec-WebSocket-Key", WS_KEY), ("Sec-WebSocket-Protocol", "mqtt")]
    head = "%s %s %s\r\n" % (method, target, version)
    head += "".join("%s: %s\r\n" % kv for kv in fields)
    return (head + "\r\n").encode("latin-1")


def ws_edit(fields, name, value):
    """fields with `name` replaced by value (None drops it)."""
    out = [(n, v) for n, v in fields if n != name]
    if value is not None:
        out.append((name, value))
    return out


WS_FIELDS = [("Host", "localhost:8080"), ("Connection", "Upgrade"), ("Upgrade", "websocket"),
             ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", WS_KEY),
             ("Sec-WebSocket-Protocol", "mqtt")]


def ws_pad(size):
    """The default request padded with an X-Pad field to exactly size bytes."""
    base = len(ws_request(fields=WS_FIELDS + [("X-Pad", "")]))
    return ws_request(fields=WS_FIELDS + [("X-Pad", "p" * (size - base))])


def ws_handshake_seeds():
    t = "ws_handshake"
    # b0: bit 0 = CX_WS_ALLOW_NO_SUBPROTOCOL, bits 1-4 = size cap (0: 8192); b1: chunking.
    chrome = [("Host", "broker.example.com"), ("Connection", "Upgrade"),
              ("Pragma", "no-cache"), ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)"),
              ("Upgrade", "websocket"), ("Origin", "https://app.example.com"),
              ("Sec-WebSocket-Version", "13"), ("Accept-Encoding", "gzip, deflate, br"),
              ("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="),
              ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
              ("Sec-WebSocket-Protocol", "mqtt")]
    firefox = [("Host", "127.0.0.1:9001"), ("Accept", "*/*"), ("Sec-WebSocket-Version", "13"),
               ("Origin", "http://localhost:3000"), ("Sec-WebSocket-Protocol", "mqttv3.1"),
               ("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEA=="),
               ("Connection", "keep-alive, Upgrade"), ("Upgrade", "websocket")]
    seeds = [
        ("curl", 0x00, 0x03, ws_request()),
        ("curl-bytewise", 0x00, 0x00, ws_request()),
        ("chrome", 0x00, 0x02, ws_request("/mqtt?client=web", chrome)),
        ("firefox", 0x00, 0x01, ws_request("/", firefox)),
        ("absolute-uri", 0x00, 0x02, ws_request("http://broker.example.com/mqtt?x=1")),
        ("absolute-no-path", 0x00, 0x03, ws_request("wss://h?q")),
        ("no-subprotocol-allowed", 0x01, 0x02,
         ws_request(fields=ws_edit(WS_FIELDS, "Sec-WebSocket-Protocol", None))),
        ("no-subprotocol", 0x00, 0x02,
         ws_request(fields=ws_edit(WS_FIELDS, "Sec-WebSocket-Protocol", None))),
        ("subprotocol-list", 0x01, 0x02,
         ws_request(fields=ws_edit(WS_FIELDS, "Sec-WebSocket-Protocol", "wamp, mqttv3.1, mqtt"))),
        ("lowercase-ows", 0x00, 0x01,
         ws_request(fields=[(n.lower(), "\t %s \t" % v) for n, v in WS_FIELDS])),
        ("version-8", 0x00, 0x02, ws_request(fields=ws_edit(WS_FIELDS, "Sec-WebSocket-Version",
                                                             "8"))),
        ("bad-key", 0x00, 0x02, ws_request(fields=ws_edit(WS_FIELDS, "Sec-WebSocket-Key",
                                                           "dGhlIHNhbXBsZSBub25jZQ="))),
        ("two-hosts", 0x00, 0x02, ws_request(fields=WS_FIELDS + [("Host", "other")])),
        ("body", 0x00, 0x02, ws_request(fields=WS_FIELDS + [("Content-Length", "5")])),
        ("post", 0x00, 0x02, ws_request(method="POST")),
        ("http10", 0x00, 0x02, ws_request(version="HTTP/1.0")),
        ("plain-http", 0x00, 0x02, b"GET /index.html HTTP/1.1\r\nHost: a\r\n"
                                   b"Connection: keep-alive\r\n\r\n"),
        ("obs-fold", 0x00, 0x02, ws_request(fields=WS_FIELDS + [("X-A", "b\r\n c")])),
        ("bare-lf", 0x00, 0x02, b"GET /mqtt HTTP/1.1\nHost: a\n\n"),
        ("tls-hello", 0x00, 0x00, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        ("too-big", 0x02 * 5, 0x02, ws_request(fields=WS_FIELDS + [("X-Pad", "x" * 120)])),
        # cap 256 (index 9): a head of exactly 256 bytes passes, one of 257 does not
        ("at-cap", 0x02 * 9, 0x01, ws_pad(256)),
        ("over-cap", 0x02 * 9, 0x02, ws_pad(257)),
        ("incomplete", 0x00, 0x01, ws_request()[:-2]),
        ("pipelined-frame", 0x00, 0x02, ws_request() + b"\x82\x80\x01\x02\x03\x04xx"),
    ]
    for name, b0, b1, req in seeds:
        write(t, name, bytes([b0, b1]) + req)


def ws_frame(b0, payload=b"", key=b"\x37\xfa\x21\x3d", masked=True, ext=None):
    """A client frame: b0 = FIN/RSV/opcode, the payload masked with key. ext forces the
    16-bit (126) or 64-bit (127) length form."""
    n = len(payload)
    if ext is None:
        ext = 0 if n < 126 else 126 if n <= 0xFFFF else 127
    mbit = 0x80 if masked else 0
    if ext == 0:
        head = bytes([b0, mbit | n])
    elif ext == 126:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    body = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return head + key + body


def ws_frames_seeds():
    t = "ws_frames"
    # b0: bit 0 = CX_WS_RX_STREAM, bit 1 = CX_WS_RX_BINARY_ONLY; b1: max_frame (low nibble)
    # and max_message (high nibble), 0xF = no limit, 0xD = 65535, 0x8 = 125, 0x4 = 5;
    # b2: chunking.
    conn = connect(4)
    hello = ws_frame(0x81, b"Hello")  # RFC 6455 §5.7: bytes 81 85 37 fa 21 3d 7f 9f 4d 51 58
    frames = [
        ("hello", hello),
        ("mqtt-connect", ws_frame(0x82, conn)),
        ("mqtt-split", ws_frame(0x02, conn[:4]) + ws_frame(0x00, conn[4:10]) +
         ws_frame(0x80, conn[10:])),
        ("ping-between-fragments", ws_frame(0x02, b"ab") + ws_frame(0x89, b"ping") +
         ws_frame(0x80, b"cd") + ws_frame(0x8A, b"")),
        ("text-utf8-fragments", ws_frame(0x01, "h\u00e9llo \u20ac ".encode()) +
         ws_frame(0x00, b"\xe2") + ws_frame(0x00, b"\x82") + ws_frame(0x80, b"\xac!")),
        ("text-bad-utf8", ws_frame(0x81, b"ab\xc3(x")),
        ("text-ends-mid-char", ws_frame(0x81, b"caf\xc3")),
        ("close-code-reason", ws_frame(0x88, b"\x03\xe8caf\xc3\xa9")),
        ("close-empty-then-data", ws_frame(0x88) + ws_frame(0x82, b"x")),
        ("close-one-byte", ws_frame(0x88, b"\x03")),
        ("close-bad-code", ws_frame(0x88, b"\x03\xed")),
        ("len16", ws_frame(0x82, bytes(range(256)) * 2)),
        ("len16-nonminimal", ws_frame(0x82, b"xyz", ext=126)),
        ("len64-nonminimal", ws_frame(0x82, b"xyz", ext=127)),
        ("len64-huge", bytes([0x82, 0xFF, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0]) + b"\x01\x02\x03\x04"),
        ("len64-msb", bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1]) + b"\x01\x02\x03\x04"),
        ("unmasked", ws_frame(0x82, b"abc", masked=False)),
        ("rsv-bits", ws_frame(0xC2, b"abc")),
        ("unknown-opcode", ws_frame(0x83, b"abc")),
        ("fragmented-ping", ws_frame(0x09, b"p")),
        ("long-ping", ws_frame(0x89, b"p" * 126)),
        ("cont-without-message", ws_frame(0x80, b"abc")),
        ("new-message-inside", ws_frame(0x02, b"a") + ws_frame(0x82, b"b")),
        ("empty-frames", ws_frame(0x02) + ws_frame(0x00) + ws_frame(0x80)),
    ]
    for name, stream in frames:
        write(t, name, bytes([0x00, 0xFF, 0x02]) + stream)
    # The same streams under the other settings, for a few of them.
    write(t, "hello-stream-bytewise", bytes([0x01, 0xFF, 0x00]) + hello)
    write(t, "mqtt-split-stream-binary", bytes([0x03, 0xFF, 0x01]) +
          dict(frames)["mqtt-split"])
    write(t, "text-binary-only", bytes([0x02, 0xFF, 0x02]) + hello)
    write(t, "text-stream-bad-utf8", bytes([0x01, 0xFF, 0x01]) +
          ws_frame(0x81, b"abcdef\xc3(x"))
    write(t, "frame-over-limit", bytes([0x00, 0xF4, 0x02]) + ws_frame(0x82, b"123456"))
    write(t, "message-over-limit", bytes([0x01, 0x4F, 0x01]) +
          ws_frame(0x02, b"123") + ws_frame(0x80, b"456"))
    write(t, "len16-stream-limit", bytes([0x01, 0xDD, 0x02]) + dict(frames)["len16"])
    write(t, "ping-limit-125", bytes([0x00, 0x88, 0x01]) + ws_frame(0x89, b"p" * 125))


# ---- PROXY protocol (HAProxy's spec, v1 and v2) ----------------------------------------------

PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def pp2(ver_cmd, fam, block):
    return PP2_SIG + bytes([ver_cmd, fam]) + struct.pack(">H", len(block)) + block


def tlv(t, v):
    return bytes([t]) + struct.pack(">H", len(v)) + v


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def pp2_crc(ver_cmd, fam, block):
    """A header whose last TLV is a CRC32C over the whole header (spec §2.2.3)."""
    h = pp2(ver_cmd, fam, block + tlv(0x03, b"\x00" * 4))
    return h[:-4] + struct.pack(">I", crc32c(h))


def proxy_seeds():
    t = "proxy"
    # b0 % 3: 0 = v1 only, 1 = v2 only, 2 = both.
    v1 = [
        ("v1-tcp4", b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
        ("v1-tcp4-extremes", b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"),
        ("v1-tcp6", b"PROXY TCP6 2001:db8::1 2001:db8::2 50000 8883\r\n"),
        ("v1-tcp6-v4-tail", b"PROXY TCP6 ::ffff:10.1.2.3 FE80::A:b:C:d 9 10\r\n"),
        ("v1-tcp6-full", b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                         b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
        ("v1-unknown", b"PROXY UNKNOWN\r\n"),
        ("v1-unknown-fields", b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"),
        ("v1-then-mqtt", b"PROXY TCP4 10.0.0.1 10.0.0.2 1 1883\r\n" + connect(4)),
        ("v1-leading-zero", b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"),
        ("v1-two-spaces", b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"),
        ("v1-lf-only", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
        ("v1-no-crlf", b"PROXY UNKNOWN " + b"x" * 100),
    ]
    a4 = bytes([192, 168, 0, 1, 10, 0, 0, 1]) + struct.pack(">HH", 56324, 1883)
    a6 = (bytes([0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [1]) +
          bytes([0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [2]) + struct.pack(">HH", 50000, 8883))
    au = b"/run/lb.sock".ljust(108, b"\x00") + b"\x00abstract".ljust(108, b"\x00")
    ssl = tlv(0x20, bytes([0x07]) + struct.pack(">I", 0) + tlv(0x21, b"TLSv1.3") +
              tlv(0x22, b"client-1") + tlv(0x23, b"TLS_AES_128_GCM_SHA256") +
              tlv(0x24, b"SHA256") + tlv(0x25, b"RSA2048"))
    v2 = [
        ("v2-inet", pp2(0x21, 0x11, a4)),
        ("v2-inet6", pp2(0x21, 0x21, a6)),
        ("v2-unix", pp2(0x21, 0x31, au)),
        ("v2-local", pp2(0x20, 0x00, b"ignored")),
        ("v2-unspec", pp2(0x21, 0x00, b"")),
        ("v2-tlvs", pp2(0x21, 0x11, a4 + tlv(0x01, b"mqtt") + tlv(0x02, b"broker.example") +
                        tlv(0x04, b"\x00\x00") + tlv(0x05, b"id-1") + tlv(0x30, b"ns") +
                        tlv(0xE0, b"custom"))),
        ("v2-ssl", pp2(0x21, 0x11, a4 + ssl)),
        ("v2-ssl-unverified", pp2(0x21, 0x11, a4 + tlv(0x20, bytes([0x01]) +
                                                        struct.pack(">I", 1)))),
        ("v2-crc", pp2_crc(0x21, 0x11, a4 + tlv(0x01, b"mqtt"))),
        ("v2-crc-bad", pp2(0x21, 0x11, a4 + tlv(0x03, b"\x01\x02\x03\x04"))),
        ("v2-unique-id-128", pp2(0x21, 0x11, a4 + tlv(0x05, b"u" * 128))),
        ("v2-unique-id-129", pp2(0x21, 0x11, a4 + tlv(0x05, b"u" * 129))),
        ("v2-repeated-tlv", pp2(0x21, 0x11, a4 + tlv(0x01, b"a") + tlv(0x01, b"b"))),
        ("v2-tlv-overrun", pp2(0x21, 0x11, a4 + b"\x01\x00\x09ab")),
        ("v2-short-block", pp2(0x21, 0x21, a4)),
        ("v2-dgram", pp2(0x21, 0x12, a4)),
        ("v2-bad-version", pp2(0x11, 0x11, a4)),
        ("v2-then-tls", pp2(0x21, 0x11, a4) + b"\x16\x03\x01\x02\x00"),
    ]
    for name, h in v1:
        write(t, name, b"\x02" + h)
    for name, h in v2:
        write(t, name, b"\x02" + h)
    write(t, "v1-on-v2-only", b"\x01" + v1[0][1])
    write(t, "v2-on-v1-only", b"\x00" + v2[0][1])
    write(t, "garbage", b"\x02GET / HTTP/1.1\r\n\r\n")


# ---- dictionaries ------------------------------------------------------------------------------

def dict_line(tok):
    return '"%s"\n' % tok.replace("\\", "\\\\").replace('"', '\\"')


def write_dicts():
    reset_dir(DICTS)
    names = []
    with open(os.path.join(ROOT, "docs", "config-reference.md"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\| `([a-z0-9_]+)`", line)
            if m and m.group(1) not in names:
                names.append(m.group(1))
    extra = ["true", "false", "#", "\\x0a", "\\x00", "ipv4", "ipv6", "mqtt", "websockets",
             "all", "none", "stdout", "stderr", "syslog", "file", "topic", "127.0.0.1", "::1"]
    with open(os.path.join(DICTS, "config.dict"), "w") as f:
        f.write("# directive names from docs/config-reference.md (tests/fuzz/make_seeds.py)\n")
        for n in names:
            f.write(dict_line(n))
            f.write(dict_line(n + " "))
        for e in extra:
            f.write('"%s"\n' % e)
    with open(os.path.join(DICTS, "acl_file.dict"), "w") as f:
        f.write("# acl_file keywords (tests/fuzz/make_seeds.py)\n")
        for w in ["topic ", "user ", "pattern ", "read ", "write ", "readwrite ", "deny ",
                  "%u", "%c", "/#", "/+/", "$SYS/", "\\x0a", "#"]:
            f.write('"%s"\n' % w)
    with open(os.path.join(DICTS, "ws_handshake.dict"), "w") as f:
        f.write("# HTTP upgrade tokens (tests/fuzz/make_seeds.py)\n")
        for w in ["GET ", " HTTP/1.1\\x0d\\x0a", "\\x0d\\x0a", "\\x0d\\x0a\\x0d\\x0a",
                  "Host: ", "Upgrade: websocket", "Connection: Upgrade",
                  "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: " + WS_KEY,
                  "Sec-WebSocket-Protocol: ", "mqtt", "mqttv3.1", "Origin: ",
                  "Content-Length: ", "Transfer-Encoding: ", "http://", "wss://", ", "]:
            f.write('"%s"\n' % w)
    with open(os.path.join(DICTS, "proxy.dict"), "w") as f:
        f.write("# PROXY protocol tokens (tests/fuzz/make_seeds.py)\n")
        for w in ["PROXY ", "TCP4 ", "TCP6 ", "UNKNOWN", "\\x0d\\x0a", "::", "::ffff:",
                  "255.255.255.255", "65535",
                  "\\x0d\\x0a\\x0d\\x0a\\x00\\x0d\\x0aQUIT\\x0a\\x21\\x11",
                  "\\x20\\x00\\x05\\x07\\x00\\x00\\x00\\x00", "\\x21\\x00\\x07TLSv1.3",
                  "\\x03\\x00\\x04"]:
            f.write('"%s"\n' % w)
    with open(os.path.join(DICTS, "password_file.dict"), "w") as f:
        f.write("# password hash prefixes (tests/fuzz/make_seeds.py)\n")
        for w in ["$7$", "$6$", "$5$", "$2b$04$", "$2a$", "$2y$", "$y$", "$argon2id$",
                  "$argon2i$", "$argon2d$", "v=19$", "m=64,t=1,p=1$", "PBKDF2$sha256$",
                  "PBKDF2$sha512$", "rounds=1000$", "==", "\\x0a", ":"]:
            f.write('"%s"\n' % w)


def main():
    for target in ("mqtt_decode", "mqtt_props", "config", "password_file", "acl_file",
                   "ws_handshake", "ws_frames", "proxy"):
        reset_dir(os.path.join(CORPUS, target))
    mqtt_seeds()
    config_seeds()
    password_seeds()
    acl_seeds()
    ws_handshake_seeds()
    ws_frames_seeds()
    proxy_seeds()
    write_dicts()
    total = 0
    for target in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, target))
        size = sum(os.path.getsize(os.path.join(CORPUS, target, n)) for n in files)
        total += size
        print("%-14s %4d files %7d bytes" % (target, len(files), size))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
