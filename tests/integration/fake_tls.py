"""A scripted SMTP server whose TLS answers what no TLS library in Debian 12 still answers:
Heartbleed (CVE-2014-0160), CCS injection (CVE-2014-0224) and SSL 2.0 (DROWN), for the
`smtpsctl probe` tests. Standard library only, loopback only.

It offers STARTTLS. After "220 ready" it peeks at the client's first bytes without taking
them:
- an SSL 2.0 CLIENT-HELLO gets an SSL 2.0 SERVER-HELLO (with `ssl2`), else the connection
  is closed as a TLS server would;
- the probe's hand-built ClientHellos (recognised by their fixed, non-random "random") get
  canned answers from a TLS 1.2 server with one suite, ECDHE-RSA-AES128-GCM-SHA256 on
  secp256r1: ServerHello (with the heartbeat extension when asked and `heartbleed`),
  ServerKeyExchange, ServerHelloDone. Then an overlong HeartbeatRequest gets 16 KiB of
  "memory" back (`heartbleed`), and an early ChangeCipherSpec is taken and the next record
  "fails its MAC" (`ccs`), or is refused with unexpected_message; with `stream`, either
  gets handshake records without end instead (a hostile server that never answers); with
  `heartbeat_answer` 23 or 24, the heartbeat gets application data or a heartbeat request
  of 16 KiB back (answers that show neither a leak nor a refusal);
- with `robot` ("strong" or "weak") and an RSA key, a hello that offers
  TLS_RSA_WITH_AES_128_GCM_SHA256 gets that suite (RSA key exchange), the certificate and
  ServerHelloDone; the ClientKeyExchange is decrypted with the key (textbook RSA, pow) and
  its PKCS#1 v1.5 padding checked, and the server gives itself away as the servers of the
  ROBOT paper did (a Bleichenbacher oracle): "strong" resets the connection on wrong first
  bytes and alerts decrypt_error on a missing or misplaced separator, "weak" alerts
  decrypt_error on any bad padding; both alert bad_record_mac after the Finished when the
  padding was right (a correct server answers all alike);
- any other hello (the probe's OpenSSL handshakes) goes to a real TLS server (Python's ssl
  module), with a minimal SMTP inside.

    with FakeTls(cert, key, heartbleed=True) as fake:
        fake.port, fake.MEMORY (what must never be printed)
"""

import base64
import socket
import ssl
import struct

from loopback_listener import LoopbackListener

PROBE_RANDOM = bytes(0x5A ^ i for i in range(32))
SUITE = 0xC02F  # TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
ROBOT_SUITE = 0x009C  # TLS_RSA_WITH_AES_128_GCM_SHA256
GROUP = 0x0017  # secp256r1


def record(content_type, body, version=0x0303):
    return struct.pack("!BHH", content_type, version, len(body)) + body


def handshake(message_type, body):
    return struct.pack("!B", message_type) + len(body).to_bytes(3, "big") + body


def der_items(data):
    """The (tag, content) of each DER item in data, in order (lengths in short or long form)."""
    items, at = [], 0
    while at < len(data):
        tag, length = data[at], data[at + 1]
        at += 2
        if length & 0x80:
            size = length & 0x7F
            length = int.from_bytes(data[at:at + size], "big")
            at += size
        items.append((tag, data[at:at + length]))
        at += length
    return items


def rsa_private_numbers(pem_path):
    """(n, d) of an RSA private key in PEM, PKCS#8 ("PRIVATE KEY") or PKCS#1 ("RSA PRIVATE
    KEY"): RFC 8017 appendix A.1.2, RFC 5208 §5."""
    with open(pem_path) as f:
        text = f.read()
    body = "".join(line for line in text.splitlines() if line and not line.startswith("-----"))
    (_, sequence), = der_items(base64.b64decode(body))
    fields = der_items(sequence)
    if fields[1][0] == 0x30:  # PKCS#8: version, AlgorithmIdentifier, OCTET STRING
        (_, sequence), = der_items(fields[2][1])
        fields = der_items(sequence)
    # RSAPrivateKey: version, n, e, d, ...
    return int.from_bytes(fields[1][1], "big"), int.from_bytes(fields[3][1], "big")


