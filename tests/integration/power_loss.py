"""The power-loss simulation (docs/testing.md "Power-loss simulation"): the real server runs
under a recorder of its file system calls (tests/durability/recorder.c, LD_PRELOAD), then
the states a power cut could have left on disk are built from a snapshot of the data
directory and that record, and on each one a fresh server must recover: every message it
had acknowledged delivered to the Maildir exactly once and whole, nothing corrupt
delivered, no error, an empty queue at the end.

The crash model (what survives a power cut at crash point c, a position in the record):
- a file's content and size are durable once an fsync or fdatasync of that file completed
  before c (it covers the calls complete when it began); a syncfs or sync covers everything;
- a directory entry change (create, mkdir, rename, link, unlink, rmdir) is durable once
  its directory was synced, again by an fsync of that directory begun after it; for a
  rename, the directory of the new name; a rename is one change, never half done;
- anything else that happened before c may or may not have reached the disk, in any
  combination: each directory entry change independently (applied in their order, those
  kept), and a file's unsynced writes torn at 4 KiB pages: each page shows one of the
  versions it had since the last sync, the size one of the sizes it had (what lies between
  is zeros).
Nothing in it knows the spool's layout: it works on any files under the data directory.

Crash points: after every completed sync and after every acknowledgement (the "250 queued
as" the recorder saw about to be sent), with the least that must have survived (only what is
durable); after every acknowledgement and at the end, with everything (as kill -9 leaves
it); then random points with random choices among what is not durable, from a seed that is
printed, until a number of states or a time is reached. States that are the same (files and
acknowledged ids) are checked once.

Standard library only. The long run: tests/durability/power_loss.py --help.
"""

import concurrent.futures
import hashlib
import os
import pickle
import random
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import threading
import time

from harness import SMTPSD, Server
from processes import end_process

HERE = os.path.dirname(os.path.abspath(__file__))
SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")
SHIMS = os.path.normpath(os.path.join(HERE, "..", "durability"))
PAGE = 4096
O_ACCMODE, O_RDONLY, O_CREAT, O_TRUNC, O_DIRECTORY = 0o3, 0, 0o100, 0o1000, 0o200000
FALLOC_FL_KEEP_SIZE = 1
QUEUED = re.compile(rb"250 2\.0\.0 Ok: queued as (\w+)")
MESSAGE_UID = re.compile(rb"power-loss-id: ([0-9a-f]{32})")


class ReplayError(Exception):
    """The record cannot be replayed faithfully: the simulation refuses to run on it."""


# Building the shims ------------------------------------------------------------------------

def build_shim(name):
    """tests/durability/<name>.c compiled into a shared object, cached per source text."""
    source = os.path.join(SHIMS, name + ".c")
    with open(source, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    cache = os.path.join(tempfile.gettempdir(), f"smtpsd-shims-{os.getuid()}")
    os.makedirs(cache, exist_ok=True)
    target = os.path.join(cache, f"{name}-{digest}.so")
    if not os.path.exists(target):
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            raise RuntimeError("a C compiler (cc) is needed to build " + source)
        scratch = target + f".{os.getpid()}.tmp"
        subprocess.run([cc, "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-o",
                        scratch, source, "-ldl", "-lpthread"], check=True)
        os.replace(scratch, target)
    return target


# The record --------------------------------------------------------------------------------

class Record:
    __slots__ = ("seq", "op", "pid", "tid", "fields", "data")

    def __init__(self, seq, op, pid, tid, fields, data):
        self.seq, self.op, self.pid, self.tid = seq, op, pid, tid
        self.fields, self.data = fields, data


def unescape(field):
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), field)


def read_log(path):
    """The records of a recorder log, in sequence order."""
    records = []
    with open(path, "rb") as f:
        while True:
            head = f.readline()
            if not head:
                break
            parts = head.decode("ascii").split()
            n = int(parts[-1])
            data = f.read(n)
            if len(data) != n or f.read(1) != b"\n":
                raise ReplayError(f"{path}: record {parts[:2]} cut short")
            records.append(Record(int(parts[0]), parts[1], int(parts[2]), int(parts[3]),
                                  parts[4:-1], data))
    records.sort(key=lambda r: r.seq)
    return records


# The model -------------------------------------------------------------------------------

class Node:
    """A file or a directory, whatever names it has over time."""
    __slots__ = ("number", "kind", "mode", "snapshot_path", "ops", "syncs", "entries", "live")

    def __init__(self, number, kind, mode, snapshot_path=None):
        self.number, self.kind, self.mode = number, kind, mode
        self.snapshot_path = snapshot_path  # the content before the run (files of the snapshot)
        self.ops = []     # files: (seq, "W", offset, data) | (seq, "T", length) | (seq, "E", size)
        self.syncs = []   # (end seq, start seq) of each completed fsync/fdatasync
        self.entries = {} # directories: name -> Node, as the snapshot had them
        self.live = {}    # directories: name -> Node, as the replay has them now

    def base_content(self):
        if self.snapshot_path is None:
            return b""
        with open(self.snapshot_path, "rb") as f:
            return f.read()


