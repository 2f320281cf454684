"""A private DNS server for tests: dnsmasq on a free 127.0.0.1 port with the given records.

Direct delivery looks up MX records (RFC 5321 §5.1, RFC 7505 null MX), sender checks TXT
records (SPF, DKIM, DMARC); a test points smtpsd's
resolver at `DnsServer.server` so that no query ever leaves the loopback interface. dnsmasq
runs in the foreground with no upstream (--no-resolv), no /etc/hosts and no configuration
file, and is stopped by the pid this class started. Names under a "local" domain that have
no record get NXDOMAIN (or NODATA when the name has records of another type); any other name
gets REFUSED, which a resolver treats as a temporary failure.

    with DnsServer(mx={"example.test": [(10, "mx1.example.test")]},
                   a={"mx1.example.test": "127.0.0.1"},
                   null_mx=["nomail.test"],
                   txt={"example.test": "v=spf1 ip4:127.0.0.1 -all"}) as dns:
        ... resolver servers = dns.server  ("127.0.0.1:PORT")

Only the standard library: PyPI is not reachable on CI machines.
"""

import os
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import ports
from processes import end_process

INSTALL_HINT = "dnsmasq not found: run scripts/install-deps.sh (Debian package dnsmasq-base)"

# RFC 1035 §3.2.2 / RFC 3596 TYPE values.
TYPE_A = 1
TYPE_CNAME = 5
TYPE_MX = 15
TYPE_TXT = 16
TYPE_AAAA = 28

RCODE_NOERROR = 0
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_REFUSED = 5


def find_dnsmasq():
    found = shutil.which("dnsmasq")
    if found:
        return found
    for candidate in ("/usr/sbin/dnsmasq", "/sbin/dnsmasq"):
        if os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(INSTALL_HINT)


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (DNS uses both, RFC 7766), locked for
    this process (ports.py)."""
    return ports.free_port(udp=True)


def _encode_name(name):
    labels = [label for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label.encode("ascii") for label in labels) + b"\0"


def _decode_name(message, offset):
    """Returns (name, offset after the name in place), following compression pointers."""
    labels = []
    end = None
    for _ in range(128):
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = offset + 2
            offset = struct.unpack(">H", message[offset:offset + 2])[0] & 0x3FFF
            continue
        offset += 1
        if length == 0:
            break
        labels.append(message[offset:offset + length].decode("ascii", "replace"))
        offset += length
    return ".".join(labels) + ".", (end if end is not None else offset)


def query(port, name, qtype, host="127.0.0.1", timeout=2.0):
    """One UDP query (RFC 1035 §4). Returns (rcode, answers) where answers is a list of
    (type, value): an address string for A/AAAA, (preference, exchange) for MX, the target
    name for CNAME, a tuple of the character-strings (str) for TXT, the raw bytes otherwise. Raises socket.timeout when nothing answers."""
    ident = random.randrange(1 << 16)
    packet = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0)  # RD, one question
    packet += _encode_name(name) + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (host, port))
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            message = sock.recv(65535)
            # QR set: a response. The kernel may bind this socket to the very port it sends to
            # while nothing listens there yet, and the query would come back to us.
            if (len(message) >= 12 and struct.unpack(">H", message[:2])[0] == ident
                    and message[2] & 0x80):
                break
    flags, qdcount, ancount = struct.unpack(">HHH", message[2:8])
    offset = 12
    for _ in range(qdcount):
        _, offset = _decode_name(message, offset)
        offset += 4
    answers = []
    for _ in range(ancount):
        _, offset = _decode_name(message, offset)
        rtype, _, _, rdlength = struct.unpack(">HHIH", message[offset:offset + 10])
        offset += 10
        rdata = message[offset:offset + rdlength]
        if rtype == TYPE_A:
            value = socket.inet_ntop(socket.AF_INET, rdata)
        elif rtype == TYPE_AAAA:
            value = socket.inet_ntop(socket.AF_INET6, rdata)
        elif rtype == TYPE_MX:
            value = (struct.unpack(">H", rdata[:2])[0], _decode_name(message, offset + 2)[0])
        elif rtype == TYPE_CNAME:
            value = _decode_name(message, offset)[0]
        elif rtype == TYPE_TXT:
            strings, at = [], 0
            while at < len(rdata):
                strings.append(rdata[at + 1:at + 1 + rdata[at]].decode("utf-8", "replace"))
                at += 1 + rdata[at]
            value = tuple(strings)
        else:
            value = rdata
        answers.append((rtype, value))
        offset += rdlength
    return flags & 0xF, answers


def _quote(text):
    """A dnsmasq configuration file string: in double quotes, with \\ and \" escaped."""
    if len(text.encode("utf-8")) > 255:
        raise ValueError(f"a TXT character-string is at most 255 bytes: {text[:40]}...")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _as_list(value):
    return [value] if isinstance(value, str) else list(value)


