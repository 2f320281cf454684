"""Test certificates from the `openssl` command line, signed by a test's development CA.

`openssl ca` rather than `req -x509`/`x509 -req`, so that validity can start in the past or
end within a day (OpenSSL 3.0's -days cannot go below 1), and any extension can be set.
"""

import datetime
import os
import subprocess


def utc(offset_seconds):
    """now + offset_seconds in ASN.1 GeneralizedTime, as `openssl ca -startdate` wants."""
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
        seconds=offset_seconds)
    return moment.strftime("%Y%m%d%H%M%SZ")


def issue_leaf(work, ca_cert, ca_key, names, common_name="localhost", key_type="ec",
               start=-86400, end=90 * 86400, key=None, extensions=None):
    """A server certificate signed by ca_cert/ca_key, made in the directory `work`.

    names: the subjectAltName entries ("mx.example.org" is a DNS name; "IP:127.0.0.1" and
    "DNS:…" are taken as they are). start, end: seconds from now, or absolute
    "YYYYMMDDHHMMSSZ" strings. key: an existing private key to certify, else a new one
    (key_type "ec": P-256, "rsa": 2048 bits). extensions: extension lines that replace or add
    to the defaults (basicConstraints, extendedKeyUsage, subjectAltName).
    Returns (certificate path, key path)."""
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "index.txt"), "w"):
        pass
    with open(os.path.join(work, "serial"), "w") as f:
        f.write(os.urandom(8).hex() + "\n")
    leaf = {"subjectAltName": ",".join(n if ":" in n else "DNS:" + n for n in names),
            "basicConstraints": "CA:false", "extendedKeyUsage": "serverAuth"}
    leaf.update(extensions or {})
    with open(os.path.join(work, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\nnew_certs_dir = .\n"
                "serial = serial\ndefault_md = sha256\npolicy = anything\n"
                "x509_extensions = leaf\nunique_subject = no\n"
                "[anything]\ncommonName = supplied\n[leaf]\n"
                + "".join(f"{k} = {v}\n" for k, v in leaf.items()))
    csr = os.path.join(work, "leaf.csr")
    cert = os.path.join(work, "leaf.pem")
    if key is None:
        key = os.path.join(work, "leaf.key")
        new_key = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key_type == "ec"
                   else ["-newkey", "rsa:2048"])
        subprocess.run(["openssl", "req", "-new"] + new_key + ["-nodes", "-keyout", key,
                        "-out", csr, "-subj", f"/CN={common_name}"],
                       check=True, capture_output=True)
    else:
        subprocess.run(["openssl", "req", "-new", "-key", key, "-out", csr,
                        "-subj", f"/CN={common_name}"], check=True, capture_output=True)
    dates = [utc(d) if isinstance(d, int) else d for d in (start, end)]
    subprocess.run(["openssl", "ca", "-batch", "-config", "ca.cnf", "-cert", ca_cert,
                    "-keyfile", ca_key, "-in", csr, "-out", cert,
                    "-startdate", dates[0], "-enddate", dates[1]],
                   check=True, capture_output=True, cwd=os.path.abspath(work))
    return cert, key


def install_chain(cert, ca_cert, destination):
    """Writes cert followed by the CA certificate to destination, by rename (a server that
    watches the file never reads half of it)."""
    with open(destination + ".new", "wb") as out:
        for part in (cert, ca_cert):
            with open(part, "rb") as f:
                out.write(f.read())
    os.replace(destination + ".new", destination)