class FakeTls(LoopbackListener):
    MEMORY = b"SECRET-PRIVATE-KEY-MATERIAL"

    def __init__(self, cert, key, heartbleed=False, ccs=False, ssl2=False, stream=False,
                 heartbeat_answer=None, robot=None):
        self.heartbleed, self.ccs, self.ssl2, self.stream = heartbleed, ccs, ssl2, stream
        self.heartbeat_answer = heartbeat_answer
        self.robot = robot
        if robot:
            self.rsa_n, self.rsa_d = rsa_private_numbers(key)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        with open(cert) as f:  # the leaf: the first certificate of the chain file
            leaf = f.read().split("-----END CERTIFICATE-----")[0]
            self.certificate_der = ssl.PEM_cert_to_DER_cert(leaf + "-----END CERTIFICATE-----\n")
        self._listen()

    def _serve(self, conn):
        conn.settimeout(30)
        try:
            with conn:
                self._session(conn)
        except (OSError, ssl.SSLError, ValueError):
            pass

    @staticmethod
    def _lines(conn, buffer):
        """The next CRLF line (bytes), reading as needed; None at the end."""
        while b"\r\n" not in buffer[0]:
            data = conn.recv(4096)
            if not data:
                return None
            buffer[0] += data
        line, buffer[0] = buffer[0].split(b"\r\n", 1)
        return line

    def _session(self, conn):
        conn.sendall(b"220 fake-tls.test ESMTP\r\n")
        buffer = [b""]
        while True:
            line = self._lines(conn, buffer)
            if line is None:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250-fake-tls.test\r\n250 STARTTLS\r\n")
            elif verb == b"STAR":
                conn.sendall(b"220 ready\r\n")
                break  # what came with STARTTLS is dropped (RFC 3207 §4.2)
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"502 no\r\n")
        first = conn.recv(4096, socket.MSG_PEEK)
        if not first:
            return
        if first[0] & 0x80:
            if self.ssl2:
                self._ssl2_server_hello(conn)
            return
        hello = self._read_record(conn, peek=True)
        if hello is not None and hello[11:43] == PROBE_RANDOM:
            self._canned(conn, self._read_record(conn))
            return
        tls = self.context.wrap_socket(conn, server_side=True)
        buffer = [b""]
        while True:
            line = self._lines(tls, buffer)
            if line is None:
                return
            if line[:4].upper() == b"QUIT":
                tls.sendall(b"221 bye\r\n")
                return
            tls.sendall(b"250-fake-tls.test\r\n250 AUTH PLAIN\r\n" if line[:4].upper() ==
                        b"EHLO" else b"250 ok\r\n")

    @staticmethod
    def _read_record(conn, peek=False):
        """One whole TLS record (header included), taken or only peeked at."""
        flags = socket.MSG_PEEK if peek else 0
        data = b""
        while True:
            data = conn.recv(5 + 16384 + 2048, flags) if peek else data + conn.recv(
                5 + 16384 + 2048 - len(data))
            if len(data) >= 5 and len(data) >= 5 + struct.unpack("!H", data[3:5])[0]:
                return data[:5 + struct.unpack("!H", data[3:5])[0]]
            if peek:
                if not data:
                    return None
                continue
            if not data:
                return None

    def _ssl2_server_hello(self, conn):
        body = struct.pack("!BBBHHHH", 4, 0, 1, 0x0002, len(self.certificate_der), 3, 16)
        body += self.certificate_der + bytes([0x07, 0x00, 0xC0]) + b"c" * 16
        conn.sendall(struct.pack("!H", 0x8000 | len(body)) + body)

    def _canned(self, conn, hello_record):
        """A TLS 1.2 server with one suite, as OpenSSL 1.0.1 answered, from hand."""
        body = hello_record[5 + 4:]
        version = struct.unpack("!H", body[0:2])[0]
        at = 2 + 32
        at += 1 + body[at]
        suites_length = struct.unpack("!H", body[at:at + 2])[0]
        suites = [struct.unpack("!H", body[i:i + 2])[0]
                  for i in range(at + 2, at + 2 + suites_length, 2)]
        at += 2 + suites_length
        at += 1 + body[at]
        extensions = {}
        if at + 2 <= len(body):
            end = at + 2 + struct.unpack("!H", body[at:at + 2])[0]
            at += 2
            while at + 4 <= end:
                kind, size = struct.unpack("!HH", body[at:at + 4])
                extensions[kind] = body[at + 4:at + 4 + size]
                at += 4 + size
        groups = []
        if 0x000A in extensions:
            data = extensions[0x000A]
            groups = [struct.unpack("!H", data[i:i + 2])[0] for i in range(2, len(data), 2)]

        def alert(description):
            conn.sendall(record(21, bytes([2, description])))

        if 0x002B in extensions or version != 0x0303:
            return alert(70)  # protocol_version: TLS 1.2 only, by hand
        if 0x5600 in suites:
            return alert(86)  # inappropriate_fallback
        if self.robot and ROBOT_SUITE in suites:
            return self._rsa_key_exchange(conn, version)
        if SUITE not in suites or GROUP not in groups:
            return alert(40)  # handshake_failure
        server_extensions = b"\xff\x01\x00\x01\x00"
        if self.heartbleed and 0x000F in extensions:
            server_extensions += b"\x00\x0f\x00\x01\x01"
        server_hello = (struct.pack("!H", 0x0303) + b"r" * 32 + b"\x00" +
                        struct.pack("!HB", SUITE, 0) +
                        struct.pack("!H", len(server_extensions)) + server_extensions)
        key_exchange = b"\x03" + struct.pack("!H", GROUP) + b"\x41" + b"\x04" * 65 + \
            b"\x04\x01\x00\x02sg"
        conn.sendall(record(22, handshake(2, server_hello) + handshake(11, b"\x00\x00\x00") +
                            handshake(12, key_exchange) + handshake(14, b"")))
        following = self._read_record(conn)
        if following is None:
            return
        while self.stream:  # until the client gives up and closes: sendall then fails
            conn.sendall(record(22, handshake(4, b"t" * 16000)))
        if following[0] == 24 and self.heartbeat_answer == 23:
            conn.sendall(record(23, b"d" * 32))
        elif following[0] == 24 and self.heartbeat_answer == 24:
            # heartbeat_request (1), not heartbeat_response (2): large, yet no echo.
            conn.sendall(record(24, b"\x01" + struct.pack("!H", 16384) + b"q" * 16400))
        elif following[0] == 24 and self.heartbleed:
            # The claimed length, with this "memory" where the payload should have been.
            claimed = struct.unpack("!H", following[6:8])[0]
            payload = (self.MEMORY * (claimed // len(self.MEMORY) + 1))[:claimed]
            conn.sendall(record(24, b"\x02" + struct.pack("!H", claimed) + payload +
                                b"p" * 16))
        elif following[0] == 20:
            alert(20 if self.ccs else 10)  # bad_record_mac once it took the CCS

    @staticmethod
    def _take_records(conn, count):
        """Exactly `count` whole TLS records from the connection (nothing after them)."""
        data, records = b"", []
        while len(records) < count:
            while len(data) < 5 or len(data) < 5 + struct.unpack("!H", data[3:5])[0]:
                more = conn.recv(5 - len(data) if len(data) < 5 else
                                 5 + struct.unpack("!H", data[3:5])[0] - len(data))
                if not more:
                    return None
                data += more
            size = 5 + struct.unpack("!H", data[3:5])[0]
            records.append(data[:size])
            data = data[size:]
        return records

    def _padding(self, encrypted, version):
        """What is wrong with the PKCS#1 v1.5 block inside (RFC 8017 §7.2.2), "" if nothing."""
        size = (self.rsa_n.bit_length() + 7) // 8
        block = pow(int.from_bytes(encrypted, "big"), self.rsa_d, self.rsa_n).to_bytes(size, "big")
        if block[:2] != b"\x00\x02":
            return "first bytes"
        separator = block.find(b"\x00", 2)
        if separator < 10:  # none, or fewer than 8 bytes of padding
            return "separator"
        premaster = block[separator + 1:]
        if len(premaster) != 48:
            return "separator"
        return "" if struct.unpack("!H", premaster[:2])[0] == version else "version"

    def _rsa_key_exchange(self, conn, version):
        """TLS_RSA_WITH_AES_128_GCM_SHA256, then the oracle of the ROBOT paper (class doc)."""
        server_hello = (struct.pack("!H", 0x0303) + b"r" * 32 + b"\x00" +
                        struct.pack("!HB", ROBOT_SUITE, 0) + b"\x00\x05\xff\x01\x00\x01\x00")
        certificate = len(self.certificate_der).to_bytes(3, "big") + self.certificate_der
        conn.sendall(record(22, handshake(2, server_hello) +
                            handshake(11, len(certificate).to_bytes(3, "big") + certificate) +
                            handshake(14, b"")))
        records = self._take_records(conn, 1)
        if records is None:
            return
        key_exchange = records[0][5:]
        if records[0][0] != 22 or key_exchange[0] != 16:
            return conn.sendall(record(21, bytes([2, 10])))  # unexpected_message
        if self._take_records(conn, 2) is None:  # ChangeCipherSpec, Finished
            return
        wrong = self._padding(key_exchange[4 + 2:], version)
        if wrong == "first bytes" and self.robot == "strong":
            # An abortive close: SO_LINGER with a zero timeout makes close() send a reset.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if wrong in ("first bytes", "separator"):
            return conn.sendall(record(21, bytes([2, 51])))  # decrypt_error
        conn.sendall(record(21, bytes([2, 20])))  # bad_record_mac: the Finished cannot verify
