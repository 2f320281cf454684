"""Pebble (Debian's `pebble`, an ACME test CA, RFC 8555) on loopback ports of its own.

The test makes Pebble's HTTPS certificate (its own small CA, so that smtpsd's [acme] ca_file
trusts exactly it), writes its configuration, and starts it with -dnsserver pointing at the
test's DNS server (tests/integration/dns_server.py): the names being validated resolve to
127.0.0.1 there and nowhere else. PEBBLE_VA_NOSLEEP=1 (no random validation delay) and
PEBBLE_WFE_NONCEREJECT pinned (0 unless the test asks) keep runs fast and deterministic.

    with Pebble(work_dir, dns_server="127.0.0.1:PORT", http_port=N[, eab_keys={kid: key}]
                [, validity_seconds=S]) as ca:
        ca.directory   # "https://127.0.0.1:PORT/dir"
        ca.ca_file     # the CA of Pebble's HTTPS listener
        ca.root_pem()  # the root that signs what Pebble issues (management interface)
        ca.certificate_status(serial_hex)  # {"Status": "Revoked", "Reason": 4, …}

Only the standard library.
"""

import json
import os
import ssl
import subprocess
import time
import urllib.request

from certificates import issue_leaf
from ports import free_port
from processes import end_process


class Pebble:
    def __init__(self, directory, dns_server, http_port, nonce_reject=0, eab_keys=None,
                 tls_port=None, authz_reuse=0, validity_seconds=None):
        """eab_keys: {kid: base64url MAC key}; given, Pebble requires External Account Binding.
        tls_port: where Pebble connects for tls-alpn-01 (RFC 8737), its config's tlsPort.
        authz_reuse: the percentage of valid authorizations Pebble reuses for a new order
        (PEBBLE_AUTHZREUSE; 0: every order is validated anew).
        validity_seconds: the lifetime of the certificates Pebble issues (its config's
        certificateValidityPeriod, Pebble 2.4; notAfter is notBefore + S - 1 s), default
        Pebble's five years."""
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.ca_file = os.path.join(directory, "pebble-ca.pem")
        ca_key = os.path.join(directory, "pebble-ca.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key, "-out",
                        self.ca_file, "-days", "2", "-subj", "/CN=pebble test listener CA"],
                       check=True, capture_output=True)
        cert, key = issue_leaf(os.path.join(directory, "listener"), self.ca_file, ca_key,
                               ["IP:127.0.0.1", "localhost"])
        self.port = free_port()
        self.management_port = free_port()
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": cert, "privateKey": key,
            "httpPort": http_port, "tlsPort": tls_port or free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": bool(eab_keys)}}
        if eab_keys:
            config["pebble"]["externalAccountMACKeys"] = dict(eab_keys)
        if validity_seconds:
            config["pebble"]["certificateValidityPeriod"] = int(validity_seconds)
        self.config_path = os.path.join(directory, "pebble.json")
        with open(self.config_path, "w") as f:
            json.dump(config, f)
        self.log_path = os.path.join(directory, "pebble.log")
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT=str(nonce_reject),
                   PEBBLE_AUTHZREUSE=str(authz_reuse))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["pebble", "-config", self.config_path, "-dnsserver", dns_server],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        self.directory = f"https://127.0.0.1:{self.port}/dir"
        self._wait_ready()

    def _context(self):
        return ssl.create_default_context(cafile=self.ca_file)

    def _wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("pebble exited:\n" + self.log())
            try:
                with urllib.request.urlopen(self.directory, context=self._context(),
                                            timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("pebble did not start:\n" + self.log())

    def root_pem(self):
        """The root of the chains Pebble issues (made anew at each start)."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the management interface's own test certificate
        with urllib.request.urlopen(f"https://127.0.0.1:{self.management_port}/roots/0",
                                    context=context, timeout=5) as answer:
            return answer.read().decode()

    def certificate_status(self, serial):
        """Pebble's word on a certificate it issued: {"Status": "Valid"|"Revoked", "Reason": N, …}."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the management interface's own test certificate
        url = f"https://127.0.0.1:{self.management_port}/cert-status-by-serial/{serial}"
        with urllib.request.urlopen(url, context=context, timeout=5) as answer:
            return json.loads(answer.read())

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.process is not None:
            end_process(self.process)
            self.process = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
