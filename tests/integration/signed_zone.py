"""A DNSSEC-signed root zone of the test's own, served by BIND's named (Debian bind9), so
that the resolver's validating modes meet real signatures: secure answers, a bogus one (a
record changed after signing), and NXDOMAIN proven by NSEC.

The zone is "." itself, with every test name directly in it (no delegations), signed with
a fresh ECDSA P-256 key pair (KSK and ZSK) by dnssec-signzone. `trust_anchor` is the file
of the KSK's DNSKEY record, the form libunbound's trust-anchor files take. The zone's
NS is a.root-servers.net at 198.41.0.4, its real address, so that a resolver that starts
from its built-in root hints finds this server when the test runs it in a network
namespace of its own where that address is on the loopback interface (`listen`).

    with SignedRoot(['bad.test. TXT "v=spf1 -all"'], bogus={"bad.test.": '"v=spf1 +all"'}):
        root.server      # "127.0.0.1:PORT"
        root.trust_anchor

A record line is zone-file text without the class ("NAME TYPE RDATA", TTL 300). `bogus`
maps names (absolute, with the final dot) to the TXT rdata they are served with instead of
the one signed, or to (TYPE, rdata) for another type, so that their signature no longer
matches. `unsigned` maps zone names (absolute) to their records: each is delegated from the
root without a DS record (the signed NSEC proves there is none) and served, unsigned, by the
same named, so that its answers validate as insecure (RFC 4035 §5.2), not bogus:

    SignedRoot([...], unsigned={"plain.test.": ["plain.test. MX 10 mx.plain.test."]})
"""

import os
import re
import shutil
import subprocess
import tempfile
import time

from dns_server import free_port
from processes import end_process

NAMED = "/usr/sbin/named"
TOOLS = ("dnssec-keygen", "dnssec-signzone")
ROOT_ADDRESS = "198.41.0.4"  # a.root-servers.net
ROOT_HINTS = "/usr/share/dns/root.hints"  # Debian dns-root-data


def root_server_addresses():
    """Every address of the root servers a resolver may start from: Debian's root hints and
    the b.root addresses before its 2023 renumbering (libunbound's built-in hints may be
    older), so that a resolver in the test's namespace reaches this server whichever it picks.
    """
    addresses = ["199.9.14.201", "2001:500:200::b"]
    with open(ROOT_HINTS) as hints:
        for line in hints:
            fields = line.split()
            if len(fields) == 4 and fields[2] in ("A", "AAAA") and fields[3] not in addresses:
                addresses.append(fields[3])
    return addresses


def available():
    return os.path.exists(NAMED) and all(shutil.which(tool) for tool in TOOLS)


