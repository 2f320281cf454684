"""testssl.sh's recorded findings on the weak servers of weak_targets.py
(tests/data/testssl/<name>.json, written by test_testssl_live.py) and the check that the
probe reports each of them: "no false PASS" without running testssl.sh (40 s to 110 s a
port) in `make test`.

The rule: every finding testssl.sh rates MEDIUM, HIGH or CRITICAL on a target must map
(TESTSSL_TO_PROBE) to a probe finding that reports a weakness on the same target (its
severity WARN or FAIL, level LOW or worse), unless it is one of the few EXCEPTIONS, each
with its reason. README.md ("smtpsctl probe: severities") shows the same table.

    report = json.loads(probe(...).stdout)
    assert_covers_testssl(self, report, "weak-postfix")
"""

import json
import os
import subprocess

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "testssl")
MEDIUM_OR_WORSE = ("MEDIUM", "HIGH", "CRITICAL")
# What the fixtures keep of testssl.sh's JSON: findings with a severity (OK, INFO and
# DEBUG left out) and its warnings about the scan itself.
SEVERITY_BEARING = ("LOW", "MEDIUM", "HIGH", "CRITICAL", "WARN")

# testssl.sh id -> the probe checks (their "check" in `smtpsctl probe --json`), any one of
# which must report a weakness. testssl.sh's ids are those of its JSON output (3.0.8).
TESTSSL_TO_PROBE = {
    # Protocols (-p) and their attacks (-U).
    "SSLv2": ["tls_SSLv2"], "DROWN": ["drown", "tls_SSLv2"],
    "SSLv3": ["tls_SSLv3"], "POODLE_SSL": ["tls_SSLv3"],
    "TLS1": ["tls_TLSv1"], "TLS1_1": ["tls_TLSv1.1"], "TLS1_2": ["tls_TLSv1.2", "tls_modern"],
    "TLS1_3": ["tls_TLSv1.3"],
    # BEAST lives in TLS 1.0's CBC suites: the probe fails TLS 1.0 itself (RFC 8996).
    "BEAST_CBC_TLS1": ["tls_TLSv1"], "BEAST": ["tls_TLSv1"],
    # Cipher lists (-s), forward secrecy (-f) and the suite attacks (-U).
    "cipherlist_NULL": ["cipher"], "cipherlist_aNULL": ["cipher"],
    "cipherlist_EXPORT": ["cipher"], "cipherlist_LOW": ["cipher"],
    "cipherlist_3DES_IDEA": ["cipher"], "cipherlist_STRONG": ["cipher", "tls_modern"],
    "PFS": ["cipher"], "SWEET32": ["cipher"], "FREAK": ["cipher"], "RC4": ["cipher"],
    "cipher_order": ["cipher_order"],
    "DH_groups": ["dh_size"], "LOGJAM": ["dh_size"], "LOGJAM-common_primes": ["dh_size"],
    "PFS_ECDHE_curves": ["weak_group"],
    # The other vulnerabilities (-U).
    "heartbleed": ["heartbleed"], "CCS": ["ccs_injection"], "ROBOT": ["robot"],
    "CRIME_TLS": ["tls_compression"], "fallback_SCSV": ["tls_fallback_scsv"],
    "secure_renego": ["secure_renegotiation"], "secure_client_renego": ["client_renegotiation"],
    # The certificate (-S).
    "cert_chain_of_trust": ["certificate_chain"], "cert_keySize": ["certificate_key"],
    "cert_expirationStatus": ["certificate_expiry"], "cert_notAfter": ["certificate_expiry"],
    "cert_signatureAlgorithm": ["certificate_signature"],
    "cert_subjectAltName": ["certificate_name"],
}

# testssl.sh ids rated MEDIUM or worse that the probe does not report, and why.
EXCEPTIONS = {
    "cert_trust": "testssl.sh is pointed at 127.0.0.1 (with --nodns none it resolves no name) "
                  "while the certificates name localhost; the probe checks the name it is "
                  "given (certificate_name: a real mismatch fails, test_probe.py "
                  "test_name_mismatch_fails)",
    "cert_revocation": "neither a CRL nor an OCSP URI: the test CA is private and the "
                       "s_server certificates self-signed; the probe does not judge "
                       "revocation information (SMTP clients do not fetch it, and a public "
                       "CA's certificates always carry it)",
    "cert_validityPeriod": "smtpsd's development certificates last 825 days: the CA/Browser "
                           "Forum's 398-day limit binds public CAs, not a private one; the "
                           "probe does not judge validity periods",
}


def testssl_version():
    """The installed testssl.sh's version ("3.0.8"), from Debian's package database."""
    run = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "testssl.sh"],
                         capture_output=True, text=True)
    return run.stdout.split("+")[0].split("-")[0] if run.returncode == 0 else ""


def load_fixture(name):
    with open(os.path.join(FIXTURES, f"{name}.json")) as f:
        return json.load(f)


def fixture_names():
    return sorted(name[:-5] for name in os.listdir(FIXTURES) if name.endswith(".json"))


def uncovered(report, name, port_index=0):
    """The testssl.sh findings (MEDIUM or worse) recorded for target `name` that the probe's
    report does not match with a weakness of its own: a list of lines, empty when none."""
    weak = {f["check"] for f in report["ports"][port_index]["findings"]
            if f["severity"] in ("WARN", "FAIL")}
    missing = []
    for finding in load_fixture(name)["findings"]:
        if finding["severity"] not in MEDIUM_OR_WORSE or finding["id"] in EXCEPTIONS:
            continue
        checks = TESTSSL_TO_PROBE.get(finding["id"])
        if checks is None:
            missing.append(f"{finding['severity']} {finding['id']} ({finding['finding']}): "
                           "not in TESTSSL_TO_PROBE (testssl_fixtures.py)")
        elif not weak & set(checks):
            missing.append(f"{finding['severity']} {finding['id']} ({finding['finding']}): "
                           f"none of {', '.join(checks)} reports a weakness")
    return missing


def assert_covers_testssl(test, report, name, port_index=0):
    """Fails the test when the probe missed a MEDIUM-or-worse finding of testssl.sh's."""
    missing = uncovered(report, name, port_index)
    test.assertEqual(missing, [], f"the probe passes what testssl.sh rated on {name}:\n" +
                     "\n".join(missing))