class DnsServer:
    """dnsmasq answering for the given records on 127.0.0.1:`port`. A context manager, or
    call stop(). Every argument is optional:

      mx       {domain: [(preference, exchange), ...]}; an exchange may be an IP literal
               (to test that the resolver refuses it)
      a        {name: "192.0.2.1" or ["192.0.2.1", ...]}
      aaaa     {name: "::1" or [...]}
      null_mx  [domain, ...]: a single MX "." with preference 0 (RFC 7505)
      cname    {alias: target}; dnsmasq answers only for targets it knows (a/aaaa)
      txt      {name: record or [record, ...]}: a record is a str (one character-string,
               at most 255 bytes: split a longer DKIM key yourself) or a tuple of str (the
               character-strings of one record, RFC 1035 §3.3.14); commas, semicolons,
               quotes and spaces are kept as given
      local    domains answered from these records only (NXDOMAIN/NODATA for the rest);
               the top-level domain of every record name is added. Other names: REFUSED.
      directory  where the log goes (a temp dir removed by stop() when not given)
    """

    def __init__(self, mx=None, a=None, aaaa=None, null_mx=None, cname=None, txt=None,
                 local=("test", "example", "invalid"), directory=None, extra_args=()):
        self.mx = dict(mx or {})
        self.a = {name: _as_list(value) for name, value in (a or {}).items()}
        self.aaaa = {name: _as_list(value) for name, value in (aaaa or {}).items()}
        self.null_mx = list(null_mx or [])
        self.cname = dict(cname or {})
        self.txt = {}
        for name, value in (txt or {}).items():
            records = [value] if isinstance(value, (str, tuple)) else list(value)
            self.txt[name] = [(record,) if isinstance(record, str) else tuple(record)
                              for record in records]
        names = (list(self.mx) + list(self.a) + list(self.aaaa) + self.null_mx
                 + list(self.cname) + list(self.txt))
        self.local = sorted(set(local) | {name.rstrip(".").rsplit(".", 1)[-1] for name in names})
        self.extra_args = list(extra_args)
        self.own_directory = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="smtpsd-dns-")
        self.log_path = os.path.join(self.dir, "dnsmasq.log")
        self.records_path = os.path.join(self.dir, "records.conf")
        self.process = None
        self.port = None
        self.server = None
        try:
            self.start()
        except BaseException:
            self.stop()
            raise

    def arguments(self, port):
        args = [find_dnsmasq(), "--keep-in-foreground", "--no-resolv", "--no-hosts",
                "--no-poll", "--conf-file=/dev/null", "--pid-file=", "--user=root",
                "--group=root", f"--port={port}", "--listen-address=127.0.0.1",
                "--bind-interfaces", f"--log-facility={self.log_path}", "--log-queries",
                "--cache-size=0"]
        args += [f"--local=/{domain}/" for domain in self.local]
        for domain, records in self.mx.items():
            for preference, exchange in records:
                args.append(f"--mx-host={domain},{exchange},{int(preference)}")
        for domain in self.null_mx:
            args.append(f"--mx-host={domain},.,0")
        # One --host-record per address (dnsmasq keeps only one address per family in a
        # single option); a name with only one family gets NODATA, not NXDOMAIN, for the other.
        for name in sorted(set(self.a) | set(self.aaaa)):
            for address in self.a.get(name, []) + self.aaaa.get(name, []):
                args.append(f"--host-record={name},{address}")
        for alias, target in self.cname.items():
            args.append(f"--cname={alias},{target}")
        if self.txt:
            # TXT records go through a configuration file: only its parser reads quoted
            # strings, so that a comma stays in its string instead of starting the next one.
            with open(self.records_path, "w", encoding="utf-8") as records:
                for name, strings_of_records in self.txt.items():
                    for strings in strings_of_records:
                        quoted = ",".join(_quote(text) for text in strings)
                        records.write(f"txt-record={name},{quoted}\n")
            args.append(f"--conf-file={self.records_path}")
        return args + self.extra_args

    def start(self):
        last_error = ""
        for _ in range(5):
            port = free_port()
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(self.arguments(port), stdin=subprocess.DEVNULL,
                                                stdout=log, stderr=log)
            if self._wait_ready(port):
                self.port = port
                self.server = f"127.0.0.1:{port}"
                return
            last_error = self.log()
            self._kill()
            if "Address already in use" not in last_error:
                break
        raise RuntimeError(f"dnsmasq did not start; its log ({self.log_path}):\n{last_error}")

    def _wait_ready(self, port, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                query(port, "ready.invalid", TYPE_A, timeout=0.2)
                return True
            except (socket.timeout, ConnectionRefusedError):
                time.sleep(0.02)
        return False

    def query(self, name, qtype):
        """A query to this server; see the module-level query()."""
        return query(self.port, name, qtype)

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return log.read()
        except FileNotFoundError:
            return ""

    def _kill(self):
        end_process(self.process, timeout=5)
        self.process = None

    def stop(self):
        self._kill()
        if self.own_directory:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()
