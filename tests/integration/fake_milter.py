"""A scripted milter (the Sendmail milter protocol, version 6, the filter's side) for tests.

Listens on a unix socket of its own; each connection is served by a thread. What it receives
is recorded (`events`: one list of (kind, ...) tuples per connection); what it answers is
decided by `script(stage, event, conversation)`, which returns one of:
  None            the default: continue (nothing for steps the negotiation said need no reply)
  [(cmd, data)]   packets to send, in order (modifications, then the final reply); a number
                  among them is a pause of that many seconds
  "hang"          send nothing and wait for the MTA to give up (a slow milter)
  "close"         close the connection (a milter that dies mid-conversation)
  ("sleep", s, packets)  wait s seconds, then send the packets
Stages: connect helo mail rcpt data header eoh body eom. `conversation` is a dict per
connection the script may keep state in (it also holds "events").

Only the standard library.
"""

import os
import socket
import struct
import threading
import time

# Replies (SMFIR_*).
CONTINUE = (b"c", b"")
ACCEPT = (b"a", b"")
REJECT = (b"r", b"")
TEMPFAIL = (b"t", b"")
DISCARD = (b"d", b"")
SKIP = (b"s", b"")
PROGRESS = (b"p", b"")


def replycode(text):
    return (b"y", text.encode() + b"\0")


def add_header(name, value):
    return (b"h", name.encode() + b"\0" + value.encode() + b"\0")


def insert_header(index, name, value):
    return (b"i", struct.pack(">I", index) + name.encode() + b"\0" + value.encode() + b"\0")


def change_header(index, name, value):
    return (b"m", struct.pack(">I", index) + name.encode() + b"\0" + value.encode() + b"\0")


def replace_body(data):
    return (b"b", data)


def change_sender(address):
    return (b"e", f"<{address}>".encode() + b"\0")


def add_recipient(address):
    return (b"+", f"<{address}>".encode() + b"\0")


def delete_recipient(address):
    return (b"-", f"<{address}>".encode() + b"\0")


def quarantine(reason):
    return (b"q", reason.encode() + b"\0")


STAGES = {b"C": "connect", b"H": "helo", b"M": "mail", b"R": "rcpt", b"T": "data",
          b"L": "header", b"N": "eoh", b"B": "body", b"E": "eom"}
# The SMFIP_NR_* flag of each stage.
NO_REPLY = {"connect": 0x1000, "helo": 0x2000, "mail": 0x4000, "rcpt": 0x8000, "data": 0x10000,
            "header": 0x80, "eoh": 0x40000, "body": 0x80000}


def _strings(data):
    parts = data.split(b"\0")
    return [p.decode("utf-8", "replace") for p in parts[:-1]]


class FakeMilter:
    def __init__(self, path, script=None, actions=0x1ff, protocol=0, macros=None):
        self.path = path
        self.script = script or (lambda stage, event, conversation: None)
        self.actions = actions
        self.protocol = protocol
        self.macros = macros or {}  # SMFIR_SETSYMLIST: {stage number: "j {client_addr}"}
        self.conversations = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(path):
            os.unlink(path)
        self.sock.bind(path)
        self.sock.listen(16)
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def events(self):
        with self.lock:
            return [list(c["events"]) for c in self.conversations]

    def wait_for(self, predicate, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate(self.events()):
                return True
            time.sleep(0.01)
        raise AssertionError(f"milter events: {self.events()}")

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn, n):
        out = b""
        while len(out) < n:
            chunk = conn.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out

    @staticmethod
    def _send(conn, packets):
        for item in packets:
            if isinstance(item, (int, float)):  # a pause between packets (SMFIR_PROGRESS)
                time.sleep(item)
                continue
            cmd, data = item
            conn.sendall(struct.pack(">I", len(data) + 1) + cmd + data)

    def _serve(self, conn):
        conversation = {"events": [], "macros": {}}
        with self.lock:
            self.conversations.append(conversation)
        try:
            while True:
                (length,) = struct.unpack(">I", self._read(conn, 4))
                packet = self._read(conn, length)
                cmd, data = packet[:1], packet[1:]
                event = self._decode(cmd, data, conversation)
                with self.lock:
                    conversation["events"].append(event)
                if cmd == b"O":
                    reply = struct.pack(">III", 6, self.actions, self.protocol)
                    for stage, names in self.macros.items():
                        reply += struct.pack(">I", stage) + names.encode() + b"\0"
                    self._send(conn, [(b"O", reply)])
                    continue
                if cmd == b"Q":
                    return
                stage = STAGES.get(cmd)
                if stage is None:  # macros, abort: no reply
                    continue
                answer = self.script(stage, event, conversation)
                if answer == "hang":
                    while conn.recv(4096):
                        pass
                    return
                if answer == "close":
                    return
                if isinstance(answer, tuple) and answer and answer[0] == "sleep":
                    time.sleep(answer[1])
                    answer = answer[2]
                if answer is None:
                    if self.protocol & NO_REPLY.get(stage, 0):
                        continue
                    answer = [CONTINUE]
                self._send(conn, answer)
        except (EOFError, OSError):
            pass
        finally:
            conn.close()

    @staticmethod
    def _decode(cmd, data, conversation):
        if cmd == b"D":
            strings = _strings(data[1:])
            values = dict(zip(strings[0::2], strings[1::2]))
            conversation["macros"].update(values)
            return ("macro", data[:1].decode(), values)
        if cmd == b"C":
            host_end = data.index(b"\0")
            family = data[host_end + 1:host_end + 2].decode()
            port, address = 0, ""
            if family in ("4", "6"):
                (port,) = struct.unpack(">H", data[host_end + 2:host_end + 4])
                address = data[host_end + 4:-1].decode()
            return ("connect", data[:host_end].decode(), family, port, address)
        if cmd == b"L":
            name, value = _strings(data)
            return ("header", name, value)
        if cmd == b"B":
            return ("body", data)
        if cmd in (b"M", b"R", b"H"):
            return ({b"M": "mail", b"R": "rcpt", b"H": "helo"}[cmd], *_strings(data))
        if cmd == b"O":
            return ("optneg",) + struct.unpack(">III", data[:12])
        return ({b"T": "data", b"N": "eoh", b"E": "eom", b"A": "abort", b"Q": "quit",
                 b"K": "quit_nc"}.get(cmd, cmd.decode(errors="replace")),)
