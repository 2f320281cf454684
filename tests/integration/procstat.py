"""procstat: the CPU a server used, from /proc, for the benches (bench/compare,
bench/ab_binaries.py, bench/handshake_cost.py, bench/metrics_overhead.py)."""
import os


def cpu_seconds(pids):
    """User and system CPU used by the processes pids and all their descendants, living or
    ended: each process's own time plus that of its children it reaped (cutime, cstime),
    from /proc/PID/stat. A Postfix is its master with every process it started (smtpd,
    cleanup, qmgr, trivial-rewrite, virtual, ...) and its Dovecot auth service; smtpsd is
    one process."""
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile: its parent's cutime has it once reaped
        # fields[1] is the parent; 11-14 are utime, stime, cutime, cstime.
        stats[int(entry)] = (int(fields[1]), sum(int(field) for field in fields[11:15]))
    children = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    total, pending = 0, [pid for pid in pids if pid in stats]
    while pending:
        pid = pending.pop()
        total += stats[pid][1]
        pending.extend(children.get(pid, []))
    return total / os.sysconf("SC_CLK_TCK")
