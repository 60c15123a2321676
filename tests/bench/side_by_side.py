#!/usr/bin/python3
"""culex beside Mosquitto (and FlashMQ): the performance matrix of issue 9 (printed, never
asserted; docs/performance.md holds a run of it).

    tests/bench/side_by_side.py [--culex build/core/culex] [--bench build/tools/culex_bench]
                                [--mosquitto /usr/sbin/mosquitto] [--flashmq PATH]
                                [--repeat 3] [--duration 5] [--only SCENARIO,...] [--quick]
                                [--nodelay] [--json FILE]
    tests/bench/side_by_side.py --scaling [--repeat 3] [--only fanin-q0,pairs-q1] ...
    tests/bench/side_by_side.py --list

Every broker gets the same settings (listener on a free loopback port, no persistence,
max_inflight_messages 20, max_queued_messages 1000, connection messages off; see configs());
culex runs with `workers 1`, FlashMQ with `thread_count 1`. Each run starts a fresh broker
pinned to CPU 0 and runs tools/culex_bench pinned to CPU 1, so one core is the broker's and
the other the generator's. Brokers alternate (A B C A B C ...) within each scenario, and
the whole matrix is repeated --repeat times; the figures are medians, and the ratios divide
a broker's median by Mosquitto's. On a shared machine absolute numbers wander; the ratios,
taken from runs that interleave, are what to read.

The broker's CPU time (utime + stime of all its threads, /proc/PID/stat) and RSS (VmRSS,
/proc/PID/status) are read before and after each scenario (and, for the idle connections,
while they are held). "CPU us/msg" is broker CPU time over the messages delivered to
subscribers, connection set-up and drain included; "msg/s" is deliveries per second;
lost/dup/out-of-order and latency come from culex_bench's --json summary. When culex_bench
says it used > 90 % of its core (it may then be the limit rather than the broker), the
table marks the figure with '*'.

--scaling runs culex unpinned (broker and generator free to use both cores) with `workers 1`
and `workers 2` in alternation, on fan-in and pairs, and prints the throughput ratio.

Standard library only; loopback only. Every run is bounded in time (culex_bench gets
duration + 75 s, then SIGTERM and SIGKILL); only processes started here are ended, by PID.
FlashMQ's configuration format (flashmq.conf(5)): `thread_count`, `allow_anonymous`,
`quiet`, `log_file`, `rlimit_nofile`, `mosquitto_password_file`, and
`listen { protocol mqtt  inet_protocol ip4  inet4_bind_address 127.0.0.1  port N }`."""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
BENCH_SLACK = 75  # seconds a culex_bench run may take beyond --duration (connect, drain)
USER = "bench"
PASSWORD = "bench-secret"

# name, title, kind, culex_bench arguments (full), (quick). Durations are added by run_one.
SCENARIOS = [
    ("fanin-q0", "fan-in 100->1, QoS 0", "msg",
     ["fan-in", "--publishers", "100", "--subscribers", "1", "--qos", "0"],
     ["fan-in", "--publishers", "20", "--subscribers", "1", "--qos", "0"]),
    ("fanin-q1", "fan-in 100->1, QoS 1", "msg",
     ["fan-in", "--publishers", "100", "--subscribers", "1", "--qos", "1"],
     ["fan-in", "--publishers", "20", "--subscribers", "1", "--qos", "1"]),
    ("fanout-q0", "fan-out 1->1000, QoS 0", "msg",
     ["fan-out", "--subscribers", "1000", "--qos", "0"],
     ["fan-out", "--subscribers", "100", "--qos", "0"]),
    ("pairs-q1", "100 pairs, QoS 1", "msg",
     ["pairs", "--pairs", "100", "--qos", "1"],
     ["pairs", "--pairs", "20", "--qos", "1"]),
    ("pairs-q2", "100 pairs, QoS 2", "msg",
     ["pairs", "--pairs", "100", "--qos", "2"],
     ["pairs", "--pairs", "20", "--qos", "2"]),
    ("latency-q0", "10 pairs at 10 k msg/s total, QoS 0", "msg",
     ["pairs", "--pairs", "10", "--rate", "10000", "--qos", "0"],
     ["pairs", "--pairs", "10", "--rate", "2000", "--qos", "0"]),
    ("latency-q1", "10 pairs at 10 k msg/s total, QoS 1", "msg",
     ["pairs", "--pairs", "10", "--rate", "10000", "--qos", "1"],
     ["pairs", "--pairs", "10", "--rate", "2000", "--qos", "1"]),
    ("idle", "19 000 idle connections", "idle",
     ["connections", "--connections", "19000"],
     ["connections", "--connections", "500"]),
    ("connect-auth", "5 000 connections with password-file auth", "auth",
     ["connections", "--connections", "5000", "-u", USER, "-P", PASSWORD],
     ["connections", "--connections", "200", "-u", USER, "-P", PASSWORD]),
]
BY_NAME = {s[0]: s for s in SCENARIOS}
# The ratios of the one-line summary under each table.
RATIO_KEYS = {"msg": ["cpu_us_per_msg", "received_per_s", "p50_us", "p99_us"],
              "idle": ["rss_per_conn", "connect_rate", "cpu_us_per_conn"],
              "auth": ["connect_rate", "cpu_us_per_conn"]}
