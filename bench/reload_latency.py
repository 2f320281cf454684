#!/usr/bin/env python3
"""Time from a certificate file change to the first TLS handshake that shows the new
certificate (README "Reloading"), on a real smtpsd on loopback.

Each try: a fresh certificate/key pair is copied next to the live files and renamed over them
(the key first, then the certificate: a consistent pair appears in two renames, as most
tools do it; with --symlink, certbot's way: live/*.pem are symlinks into archive/ and are
re-pointed with unlink + symlink), then a client does a full handshake every 50 ms until the
server presents the new certificate. Prints each try and the median.

  python3 bench/reload_latency.py [--tries 9] [--symlink] [--smtpsd build/smtpsd]
"""

import argparse
import os
import shutil
import socket
import ssl
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

import harness  # noqa: E402
from test_reload import der_of, issue  # noqa: E402


def served(port):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tries", type=int, default=9)
    parser.add_argument("--symlink", action="store_true")
    parser.add_argument("--smtpsd", default=os.path.join(HERE, "..", "build", "smtpsd"))
    args = parser.parse_args()
    harness.SMTPSD = os.path.abspath(args.smtpsd)

    directory = tempfile.mkdtemp(prefix="smtpsd-reload-latency-")
    server = harness.Server(directory, listeners=[{"role": "submissions"}])
    ca = os.path.join(directory, "tls")
    pairs = [issue(directory, f"c{i}", ca, ["localhost"]) for i in range(args.tries + 1)]
    live = os.path.join(directory, "live")
    archive = os.path.join(directory, "archive")
    os.makedirs(live)
    os.makedirs(archive)
    cert = os.path.join(live, "cert.pem")
    key = os.path.join(live, "key.pem")
    if args.symlink:
        for i, (c, k) in enumerate(pairs):
            shutil.copyfile(c, os.path.join(archive, f"cert{i}.pem"))
            shutil.copyfile(k, os.path.join(archive, f"privkey{i}.pem"))
        os.symlink("../archive/cert0.pem", cert)
        os.symlink("../archive/privkey0.pem", key)
    else:
        shutil.copyfile(pairs[0][0], cert)
        shutil.copyfile(pairs[0][1], key)
    server.write_config()
    with open(server.config_path) as f:
        text = f.read()
    from test_reload import DEV_CERTIFICATES
    text = text.replace(DEV_CERTIFICATES,
                        f'[[tls.certificates]]\ncertificate = "{cert}"\nkey = "{key}"\n')
    with open(server.config_path, "w") as f:
        f.write(text)
    server.start()
    port = server.ports["submissions"]
    results = []
    try:
        for i in range(1, args.tries + 1):
            expected = der_of(pairs[i][0])
            time.sleep(1.0)  # let the previous reload settle
            started = time.monotonic()
            if args.symlink:
                for link, target in ((key, f"../archive/privkey{i}.pem"),
                                     (cert, f"../archive/cert{i}.pem")):
                    os.unlink(link)
                    os.symlink(target, link)
            else:
                for source, destination in ((pairs[i][1], key), (pairs[i][0], cert)):
                    shutil.copyfile(source, destination + ".new")
                    os.replace(destination + ".new", destination)
            handshakes = 0
            while True:
                handshakes += 1
                if served(port) == expected:
                    break
                if time.monotonic() - started > 20:
                    raise SystemExit("the new certificate was never served")
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            results.append(elapsed)
            print(f"try {i}: {elapsed * 1000:.0f} ms ({handshakes} handshakes)")
    finally:
        server.stop()
        refused = server.log().count("event=tls_reload_refused")
        shutil.rmtree(directory, ignore_errors=True)
    print(f"median {statistics.median(results) * 1000:.0f} ms, min {min(results) * 1000:.0f} ms, "
          f"max {max(results) * 1000:.0f} ms over {len(results)} tries "
          f"({'symlink swap' if args.symlink else 'rename'}); refused reloads: {refused}")


if __name__ == "__main__":
    main()
