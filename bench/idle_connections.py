#!/usr/bin/env python3
"""Opens N TLS connections to smtpsd and holds them idle, then prints the server's
resident memory (VmRSS from /proc) before and after, and the difference per connection.

  bench/idle_connections.py --pid PID --port PORT [--count 1000] [--implicit] [--cafile CA]

Without --implicit each connection does EHLO + STARTTLS (smtp role); with it, a TLS
handshake from the first byte (submissions role). Standard library only.
"""
import argparse
import socket
import ssl
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def read_reply(sock):
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
        lines = data.split(b"\r\n")
        for line in lines[:-1]:
            if len(line) >= 4 and line[3:4] == b" ":
                return data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--implicit", action="store_true")
    parser.add_argument("--cafile")
    args = parser.parse_args()

    context = ssl.create_default_context(cafile=args.cafile)
    if not args.cafile:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    before = rss_kib(args.pid)
    held = []
    start = time.time()
    for _ in range(args.count):
        raw = socket.create_connection(("127.0.0.1", args.port))
        if args.implicit:
            tls = context.wrap_socket(raw, server_hostname="localhost")
            read_reply(tls)
        else:
            read_reply(raw)
            raw.sendall(b"EHLO idle.example\r\n")
            read_reply(raw)
            raw.sendall(b"STARTTLS\r\n")
            read_reply(raw)
            tls = context.wrap_socket(raw, server_hostname="localhost")
        tls.sendall(b"EHLO idle.example\r\n")
        read_reply(tls)
        held.append(tls)
    time.sleep(1.0)
    after = rss_kib(args.pid)
    print(f"connections={len(held)} setup_s={time.time() - start:.1f} rss_before_kib={before} "
          f"rss_after_kib={after} per_connection_kib={(after - before) / len(held):.1f}")
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