SCALING_DEFAULT = ["fanin-q0", "fanin-q1", "pairs-q1"]

# (key, label, unit formatter, better) per kind; better is "low" or "high" (for the eye).
METRICS = {
    "msg": [("cpu_us_per_msg", "broker CPU us/msg", "f3"),
            ("received_per_s", "delivered msg/s", "si"),
            ("lost", "lost", "int"),
            ("lost_pct", "lost %", "f1"),
            ("duplicated", "duplicated", "int"),
            ("out_of_order", "out of order", "int"),
            ("p50_us", "latency p50 us", "f1"),
            ("p99_us", "latency p99 us", "f1"),
            ("rss_after_kb", "RSS after, KiB", "int"),
            ("gen_share", "generator CPU share", "f2")],
    "idle": [("rss_per_conn", "RSS per connection, B", "int"),
             ("connect_rate", "connects/s", "si"),
             ("connected", "connected", "int"),
             ("cpu_us_per_conn", "broker CPU us/connect", "f1"),
             ("rss_holding_kb", "RSS holding, KiB", "int")],
    "auth": [("connect_rate", "connects/s", "si"),
             ("connected", "connected", "int"),
             ("cpu_us_per_conn", "broker CPU us/connect", "f1")],
}


# ---- processes ------------------------------------------------------------------------------

def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def child_setup(cpus):
    """preexec_fn: as many descriptors as the hard limit allows, and the CPU set if any."""
    def setup():
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 20
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
    return setup


