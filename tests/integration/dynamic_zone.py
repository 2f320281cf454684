"""A zone of the test's own that accepts RFC 2136 dynamic updates signed with a TSIG key
(RFC 8945), served by BIND's named (Debian bind9) on a loopback port: what the dns-01 hook
(contrib/acme/acme-dns-nsupdate) updates and what Pebble's -dnsserver and smtpsd's [dns] ask.

    with DynamicZone(work_dir, "acme.test", ['mail.acme.test. A 127.0.0.1']) as zone:
        zone.server     # "127.0.0.1:PORT"
        zone.key_file   # the TSIG key, a named.conf "key" statement (nsupdate -k reads it)

Only the standard library.
"""

import base64
import os
import secrets

from dns_server import free_port
from processes import end_process
from signed_zone import NamedProcess

KEY_NAME = "acme-test-key"


class DynamicZone(NamedProcess):
    def __init__(self, directory, zone, records):
        os.makedirs(directory, exist_ok=True)
        super().__init__(directory, "dynamic-zone-")
        self.zone = zone
        self.key_file = os.path.join(directory, "tsig.key")
        secret = base64.b64encode(secrets.token_bytes(32)).decode()
        with open(self.key_file, "w") as f:
            f.write(f'key "{KEY_NAME}" {{\n    algorithm hmac-sha256;\n    secret "{secret}";\n}};\n')
        os.chmod(self.key_file, 0o600)
        zone_file = os.path.join(directory, f"{zone}.zone")
        with open(zone_file, "w") as f:
            f.write(f"$TTL 1\n{zone}. SOA ns.{zone}. hostmaster.{zone}. 1 60 60 600 1\n"
                    f"{zone}. NS ns.{zone}.\nns.{zone}. A 127.0.0.1\n")
            for record in records:
                f.write(record + "\n")
        for _ in range(5):
            port = free_port()
            conf = os.path.join(directory, "named.conf")
            with open(conf, "w") as f:
                f.write(f"""include "{self.key_file}";
options {{
    directory "{directory}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    pid-file none;
    session-keyfile none;
    notify no;
    max-cache-ttl 1;
}};
controls {{ }};
zone "{zone}" {{
    type primary;
    file "{zone_file}";
    update-policy {{ grant {KEY_NAME} subdomain {zone}. TXT; }};
}};
""")
            if self.run_named(conf):
                self.server = f"127.0.0.1:{port}"
                return
            end_process(self.process, timeout=5)
            self.process = None
            if "address in use" not in self.log():
                raise RuntimeError(f"named did not start:\n{self.log()}")
        raise RuntimeError("named found no free port")
