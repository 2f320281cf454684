"""ports.free_port(), the port for a server a test starts later: outside the kernel's
ephemeral range, free now, and never handed to two test processes at once."""

import os
import socket
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

import ports


class FreePort(unittest.TestCase):
    def test_ports_are_outside_the_ephemeral_range_distinct_and_bind(self):
        low, high = ports.ephemeral_range()
        chosen = [ports.free_port() for _ in range(5)] + [ports.free_port(udp=True)]
        self.assertEqual(len(set(chosen)), len(chosen), chosen)
        for port in chosen:
            self.assertFalse(low <= port <= high, (port, low, high))
            self.assertGreaterEqual(port, ports.LOWEST_PORT)
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))  # free: only its lock is held
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", chosen[-1]))

    def test_another_process_is_not_handed_a_port_this_one_holds(self):
        held = [ports.free_port() for _ in range(3)]
        child = subprocess.run(
            [sys.executable, "-c",
             "import sys, ports\n"
             "ports.candidate_ports = lambda: [int(p) for p in sys.argv[1:]]\n"
             "try:\n    print(ports.free_port())\n"
             "except RuntimeError as error:\n    print(error)\n"] + [str(p) for p in held],
            cwd=os.path.dirname(os.path.abspath(__file__)), capture_output=True, text=True,
            timeout=30)
        self.assertEqual(child.returncode, 0, child.stderr)
        self.assertIn("no free loopback port", child.stdout)

    def test_a_port_in_use_is_skipped(self):
        port = ports.free_port()
        os.close(ports._held.pop(port))  # unlocked, but another program listens there
        with socket.create_server(("127.0.0.1", port)):
            with mock.patch.object(ports, "candidate_ports", lambda: [port]):
                with self.assertRaisesRegex(RuntimeError, "no free loopback port"):
                    ports.free_port()

    def test_claim_takes_all_the_ports_or_none(self):
        held = ports.free_port()
        loose = ports.free_port()
        os.close(ports._held.pop(loose))  # free and unlocked
        self.assertFalse(ports.claim(loose, held))  # held already (by this process)
        self.assertNotIn(loose, ports._held)
        self.assertTrue(ports.claim(loose))  # not left locked by the refused claim
        self.assertIn(loose, ports._held)

    def test_the_range_file_missing_or_covering_every_port(self):
        self.assertEqual(ports.ephemeral_range("/nonexistent/ip_local_port_range"),
                         ports.DEFAULT_EPHEMERAL_RANGE)
        with tempfile.NamedTemporaryFile("w", suffix=".range") as wide:
            wide.write("1024\t65535\n")
            wide.flush()
            self.assertEqual(ports.ephemeral_range(wide.name), (1024, 65535))
        with self.assertRaisesRegex(RuntimeError, "outside the ephemeral range 1024-65535"):
            ports.candidate_ports((1024, 65535))


if __name__ == "__main__":
    unittest.main()
