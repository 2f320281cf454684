"""A scripted remote SMTP server on loopback, for the onward-delivery and probe tests.

It plays the next hop, or a badly configured server, where a second smtpsd cannot:
answering 4xx then 250, or 5xx, offering no STARTTLS, AUTH before STARTTLS, or keeping
commands sent along with STARTTLS for after the handshake (CVE-2011-0411). Standard library
only. Each RCPT address may have a script of replies (the last one repeats); everything
received is recorded.

    with FakeSmtp(cert=..., key=..., starttls=True, rcpt={"a@x": ["451 4.3.0 busy", "250 ok"]}) as remote:
        remote.port, remote.messages, remote.connections
"""

import ssl
import threading

from loopback_listener import LoopbackListener


class FakeSmtp(LoopbackListener):
    def __init__(self, cert=None, key=None, starttls=True, rcpt=None, name="fake.test",
                 dsn=False, broken_tls=False, auth=None, auth_before_tls=False,
                 injectable=False, ehlo_extra=None, ehlo_reply=None, busy=None,
                 host="127.0.0.1", port=0):
        self.cert, self.key = cert, key
        self.starttls = (starttls and cert is not None) or broken_tls
        self.rcpt_script = dict(rcpt or {})
        self.name = name
        self.dsn = dsn
        self.broken_tls = broken_tls  # answers 220 to STARTTLS, then no TLS at all
        self.auth = auth  # mechanisms advertised after STARTTLS ("PLAIN LOGIN"), or None
        self.auth_before_tls = auth_before_tls  # … and before it too
        self.injectable = injectable  # commands pipelined after STARTTLS survive it
        self.ehlo_extra = list(ehlo_extra or [])  # more EHLO lines (hostile text, say)
        self.ehlo_reply = ehlo_reply  # one reply to EHLO instead ("421 ..."), then a close
        self.busy = busy  # (n, "421 ..."): the greeting of every connection after the n-th
        self.messages = []  # (mail_from, [rcpt accepted], data bytes, tls version or None)
        self.connections = 0
        self.rcpt_counts = {}
        self.lock = threading.Lock()
        self._listen(host, port)

    def set_starttls(self, offered):
        with self.lock:
            self.starttls = offered and self.cert is not None

    def _accepted(self):
        with self.lock:
            self.connections += 1

    def _reply_for(self, address):
        with self.lock:
            n = self.rcpt_counts.get(address, 0)
            self.rcpt_counts[address] = n + 1
            script = self.rcpt_script.get(address)
        if not script:
            return "250 2.1.5 ok"
        return script[min(n, len(script) - 1)]

    def _serve(self, conn):
        conn.settimeout(30)
        stream, buffer, tls_version = conn, b"", None

        def send(line):
            stream.sendall(line.encode() + b"\r\n")

        def readline():
            nonlocal buffer
            while b"\n" not in buffer:
                data = stream.recv(65536)
                if not data:
                    return b""
                buffer += data
            line, buffer = buffer.split(b"\n", 1)
            return line + b"\n"

        try:
            with self.lock:
                busy = self.busy is not None and self.connections > self.busy[0]
            if busy:
                send(self.busy[1])
                return
            send(f"220 {self.name} ESMTP fake")
            mail_from, rcpts = None, []
            while True:
                line = readline()
                if not line:
                    return
                command = line.decode("utf-8", "replace").rstrip("\r\n")
                verb = command.split(" ", 1)[0].upper()
                if verb in ("EHLO", "LHLO") and self.ehlo_reply:
                    send(self.ehlo_reply)
                    return
                elif verb in ("EHLO", "LHLO"):
                    with self.lock:
                        offer = self.starttls and tls_version is None
                    lines = [self.name, "PIPELINING", "8BITMIME", "SIZE 100000000",
                             "ENHANCEDSTATUSCODES"] + self.ehlo_extra
                    if self.dsn:
                        lines.append("DSN")
                    if offer:
                        lines.append("STARTTLS")
                    if self.auth and (tls_version is not None or self.auth_before_tls):
                        lines.append("AUTH " + self.auth)
                    for i, text in enumerate(lines):
                        send(("250 " if i == len(lines) - 1 else "250-") + text)
                elif verb == "HELO":
                    send(f"250 {self.name}")
                elif verb == "STARTTLS" and self.broken_tls:
                    send("220 2.0.0 go ahead")
                    stream.sendall(b"this is not a TLS server hello\r\n")
                    return
                elif verb == "STARTTLS" and self.starttls and tls_version is None:
                    send("220 2.0.0 go ahead")
                    if not self.injectable:
                        buffer = b""  # the fix for CVE-2011-0411
                    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                    context.load_cert_chain(self.cert, self.key)
                    stream = context.wrap_socket(conn, server_side=True)
                    tls_version = stream.version()
                elif verb == "MAIL":
                    mail_from, rcpts = command[10:].split(">")[0].lstrip("<"), []
                    send("250 2.1.0 ok")
                elif verb == "RCPT":
                    address = command[8:].split(">")[0].lstrip("<")
                    reply = self._reply_for(address)
                    if reply.startswith("2"):
                        rcpts.append(address)
                    send(reply)
                elif verb == "DATA":
                    if not rcpts:
                        send("554 5.5.1 no valid recipients")
                        continue
                    send("354 go ahead")
                    data = b""
                    while not data.endswith(b"\r\n.\r\n") and data != b".\r\n":
                        chunk = readline()
                        if not chunk:
                            return
                        data += chunk
                    with self.lock:
                        self.messages.append((mail_from, list(rcpts), data, tls_version))
                    send("250 2.0.0 queued as FAKE%d" % len(self.messages))
                elif verb == "RSET":
                    mail_from, rcpts = None, []
                    send("250 2.0.0 ok")
                elif verb == "NOOP":
                    send("250 2.0.0 ok")
                elif verb == "QUIT":
                    send("221 2.0.0 bye")
                    return
                else:
                    send("502 5.5.2 not implemented")
        except (OSError, ssl.SSLError):
            return
        finally:
            try:
                stream.close()
            except OSError:
                pass