def stop_pid(proc, grace=10):
    """SIGTERM, then SIGKILL after `grace` seconds: only this process, by its PID."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass


def proc_cpu_s(pid):
    """utime + stime of every thread of pid, in seconds (None when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()  # the command may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Broker:
    """One broker process with its own directory and config; ended by PID."""

    def __init__(self, kind, exe, lines, cpus, workdir, env=None):
        self.kind, self.exe = kind, exe
        self.dir = tempfile.mkdtemp(prefix="sbs-%s-" % kind, dir=workdir)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.conf = os.path.join(self.dir, "broker.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(l.format(port=self.port, dir=self.dir) for l in lines) + "\n")
        args = [exe, "--config-file", self.conf] if kind == "flashmq" else [exe, "-c",
                                                                            self.conf]
        self.log = open(os.path.join(self.dir, "broker.out"), "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=self.dir,
                                     start_new_session=True, preexec_fn=child_setup(cpus),
                                     env=env)
        self.wait_listening()

    def wait_listening(self, timeout=20.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s before listening:\n%s" % (
                    self.kind, self.proc.returncode, self.output()))
            try:
                socket.create_connection((HOST, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        stop_pid(self.proc)
        raise RuntimeError("%s not listening on %d:\n%s" % (self.kind, self.port,
                                                            self.output()))

    def output(self):
        try:
            with open(os.path.join(self.dir, "broker.out"), "rb") as f:
                return f.read().decode(errors="replace")[-3000:]
        except OSError:
            return ""

    def cleanup(self):
        stop_pid(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def configs(kind, workers, nodelay, pwfile, nofile):
    """The equivalent configuration lines of each broker ({port}, {dir} filled later)."""
    root = os.geteuid() == 0
    if kind == "flashmq":
        lines = ["thread_count %d" % workers, "quiet true", "log_file {dir}/flashmq.log",
                 "rlimit_nofile %d" % nofile, "allow_anonymous %s" % ("false" if pwfile
                                                                      else "true"),
                 "listen {{", "  protocol mqtt", "  inet_protocol ip4",
                 "  inet4_bind_address 127.0.0.1", "  port {port}", "}}"]  # str.format
        if pwfile:
            lines.append("mosquitto_password_file %s" % pwfile)
        return lines
    lines = ["listener {port} 127.0.0.1",
             "allow_anonymous %s" % ("false" if pwfile else "true"),
             "persistence false",
             "max_inflight_messages 20", "max_queued_messages 1000", "max_queued_bytes 0",
             "connection_messages false", "log_dest stderr",
             "log_type error", "log_type warning", "log_type notice"]
    if root:
        lines.append("user root")  # else both switch to `mosquitto` and cannot read {dir}
    if pwfile:
        lines.append("password_file %s" % pwfile)
    if kind == "culex":
        lines.insert(0, "workers %d" % workers)
    elif nodelay:
        lines.append("set_tcp_nodelay true")  # culex always sets it
    return lines


def make_pwfile(workdir, culex_passwd):
    """A Mosquitto-format password file (both brokers and FlashMQ read it)."""
    path = os.path.join(workdir, "passwd")
    mp = shutil.which("mosquitto_passwd")
    if mp:
        cmd = [mp, "-c", "-b", path, USER, PASSWORD]
    elif culex_passwd and os.access(culex_passwd, os.X_OK):
        cmd = [culex_passwd, "-c", "-b", path, USER, PASSWORD]
    else:
        return None
    subprocess.run(cmd, check=True, timeout=30, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    os.chmod(path, 0o644)
    with open(path) as f:
        scheme = f.read().split(":", 1)[1][:12]
    return path, os.path.basename(cmd[0]), scheme


# ---- one run --------------------------------------------------------------------------------

def run_bench(bench, port, args, cpus, timeout, on_holding=None):
    """Runs culex_bench --json; returns (status, summary or None, stderr tail, wall s)."""
    cmd = [bench, "--host", HOST, "--port", str(port), "--json"] + args
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as outf:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=outf,
                             stderr=subprocess.PIPE, start_new_session=True,
                             preexec_fn=child_setup(cpus))
        err_lines = []

        def read_err():
            for raw in p.stderr:
                line = raw.decode(errors="replace").rstrip()
                err_lines.append(line)
                if on_holding and "holding" in line:
                    on_holding()

        t = threading.Thread(target=read_err, daemon=True)
        t.start()
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            err_lines.append("side_by_side: culex_bench over %d s, stopped" % timeout)
            stop_pid(p, grace=15)
        t.join(5)
        p.stderr.close()
        outf.seek(0)
        out = outf.read()
    summary = None
    text = out.decode(errors="replace").strip()
    if text:
        try:
            summary = json.loads(text.splitlines()[-1])
        except ValueError:
            err_lines.append("side_by_side: unreadable JSON: " + text[:200])
    return p.returncode, summary, err_lines[-20:], time.monotonic() - t0


def derive(kind, s, cpu_s, rss):
    """The figures of one run from culex_bench's summary and the /proc samples."""
    d = {"cpu_s": cpu_s}
    if s is None:
        return d
    m, c = s["messages"], s["connections"]
    d.update(connected=c["connected"], failed=c["failed"], dropped=c["dropped"],
             connect_rate=c["connect_rate"], gen_share=s["cpu"]["thread_share"],
             generator_bound=s["cpu"]["generator_bound"], ended_by=s["ended_by"])
    if rss.get("after") is not None:
        d["rss_after_kb"] = rss["after"]
    if kind == "msg":
        d.update(sent=m["sent"], received=m["received"], expected=m["expected"],
                 lost=m["lost"], duplicated=m["duplicated"], out_of_order=m["out_of_order"],
                 received_per_s=s["rates"]["received_per_s"],
                 lost_pct=100.0 * m["lost"] / m["expected"] if m["expected"] else 0.0,
                 p50_us=s["latency_us"]["p50"], p99_us=s["latency_us"]["p99"])
        if cpu_s is not None and m["received"]:
            d["cpu_us_per_msg"] = cpu_s * 1e6 / m["received"]
    else:
        if cpu_s is not None and c["connected"]:
            d["cpu_us_per_conn"] = cpu_s * 1e6 / c["connected"]
        if kind == "idle" and rss.get("holding") is not None and c["connected"]:
            d["rss_holding_kb"] = rss["holding"]
            d["rss_per_conn"] = (rss["holding"] - rss["before"]) * 1024.0 / c["connected"]
    return d


def run_one(opt, name, bname, bexe, workers, broker_cpus, bench_cpus, pw):
    _, title, kind, full, quick = BY_NAME[name]
    args = list(quick if opt.quick else full)
    duration = opt.duration
    if kind != "msg":
        duration = opt.hold  # how long the connections are held
    args += ["--duration", "%g" % duration, "--threads", str(opt.bench_threads)]
    if kind == "msg":
        args.append("--quiet")  # the connection kinds wait for its "holding" line
    pwfile = pw[0] if (kind == "auth" and pw) else None
    lines = configs(bname, workers, opt.nodelay, pwfile, opt.nofile)
    rec = {"scenario": name, "broker": bname, "workers": workers, "args": args,
           "config": lines}
    try:
        b = Broker(bname, bexe, lines, broker_cpus, opt.workdir)
    except RuntimeError as e:
        rec["error"] = str(e)
        return rec
    try:
        pid = b.proc.pid
        rss = {"before": proc_rss_kb(pid)}
        cpu0 = proc_cpu_s(pid)

        def holding():
            rss["holding"] = proc_rss_kb(pid)
            rss["holding_cpu_s"] = proc_cpu_s(pid)

        rc, s, err, wall = run_bench(opt.bench, b.port, args, bench_cpus,
                                     int(duration) + BENCH_SLACK, holding)
        cpu1 = proc_cpu_s(pid)
        rss["after"] = proc_rss_kb(pid)
        # For connections, the broker's work is the connect phase: up to "holding".
        if kind != "msg" and rss.get("holding_cpu_s") is not None:
            cpu1 = rss["holding_cpu_s"]
        cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
        rec.update(status=rc, bench=s, stderr=err, wall_s=wall, rss_kb=rss,
                   cpu_before_s=cpu0, cpu_after_s=cpu1,
                   derived=derive(kind, s, cpu, rss))
        if b.proc.poll() is not None:
            rec["error"] = "%s exited with %s during the run:\n%s" % (
                bname, b.proc.returncode, b.output())
        elif s is None:
            rec["error"] = "culex_bench gave no summary (exit %s): %s" % (rc, " | ".join(err))
    finally:
        b.cleanup()
    return rec


# ---- printing -------------------------------------------------------------------------------

def fmt(v, style):
    if v is None:
        return "-"
    if style == "int":
        return "%d" % round(v)
    if style == "si":
        for div, suf in ((1e6, " M"), (1e3, " k")):
            if abs(v) >= div:
                return "%.3g%s" % (v / div, suf)
        return "%.3g" % v
    if style == "f1":
        return "%.1f" % v
    if style == "f2":
        return "%.2f" % v
    return "%.3g" % v


def median_of(recs, key):
    vals = [r["derived"][key] for r in recs if r.get("derived", {}).get(key) is not None]
    return statistics.median(vals) if vals else None


def ratio(a, b):
    if a is None or b is None:
        return None
    if b == 0:
        return None if a else 1.0
    return a / b


def fmt_ratio(r):
    return "-" if r is None else "%.3gx" % r


def summarise(records, scenarios, brokers):
    """{scenario: {broker: {metric: median}}} and printed tables."""
    med = {}
    for name in scenarios:
        kind = BY_NAME[name][2]
        med[name] = {}
        for b in brokers:
            recs = [r for r in records if r["scenario"] == name and r["broker"] == b]
            med[name][b] = {k: median_of(recs, k) for k, _, _ in METRICS[kind]}
            med[name][b]["runs"] = sum(1 for r in recs if "derived" in r and "error" not in r)
            med[name][b]["failed_runs"] = sum(1 for r in recs if "error" in r)
            med[name][b]["generator_bound"] = sum(
                1 for r in recs if r.get("derived", {}).get("generator_bound"))
    return med


def print_tables(med, scenarios, brokers, opt):
    base = "mosquitto" if "mosquitto" in brokers else brokers[0]
    others = [b for b in brokers if b != base]
    for name in scenarios:
        _, title, kind, _, quick = BY_NAME[name]
        if opt.quick:
            title += "; quick: " + " ".join(a for a in quick if a not in (USER, PASSWORD))
        m = med[name]
        runs = ", ".join("%s %d" % (b, m[b]["runs"]) for b in brokers)
        print("\n== %s  [%s]  (runs: %s)" % (title, name, runs))
        head = "%-24s" % "" + "".join("%14s" % b for b in brokers) + "".join(
            "%14s" % ("%s/%s" % (b[:6], base[:4])) for b in others)
        print(head)
        for key, label, style in METRICS[kind]:
            row = "%-24s" % label
            for b in brokers:
                v = fmt(m[b][key], style)
                if key in ("cpu_us_per_msg", "received_per_s") and m[b]["generator_bound"]:
                    v += "*"
                row += "%14s" % v
            for b in others:
                row += "%14s" % fmt_ratio(ratio(m[b][key], m[base][key]))
            print(row)
        for b in others:
            keys = RATIO_KEYS[kind]
            print("ratio %s/%s: %s" % (b, base, ", ".join(
                "%s %s" % (k, fmt_ratio(ratio(m[b][k], m[base][k]))) for k in keys)))
        for b in brokers:
            if m[b]["failed_runs"]:
                print("  note: %d run(s) of %s failed (see --json)" % (m[b]["failed_runs"], b))
            if m[b]["generator_bound"]:
                print("  * culex_bench used > 90 %% of its core in %d run(s) against %s: "
                      "it may be the limit" % (m[b]["generator_bound"], b))
        sys.stdout.flush()


SUMMARY_KEYS = {"msg": [("cpu_us_per_msg", "broker CPU us/msg", "f3"),
                        ("received_per_s", "delivered msg/s", "si"),
                        ("lost_pct", "lost %", "f1")],
                "idle": [("rss_per_conn", "RSS per connection, B", "int"),
                         ("connect_rate", "connects/s", "si")],
                "auth": [("connect_rate", "connects/s", "si")]}
LATENCY_KEYS = [("p50_us", "latency p50 us", "f1"), ("p99_us", "latency p99 us", "f1")]


def print_summary(med, scenarios, brokers):
    """One Markdown table of the main figures (what docs/performance.md quotes)."""
    base = "mosquitto" if "mosquitto" in brokers else brokers[0]
    others = [b for b in brokers if b != base]
    cols = [base] + others + ["%s/%s" % (b, base) for b in others]
    print("\nSummary (medians)\n")
    print("| scenario | figure | " + " | ".join(cols) + " |")
    print("|---|---|" + "---:|" * len(cols))
    for name in scenarios:
        kind = BY_NAME[name][2]
        keys = SUMMARY_KEYS[kind] + (LATENCY_KEYS if name.startswith("latency") else [])
        for key, label, style in keys:
            vals = [fmt(med[name][b][key], style) for b in [base] + others]
            vals += [fmt_ratio(ratio(med[name][b][key], med[name][base][key])) for b in others]
            print("| %s | %s | %s |" % (name, label, " | ".join(vals)))


def targets(med):
    """Issue 9's targets: (target, measured, met) for the scenarios that ran."""
    out = []

    def get(name, b, key):
        return med.get(name, {}).get(b, {}).get(key)

    def r(name, key):
        return ratio(get(name, "culex", key), get(name, "mosquitto", key))

    for name, limit in (("fanin-q0", 0.15), ("fanout-q0", 0.07), ("pairs-q1", 0.16),
                        ("pairs-q2", 0.13)):
        v = r(name, "cpu_us_per_msg")
        if v is not None:
            out.append(("%s: broker CPU/msg <= %.2fx Mosquitto" % (name, limit),
                        "%.3fx" % v, v <= limit))
    if "fanin-q1" in med:
        lost = get("fanin-q1", "culex", "lost")
        v = r("fanin-q1", "received_per_s")
        if lost is not None:
            out.append(("fanin-q1: culex loses nothing", "%d lost (median)" % lost, lost == 0))
        if v is not None:
            out.append(("fanin-q1: delivered >= 10x Mosquitto", "%.2fx" % v, v >= 10))
    if "latency-q1" in med:
        for key in ("p50_us", "p99_us"):
            v = r("latency-q1", key)
            if v is not None:
                out.append(("latency-q1: %s <= Mosquitto's" % key[:3], "%.0f vs %.0f us (%.2fx)"
                            % (get("latency-q1", "culex", key),
                               get("latency-q1", "mosquitto", key), v), v <= 1))
    p50 = get("latency-q0", "culex", "p50_us")
    if p50 is not None:
        out.append(("latency-q0: p50 < 1 ms", "%.0f us" % p50, p50 < 1000))
    v = r("idle", "rss_per_conn")
    if v is not None:
        out.append(("idle: RSS/connection <= 0.7x Mosquitto", "%.0f vs %.0f B (%.2fx)" % (
            get("idle", "culex", "rss_per_conn"), get("idle", "mosquitto", "rss_per_conn"),
            v), v <= 0.7))
    for name, what in (("idle", "without auth"), ("connect-auth", "with password file")):
        v = r(name, "connect_rate")
        if v is not None:
            out.append(("%s: connect rate >= Mosquitto's (%s)" % (name, what), "%.2fx" % v,
                        v >= 1))
    return out


def print_targets(tg):
    if not tg:
        return
    print("\nTargets of issue 9 (culex against Mosquitto, medians of this run)")
    for t, measured, ok in tg:
        print("  %-62s %-30s %s" % (t, measured, "met" if ok else "MISSED"))


# ---- modes ----------------------------------------------------------------------------------

def side_by_side(opt, scenarios, pw):
    brokers = [("mosquitto", opt.mosquitto)]
    if not os.access(opt.mosquitto, os.X_OK):
        print("side_by_side: %s not found; culex alone" % opt.mosquitto, file=sys.stderr)
        brokers = []
    brokers.insert(0, ("culex", opt.culex))
    if opt.flashmq:
        brokers.append(("flashmq", opt.flashmq))
    ncpu = len(os.sched_getaffinity(0))
    broker_cpus, bench_cpus = ({0}, {1}) if ncpu >= 2 and not opt.no_pin else (None, None)
    if broker_cpus is None:
        print("side_by_side: not pinning (%d CPUs usable)" % ncpu, file=sys.stderr)
    records = []
    for rep in range(opt.repeat):
        for name in scenarios:
            for bname, exe in brokers:
                if BY_NAME[name][2] == "auth" and not pw:
                    continue
                rec = run_one(opt, name, bname, exe, 1, broker_cpus, bench_cpus, pw)
                rec["repeat"] = rep
                records.append(rec)
                if not opt.quiet:
                    progress(rec)
    names = [b for b, _ in brokers]
    med = summarise(records, scenarios, names)
    print_tables(med, scenarios, names, opt)
    print_summary(med, scenarios, names)
    tg = targets(med) if "mosquitto" in names else []
    print_targets(tg)
    return records, med, tg


def scaling(opt, scenarios):
    records = []
    for rep in range(opt.repeat):
        for name in scenarios:
            for w in (1, 2):
                rec = run_one(opt, name, "culex", opt.culex, w, None, None, None)
                rec["repeat"] = rep
                rec["broker"] = "culex-w%d" % w
                records.append(rec)
                if not opt.quiet:
                    progress(rec)
    print("\nculex unpinned, workers 1 and 2 (generator unpinned, %d thread(s)); medians of %d"
          % (opt.bench_threads, opt.repeat))
    print("%-28s %14s %14s %10s %14s %14s" % ("scenario", "w1 msg/s", "w2 msg/s", "w2/w1",
                                              "w1 CPU us/msg", "w2 CPU us/msg"))
    med = {}
    for name in scenarios:
        m = {}
        for w in (1, 2):
            recs = [r for r in records if r["scenario"] == name and
                    r["broker"] == "culex-w%d" % w]
            m[w] = {k: median_of(recs, k) for k in ("received_per_s", "cpu_us_per_msg",
                                                   "lost")}
        med[name] = {"culex-w1": m[1], "culex-w2": m[2]}
        print("%-28s %14s %14s %10s %14s %14s" % (
            BY_NAME[name][1], fmt(m[1]["received_per_s"], "si"),
            fmt(m[2]["received_per_s"], "si"),
            fmt_ratio(ratio(m[2]["received_per_s"], m[1]["received_per_s"])),
            fmt(m[1]["cpu_us_per_msg"], "f3"), fmt(m[2]["cpu_us_per_msg"], "f3")))
        print("ratio workers2/workers1 %s: %s" % (name, fmt_ratio(
            ratio(m[2]["received_per_s"], m[1]["received_per_s"]))))
    return records, med


def progress(rec):
    d = rec.get("derived", {})
    kind = BY_NAME[rec["scenario"]][2]
    if "error" in rec:
        what = "FAILED: " + rec["error"].splitlines()[0][:150]
    elif kind == "msg":
        what = "%s msg/s, %s us/msg, lost %s, p50 %s us" % (
            fmt(d.get("received_per_s"), "si"), fmt(d.get("cpu_us_per_msg"), "f3"),
            fmt(d.get("lost"), "int"), fmt(d.get("p50_us"), "f1"))
    else:
        what = "%s connected, %s/s, RSS/conn %s B" % (
            fmt(d.get("connected"), "int"), fmt(d.get("connect_rate"), "si"),
            fmt(d.get("rss_per_conn"), "int"))
    print("side_by_side: [%d] %-12s %-10s %s" % (rec["repeat"] + 1, rec["scenario"],
                                                 rec["broker"], what), file=sys.stderr)
    sys.stderr.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="docs/performance.md describes the matrix and a run.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--culex", default=os.path.join(TOP, "build/core/culex"),
                    help="the culex binary (default build/core/culex)")
    ap.add_argument("--bench", help="culex_bench (default: tools/culex_bench beside --culex's "
                    "build tree)")
    ap.add_argument("--passwd", help="culex_passwd, used when mosquitto_passwd is missing")
    ap.add_argument("--mosquitto", default="/usr/sbin/mosquitto",
                    help="the Mosquitto binary (default /usr/sbin/mosquitto)")
    ap.add_argument("--flashmq", help="a FlashMQ binary: run it too (thread_count 1)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per broker and scenario (default 3)")
    ap.add_argument("--duration", type=float, help="seconds of publishing per run "
                    "(default 5; 1 with --quick)")
    ap.add_argument("--hold", type=float, help="seconds the idle connections are held "
                    "(default 2; 0.5 with --quick)")
    ap.add_argument("--only", help="comma-separated scenarios (see --list)")
    ap.add_argument("--quick", action="store_true",
                    help="shorter runs and smaller counts: a smoke test, not a measurement")
    ap.add_argument("--scaling", action="store_true",
                    help="culex unpinned, workers 1 vs 2, on fan-in and pairs")
    ap.add_argument("--bench-threads", type=int, default=1, help="culex_bench threads")
    ap.add_argument("--nodelay", action="store_true",
                    help="set_tcp_nodelay true for Mosquitto (default: its default, off)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin broker and generator")
    ap.add_argument("--json", metavar="FILE", help="write every raw sample to FILE")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    opt = ap.parse_args()

    if opt.list:
        for name, title, _, full, _ in SCENARIOS:
            print("%-14s %-44s culex_bench %s" % (name, title, " ".join(full)))
        return 0
    if opt.duration is None:
        opt.duration = 1.0 if opt.quick else 5.0
    if opt.hold is None:
        opt.hold = 0.5 if opt.quick else 2.0
    build = os.path.dirname(os.path.dirname(os.path.abspath(opt.culex)))
    opt.bench = opt.bench or os.path.join(build, "tools", "culex_bench")
    opt.passwd = opt.passwd or os.path.join(build, "tools", "culex_passwd")
    for what, path in (("culex", opt.culex), ("culex_bench", opt.bench)):
        if not os.access(path, os.X_OK):
            ap.error("%s not found at %s" % (what, path))
    if opt.flashmq and not os.access(opt.flashmq, os.X_OK):
        ap.error("FlashMQ not found at %s" % opt.flashmq)
    scenarios = [s[0] for s in SCENARIOS]
    if opt.scaling:
        scenarios = SCALING_DEFAULT
    if opt.only:
        scenarios = [s.strip() for s in opt.only.split(",") if s.strip()]
        bad = [s for s in scenarios if s not in BY_NAME]
        if bad:
            ap.error("unknown scenario(s) %s; see --list" % ", ".join(bad))
        if opt.scaling and any(BY_NAME[s][2] != "msg" for s in scenarios):
            ap.error("--scaling runs message scenarios only")
    if opt.repeat < 1:
        ap.error("--repeat must be at least 1")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    opt.nofile = hard if hard != resource.RLIM_INFINITY else 1 << 20

    opt.workdir = tempfile.mkdtemp(prefix="culex-side-by-side-")
    os.chmod(opt.workdir, 0o755)
    started = time.time()
    try:
        pw = None
        if any(BY_NAME[s][2] == "auth" for s in scenarios) and not opt.scaling:
            pw = make_pwfile(opt.workdir, opt.passwd)
            if not pw:
                print("side_by_side: no mosquitto_passwd or culex_passwd: connect-auth skipped",
                      file=sys.stderr)
        mode = "scaling" if opt.scaling else "side-by-side"
        print("culex side by side (%s), %s; %d CPU(s); %s; repeat %d, duration %g s%s" % (
            mode, time.strftime("%Y-%m-%d %H:%M"), os.cpu_count(), os.uname().release,
            opt.repeat, opt.duration, ", QUICK (smoke test)" if opt.quick else ""))
        if pw:
            print("password file by %s (%s...)" % (pw[1], pw[2]))
        sys.stdout.flush()
        if opt.scaling:
            records, med = scaling(opt, scenarios)
            tg = []
        else:
            records, med, tg = side_by_side(opt, scenarios, pw)
    finally:
        shutil.rmtree(opt.workdir, ignore_errors=True)
    if opt.json:
        with open(opt.json, "w") as f:
            json.dump({"started": started, "mode": "scaling" if opt.scaling else "side-by-side",
                       "options": {k: v for k, v in vars(opt).items() if k != "workdir"},
                       "scenarios": scenarios, "medians": med,
                       "targets": [{"target": t, "measured": m, "met": ok} for t, m, ok in tg],
                       "runs": records}, f, indent=1)
    # A scenario with no usable run for some broker is a failure of the script's job.
    empty = [(n, b) for n, per in med.items() for b, m in per.items()
             if isinstance(m, dict) and m.get("runs") == 0]
    if opt.scaling:
        empty = [(n, b) for n, per in med.items() for b, m in per.items()
                 if m.get("received_per_s") is None]
    if empty:
        print("side_by_side: no usable run for %s" % ", ".join("%s/%s" % e for e in empty),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
