"""Smoke test of tests/bench/side_by_side.py: one cheap scenario (--quick, one run each)
against culex and, when installed, Debian's mosquitto. It checks that the script exits 0,
prints the scenario's table and a ratio line, and writes --json with a sample per broker.
It measures nothing (the figures of a 1-second run on a shared machine mean little).

Environment: CULEX_BROKER (the culex binary), CULEX_BENCH (culex_bench). Standard library
only; loopback only; the script ends only the processes it started, by PID."""

import json
import os
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "side_by_side.py")
BROKER = os.environ.get("CULEX_BROKER", "")
BENCH = os.environ.get("CULEX_BENCH", "")
MOSQUITTO = "/usr/sbin/mosquitto"


@unittest.skipUnless(BROKER and BENCH, "CULEX_BROKER and CULEX_BENCH must be set")
class SideBySide(unittest.TestCase):

    def test_quick_latency_q0(self):
        with tempfile.TemporaryDirectory(prefix="sbs-test-") as d:
            out_json = os.path.join(d, "out.json")
            p = subprocess.run(
                ["/usr/bin/python3", SCRIPT, "--culex", BROKER, "--bench", BENCH, "--quick",
                 "--only", "latency-q0", "--repeat", "1", "--duration", "0.5", "--json",
                 out_json], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, timeout=60)
            out, err = p.stdout.decode(), p.stderr.decode()
            self.assertEqual(p.returncode, 0, out + err)
            self.assertIn("[latency-q0]", out)
            with open(out_json) as f:
                data = json.load(f)
        brokers = {r["broker"] for r in data["runs"] if "error" not in r}
        self.assertIn("culex", brokers, err)
        if os.access(MOSQUITTO, os.X_OK):
            self.assertIn("mosquitto", brokers, err)
            self.assertRegex(out, r"(?m)^ratio culex/mosquitto: cpu_us_per_msg [0-9.e+-]+x")
        for r in data["runs"]:
            self.assertGreater(r["derived"]["received"], 0, json.dumps(r)[:2000])


if __name__ == "__main__":
    unittest.main()
