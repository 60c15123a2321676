"""Test certificates and TLS helpers for test_17_tls, test_18_websockets, test_19_proxy,
test_22_tls_engine, test_24_haproxy.

`Certs(dir)` makes, with the openssl CLI, everything the TLS tests need (EC P-256 keys,
so it takes well under a second):

  ca.crt / ca.key          the test CA (an `openssl ca` directory, for the CRL)
  server.crt / .key        CN=localhost, SAN IP:127.0.0.1 and DNS:localhost
  server2.crt / .key       another server certificate (for the reload test)
  client.crt / .key        CN=client1, O=Acme, OU=Dev
  nocn.crt / .key          O=Acme only (no CN)
  expired.crt / .key       CN=expired, valid in January 2020 only
  revoked.crt / .key       CN=revoked, revoked in crl.pem
  crl.pem                  the CA's CRL listing revoked.crt
  other-ca.crt / .key      an unrelated CA
  intruder.crt / .key      CN=intruder, signed by the unrelated CA
  psk.txt                  mosquitto psk_file: client1 and sensor7

Nothing is committed: the files live in a temp dir made by the test module.
"""

import os
import shutil
import signal
import ssl
import subprocess
import tempfile

from harness import HOST, TIMEOUT

OPENSSL = "/usr/bin/openssl"

PSK_KEYS = {"client1": "00112233445566778899aabbccddeeff", "sensor7": "deadbeefcafe"}


def _run(args, cwd):
    p = subprocess.run([OPENSSL] + args, cwd=cwd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args),
                                                    p.stdout.decode("utf-8", "replace")))
    return p.stdout


_CA_CNF = """
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = %(dir)s
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/%(name)s.crt
private_key = $dir/%(name)s.key
serial = $dir/%(name)s.serial
crlnumber = $dir/%(name)s.crlnumber
default_md = sha256
default_days = 30
default_crl_days = 30
policy = any_policy
unique_subject = no
copy_extensions = copy
email_in_dn = no
[ any_policy ]
commonName = optional
organizationName = optional
organizationalUnitName = optional
[ server_ext ]
subjectAltName = IP:127.0.0.1, DNS:localhost
extendedKeyUsage = serverAuth
[ client_ext ]
extendedKeyUsage = clientAuth
"""


class Certs:
    def __init__(self, directory):
        self.dir = directory
        os.makedirs(os.path.join(directory, "newcerts"), exist_ok=True)
        self._ca("ca", "/CN=culex test CA")
        self._ca("other-ca", "/CN=some other CA")
        self._issue("ca", "server", "/CN=localhost", "server_ext")
        self._issue("ca", "server2", "/CN=localhost/O=Renewed", "server_ext")
        self._issue("ca", "client", "/CN=client1/O=Acme/OU=Dev", "client_ext")
        self._issue("ca", "nocn", "/O=Acme", "client_ext")
        self._issue("ca", "expired", "/CN=expired", "client_ext",
                    dates=("20200101000000Z", "20200201000000Z"))
        self._issue("ca", "revoked", "/CN=revoked", "client_ext")
        self._issue("other-ca", "intruder", "/CN=intruder", "client_ext")
        _run(["ca", "-batch", "-config", self._cnf("ca"), "-revoke", self.path("revoked.crt")],
             directory)
        _run(["ca", "-batch", "-config", self._cnf("ca"), "-gencrl", "-out",
              self.path("crl.pem")], directory)
        with open(self.path("psk.txt"), "w") as f:
            f.write("# identity:hexkey\n")
            for ident, key in PSK_KEYS.items():
                f.write("%s:%s\n" % (ident, key))
        for name in os.listdir(directory):
            p = os.path.join(directory, name)
            if os.path.isfile(p):
                os.chmod(p, 0o644)   # a broker started as root drops privileges
        os.chmod(directory, 0o755)

    def path(self, name):
        return os.path.join(self.dir, name)

    def pem(self, name):
        """`name`.pem: certificate and key in one file (HAProxy's `crt`); returns its path."""
        out = self.path(name + ".pem")
        if not os.path.exists(out):
            with open(out, "w") as f:
                for ext in (".crt", ".key"):
                    with open(self.path(name + ext)) as part:
                        f.write(part.read())
            os.chmod(out, 0o644)
        return out

    def _cnf(self, ca):
        return self.path(ca + ".cnf")

    def _ca(self, name, subject):
        d = self.dir
        with open(self._cnf(name), "w") as f:
            f.write(_CA_CNF % {"dir": d, "name": name})
        open(os.path.join(d, "index.txt"), "a").close()
        with open(os.path.join(d, name + ".serial"), "w") as f:
            f.write("%02X\n" % (0x10 + len(name)))
        with open(os.path.join(d, name + ".crlnumber"), "w") as f:
            f.write("01\n")
        _run(["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
              "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", name + ".key", "-out",
              name + ".crt", "-days", "30", "-subj", subject], d)

    def _issue(self, ca, name, subject, ext, dates=None):
        d = self.dir
        _run(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", subject], d)
        args = ["ca", "-batch", "-notext", "-config", self._cnf(ca), "-extensions", ext,
                "-in", name + ".csr", "-out", name + ".crt"]
        if dates:
            args += ["-startdate", dates[0], "-enddate", dates[1]]
        _run(args, d)

    # -- broker config ------------------------------------------------------------------------
    def server_lines(self, cafile=True, require=False, extra=()):
        lines = ["certfile " + self.path("server.crt"), "keyfile " + self.path("server.key")]
        if cafile:
            lines.append("cafile " + self.path("ca.crt"))
        if require:
            lines.append("require_certificate true")
        return lines + list(extra)

    # -- client contexts ----------------------------------------------------------------------
    def context(self, cert=None, ca="ca.crt", version=None):
        """A client SSLContext trusting `ca`, presenting `cert` (e.g. "client"), pinned to
        ssl.TLSVersion `version` if given."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.path(ca))
        if cert:
            ctx.load_cert_chain(self.path(cert + ".crt"), self.path(cert + ".key"))
        if version is not None:
            ctx.minimum_version = version
            ctx.maximum_version = version
        return ctx


class ModuleCerts:
    """The `Certs` of one test module, made in a temp dir by its setUpModule and removed by
    its tearDownModule; attributes are the Certs' once made:

        CERTS = ModuleCerts()
        setUpModule, tearDownModule = CERTS.make, CERTS.remove
    """

    def __init__(self):
        self._certs = None
        self._dir = None

    def make(self):
        self._dir = tempfile.mkdtemp(prefix="culex-certs-")
        self._certs = Certs(self._dir)

    def remove(self):
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __getattr__(self, name):
        if self._certs is None:
            raise AttributeError("%s: the certificates are made in setUpModule" % name)
        return getattr(self._certs, name)


def run_tool(args, timeout=TIMEOUT):
    """Runs mosquitto_pub/sub to completion (killed by PID on overrun)."""
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
    return p.returncode, out.decode("utf-8", "replace")


def tls_socket(port, ctx, timeout=5.0):
    """A TLS connection to the broker; raises ssl.SSLError / OSError when refused."""
    import socket
    raw = socket.create_connection((HOST, port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname="localhost")
    except Exception:
        raw.close()
        raise
