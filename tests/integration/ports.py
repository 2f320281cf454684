"""Loopback ports for a server that a test starts and that binds later (dnsmasq, Dovecot,
Pebble, HAProxy, `openssl s_server`, a listener a reload adds), or for a port that must stay
closed.

Why not bind to port 0, read the port and close the socket: the kernel hands that port out
of its ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default),
the range every outgoing connection on the machine draws its local port from. Under
`ctest -j2` other tests open many client connections, and one of them can take the port
between the close and the server's bind: the server fails with "Address already in use".

free_port() therefore picks a port outside the ephemeral range (20000-65535 minus that
range; never a port below 20000, where services such as 2525 or 8080 live), that binds on
127.0.0.1 now (and for UDP too with udp=True), and that no other test process holds: each
port handed out is locked with flock(2) on /tmp/smtpsd-test-ports/<port>.lock for the life
of this process (the open files are kept in `_held`; the kernel releases the locks when the
process exits, however it exits). Another process skips a locked port, and this process
never hands out the same port twice. Each process walks the ports from a random start, so
parallel processes rarely try the same one. The lock files stay (removing a lock file that
someone may be about to lock is a race); they are empty.

    from ports import claim, free_port
    port = free_port()          # TCP on 127.0.0.1
    port = free_port(udp=True)  # the same number free for UDP too (DNS, RFC 7766)
    if claim(2465 + offset, 2587 + offset, 2525 + offset): ...  # several, all or none

Only the standard library: PyPI is not reachable on CI machines.
"""

import errno
import fcntl
import os
import random
import socket
import tempfile

EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
DEFAULT_EPHEMERAL_RANGE = (32768, 60999)  # Linux's default, when the file cannot be read
LOWEST_PORT = 20000
LOCK_DIR = os.path.join(tempfile.gettempdir(), "smtpsd-test-ports")

_held = {}  # port -> file descriptor holding its lock, for the life of the process
_random = random.Random()  # seeded from os.urandom: independent of any test's random.seed()


def ephemeral_range(path=EPHEMERAL_RANGE_FILE):
    """(low, high) of the kernel's ephemeral ports, inclusive."""
    try:
        with open(path, encoding="ascii") as f:
            low, high = (int(field) for field in f.read().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL_RANGE
    return (low, high) if low <= high else DEFAULT_EPHEMERAL_RANGE


def candidate_ports(ephemeral=None):
    """The ports free_port() chooses from: LOWEST_PORT to 65535 minus the ephemeral range."""
    low, high = ephemeral or ephemeral_range()
    candidates = [port for port in range(LOWEST_PORT, 65536) if not low <= port <= high]
    if not candidates:
        raise RuntimeError(f"no loopback port for tests outside the ephemeral range {low}-{high} "
                           f"({EPHEMERAL_RANGE_FILE}) and above {LOWEST_PORT - 1}")
    return candidates


def _lock_dir():
    try:
        os.mkdir(LOCK_DIR, 0o1777)
        os.chmod(LOCK_DIR, 0o1777)  # past the umask: tests may run as different users
    except FileExistsError:
        pass
    return LOCK_DIR


def _lock(port):
    """The fd holding the lock on port, or None when another process (or this one) holds it."""
    path = os.path.join(_lock_dir(), f"{port}.lock")
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        # flock, not fcntl/lockf: its lock belongs to the open file, so a second open in
        # this same process is refused too, and children (O_CLOEXEC) never inherit it.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd


def _binds(port, kind):
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def claim(*numbers, udp=False):
    """Locks all the given ports for this process and returns True when each is free now
    (binds on 127.0.0.1 for TCP, and UDP with udp=True) and no process holds it; otherwise
    holds none of them and returns False. For a program that takes several ports at fixed
    distances (`smtpsd dev --port-offset`); the caller keeps them out of the ephemeral range
    (candidate_ports())."""
    taken = []
    for port in numbers:
        fd = None if port in _held else _lock(port)
        if fd is not None:
            taken.append(fd)
        if fd is None or not (_binds(port, socket.SOCK_STREAM)
                              and (not udp or _binds(port, socket.SOCK_DGRAM))):
            for held in taken:  # one is taken or in use by something else: hold none
                os.close(held)
            return False
    _held.update(zip(numbers, taken))
    return True


def free_port(udp=False):
    """A port on 127.0.0.1, outside the ephemeral range, free for TCP now (and for UDP with
    udp=True), and locked for this process: no other test process is handed it."""
    candidates = candidate_ports()
    start = _random.randrange(len(candidates))
    for port in candidates[start:] + candidates[:start]:
        if claim(port, udp=udp):
            return port
    raise RuntimeError(f"no free loopback port in {candidates[0]}-{candidates[-1]} outside "
                       f"the ephemeral range (all in use or locked in {LOCK_DIR})")
