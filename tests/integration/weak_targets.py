"""The deliberately weak TLS servers the probe is compared with testssl.sh on, one function
each, built the same way by the tests that probe them (test_probe.py ProbeOpenSslServer,
test_probe_postfix.py) and by the live testssl.sh run that records their findings in
tests/data/testssl/ (test_testssl_live.py). Each function starts its server for a test
case (stopped at its cleanup) and returns a Target; the cipher and protocol settings are
fixed here, so a fixture stays true as long as this file does. Certificates and keys are
new on every run: findings are compared by id, never by value.

    target = weak_postfix(self)   # self: a harness.ServerTestCase
    probe(f"localhost:{target.port}", *target.probe_args)
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from ports import free_port
from postfix import Postfix
from processes import end_process


@dataclass
class Target:
    name: str                 # the fixture's name: tests/data/testssl/<name>.json
    port: int
    starttls: bool            # STARTTLS (testssl.sh -t smtp) or TLS from the first byte
    ca: str = ""              # the CA that signed the server's certificate ("" self-signed)
    probe_args: list = field(default_factory=list)


def start_s_server(test, args):
    """`openssl s_server` on a free loopback port (ended at the test's cleanup); the port."""
    port = free_port()
    # Its standard input stays open: at its end s_server closes the connection it serves.
    server = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-quiet"]
                              + args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    test.addCleanup(server.stdin.close)
    test.addCleanup(end_process, server)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return port


def work_directory(test, prefix):
    work = tempfile.mkdtemp(prefix=prefix)
    test.addCleanup(shutil.rmtree, work, ignore_errors=True)
    return work


def self_signed(work, key_spec):
    subprocess.run(["openssl", "req", "-x509", "-newkey", key_spec, "-nodes", "-keyout",
                    f"{work}/key.pem", "-out", f"{work}/cert.pem", "-days", "30", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)


def s_server_rsa1024(test):
    """Implicit TLS with an RSA-1024 self-signed certificate, at OpenSSL security level 0 with
    its DEFAULT suites (RSA key exchange and CBC among them)."""
    work = work_directory(test, "smtpsd-probe-rsa1024-")
    self_signed(work, "rsa:1024")
    port = start_s_server(test, ["-cert", f"{work}/cert.pem", "-key", f"{work}/key.pem",
                                 "-cipher", "DEFAULT:@SECLEVEL=0"])
    return Target("s_server-rsa1024", port, starttls=False, probe_args=["--timeout", "2"])


def s_server_dh1024(test):
    """Implicit TLS with a 1024-bit DH group (RFC 5114's), secp192r1 beside secp384r1, and
    client-initiated renegotiation allowed; an RSA-2048 self-signed certificate."""
    work = work_directory(test, "smtpsd-probe-dh1024-")
    self_signed(work, "rsa:2048")
    subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt",
                    "dh_rfc5114:1", "-out", f"{work}/dh.pem"], check=True, capture_output=True)
    port = start_s_server(test, ["-cert", f"{work}/cert.pem", "-key", f"{work}/key.pem",
                                 "-cipher", "DHE-RSA-AES128-GCM-SHA256:"
                                 "ECDHE-RSA-AES256-GCM-SHA384:@SECLEVEL=0",
                                 "-dhparam", f"{work}/dh.pem",
                                 "-groups", "secp384r1:secp192r1", "-client_renegotiation"])
    return Target("s_server-dh1024", port, starttls=False, probe_args=["--timeout", "2"])


def expiring_certificate(tls_dir, days):
    """A new ECDSA key and certificate for localhost, signed by the test CA, valid `days`."""
    key, csr, pem, extensions = (os.path.join(tls_dir, name) for name in
                                 ("short.key", "short.csr", "short.pem", "short.ext"))
    with open(extensions, "w") as f:
        f.write("subjectAltName=DNS:localhost\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                    "-subj", "/CN=localhost", "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-days", str(days), "-in", csr,
                    "-CA", os.path.join(tls_dir, "ca.pem"),
                    "-CAkey", os.path.join(tls_dir, "ca.key"), "-CAcreateserial",
                    "-extfile", extensions, "-out", pem], check=True, capture_output=True)
    return pem, key


def development_pki(test):
    """The test CA and its "localhost" certificates (smtpsd's development PKI); the tls
    directory and the CA's path."""
    server = test.new_server()  # only for its development PKI; never started
    return os.path.join(server.dir, "tls"), server.ca


def start_postfix(test, **kwargs):
    postfix = Postfix(test.tmp, **kwargs)
    test.addCleanup(postfix.stop)
    return postfix.start()


def weak_postfix(test):
    """Postfix's submission port (STARTTLS) with TLS 1.0 and 1.1 at OpenSSL security level 0,
    the client's cipher order, AUTH before STARTTLS, and an ECDSA certificate of the test CA
    that expires in 5 days."""
    tls, ca = development_pki(test)
    cert, key = expiring_certificate(tls, 5)
    postfix = start_postfix(test, cert=cert, key=key, submission=True, protocols=">=TLSv1",
                            legacy_tls=True, auth_before_tls=True,
                            main_cf_extra=["tls_preempt_cipherlist = no"])
    return Target("weak-postfix", postfix.ports["submission"], starttls=True, ca=ca,
                  probe_args=["--cafile", ca])


def null_only_postfix(test):
    """Postfix's submission port (STARTTLS) with TLS 1.2 alone and nothing but NULL suites
    (no encryption at all)."""
    tls, ca = development_pki(test)
    postfix = start_postfix(test, cert=os.path.join(tls, "server-ecdsa.pem"),
                            key=os.path.join(tls, "server-ecdsa.key"), submission=True,
                            protocols=">=TLSv1.2, <=TLSv1.2",
                            main_cf_extra=["tls_medium_cipherlist = eNULL:@SECLEVEL=0",
                                           "tls_high_cipherlist = eNULL:@SECLEVEL=0"])
    return Target("null-only-postfix", postfix.ports["submission"], starttls=True, ca=ca,
                  probe_args=["--cafile", ca])


TARGETS = {"weak-postfix": weak_postfix, "null-only-postfix": null_only_postfix,
           "s_server-rsa1024": s_server_rsa1024, "s_server-dh1024": s_server_dh1024}