class EntryChange:
    """One directory entry change: ("add", dir, name, node) for create/mkdir/link,
    ("move", old dir, old name, dir, name, node) for rename, ("remove", dir, name, node)."""
    __slots__ = ("seq", "kind", "old_dir", "old_name", "dir", "name", "node", "what")

    def __init__(self, seq, kind, directory, name, node, what, old_dir=None, old_name=None):
        self.seq, self.kind, self.dir, self.name, self.node = seq, kind, directory, name, node
        self.old_dir, self.old_name, self.what = old_dir, old_name, what


def apply_ops(content, ops):
    data = bytearray(content)
    for op in ops:
        if op[1] == "W":
            offset, chunk = op[2], op[3]
            if len(data) < offset:
                data.extend(bytes(offset - len(data)))
            data[offset:offset + len(chunk)] = chunk
        elif op[1] == "T":
            length = op[2]
            if length < len(data):
                del data[length:]
            else:
                data.extend(bytes(length - len(data)))
        elif op[1] == "E" and op[2] > len(data):
            data.extend(bytes(op[2] - len(data)))
    return bytes(data)


def torn(content, pending, rng):
    """The content after a random choice among unsynced ops: each 4 KiB page one of the
    versions it had, the size one of the sizes the file had."""
    working = bytearray(content)
    versions = {}  # page -> list of versions (bytes of PAGE)
    sizes = [len(working)]

    def page_bytes(page):
        chunk = bytes(working[page * PAGE:(page + 1) * PAGE])
        return chunk + bytes(PAGE - len(chunk))

    for op in pending:
        before = len(working)
        if op[1] == "W":
            touched = range(op[2] // PAGE, (op[2] + max(len(op[3]), 1) - 1) // PAGE + 1)
        else:
            low, high = min(before, op[2]), max(before, op[2])
            touched = range(low // PAGE, high // PAGE + 1)
        for page in touched:
            versions.setdefault(page, [page_bytes(page)])
        working[:] = apply_ops(bytes(working), [op])
        for page in touched:
            versions[page].append(page_bytes(page))
        if len(working) != before:
            sizes.append(len(working))
    size = rng.choice(sizes)
    out = bytearray()
    for page in range((size + PAGE - 1) // PAGE):
        if page in versions:
            out += rng.choice(versions[page])
        else:
            chunk = bytes(content[page * PAGE:(page + 1) * PAGE])
            out += chunk + bytes(PAGE - len(chunk))
    return bytes(out[:size])


class Replay:
    """The record of one run replayed onto the snapshot of its data directory: the nodes,
    their content changes and syncs, the directory entry changes, the acknowledgements."""

    def __init__(self, root, snapshot, records, repairs=()):
        """repairs: (seq, path) of each mailbox the administrator repaired during the run
        (repair_mailbox()), after the record seq."""
        self.root = os.path.realpath(root)
        self.snapshot = snapshot
        self.nodes = []
        self.changes = []        # EntryChange, in seq order
        self.global_syncs = []   # (end, start) of syncfs/sync
        self.acks = []           # (seq, queue id)
        self.syncs = []          # (end, start, description) of every sync, for crash points
        self.last_seq = records[-1].seq if records else 0
        self.unknown_removals = []
        self.paths = {}          # directory node number -> its path (for descriptions)
        self.top = self.new_node("d", os.stat(snapshot).st_mode & 0o7777)
        self.load_snapshot(self.top, snapshot)
        for node in self.nodes:
            node.live = dict(node.entries)
        self.by_ino = {}
        pids = {r.pid for r in records}
        if len(pids) > 1:
            raise ReplayError(f"records of more than one process: {sorted(pids)}")
        repairs = sorted(repairs)
        for record in records:
            while repairs and repairs[0][0] < record.seq:
                self.repaired(*repairs.pop(0))
            self.replay(record)
        for repair in repairs:
            self.repaired(*repair)

    def repaired(self, after, path):
        """What the administrator did between the record `after` and the next (not the server,
        so not recorded): the file at path replaced by an empty directory, and that synced
        (fsync of its directory, as a careful hand or a `sync` does)."""
        parts = self.relative(path)
        directory = self.parent(parts, Record(after, "repair", 0, 0, [path], b""))
        old = directory.live.pop(parts[-1], None)
        if old is None or old.kind != "f":
            raise ReplayError(f"repair after record {after}: {'/'.join(parts)} is no file")
        self.changes.append(EntryChange(after + 0.25, "remove", directory, parts[-1], old,
                                        "administrator: unlink " + "/".join(parts)))
        node = self.new_node("d", 0o700)
        directory.live[parts[-1]] = node
        self.changes.append(EntryChange(after + 0.5, "add", directory, parts[-1], node,
                                        "administrator: mkdir " + "/".join(parts)))
        directory.syncs.append((after + 0.75, after + 0.5))
        self.syncs.append((after + 0.75, after + 0.5,
                           "administrator: fsync " + "/".join(parts[:-1])))

    def new_node(self, kind, mode, snapshot_path=None):
        node = Node(len(self.nodes), kind, mode, snapshot_path)
        self.nodes.append(node)
        return node

    def load_snapshot(self, directory, path):
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            status = os.lstat(full)
            if os.path.isdir(full) and not os.path.islink(full):
                child = self.new_node("d", status.st_mode & 0o7777)
                self.load_snapshot(child, full)
            elif os.path.isfile(full) and not os.path.islink(full):
                child = self.new_node("f", status.st_mode & 0o7777, full)
            else:
                continue  # sockets, links: not the server's data
            directory.entries[name] = child

    # Paths in the live tree (everything applied) -----------------------------------------

    def relative(self, path):
        path = os.path.normpath(unescape(path))
        if path == self.root:
            return []
        if not path.startswith(self.root + "/"):
            return None
        return path[len(self.root) + 1:].split("/")

    def lookup(self, parts):
        node = self.top
        for part in parts:
            if node is None or node.kind != "d":
                return None
            node = node.live.get(part)
        return node

    def parent(self, parts, record):
        directory = self.lookup(parts[:-1])
        if directory is None or directory.kind != "d":
            raise ReplayError(f"record {record.seq} {record.op}: no directory "
                              f"{'/'.join(parts[:-1])!r} in the replay")
        self.paths[directory.number] = "/".join(parts[:-1]) or "."
        return directory

    # Replay --------------------------------------------------------------------------------

    def replay(self, record):
        op, f = record.op, record.fields
        if op == "X":
            raise ReplayError(f"the recorder refused a call at {record.seq}: "
                              f"{record.data.decode(errors='replace')}")
        if op == "O":
            parts = self.relative(f[0])
            flags, mode, ino = int(f[1]), int(f[2], 8), int(f[3])
            if parts is None:
                return
            node = self.lookup(parts)
            if node is None:
                if not flags & O_CREAT:
                    raise ReplayError(f"record {record.seq}: {'/'.join(parts)} opened without "
                                      f"O_CREAT but unknown to the replay")
                directory = self.parent(parts, record)
                node = self.new_node("d" if flags & O_DIRECTORY else "f", mode & 0o7777)
                directory.live[parts[-1]] = node
                self.changes.append(EntryChange(record.seq, "add", directory, parts[-1], node,
                                                "create " + "/".join(parts)))
            elif flags & O_TRUNC and flags & O_ACCMODE != O_RDONLY and node.kind == "f":
                node.ops.append((record.seq, "T", 0))
            self.by_ino[ino] = node
        elif op in ("W", "T", "F"):
            node = self.by_ino.get(int(f[0]))
            if node is None or node.kind != "f":
                raise ReplayError(f"record {record.seq} {op}: inode {f[0]} not opened under "
                                  f"the data directory")
            if op == "W":
                node.ops.append((record.seq, "W", int(f[1]), record.data))
            elif op == "T":
                node.ops.append((record.seq, "T", int(f[1])))
            elif not int(f[1]) & FALLOC_FL_KEEP_SIZE:
                node.ops.append((record.seq, "E", int(f[2]) + int(f[3])))
        elif op in ("R", "L"):
            old, new = self.relative(f[0]), self.relative(f[1])
            if new is None and old is None:
                return
            if old is None:
                raise ReplayError(f"record {record.seq}: a file moved in from outside "
                                  f"the data directory")
            node = self.lookup(old)
            old_dir = self.parent(old, record)
            if node is None:
                raise ReplayError(f"record {record.seq}: {'/'.join(old)} unknown to the replay")
            if new is None:  # moved out: a removal as far as the data directory goes
                if op == "R":
                    del old_dir.live[old[-1]]
                    self.changes.append(EntryChange(record.seq, "remove", old_dir, old[-1],
                                                    node, "rename out " + "/".join(old)))
                return
            directory = self.parent(new, record)
            if op == "R":
                del old_dir.live[old[-1]]
                directory.live[new[-1]] = node
                self.changes.append(EntryChange(record.seq, "move", directory, new[-1], node,
                                                f"rename {'/'.join(old)} -> {'/'.join(new)}",
                                                old_dir, old[-1]))
            else:
                directory.live[new[-1]] = node
                self.changes.append(EntryChange(record.seq, "add", directory, new[-1], node,
                                                f"link {'/'.join(old)} -> {'/'.join(new)}"))
        elif op in ("U", "D"):
            parts = self.relative(f[0])
            if parts is None:
                return
            directory = self.parent(parts, record)
            node = directory.live.pop(parts[-1], None)
            if node is None:
                # Made without a call the recorder sees (bind(2) of the control socket): not
                # data. A regular file made that way would show in verify_against().
                self.unknown_removals.append("/".join(parts))
                return
            self.changes.append(EntryChange(record.seq, "remove", directory, parts[-1], node,
                                            ("unlink " if op == "U" else "rmdir ") +
                                            "/".join(parts)))
        elif op == "M":
            parts = self.relative(f[0])
            if parts is None:
                return
            directory = self.parent(parts, record)
            node = self.new_node("d", int(f[1], 8) & 0o7777)
            directory.live[parts[-1]] = node
            self.changes.append(EntryChange(record.seq, "add", directory, parts[-1], node,
                                            "mkdir " + "/".join(parts)))
        elif op == "S":
            start, ino, path = int(f[0]), int(f[1]), f[2]
            node = self.by_ino.get(ino)
            parts = self.relative(path.replace("%20(deleted)", ""))
            if node is None and parts is not None:
                node = self.lookup(parts)
            if node is None:
                return
            node.syncs.append((record.seq, start))
            self.syncs.append((record.seq, start, f"{'fsync' if f[3] == 'f' else 'fdatasync'} "
                               f"{'/'.join(parts or [])}"))
        elif op == "Y":
            self.global_syncs.append((record.seq, int(f[0])))
            self.syncs.append((record.seq, int(f[0]), "syncfs"))
        elif op == "K":
            self.acks.append((record.seq, f[0]))
        else:
            raise ReplayError(f"record {record.seq}: unknown operation {op!r}")

    # Crash states ------------------------------------------------------------------------

    @staticmethod
    def durable_cut(syncs, c):
        """The highest start of a sync completed before c (-1: none)."""
        best = -1
        for end, start in syncs:
            if end < c and start > best:
                best = start
        return best

    def acknowledged(self, c):
        return {queue_id for seq, queue_id in self.acks if seq < c}

    def entry_durable(self, change, c, everything):
        return change.seq <= max(everything, self.durable_cut(change.dir.syncs, c))

    def unsynced_directories(self, c):
        """The directories with entry changes before c that are not durable at c."""
        everything = self.durable_cut(self.global_syncs, c)
        found = {}
        for change in self.changes:
            if change.seq >= c:
                break
            if not self.entry_durable(change, c, everything):
                found[change.dir.number] = change.dir
        return list(found.values())

    def state(self, c, mode, rng=None):
        """The tree a power cut at c leaves: mode "durable" (only what must survive), "all"
        (everything done before c), "all-but:<n>" (everything, but the changes in directory
        node n that are not durable are lost), "random" (rng chooses among what is not
        durable). Returns {relative path: (kind, mode, content or snapshot path)}."""
        everything = self.durable_cut(self.global_syncs, c)
        tree = {id(n): dict(n.entries) for n in self.nodes if n.kind == "d"}
        lost_directory = None
        if mode.startswith("all-but:"):
            lost_directory = self.nodes[int(mode.split(":")[1])]
            mode = "all"
        for change in self.changes:
            if change.seq >= c:
                break
            if not self.entry_durable(change, c, everything):
                if mode == "durable" or change.dir is lost_directory or \
                        (mode == "random" and rng.random() < 0.5):
                    continue
            entries = tree[id(change.dir)]
            if change.kind == "add":
                entries[change.name] = change.node
            elif change.kind == "move":
                old = tree[id(change.old_dir)]
                if old.get(change.old_name) is change.node:
                    del old[change.old_name]
                entries[change.name] = change.node
            elif entries.get(change.name) is change.node:
                del entries[change.name]
        out = {}

        def walk(directory, prefix, seen):
            for name, node in sorted(tree[id(directory)].items()):
                path = prefix + name
                if node.kind == "d":
                    if id(node) in seen:
                        continue
                    out[path] = ("d", node.mode, None)
                    walk(node, path + "/", seen | {id(node)})
                else:
                    out[path] = ("f", node.mode, self.content(node, c, mode, rng, everything))

        walk(self.top, "", {id(self.top)})
        return out

    def content(self, node, c, mode, rng, everything):
        ops = [op for op in node.ops if op[0] < c]
        if not ops:  # untouched: copied from the snapshot, or a new empty file
            return node.snapshot_path if node.snapshot_path is not None else b""
        cut = max(everything, self.durable_cut(node.syncs, c))
        durable = [op for op in ops if op[0] <= cut]
        pending = [op for op in ops if op[0] > cut]
        base = apply_ops(node.base_content(), durable)
        if mode == "durable" or not pending:
            return base
        if mode == "all":
            return apply_ops(base, pending)
        return torn(base, pending, rng)



# States on disk ----------------------------------------------------------------------------

def state_key(state, acknowledged):
    digest = hashlib.sha256()
    for path, (kind, mode, content) in sorted(state.items()):
        digest.update(f"{path}\0{kind}\0{mode}\0".encode())
        if isinstance(content, str):
            digest.update(b"snapshot:" + content.encode())
        elif content is not None:
            digest.update(hashlib.sha256(content).digest())
    digest.update(repr(sorted(acknowledged)).encode())
    return digest.hexdigest()


def materialise(state, target):
    """Writes the tree of Replay.state() into target (which must not exist)."""
    os.mkdir(target, 0o700)
    directories = []
    for path, (kind, mode, content) in sorted(state.items()):
        full = os.path.join(target, path)
        if kind == "d":
            os.mkdir(full, 0o700)
            directories.append((full, mode))
        else:
            if isinstance(content, str):
                shutil.copyfile(content, full)
            else:
                with open(full, "wb") as f:
                    f.write(content)
            os.chmod(full, mode)
    for full, mode in directories:
        os.chmod(full, mode | 0o700)


def verify_against(replay, data_dir):
    """The differences between the replay with everything applied and the real directory:
    empty when the recorder saw every change the server made."""
    state = replay.state(replay.last_seq + 1, "all")
    differences = []
    actual = {}
    for directory, subdirs, files in os.walk(data_dir):
        relative = os.path.relpath(directory, data_dir)
        for name in subdirs:
            path = name if relative == "." else os.path.join(relative, name)
            if not os.path.islink(os.path.join(data_dir, path)):
                actual[path] = "d"
        for name in files:
            path = name if relative == "." else os.path.join(relative, name)
            full = os.path.join(data_dir, path)
            if os.path.isfile(full) and not os.path.islink(full):
                actual[path] = "f"
    for path in sorted(set(actual) | set(state)):
        if path not in state:
            differences.append(f"{path}: on disk, not in the replay")
        elif path not in actual:
            differences.append(f"{path}: in the replay, not on disk")
        elif actual[path] != state[path][0]:
            differences.append(f"{path}: a {actual[path]} on disk, a {state[path][0]} replayed")
        elif actual[path] == "f":
            content = state[path][2]
            if isinstance(content, str):
                with open(content, "rb") as f:
                    content = f.read()
            with open(os.path.join(data_dir, path), "rb") as f:
                real = f.read()
            if real != content:
                differences.append(f"{path}: {len(real)} octets on disk, {len(content)} "
                                   f"replayed, different")
    return differences


# The run that is recorded ------------------------------------------------------------------

class Message:
    def __init__(self, uid, recipients, data, sender="sender@example.org", bounce_to=None,
                 tls=False):
        self.uid, self.recipients, self.data = uid, recipients, data
        self.sender = sender
        self.tls = tls  # sent as demo, through implicit TLS with AUTH (submissions)
        self.bounce_to = bounce_to  # a message that must bounce: where its DSN goes
        self.queue_id = None


def make_power_message(rng, recipients, size, bounce_to=None, tls=False):
    """A message whose body names it (power-loss-id). With bounce_to (a local address, the
    sender), it already carries "Delivered-To:" its recipient: Maildir delivery refuses it as
    a loop (5.4.6) and the failure DSN goes to bounce_to, locally, on port 25. With tls, it
    is submitted by demo through implicit TLS with AUTH."""
    uid = "%032x" % rng.getrandbits(128)
    sender = bounce_to or ("demo@localhost" if tls else "sender@example.org")
    lines = [f"From: <{sender}>", f"To: <{recipients[0]}>",
             f"Subject: power loss {uid[:8]}", f"Message-ID: <{uid}@power.test>", "",
             f"power-loss-id: {uid}"]
    if bounce_to:
        lines.insert(0, f"Delivered-To: {recipients[0]}")
    filler = 0
    while sum(len(line) + 2 for line in lines) < size:
        lines.append(f"line {filler:06d} of {uid} " + "x" * 50)
        filler += 1
    return Message(uid, list(recipients), ("\r\n".join(lines) + "\r\n").encode(), sender,
                   bounce_to, tls)


def send(server, message):
    if message.tls:
        client = smtplib.SMTP_SSL("localhost", server.ports["submissions"], timeout=30,
                                  context=server.client_context())
    else:
        client = smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30)
    try:
        client.ehlo("client.example")
        if message.tls:
            with open(os.path.join(server.dir, "demo.password")) as f:
                client.login("demo@localhost", f.read().strip())
        code, reply = client.mail(message.sender)
        assert code == 250, reply
        for rcpt in message.recipients:
            code, reply = client.rcpt(rcpt)
            assert code == 250, (rcpt, reply)
        code, reply = client.data(message.data)
        assert code == 250, reply
        message.queue_id = QUEUED.search(b"250 " + reply).group(1).decode()
    finally:
        client.quit()


def mailbox_path(data_dir, address):
    local, domain = address.split("@")
    return os.path.join(data_dir, "mail", domain, local)


def delivered_files(data_dir, address):
    out = []
    for sub in ("new", "cur"):
        path = os.path.join(mailbox_path(data_dir, address), sub)
        if os.path.isdir(path):
            out += [os.path.join(path, name) for name in sorted(os.listdir(path))]
    return out


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


USERS = ("demo", "alice", "bob")
RECIPIENTS = tuple(f"{user}@localhost" for user in USERS)
UNUSABLE = "bob@localhost"  # the standard workload's: its mailbox cannot be written at first


def server_config(data_dir, at_acceptance=True):
    """The configuration of the recorded run and of every recovery: port 25 (plain text)
    and submissions (implicit TLS; the recorder reads the 250 in what is given to
    SSL_write_ex), local Maildir delivery: at acceptance (the default), or through the
    spool's commit log and queue (False), or right after a reply that came after the commit
    log's sync ("after_log": reply_after = "log"); a deferred delivery retried every second
    (bob's, until his mailbox is repaired)."""
    modes = {True: "", False: "deliver_at_acceptance = false\n",
             "after_log": "reply_after = \"log\"\n"}
    return Server(data_dir, listeners=[{"role": "smtp"}, {"role": "submissions"}],
                  domains=[("localhost", list(USERS))],
                  extra_toml="[queue]\nretry_schedule = [1]\n" + modes[at_acceptance])


class Recording:
    """A recorded run: the data directory, its snapshot from before the start, the log."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.data = os.path.join(workdir, "data")
        self.snapshot = os.path.join(workdir, "snapshot")
        self.log = os.path.join(workdir, "record.bin")
        self.server_log = os.path.join(workdir, "record-server.log")
        self.messages = []
        self.replay = None
        self.records = 0
        self.repairs = []  # (seq, path under data) of each repair_mailbox() during the run

    def by_queue_id(self):
        return {m.queue_id: m for m in self.messages if m.queue_id}


WORKLOADS = ("standard", "short", "one", "pair", "bounce", "standard+bounce")


def record_run(workdir, preload=(), env=None, seed=1, workload="standard", at_acceptance=True):
    """Runs the server under the recorder (after the mutation shims in preload, so what they
    drop is never seen) through a workload, stops it, and replays the record. Each step
    waits for its deliveries before the next, so that commits and deliveries interleave.
    "standard": one message to demo; three at once, committed together: one of 10 KiB (torn
    across pages), one to alice (whose mailbox is made then), and one to demo and bob, whose
    mailbox cannot be written (a regular file where new/ should be): demo has it at
    acceptance, bob's copy is the queue's (a "delivered 0" state line committed with it;
    through the spool the queue delivers demo's and defers bob's), and it stays queued,
    retried, through the next steps; one to demo and alice; one more to demo and, at the same
    time, one from demo to alice by implicit TLS with AUTH; then bob's mailbox is repaired
    (repair_stopped), the queue flushed, and bob's copy delivered. "short": the first two
    steps without bob's (enough to show a dropped sync); "one": the first step alone; "pair":
    one message to demo and alice (two copies, which one syncfs makes durable at acceptance).
    "bounce": one from alice to demo that bounces (a failure DSN to alice). at_acceptance:
    server_config's."""
    if workload not in WORKLOADS:
        raise ValueError(f"workload {workload!r} is none of {WORKLOADS}")
    recording = Recording(workdir)
    os.makedirs(recording.data)
    server = server_config(recording.data, at_acceptance)
    if "standard" in workload:
        unusable_mailbox(recording.data, UNUSABLE)
    shutil.copytree(recording.data, recording.snapshot, symlinks=True)
    server.log_path = recording.server_log
    recorder = build_shim("recorder")
    server.env = dict(env or {}, LD_PRELOAD=":".join(list(preload) + [recorder]),
                      SMTPSD_RECORD_LOG=recording.log,
                      SMTPSD_RECORD_ROOT=os.path.realpath(recording.data))
    rng = random.Random(seed)
    steps = []
    if "standard" in workload or workload in ("short", "one"):
        steps.append([make_power_message(rng, ["demo@localhost"], 600)])
    if "standard" in workload or workload == "short":
        steps.append([make_power_message(rng, ["demo@localhost"], 10 * 1024),
                      make_power_message(rng, ["alice@localhost"], 600)])
    if "standard" in workload:
        steps[-1].append(make_power_message(rng, ["demo@localhost", UNUSABLE], 1500))
        steps += [[make_power_message(rng, ["demo@localhost", "alice@localhost"], 2000)],
                  [make_power_message(rng, ["demo@localhost"], 600),
                   make_power_message(rng, ["alice@localhost"], 600, tls=True)]]
    if workload == "pair":
        steps.append([make_power_message(rng, ["demo@localhost", "alice@localhost"], 600)])
    if "bounce" in workload:
        steps.append([make_power_message(rng, ["demo@localhost"], 600,
                                         bounce_to="alice@localhost")])
    server.start(timeout=30)
    try:
        expected = {address: 0 for address in RECIPIENTS}
        for step in steps:
            errors = []

            def one(message):
                try:
                    send(server, message)
                except Exception as e:  # reported below, in the caller's thread
                    errors.append(e)

            threads = [threading.Thread(target=one, args=(m,)) for m in step]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if errors:
                raise errors[0]
            recording.messages += step
            for message in step:
                for rcpt in ([message.bounce_to] if message.bounce_to else message.recipients):
                    expected[rcpt] += rcpt != UNUSABLE  # counted once its mailbox is repaired
            wait_for(lambda: all(len(delivered_files(recording.data, a)) >= n
                                 for a, n in expected.items()), 30, "the deliveries")
        waiting = [m for m in recording.messages if UNUSABLE in m.recipients]
        if waiting:
            # Queued across the run (the steps after its own waited for their deliveries only).
            if not queue_left(recording.data):
                raise AssertionError(f"{UNUSABLE}'s message left the queue before its "
                                     f"mailbox could be written")
            after = repair_stopped(server, recording, UNUSABLE)
            # As the administrator would: no need to wait for the next retry.
            subprocess.run([SMTPSCTL, "queue", "flush", "--config", server.config_path],
                           check=True, capture_output=True, timeout=20)
            recording.repairs.append((after, os.path.relpath(
                unusable_path(recording.data, UNUSABLE), recording.data)))
            expected[UNUSABLE] += len(waiting)
            wait_for(lambda: len(delivered_files(recording.data, UNUSABLE)) >= len(waiting),
                     30, "the queue's delivery to the repaired mailbox")
        wait_for(lambda: not queue_left(recording.data), 30, "an empty queue")
    finally:
        code = server.stop()
    if code != 0:
        raise AssertionError(f"the recorded server exited with {code}")
    records = read_log(recording.log)
    recording.records = len(records)
    root = os.path.realpath(recording.data)
    recording.replay = Replay(recording.data, recording.snapshot, records,
                              [(after, os.path.join(root, path))
                               for after, path in recording.repairs])
    differences = verify_against(recording.replay, recording.data)
    if differences:
        raise ReplayError("the replay differs from what the server left on disk (a change "
                          "the recorder did not see):\n" + "\n".join(differences[:20]))
    # Kept beside the run, so that its states can be checked again without recording:
    # tests/durability/power_loss.py --recording <workdir> --seed <seed>.
    with open(os.path.join(workdir, "recording.pickle"), "wb") as f:
        pickle.dump(recording, f)
    return recording


def unusable_path(data_dir, address):
    return os.path.join(mailbox_path(data_dir, address), "new")


def unusable_mailbox(data_dir, address):
    """A Maildir that cannot be written (a disk error, a mistake by hand): tmp/ and cur/, and
    a regular file where new/ should be. Root, which the tests run as, is not stopped by
    permissions; this stops it."""
    box = mailbox_path(data_dir, address)
    for sub in ("tmp", "cur"):
        os.makedirs(os.path.join(box, sub), 0o700)
    with open(unusable_path(data_dir, address), "wb"):
        pass


def repair_mailbox(data_dir, address):
    """The administrator's repair of unusable_mailbox(): new/ a directory again. Each state of
    a crash before the repair is repaired too, before the server starts on it."""
    made_a_directory(unusable_path(data_dir, address))


def made_a_directory(path):
    if os.path.isfile(path):
        os.unlink(path)
        os.mkdir(path, 0o700)


def repair_stopped(server, recording, address):
    """repair_mailbox() while the recorded server is stopped (SIGSTOP), so that the record
    it has written last is the last call it made before the repair; that record's seq (the
    replay puts the repair after it)."""
    pid = server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: all(thread_state(pid, tid) in ("T", None)
                             for tid in os.listdir(f"/proc/{pid}/task")), 10,
                 "the server to stop")
        after = read_log(recording.log)[-1].seq
        repair_mailbox(recording.data, address)
    finally:
        os.kill(pid, signal.SIGCONT)
    return after


def thread_state(pid, tid):
    """The state letter of a thread (R, S, D, T, ...), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def load_recording(workdir):
    with open(os.path.join(workdir, "recording.pickle"), "rb") as f:
        return pickle.load(f)


# Recovery on one state -------------------------------------------------------------------

def queue_left(data_dir):
    """The messages still queued: the one place here that knows the spool's layout (a spool
    of another layout changes this function only)."""
    queue = os.path.join(data_dir, "spool", "queue")
    return sorted(os.listdir(queue)) if os.path.isdir(queue) else []


def check_state(state_dir, recording, acknowledged_ids, log_path):
    """Starts the server on a materialised state, lets it deliver, stops it; the problems
    found, each (kind, text): start, error, stuck, corrupt, lost, duplicate."""
    problems = []
    config = os.path.join(state_dir, "smtpsd.toml")
    for _after, path in getattr(recording, "repairs", ()):
        made_a_directory(os.path.join(state_dir, path))  # in a state from before the repair
    offset = 0
    with open(log_path, "ab") as log:
        offset = log.tell()
        process = subprocess.Popen([SMTPSD, "serve", "--config", config], stdout=log,
                                   stderr=log)

    def log_text():
        with open(log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    try:
        deadline = time.monotonic() + 30
        while "event=started" not in log_text():
            if process.poll() is not None or time.monotonic() > deadline:
                problems.append(("start", "the server did not start: " + log_text()[-2000:]))
                return problems
            time.sleep(0.01)
        deadline = time.monotonic() + 30
        while queue_left(state_dir):
            if "level=error" in log_text() or process.poll() is not None or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.01)
    finally:
        code = end_process(process, signal.SIGTERM, 20)
    text = log_text()
    if code != 0:
        problems.append(("error", f"the server exited with {code}"))
    for line in text.splitlines():
        if "level=error" in line or "Sanitizer" in line or "event=session_crashed" in line:
            problems.append(("error", line))
    left = queue_left(state_dir)
    if left:
        problems.append(("stuck", f"left in the queue: {left}"))
    messages = {m.uid: m for m in recording.messages}
    counts = {}
    dsns = {}  # uid of a message that bounces -> failure DSNs delivered for it
    for address in RECIPIENTS:
        for path in delivered_files(state_dir, address):
            with open(path, "rb") as f:
                content = f.read()
            found = MESSAGE_UID.search(content)
            message = messages.get(found.group(1).decode()) if found else None
            name = os.path.relpath(path, state_dir)
            if message is not None and message.bounce_to == address and \
                    b"multipart/report" in content and message.data in content:
                dsns[message.uid] = dsns.get(message.uid, 0) + 1  # its whole failure DSN
                continue
            if message is None or not content.endswith(message.data) or \
                    address not in message.recipients or message.bounce_to:
                problems.append(("corrupt", f"{name}: {len(content)} octets, not a whole "
                                 f"message of the run for {address}"))
                continue
            counts[(message.uid, address)] = counts.get((message.uid, address), 0) + 1
    by_queue_id = recording.by_queue_id()
    for queue_id in sorted(acknowledged_ids):
        message = by_queue_id.get(queue_id)
        if message is None:
            problems.append(("lost", f"{queue_id} acknowledged, unknown to the client"))
            continue
        if message.bounce_to:
            n = dsns.get(message.uid, 0)
            if n != 1:
                problems.append(("lost" if n == 0 else "duplicate",
                                 f"{queue_id} (acknowledged, bounces) has {n} failure DSNs "
                                 f"in {message.bounce_to}'s Maildir"))
            continue
        for address in message.recipients:
            n = counts.get((message.uid, address), 0)
            if n != 1:
                problems.append(("lost" if n == 0 else "duplicate",
                                 f"{queue_id} (acknowledged) delivered {n} times to {address}"))
    for uid, n in sorted(dsns.items()):
        if n > 1 and not any(p[0] == "duplicate" and "DSN" in p[1] for p in problems):
            problems.append(("duplicate", f"{uid} has {n} failure DSNs"))
    for (uid, address), n in sorted(counts.items()):
        if n > 1 and not any(p[0] == "duplicate" and address in p[1] for p in problems):
            problems.append(("duplicate", f"{uid} delivered {n} times to {address}"))
    return problems


# The simulation ----------------------------------------------------------------------------

class Outcome:
    def __init__(self):
        self.states = 0          # states checked (distinct)
        self.points = 0          # crash points considered
        self.failures = []       # (point description, problems, kept directory)
        self.seconds = 0.0

    def kinds(self):
        return {kind for _point, problems, _kept in self.failures for kind, _text in problems}

    def summary(self):
        return (f"{self.points} crash points, {self.states} distinct states checked in "
                f"{self.seconds:.1f} s, {len(self.failures)} failing")

    def report(self, limit=5):
        lines = [self.summary()]
        for point, problems, kept in self.failures[:limit]:
            lines.append(f"- {point} (state kept in {kept}):")
            lines += [f"    {kind}: {text}" for kind, text in problems[:8]]
        return "\n".join(lines)


def crash_points(replay, each_directory="end"):
    """(c, mode, description): after every sync and every acknowledgement, with only what is
    durable; after every acknowledgement and at the end, with everything (kill -9); and, at
    the end (each_directory="end") or at each of those (each_directory="all"), everything
    but the unsynced changes of one directory, for each directory that has some (a rename
    into Maildir's new/ lost while the removal of the queue file stays)."""
    points = []
    for end, start, what in replay.syncs:
        points.append((end + 1, "durable", f"after {what} (seq {end})"))
    everything = [(seq + 1, f"kill -9 after the 250 for {queue_id} (seq {seq})")
                  for seq, queue_id in replay.acks]
    everything.append((replay.last_seq + 1, f"at the end, everything done (seq "
                                             f"{replay.last_seq})"))
    for seq, queue_id in replay.acks:
        points.append((seq + 1, "durable", f"after the 250 for {queue_id} (seq {seq})"))
    for index, (c, what) in enumerate(everything):
        points.append((c, "all", what))
        if each_directory == "all" or (each_directory == "end" and index == len(everything) - 1):
            for directory in replay.unsynced_directories(c):
                points.append((c, f"all-but:{directory.number}", what + " but the unsynced "
                               f"changes in {replay.paths.get(directory.number, '?')} lost"))
    points.sort(key=lambda p: (p[0], p[1]))
    return points


def simulate(recording, workdir, random_points=0, seed=0, seconds=None, boundaries=True,
             stop_at_first_failure=False, progress=None, workers=3, from_first_ack=False,
             each_directory="end"):
    """Checks recovery on the crash states of a recording; returns an Outcome. States are
    built here and checked by `workers` servers at once (a check mostly waits: the server's
    start-up, its deliveries). from_first_ack: only the boundaries from the first 250 on
    (before it there is nothing acknowledged to lose)."""
    outcome = Outcome()
    started = time.monotonic()
    replay = recording.replay
    plan = crash_points(replay, each_directory) if boundaries else []
    if from_first_ack and replay.acks:
        plan = [p for p in plan if p[0] > replay.acks[0][0]]
    plan += [(None, "random", i) for i in range(random_points)]
    seen = set()
    lock = threading.Lock()
    stop = threading.Event()

    def check(index, what, target, acknowledged):
        if stop.is_set():
            return
        log_path = target + ".log"
        problems = check_state(target, recording, acknowledged, log_path)
        with lock:
            outcome.states += 1
            if progress:
                progress(f"{what}: {'ok' if not problems else problems[0][0]}")
            if problems:
                outcome.failures.append((what, problems, target))
                if stop_at_first_failure:
                    stop.set()
        if not problems:
            shutil.rmtree(target, ignore_errors=True)
            os.unlink(log_path)

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        pending = []
        for index, (c, mode, what) in enumerate(plan):
            if stop.is_set() or (seconds is not None and
                                 time.monotonic() - started > seconds):
                break
            rng = None
            if mode == "random":
                rng = random.Random(f"{seed}:{what}")
                c = rng.randint(1, replay.last_seq + 1)
                what = f"random state {what} of seed {seed}: crash at seq {c}"
            outcome.points += 1
            state = replay.state(c, mode, rng)
            acknowledged = replay.acknowledged(c)
            key = state_key(state, acknowledged)
            if key in seen:
                continue
            seen.add(key)
            target = os.path.join(workdir, f"state-{index}")
            materialise(state, target)
            pending.append(pool.submit(check, index, what, target, acknowledged))
            # Never more built than being checked: the time box and a first failure stop early.
            while sum(not f.done() for f in pending) >= workers:
                concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
        for future in pending:
            future.result()
    outcome.seconds = time.monotonic() - started
    return outcome
