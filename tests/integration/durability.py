"""A recorder of the file system calls of the real server, and a checker of the durability
contract on what it recorded (README "Delivery and the queue", docs/testing.md).

The contract, stated without naming how the spool does it: every byte and every directory
entry a message needs is covered by a completed fsync, fdatasync or syncfs before the
server says 250 for it; the same for a local delivery before it is recorded (the state line
or the removal of the queued file, or the 250 of a message delivered at acceptance, which is
never queued: then one copy per recipient the transaction accepted), and for a DSN before the
failure it reports is recorded.

How it is observed: `strace -f -yy` (every fd printed with its path) of the server; each
call has a start and an end position in the trace (strace writes the lines in the order
the calls happen; a call interrupted by another thread is split into "<unfinished ...>" and
"<... resumed>"). A write counts from its end, a sync from its start: a sync covers what
was complete when it began. O_SYNC/O_DSYNC files are synced by each write; sync_file_range
is not a sync (it flushes neither metadata nor the disk's cache); io_uring cannot be seen
through strace, so a trace that sets one up fails the check rather than pass blindly.
The recipients of a message are counted from the replies on its connection (a "250 2.1.5"
per accepted RCPT since the "250 2.1.0" of its MAIL), so only on plain-text connections;
the Maildir copies from their names (<time>.Q<id>R<recipient index>.<host>,S=<size>). A
transaction that names one mailbox twice gets one copy (delivery/router.h): the tests give
each recipient its own mailbox.

Standard library only.
"""

import os
import re
import signal
import subprocess
import time

TRACED = ("openat,open,creat,close,write,pwrite64,writev,pwritev,pwritev2,copy_file_range,"
          "sendfile,splice,ftruncate,fallocate,fsync,fdatasync,syncfs,sync_file_range,"
          "rename,renameat,renameat2,link,linkat,unlink,unlinkat,mkdir,mkdirat,sendto,"
          "sendmsg,io_uring_setup")

LINE = re.compile(r"^(\d+) +(.*)$")
CALL = re.compile(r"^(\w+)\((.*)\) += (-?\d+)(?:<([^>]*)>)?")
FD_PATH = re.compile(r"(-?\d+|AT_FDCWD)<([^>]*)>")
QUEUED = re.compile(r"250 2\.0\.0 Ok: queued as (\w+)")
COPY_INDEX = re.compile(r"\.Q(\w+?)R(\d+)\.")
# A connected socket with both ends: "29<TCP:[127.0.0.1:25->127.0.0.1:45694]>" (FD_PATH
# stops at the '>' of "->").
CONNECTION = re.compile(r"^\d+<((?:TCP|TCPv6|UNIX):\[[^\]]*\])>")
LOG_RECORD = re.compile(r"^([MD]) ([0-9A-Za-z]+) \d+ [0-9a-f]{8}\n")
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def strace_command(trace_path, argv):
    """The command line that runs argv under the recorder."""
    return ["strace", "-f", "-qq", "-yy", "-s", "256", "-o", trace_path, "-e",
            "trace=" + TRACED] + list(argv)


def stop_traced(strace_process, timeout=20):
    """SIGTERM to the traced server (strace's child, which the test started through it),
    then wait for strace to end with it."""
    try:
        with open(f"/proc/{strace_process.pid}/task/{strace_process.pid}/children") as f:
            children = [int(p) for p in f.read().split()]
    except OSError:
        children = []
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        return strace_process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return strace_process.wait(timeout=timeout)


class Call:
    __slots__ = ("start", "end", "pid", "name", "args", "result", "result_path")

    def __init__(self, start, end, pid, name, args, result, result_path):
        self.start, self.end, self.pid = start, end, pid
        self.name, self.args, self.result, self.result_path = name, args, result, result_path

    def fd_paths(self):
        return [path for _fd, path in FD_PATH.findall(self.args)]

    def strings(self):
        return [bytes(s, "utf-8").decode("unicode_escape") for s in QUOTED.findall(self.args)]


