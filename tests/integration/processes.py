"""Ending the child processes a test started (smtpsd, Postfix, Dovecot, the DNS server), by
their pid only: a signal, a bounded wait, then SIGKILL."""

import signal
import subprocess


def end_process(process, sig=signal.SIGTERM, timeout=20):
    """Sends sig to process (a subprocess.Popen) if it still runs, waits up to timeout
    seconds, then kills it. Returns its exit status (None for no process)."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