class NamedProcess:
    """One named of the test's own, its log in <dir>/named.log; stop() ends it (and removes
    the directory when it made it)."""

    def __init__(self, directory, prefix):
        self.own_directory = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix=prefix)
        self.process = None

    def run_named(self, conf, command_prefix=(), timeout=15.0):
        """Starts named on conf; True once it logs "running" (its zones loaded and sockets
        listening: read from the log, so that it works from outside a network namespace)."""
        with open(os.path.join(self.dir, "named.log"), "ab") as log:
            self.process = subprocess.Popen(list(command_prefix) + [NAMED, "-g", "-n", "1",
                                                                    "-c", conf],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if re.search(r"^\S+ \S+ running$", self.log(), re.M):
                return True
            time.sleep(0.05)
        return False

    def log(self):
        try:
            with open(os.path.join(self.dir, "named.log"), errors="replace") as log:
                return log.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.process is not None:
            end_process(self.process, timeout=5)
            self.process = None
        if self.own_directory:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


class SignedRoot(NamedProcess):
    def __init__(self, records, bogus=None, listen=("127.0.0.1",), port=None, directory=None,
                 namespace=None, unsigned=None):
        super().__init__(directory, "smtpsd-signed-")
        self.namespace = namespace
        self.listen = list(listen)
        self.port = None
        self.server = None
        self.unsigned = dict(unsigned or {})
        try:
            self.trust_anchor = self._sign(list(records) + self._delegations(), bogus or {})
            self._write_unsigned()
            self._start(port)
        except BaseException:
            self.stop()
            raise

    def _run(self, *args):
        return subprocess.run(list(args), cwd=self.dir, capture_output=True, text=True,
                              check=True).stdout.strip()

    def _delegations(self):
        """The root's NS and glue records of each unsigned zone (no DS: an insecure
        delegation)."""
        out = []
        for zone in self.unsigned:
            out += [f"{zone} NS ns.{zone}", f"ns.{zone} A {self.listen[0]}"]
        return out

    def _unsigned_file(self, zone):
        return os.path.join(self.dir, zone.rstrip(".") + ".zone")

    def _write_unsigned(self):
        for zone, records in self.unsigned.items():
            with open(self._unsigned_file(zone), "w") as out:
                out.write(f"$TTL 300\n{zone} SOA ns.{zone} hostmaster.{zone} 1 3600 600 86400 300\n"
                          f"{zone} NS ns.{zone}\nns.{zone} A {self.listen[0]}\n")
                for record in records:
                    out.write(record + "\n")

    def republish(self, records):
        """The zone again with these records instead, signed with the same keys (the trust
        anchor stays), served by a new named on the same address and port."""
        self._sign(list(records) + self._delegations(), {})
        end_process(self.process, timeout=5)
        self.process = None
        os.replace(os.path.join(self.dir, "named.log"), os.path.join(self.dir, "named.log.1"))
        if not self.run_named(self._configuration(self.port),
                              self.namespace.prefix() if self.namespace else ()):
            raise RuntimeError(f"named did not start again; its log:\n{self.log()}")

    def _sign(self, records, bogus):
        if not getattr(self, "keys", None):
            self.keys = (self._run("dnssec-keygen", "-q", "-K", self.dir, "-a",
                                   "ECDSAP256SHA256", "-f", "KSK", "-n", "ZONE", "."),
                         self._run("dnssec-keygen", "-q", "-K", self.dir, "-a",
                                   "ECDSAP256SHA256", "-n", "ZONE", "."))
        ksk, zsk = self.keys
        zone = os.path.join(self.dir, "root.zone")
        with open(zone, "w") as out:
            out.write("$TTL 300\n"
                      ". SOA a.root-servers.net. hostmaster.example. 1 3600 600 86400 300\n"
                      ". NS a.root-servers.net.\n"
                      f"a.root-servers.net. A {ROOT_ADDRESS}\n"
                      f"$INCLUDE {ksk}.key\n$INCLUDE {zsk}.key\n")
            for record in records:
                out.write(record + "\n")
        # -O full: one record per line, so that a record can be changed below.
        self._run("dnssec-signzone", "-q", "-O", "full", "-K", self.dir, "-o", ".", "-f",
                  "root.signed", "-k", ksk + ".key", zone, zsk + ".key")
        signed = os.path.join(self.dir, "root.signed")
        if bogus:
            # The signed TXT records of these names get other strings: the RRSIG beside each
            # no longer matches what is served.
            with open(signed) as source:
                lines = source.read().splitlines()
            for index, line in enumerate(lines):
                fields = line.split(None, 4)
                if len(fields) < 5 or fields[0] not in bogus:
                    continue
                rtype, rdata = bogus[fields[0]] if isinstance(bogus[fields[0]], tuple) else (
                    "TXT", bogus[fields[0]])
                if fields[3] == rtype:
                    lines[index] = " ".join(fields[:4]) + " " + rdata
            with open(signed, "w") as out:
                out.write("\n".join(lines) + "\n")
        anchor = os.path.join(self.dir, "root.anchor")
        with open(os.path.join(self.dir, ksk + ".key")) as key, open(anchor, "w") as out:
            out.write("".join(line for line in key if not line.startswith(";")))
        return anchor

    def _configuration(self, port):
        v4 = " ".join(f"{address};" for address in self.listen if ":" not in address)
        v6 = " ".join(f"{address};" for address in self.listen if ":" in address)
        conf = os.path.join(self.dir, "named.conf")
        with open(conf, "w") as out:
            out.write(f"""options {{
    directory "{self.dir}";
    listen-on port {port} {{ {v4} }};
    listen-on-v6 port {port} {{ {v6 or "none;"} }};
    recursion no;
    dnssec-validation no;
    pid-file none;
    session-keyfile none;
    notify no;
}};
controls {{ }};
zone "." {{ type primary; file "{os.path.join(self.dir, 'root.signed')}"; }};
""")
            for zone in self.unsigned:
                out.write(f'zone "{zone}" {{ type primary; file "{self._unsigned_file(zone)}"; }};\n')
        return conf

    def _start(self, port):
        for _ in range(5):
            chosen = port or free_port()
            conf = self._configuration(chosen)
            if self.run_named(conf, self.namespace.prefix() if self.namespace else ()):
                self.port = chosen
                self.server = f"{self.listen[0]}:{chosen}"
                return
            end_process(self.process, timeout=5)
            self.process = None
            text = self.log()
            if port or "address in use" not in text:
                raise RuntimeError(f"named did not start; its log ({self.dir}/named.log):\n{text}")
        raise RuntimeError("named found no free port")


class ValidatingResolver(NamedProcess):
    """A second named, recursive and validating, for clients that trust the AD bit of
    /etc/resolv.conf's server (Postfix's DANE): it starts from a root hint that names the
    SignedRoot at root_address and validates with that root's trust anchor. Listens on
    listen:53 in `namespace` (where port 53 is the test's own)."""

    def __init__(self, trust_anchor, namespace, root_address=ROOT_ADDRESS, listen="127.0.0.1"):
        super().__init__(None, "smtpsd-resolver-")
        try:
            with open(trust_anchor) as anchor:
                flags, protocol, algorithm, *key = anchor.read().split("DNSKEY", 1)[1].split()
            with open(os.path.join(self.dir, "root.hints"), "w") as hints:
                hints.write(f". 3600000 NS a.root-servers.net.\n"
                            f"a.root-servers.net. 3600000 A {root_address}\n")
            conf = os.path.join(self.dir, "named.conf")
            with open(conf, "w") as out:
                out.write(f"""options {{
    directory "{self.dir}";
    listen-on port 53 {{ {listen}; }};
    listen-on-v6 {{ none; }};
    recursion yes;
    allow-recursion {{ any; }};
    dnssec-validation yes;
    pid-file none;
    session-keyfile none;
    notify no;
}};
controls {{ }};
trust-anchors {{ "." static-key {flags} {protocol} {algorithm} "{''.join(key)}"; }};
zone "." {{ type hint; file "{os.path.join(self.dir, 'root.hints')}"; }};
""")
            if not self.run_named(conf, namespace.prefix()):
                raise RuntimeError(f"the validating named did not start:\n{self.log()}")
        except BaseException:
            self.stop()
            raise


class NetworkNamespace:
    """A network namespace of the test's own (`ip netns`, root only): its loopback
    interface is up and carries `addresses` too, and programs run in it with prefix() see
    /etc/resolv.conf as "nameserver 127.0.0.1" (ip netns exec bind-mounts
    /etc/netns/NAME/resolv.conf). Nothing in it reaches the host's network."""

    _count = 0

    def __init__(self, addresses=()):
        NetworkNamespace._count += 1
        self.name = f"smtpsd-test-{os.getpid()}-{NetworkNamespace._count}"
        self.etc = os.path.join("/etc/netns", self.name)
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        try:
            os.makedirs(self.etc, exist_ok=True)
            with open(os.path.join(self.etc, "resolv.conf"), "w") as out:
                out.write("nameserver 127.0.0.1\n")
            self.run(["ip", "link", "set", "lo", "up"])
            for address in addresses:
                if ":" in address:
                    self.run(["ip", "-6", "addr", "add", address + "/128", "dev", "lo", "nodad"])
                else:
                    self.run(["ip", "addr", "add", address + "/32", "dev", "lo"])
        except BaseException:
            self.close()
            raise

    def prefix(self):
        return ["ip", "netns", "exec", self.name]

    def run(self, args, **kwargs):
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("check", True)
        return subprocess.run(self.prefix() + list(args), **kwargs)

    def close(self):
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)
        shutil.rmtree(self.etc, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