def parse(trace_text):
    """The completed calls of a trace, in order of their end, each with start/end positions."""
    calls, pending = [], {}
    for position, raw in enumerate(trace_text.splitlines()):
        match = LINE.match(raw)
        if not match:
            continue
        pid, text = int(match.group(1)), match.group(2)
        if text.endswith("<unfinished ...>"):
            pending[pid] = (position, text[: -len("<unfinished ...>")].rstrip())
            continue
        start = position
        resumed = re.match(r"^<\.\.\. (\w+) resumed>(.*)$", text)
        if resumed:
            if pid not in pending:
                continue
            start, head = pending.pop(pid)
            text = head + resumed.group(2)
        call = CALL.match(text)
        if not call:
            continue  # a signal, an exit, or a call strace could not finish printing
        calls.append(Call(start, position, pid, call.group(1), call.group(2),
                          int(call.group(3)), call.group(4)))
    return calls


class Checker:
    """Replays a trace and collects every breach of the contract (a list of strings)."""

    def __init__(self, data_dir):
        self.root = os.path.realpath(data_dir)
        self.last_write = {}      # path -> end position of the last write to it
        self.synced_from = {}     # path -> start position of its last completed sync
        self.entries = {}         # (directory, name) -> end position of the last entry change
        self.entry_changes = {}   # (directory, name) -> end positions of every entry change
        self.dir_synced = {}      # directory -> start position of its last completed fsync
        self.all_synced = -1      # start position of the last completed syncfs
        self.sync_fds = set()     # paths opened O_SYNC/O_DSYNC
        self.queue_files = set()  # names in spool/queue now
        self.violations = []
        self.acknowledged = []    # queue ids the server said 250 for
        self.log_records = {}     # queue id -> (segment path, end of the last write of its record)
        self.record_at = {}       # segment path -> queue id of the record written last to it
        self.recorded = []        # ids whose local delivery or failure was recorded
        self.accepted_rcpts = {}  # connection (socket path) -> RCPTs accepted in its transaction
        self.recipients = {}      # queue id -> RCPTs accepted for it (plain-text connections)

    # What is durable now ------------------------------------------------------------

    def data_durable(self, path):
        written = self.last_write.get(path)
        if written is None:
            return True
        return max(self.synced_from.get(path, -1), self.all_synced) > written

    def entry_durable(self, directory, name, at=None):
        # As of position `at` (a reply's start): a change after it (the message delivered and
        # removed while the reply's write was still under way) is not what the reply vouched for.
        changes = [p for p in self.entry_changes.get((directory, name), [])
                   if at is None or p <= at]
        changed = max(changes) if changes else None
        if changed is None:
            return True
        return max(self.dir_synced.get(directory, -1), self.all_synced) > changed

    def require(self, path, why, position):
        directory, name = os.path.split(path)
        if not self.data_durable(path):
            self.violations.append(f"line {position + 1}: {why}: the data of {path} was not "
                                   f"synced")
        if not self.entry_durable(directory, name, position):
            self.violations.append(f"line {position + 1}: {why}: the entry {name} in "
                                   f"{directory} was not synced")

    def require_message(self, queue_id, why, position):
        """A message is durable when its record in the commit log (spool/log/*.seg) was
        covered by a sync of its segment that began after the record was written, and the
        segment's entry is durable; a message that has no record (an smtpsd without a commit
        log) when its own spool file is."""
        record = self.log_records.get(queue_id)
        if record is None:
            # Delivered at acceptance: never queued, every mailbox copy made before the 250.
            marker = "Q" + queue_id + "R"
            copies = [os.path.join(directory, name) for (directory, name) in self.entries
                      if marker in name and os.path.basename(directory) == "new"]
            if copies:
                self.recorded.append(queue_id)
                for path in copies:
                    self.require(path, why + ": delivered at acceptance", position)
                # Every recipient's copy, not just one: a recipient whose copy failed sends
                # the message to the queue (a record in the commit log), never to a 250 alone.
                indexes = {found.group(2) for found in map(COPY_INDEX.search, copies)
                           if found and found.group(1) == queue_id}
                wanted = self.recipients.get(queue_id, 0)
                if len(indexes) < wanted:
                    self.violations.append(f"line {position + 1}: {why}: delivered at "
                                           f"acceptance to {len(indexes)} of its {wanted} "
                                           f"recipients (the others have no copy in new/)")
                return
            path = os.path.join(self.root, "spool", "queue", queue_id)
            if path not in self.last_write and not self.entry_changes.get(os.path.split(path)):
                self.violations.append(f"line {position + 1}: {why}: neither logged, queued nor "
                                       f"delivered")
                return
            self.require(path, why, position)
            return
        path, written = record
        if max(self.synced_from.get(path, -1), self.all_synced) <= written:
            self.violations.append(f"line {position + 1}: {why}: the data of its record in "
                                   f"{path} was not synced")
        directory, name = os.path.split(path)
        if not self.entry_durable(directory, name, position):
            self.violations.append(f"line {position + 1}: {why}: the entry {name} in "
                                   f"{directory} was not synced")

    def replies(self, connection, text, position):
        """The SMTP replies written on a connection, in order (several when pipelined)."""
        for line in text.split("\r\n"):
            if line.startswith("250 2.1.0"):  # MAIL accepted: a new transaction
                self.accepted_rcpts[connection] = 0
            elif line.startswith("250 2.1.5"):
                self.accepted_rcpts[connection] = self.accepted_rcpts.get(connection, 0) + 1
            for queue_id in QUEUED.findall(line):
                self.recipients[queue_id] = self.accepted_rcpts.pop(connection, 0)
                self.acknowledged.append(queue_id)
                self.require_message(queue_id, f"250 for {queue_id}", position)

    def log_write(self, path, call):
        """A write to a segment of the commit log: the record line names the message."""
        for text in call.strings():
            found = LOG_RECORD.match(text)
            if found:  # a D record vouches for nothing
                self.record_at[path] = found.group(2) if found.group(1) == "M" else None
        queue_id = self.record_at.get(path)
        if queue_id is not None:
            self.log_records[queue_id] = (path, call.end)

    # Replay -------------------------------------------------------------------------

    def mine(self, path):
        return path.startswith(self.root + "/")

    def entry_changed(self, path, position):
        directory, name = os.path.split(path)
        self.entries[(directory, name)] = position
        self.entry_changes.setdefault((directory, name), []).append(position)
        if directory == os.path.join(self.root, "spool", "queue"):
            self.queue_files.add(name)

    def moved(self, old, new, position, keep_old):
        if old in self.last_write:
            self.last_write[new] = self.last_write[old]
        if old in self.synced_from:
            self.synced_from[new] = self.synced_from[old]
        self.entry_changed(new, position)
        if not keep_old:
            self.entry_changed(old, position)
            self.dropped(old)

    def dropped(self, path):
        directory, name = os.path.split(path)
        if directory == os.path.join(self.root, "spool", "queue"):
            self.queue_files.discard(name)

    @staticmethod
    def at(directory_path, name):
        return name if name.startswith("/") else os.path.join(directory_path, name)

    def two_paths(self, call):
        """(old, new) of rename/link calls in any of their forms."""
        parts = FD_PATH.findall(call.args)
        names = call.strings()
        if call.name in ("rename", "link"):
            return names[0], names[1]
        if len(parts) >= 2 and len(names) >= 2:
            return self.at(parts[0][1], names[0]), self.at(parts[1][1], names[1])
        return None, None

    def check_delivery_recorded(self, queue_id, position, why):
        """Every Maildir file of this message must be durable when its delivery is recorded."""
        self.recorded.append(queue_id)
        marker = "Q" + queue_id + "R"
        for (directory, name) in list(self.entries):
            if marker in name and os.path.basename(directory) == "new":
                self.require(os.path.join(directory, name), why, position)

    def replay(self, calls):
        # Sorted by end: what a call did is visible from its end on; the checks at a call
        # use its start (a reply must have been made after the sync ended).
        for call in sorted(calls, key=lambda c: c.end):
            if call.result < 0:
                continue
            name = call.name
            paths = call.fd_paths()
            if name == "io_uring_setup":
                self.violations.append(f"line {call.start + 1}: io_uring is used; the checker "
                                       f"cannot see what it writes or syncs")
            elif name in ("open", "openat", "creat"):
                path = call.result_path or ""
                flags = call.args
                if self.mine(path) and ("O_CREAT" in flags or name == "creat"):
                    self.entry_changed(path, call.end)
                if self.mine(path) and ("O_TRUNC" in flags):
                    self.last_write[path] = call.end
                if "O_SYNC" in flags or "O_DSYNC" in flags:
                    self.sync_fds.add(path)
            elif name in ("write", "pwrite64", "writev", "pwritev", "pwritev2", "ftruncate",
                          "fallocate", "copy_file_range", "sendfile", "splice", "sendto",
                          "sendmsg"):
                target = paths[-1] if name in ("copy_file_range", "sendfile", "splice") and \
                    len(paths) > 1 else (paths[0] if paths else "")
                if name in ("sendfile",) and len(paths) > 1:
                    target = paths[0]  # sendfile(out_fd, in_fd, ...)
                if target.startswith(("TCP:", "TCPv6:", "UNIX:")) or "socket:" in target:
                    connection = CONNECTION.match(call.args)
                    for text in call.strings():
                        self.replies(connection.group(1) if connection else target, text,
                                     call.start)
                    continue
                if not self.mine(target):
                    continue
                if target in self.sync_fds:
                    self.synced_from[target] = call.end + 1
                    self.last_write[target] = call.end
                    continue
                self.last_write[target] = call.end
                directory, base = os.path.split(target)
                if directory == os.path.join(self.root, "spool", "log"):
                    self.log_write(target, call)
                if os.path.basename(directory) == "state":
                    text = "".join(call.strings())
                    if text.startswith("delivered"):
                        self.check_delivery_recorded(base, call.start,
                                                     f"delivery of {base} recorded")
                    if text.startswith("failed"):
                        self.recorded.append(base)
                        for queued in sorted(self.queue_files - {base}):
                            self.require_message(queued, f"failure of {base} recorded (its DSN)",
                                                 call.start)
            elif name in ("fsync", "fdatasync"):
                if not paths:
                    continue
                path = paths[0]
                # Two syncs may overlap: the one that began last covers the most.
                if os.path.isdir(path) or path in {d for d, _ in self.entries}:
                    self.dir_synced[path] = max(self.dir_synced.get(path, -1), call.start)
                self.synced_from[path] = max(self.synced_from.get(path, -1), call.start)
            elif name == "syncfs":
                self.all_synced = max(self.all_synced, call.start)
            elif name in ("rename", "renameat", "renameat2", "link", "linkat"):
                old, new = self.two_paths(call)
                if old and new and (self.mine(old) or self.mine(new)):
                    # A message's file moved out of queue/ (to spare/, for reuse) leaves the
                    # queue as an unlink does.
                    queue = os.path.join(self.root, "spool", "queue")
                    base = os.path.basename(old)
                    if os.path.dirname(old) == queue and os.path.dirname(new) != queue and \
                            not name.startswith("link") and base not in self.recorded:
                        self.check_delivery_recorded(base, call.start,
                                                     f"{base} removed from the queue")
                    self.moved(old, new, call.end, keep_old=name.startswith("link"))
            elif name in ("unlink", "unlinkat"):
                names = call.strings()
                if not names:
                    continue
                path = names[0] if name == "unlink" else self.at(paths[0] if paths else "",
                                                                  names[0])
                if not self.mine(path):
                    continue
                directory, base = os.path.split(path)
                if directory == os.path.join(self.root, "spool", "queue") and \
                        base not in self.recorded:
                    self.check_delivery_recorded(base, call.start, f"{base} removed from the queue")
                self.entry_changed(path, call.end)
                self.dropped(path)
            elif name in ("mkdir", "mkdirat"):
                names = call.strings()
                if names:
                    path = names[0] if name == "mkdir" else self.at(paths[0] if paths else "",
                                                                     names[0])
                    if self.mine(path):
                        self.entry_changed(path, call.end)
        return self.violations


def check(trace_path, data_dir):
    """(violations, checker) for a finished trace."""
    with open(trace_path, errors="replace") as f:
        calls = parse(f.read())
    checker = Checker(data_dir)
    checker.replay(calls)
    return checker.violations, checker


def wait_for(predicate, timeout=20, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
