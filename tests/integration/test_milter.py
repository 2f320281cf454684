"""Milters ([[milters]], intake/milter_check.h): a scripted milter (fake_milter.py) covering
every reply and every modification, milters that are down, slow or die mid-message (the
default action applies, nothing is lost or delivered twice), OpenDKIM as a signing milter
whose signature dkimpy verifies on the delivered message, and rspamd (its proxy worker in
milter mode, offline: tests/integration/rspamd.py) and SpamAssassin (spamd behind Debian's
spamass-milter, offline: tests/integration/spamassassin.py) rejecting GTUBE and heading clean
mail.

Standard library only (OpenDKIM, dkimpy, rspamd, spamd and spamass-milter are Debian
packages, run as programs).
"""

import base64
import os
import re
import signal
import smtplib
import subprocess
import time

import fake_milter as fm
import needs
from harness import SMTPSD, ServerTestCase, make_message
from processes import end_process
from rspamd import RSPAMD, Rspamd
from spamassassin import SPAMASS_MILTER, SPAMC, SPAMD, SpamAssassin

SMTPSCTL = os.environ.get("SMTPSCTL_BIN") or os.path.join(os.path.dirname(SMTPSD), "smtpsctl")


def milter_toml(name, path, timeout="2s", default_action="tempfail", extra=""):
    return (f'[[milters]]\nname = "{name}"\naddress = "unix:{path}"\ntimeout = "{timeout}"\n'
            f'default_action = "{default_action}"\n{extra}\n')


def dkim_verifies(message, record):
    """dkimpy (Debian python3-dkim, run with /usr/bin/python3) on the first DKIM-Signature,
    the key record given instead of DNS."""
    verify = ("import sys, dkim\n"
              "record = sys.argv[1].encode()\n"
              "message = sys.stdin.buffer.read()\n"
              "ok = dkim.verify(message, dnsfunc=lambda name, timeout=5: record)\n"
              "sys.exit(0 if ok else 1)\n")
    result = subprocess.run(["/usr/bin/python3", "-c", verify, record], input=message,
                            capture_output=True)
    return result.returncode == 0


def body_of(message):
    return message.split(b"\r\n\r\n", 1)[1]


def header_lines(message):
    """The header fields after our Received field (the client's section as edited)."""
    head = message.split(b"\r\n\r\n", 1)[0].decode()
    fields = re.split(r"\r\n(?![ \t])", head)
    received = next(i for i, f in enumerate(fields) if f.startswith("Received:"))
    return fields[received + 1:]


class ScriptedMilter(ServerTestCase):

    def start(self, script, protocol=0, milters=None, extra="", domains=None, listeners=None,
              macros=None):
        self.sock = os.path.join(self.tmp, "m.sock")
        self.milter = fm.FakeMilter(self.sock, script, protocol=protocol, macros=macros)
        self.addCleanup(self.milter.stop)
        toml = extra + (milters if milters is not None else milter_toml("scripted", self.sock))
        self.server = self.new_server(
            listeners=listeners or [{"role": "smtp", "milters": ["scripted"]}],
            extra_toml=toml, domains=domains or [("localhost", ["demo", "other", "third"])])
        self.server.start()
        return self.server

    def test_every_modification_reaches_the_delivered_message(self):
        def script(stage, event, conversation):
            if stage == "eom":
                return [fm.add_header("X-Added", "at the end"),
                        # Index 1 of what it saw: after our Authentication-Results.
                        fm.insert_header(1, "X-Top", "first\n\tfolded"),
                        fm.change_header(1, "Authentication-Results", ""),  # ours: ignored
                        fm.change_header(1, "Subject", "changed"),
                        fm.change_header(1, "X-Drop", ""),
                        fm.replace_body(b"new body\nline two\r"),
                        fm.replace_body(b"\nlast\n"),
                        fm.change_sender("bounce@localhost"),
                        fm.add_recipient("third@localhost"),
                        fm.delete_recipient("other@localhost"),
                        fm.CONTINUE]
            return None
        # The local submission path goes through the milters named in [local_submission], and
        # its mail is signed by us (dkim-sign, after the milters).
        server = self.start(script, protocol=fm.NO_REPLY["header"],
                            extra='[local_submission]\nmilters = ["scripted"]\n',
                            domains=[("localhost", ["demo", "other", "third"], {"dkim": [
                                {"selector": "dev-rsa", "key": "dkim/localhost/dev-rsa.key"}]})])
        # A forged verdict in our name: removed before the milter sees the message.
        message = (b"From: <you@example.org>\r\nTo: <demo@localhost>\r\nSubject: original\r\n"
                   b"Authentication-Results: localhost; dmarc=pass\r\n"
                   b"X-Drop: me\r\n\r\nOriginal body.\r\n")
        with server.smtp() as client:
            client.sendmail("you@example.org", ["demo@localhost", "other@localhost"], message)
        delivered = server.wait_delivered(1)[0]
        server.wait_delivered(1, "third@localhost")
        self.assertEqual(server.delivered("other@localhost"), [])
        self.assertTrue(delivered.startswith(b"Return-Path: <bounce@localhost>\r\n"), delivered)
        self.assertEqual(header_lines(delivered),
                         ["X-Top: first\r\n\tfolded", "From: <you@example.org>",
                          "To: <demo@localhost>", "Subject: changed", "X-Added: at the end"])
        self.assertEqual(body_of(delivered), b"new body\r\nline two\r\nlast\r\n")
        self.assertIn(b"\r\nAuthentication-Results: localhost;\r\n\tspf=", delivered)
        server.wait_log(r"level=warning event=milter_edit_ignored .*field=Authentication-Results")
        # What the milter saw, in order, with the macros filters expect.
        self.milter.wait_for(lambda e: e and e[0] and e[0][-1][0] == "quit")
        events = self.milter.events()[0]
        kinds = [e[0] for e in events if e[0] != "macro"]
        self.assertEqual(kinds, ["optneg", "connect", "helo", "helo", "mail", "rcpt", "rcpt",
                                 "data", "header", "header", "header", "header", "header", "eoh",
                                 "body", "eom", "quit"])
        # The milter sees the message as our checks left it: our Authentication-Results first
        # (SPF, DKIM and DMARC come before the milters), then the client's fields.
        headers = [e[1:] for e in events if e[0] == "header"]
        self.assertEqual(headers[0][0], "Authentication-Results")
        self.assertTrue(headers[0][1].startswith("localhost;"), headers[0])
        self.assertIn("spf=", headers[0][1])
        self.assertEqual([name for name, _ in headers[1:]], ["From", "To", "Subject", "X-Drop"])
        connect = next(e for e in events if e[0] == "connect")
        self.assertEqual((connect[1], connect[2], connect[4]), ("unknown", "4", "127.0.0.1"))
        self.assertIn(("mail", "<you@example.org>"), events)
        self.assertIn(("rcpt", "<other@localhost>"), events)
        self.assertIn(("header", "Subject", "original"), events)
        self.assertIn(("body", b"Original body.\r\n"), events)
        macros = {}
        for event in events:
            if event[0] == "macro":
                macros.setdefault(event[1], {}).update(event[2])
        self.assertEqual(macros["C"]["j"], "localhost")
        self.assertEqual(macros["C"]["{client_addr}"], "127.0.0.1")
        self.assertEqual(macros["C"]["_"], "unknown [127.0.0.1]")
        self.assertEqual(macros["H"]["{tls_version}"], "TLSv1.3")  # the EHLO after STARTTLS
        self.assertIn("{cipher}", macros["H"])
        self.assertEqual(macros["M"]["{mail_addr}"], "you@example.org")
        self.assertEqual(macros["R"]["{rcpt_addr}"], "other@localhost")
        queue_id = macros["T"]["i"]
        self.assertEqual(macros["E"]["i"], queue_id)
        self.assertIn(f"id {queue_id}".encode(), delivered)

        # A local submission (root's sendmail): the milter sees a local client and edits it too.
        environment = dict(os.environ, SMTPSD_CONFIG=server.config_path)
        result = subprocess.run([SMTPSCTL, "sendmail", "demo@localhost"],
                                input=b"From: root@localhost\nSubject: local\nX-Drop: x\n\nfrom cron\n",
                                env=environment, capture_output=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        local = server.wait_delivered(2)[1]
        self.assertIn(b"X-Added: at the end\r\n", local)
        self.assertIn(b"Subject: changed\r\n", local)
        self.assertEqual(body_of(local), b"new body\r\nline two\r\nlast\r\n")
        # Our signature covers the message as the milter left it (header fields and body).
        self.assertIn(b"DKIM-Signature: ", local)
        der = subprocess.run(["openssl", "pkey", "-in",
                              os.path.join(server.dir, "dkim", "localhost", "dev-rsa.key"),
                              "-pubout", "-outform", "DER"], capture_output=True, check=True)
        record = "v=DKIM1; k=rsa; p=" + base64.b64encode(der.stdout).decode()
        self.assertTrue(dkim_verifies(local, record), local[:2000])
        self.milter.wait_for(lambda e: len(e) == 2)
        connect = next(e for e in self.milter.events()[1] if e[0] == "connect")
        self.assertEqual(connect[1:3] + connect[4:], ("localhost", "4", "127.0.0.1"))

    def test_each_reply_of_each_stage(self):
        def script(stage, event, conversation):
            if stage == "mail":
                conversation["subject"] = ""
                if event[1] == "<reject@example.org>":
                    return [fm.REJECT]
                if event[1] == "<tempfail@example.org>":
                    return [fm.TEMPFAIL]
            if stage == "rcpt" and event[1] == "<demo+refuse@localhost>":
                return [fm.replycode("550 5.7.0 Not this one")]
            if stage == "rcpt" and event[1] == "<demo+bad@localhost>":
                return [fm.replycode("250 2.0.0 A milter may not accept this way")]
            if stage == "rcpt" and event[1] == "<demo+drop@localhost>":
                conversation["drop"] = True
                return [fm.DISCARD]  # at the end of data, though the milter accepts before it
            if stage == "eoh" and conversation.pop("drop", False):
                return [fm.ACCEPT]
            if stage == "header" and event[1] == "Subject":
                conversation["subject"] = event[2]
                if event[2] == "header-reject":
                    return [fm.REJECT]
            if stage == "body" and conversation["subject"] == "skip":
                return [fm.SKIP]
            if stage == "eom":
                subject = conversation["subject"]
                return {
                    "discard": [fm.DISCARD],
                    "quarantine": [fm.quarantine("looks odd"), fm.CONTINUE],
                    "accept": [fm.ACCEPT],
                    "eom-reply": [fm.replycode("554 5.7.1 Spam detected")],
                    "eom-tempfail": [fm.TEMPFAIL],
                    "progress": [fm.PROGRESS, 0.3, fm.PROGRESS, 0.3, fm.PROGRESS, 0.3,
                                 fm.CONTINUE],
                }.get(subject)
            return None
        # Macros: the configuration's list at connect, the milter's own (SETSYMLIST) at RCPT.
        server = self.start(script, protocol=0x400,  # SMFIP_SKIP
                            milters=milter_toml("scripted", os.path.join(self.tmp, "m.sock"),
                                                timeout="500ms",
                                                extra='macros = { connect = ["{client_addr}"] }'),
                            macros={3: "j {rcpt_addr}"})

        def send(sender="you@example.org", to="demo@localhost", subject="x", body="Hi.\r\n"):
            with server.smtp(starttls=False) as client:
                client.sendmail(sender, [to], make_message(subject=subject, sender=sender, to=to,
                                                           body=body))

        def refused(code, text, **kwargs):
            with self.assertRaises(smtplib.SMTPException) as caught:
                send(**kwargs)
            error = caught.exception
            if isinstance(error, smtplib.SMTPRecipientsRefused):
                (got_code, got_text), = error.recipients.values()
            else:
                got_code, got_text = error.smtp_code, error.smtp_error
            self.assertEqual(got_code, code, kwargs)
            self.assertIn(text, got_text.decode(), kwargs)

        refused(550, "5.7.1 Command rejected", sender="reject@example.org")
        refused(451, "4.7.1 Service unavailable", sender="tempfail@example.org")
        refused(550, "5.7.0 Not this one", to="demo+refuse@localhost")
        sent = [e for e in self.milter.events()[2] if e[0] == "macro"]
        self.assertEqual([e[1:] for e in sent if e[1] in "CR"],
                         [("C", {"{client_addr}": "127.0.0.1"}),
                          ("R", {"j": "localhost", "{rcpt_addr}": "demo+refuse@localhost"})])
        # A reply code that does not match its meaning is the milter's failure: tempfail.
        refused(451, "4.7.1", to="demo+bad@localhost")
        server.wait_log(r"level=warning event=milter_failed .*milter=scripted stage=rcpt "
                        r"reason=.*not 4xx or 5xx.* action=tempfail")
        refused(550, "5.7.1 Command rejected", subject="header-reject")
        refused(554, "5.7.1 Spam detected", subject="eom-reply")
        refused(451, "4.7.1", subject="eom-tempfail")
        send(subject="discard")
        send(subject="drop", to="demo+drop@localhost")  # 250, and dropped
        send(subject="quarantine")
        server.wait_log(r"event=accepted .*held=yes")
        send(subject="accept")
        send(subject="skip", body="x" * 100 + "\r\n")
        send(subject="progress")
        delivered = server.wait_delivered(3)
        time.sleep(0.2)  # a fourth (the discarded or held one) would be there by now
        subjects = sorted(re.search(rb"Subject: (\S+)", m).group(1) for m in
                          server.delivered())
        self.assertEqual(subjects, [b"accept", b"progress", b"skip"])
        self.assertEqual(len(delivered), 3)

    def test_down_slow_and_closing_milters_get_the_default_action(self):
        def script(stage, event, conversation):
            if stage == "mail":
                conversation["sender"] = event[1]
            if stage == "eom" and conversation.get("sender") == "<hang@example.org>":
                return "hang"
            if stage == "body" and conversation.get("sender") == "<close@example.org>":
                return "close"
            if stage == "header" and conversation.get("sender") == "<closes-at-header@example.org>":
                return "close"
            return None
        sock = os.path.join(self.tmp, "m.sock")
        missing = os.path.join(self.tmp, "nobody-listens.sock")
        # Lenient on the local submission path: a milter that is down and the scripted one,
        # both default_action = accept. Strict (tempfail) on port 25: the scripted one again.
        server = self.start(
            script, listeners=[{"role": "smtp", "milters": ["strict"]}],
            milters=milter_toml("down", missing, "300ms", "accept") +
            milter_toml("lenient", sock, "300ms", "accept") +
            milter_toml("strict", sock, "300ms", "tempfail") +
            '[local_submission]\nmilters = ["down", "lenient"]\n',
            domains=[("localhost", ["demo"])])
        environment = dict(os.environ, SMTPSD_CONFIG=server.config_path)
        for sender in ("hang@example.org", "close@example.org", "ok@example.org"):
            result = subprocess.run([SMTPSCTL, "sendmail", "-f", sender, "demo@localhost"],
                                    input=b"Subject: lenient\n\n" + b"x" * 100 + b"\n",
                                    env=environment, capture_output=True, timeout=30)
            self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(len(server.wait_delivered(3)), 3)
        server.wait_log(r"level=warning event=milter_failed .*milter=down stage=connect "
                        r"reason=\"?cannot connect")
        server.wait_log(r"event=milter_failed .*milter=lenient stage=end_of_data "
                        r"reason=\"?timed out after 300ms.* action=accept")
        server.wait_log(r"event=milter_failed .*milter=lenient stage=end_of_data "
                        r"reason=\"?closed the connection.* action=accept")

        # Strict: the same failures refuse with 451, the client keeps the message; a milter
        # that failed is not asked again in the session (one conversation each).
        conversations = len(self.milter.events())
        for sender in ("hang@example.org", "close@example.org", "closes-at-header@example.org"):
            with server.smtp(starttls=False) as client:
                with self.assertRaises(smtplib.SMTPDataError) as caught:
                    client.sendmail(sender, ["demo@localhost"], make_message(sender=sender))
                self.assertEqual(caught.exception.smtp_code, 451)
        self.assertEqual(len(self.milter.events()), conversations + 3)
        with server.smtp(starttls=False) as client:
            client.sendmail("ok@example.org", ["demo@localhost"], make_message())
        self.assertEqual(len(server.wait_delivered(4)), 4)
        # The milter goes down: sessions are refused with a 4xx until it is back.
        self.milter.stop()
        os.unlink(sock)
        with self.assertRaises(smtplib.SMTPResponseException) as caught:
            with server.smtp(starttls=False) as client:
                client.sendmail("ok@example.org", ["demo@localhost"], make_message())
        self.assertEqual(caught.exception.smtp_code // 100, 4)
        server.wait_log(r"event=milter_failed .*milter=strict stage=connect .*action=tempfail")
        time.sleep(0.2)  # nothing more arrives: nothing was delivered twice
        self.assertEqual(len(server.delivered()), 4)

    def test_too_many_modifications_are_the_milters_failure(self):
        def script(stage, event, conversation):
            if stage == "mail":
                conversation["sender"] = event[1]
            if stage == "eom" and conversation.get("sender") == "<many@example.org>":
                return [fm.add_header("X-Many", "1")] * 1001 + [fm.CONTINUE]
            if stage == "eom":
                return [fm.add_header("X-Few", "1")] * 1000 + [fm.CONTINUE]
            return None
        server = self.start(script, domains=[("localhost", ["demo"])])
        # 1000 header edits are taken ...
        with server.smtp(starttls=False) as client:
            client.sendmail("few@example.org", ["demo@localhost"], make_message())
        self.assertEqual(server.wait_delivered(1)[0].count(b"X-Few: 1\r\n"), 1000)
        # ... 1001 are the milter's failure: its default action (tempfail), nothing stored.
        with server.smtp(starttls=False) as client:
            with self.assertRaises(smtplib.SMTPDataError) as caught:
                client.sendmail("many@example.org", ["demo@localhost"], make_message())
            self.assertEqual(caught.exception.smtp_code, 451)
        server.wait_log(r"level=warning event=milter_failed .*milter=scripted stage=end_of_data "
                        r"reason=\"?more than 1000 header edits.* action=tempfail")
        self.assertEqual(len(server.delivered()), 1)

    def test_header_section_over_1_mib_is_one_message_not_a_failure(self):
        def script(stage, event, conversation):
            if stage == "eom":
                return [fm.add_header("X-Checked", "yes"), fm.CONTINUE]
            return None
        # Submission with AUTH: the authenticity check (which refuses such a message with 552
        # before the milters) does not verify it, so the milter's own handling decides.
        server = self.start(script, protocol=fm.NO_REPLY["header"],
                            listeners=[{"role": "submission", "milters": ["scripted"]}],
                            domains=[("localhost", ["demo"])])
        with open(os.path.join(server.dir, "demo.password")) as f:
            password = f.read().strip()
        big = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"f" * 900) for i in range(1200))
        with server.smtp(role="submission") as client:
            client.login("demo@localhost", password)
            # The milter never saw this header section whole: SMFIC_ABORT to the milter, its
            # default action (tempfail) for this message ...
            with self.assertRaises(smtplib.SMTPDataError) as caught:
                client.sendmail("demo@localhost", ["demo@localhost"],
                                b"Subject: big\r\n" + big + b"\r\nBody.\r\n")
            self.assertEqual(caught.exception.smtp_code, 451)
            # ... and the next message of the session goes through the milter again.
            client.sendmail("demo@localhost", ["demo@localhost"],
                            make_message(subject="small", sender="demo@localhost"))
        delivered = server.wait_delivered(1)
        self.assertIn(b"X-Checked: yes\r\n", delivered[0])
        self.assertIn(b"Subject: small\r\n", delivered[0])
        server.wait_log(r"level=warning event=milter_skipped .*milter=scripted "
                        r"reason=\"?header section over 1 MiB.* action=tempfail")
        self.assertNotIn("event=milter_failed", server.log())
        self.milter.wait_for(lambda e: e and e[0] and e[0][-1][0] == "quit")
        # The fields before the intake's bound went to the milter, nothing after them.
        kinds = [e[0] for e in self.milter.events()[0]
                 if e[0] not in ("macro", "header", "helo")]
        self.assertEqual(kinds, ["optneg", "connect", "mail", "rcpt", "data", "abort",
                                 "mail", "rcpt", "data", "eoh", "body", "eom", "quit"])

    def test_configuration_errors_name_the_key(self):
        server = self.new_server(listeners=[{"role": "smtp", "milters": ["m"]}],
                                 extra_toml=milter_toml("m", "/run/m.sock", "3s", "accept"))
        result = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("milter: m at unix:/run/m.sock, timeout 3000 ms, default accept; used by "
                      "smtp 127.0.0.1:0", result.stdout)
        server.listeners = [{"role": "smtp", "milters": ["nope"]}]
        server.extra_toml = ""
        server.write_config()
        result = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                capture_output=True, text=True)
        self.assertNotEqual(result.returncode, 0)
        self.assertRegex(result.stdout + result.stderr,
                         r"smtpsd.toml:\d+: listeners\[0\]\.milters: no \[\[milters\]\] entry is "
                         r"named 'nope'")
        for toml, key, why in (
                ('[[milters]]\nname = "a"\naddress = "milter.example:1"\n', r"milters\[0\]\.address",
                 "not an IP"),
                ('[[milters]]\nname = "a"\naddress = "unix:/x"\ndefault_action = "reject"\n',
                 r"milters\[0\]\.default_action", "tempfail"),
                ('[[milters]]\nname = "a"\naddress = "unix:/x"\nmacros = { body = ["i"] }\n',
                 r"milters\[0\]\.macros\.body", "unknown key"),
                ('[[milters]]\nname = "a b"\naddress = "unix:/x"\n', r"milters\[0\]\.name",
                 "letters")):
            server.extra_toml = toml
            server.write_config()
            result = subprocess.run([SMTPSD, "check", "--config", server.config_path],
                                    capture_output=True, text=True)
            self.assertNotEqual(result.returncode, 0, toml)
            self.assertRegex(result.stdout + result.stderr, rf"smtpsd.toml:\d+: {key}: .*{why}")


OPENDKIM = "/usr/sbin/opendkim"


@needs.tools(OPENDKIM, "opendkim-genkey")
class OpenDkimMilter(ServerTestCase):

    def test_opendkim_signature_verifies_on_the_delivered_message(self):
        keys = os.path.join(self.tmp, "keys")
        os.makedirs(keys)
        subprocess.run(["opendkim-genkey", "-b", "1024", "-d", "example.org", "-s", "sel",
                        "-D", keys], check=True)
        sock = os.path.join(self.tmp, "opendkim.sock")
        conf = os.path.join(self.tmp, "opendkim.conf")
        with open(conf, "w") as f:
            f.write(f"Syslog no\nMode s\nDomain example.org\nSelector sel\n"
                    f"KeyFile {keys}/sel.private\nSocket local:{sock}\n"
                    f"Canonicalization relaxed/simple\nUserID root\n"
                    f"PidFile {self.tmp}/opendkim.pid\nBackground no\n"
                    f"SignatureAlgorithm rsa-sha256\nOversignHeaders From\n"
                    f"RequireSafeKeys no\nInternalHosts 127.0.0.1\n")
        with open(os.path.join(self.tmp, "opendkim.log"), "wb") as log:
            process = subprocess.Popen([OPENDKIM, "-f", "-x", conf], stdout=log, stderr=log)
        # SIGKILL: on SIGTERM opendkim takes ~6 s to end its threads, and it keeps no state.
        self.addCleanup(end_process, process, signal.SIGKILL)
        deadline = time.time() + 10
        while not os.path.exists(sock):
            self.assertLess(time.time(), deadline, "opendkim did not open its socket")
            self.assertIsNone(process.poll(), "opendkim ended")
            time.sleep(0.02)
        server = self.new_server(listeners=[{"role": "smtp", "milters": ["opendkim"]}],
                                 extra_toml=milter_toml("opendkim", sock, "5s"))
        server.start()
        body = "".join(f"Line {i} of a body longer than one chunk. {'x' * 60}\r\n"
                       for i in range(2000)) + ".leading dot\r\n\r\n\r\n"
        message = make_message(subject="signed by a milter", sender="alice@example.org",
                               body=body, message_id="m1@example.org")
        with server.smtp(starttls=False) as client:
            client.sendmail("alice@example.org", ["demo@localhost"], message)
        delivered = server.wait_delivered(1)[0]
        self.assertIn(b"DKIM-Signature: ", delivered)
        with open(os.path.join(keys, "sel.txt")) as f:
            record = "".join(re.findall(r'"([^"]*)"', f.read()))
        self.assertTrue(dkim_verifies(delivered, record), delivered[:1500].decode())


# GTUBE, the Generic Test for Unsolicited Bulk Email: rspamd's core rejects any text part
# holding it, whatever its rules (none are loaded here).
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@needs.tools(RSPAMD)
class RspamdMilter(ServerTestCase):

    def test_rspamd_rejects_gtube_with_its_reply_and_heads_clean_mail(self):
        rspamd = Rspamd(self.tmp)
        try:
            rspamd.start(timeout=20)
        except RuntimeError as error:
            self.fail(str(error))
        self.addCleanup(rspamd.stop)
        server = self.new_server(
            listeners=[{"role": "smtp", "milters": ["rspamd"]}],
            extra_toml=milter_toml("rspamd", rspamd.socket, "10s"))
        server.start()
        # GTUBE: rspamd's reject action, its own reply at the end of data; nothing stored.
        with server.smtp(starttls=False) as client:
            with self.assertRaises(smtplib.SMTPDataError) as caught:
                client.sendmail("you@example.org", ["demo@localhost"],
                                make_message(subject="gtube", body=f"{GTUBE}\r\n"))
        self.assertEqual((caught.exception.smtp_code, caught.exception.smtp_error),
                         (554, b"5.7.1 Gtube pattern"), rspamd.log()[-3000:])
        # A clean message: delivered with the header fields rspamd's milter_headers adds, the
        # queue id rspamd got from us (macro i) among them.
        with server.smtp(starttls=False) as client:
            client.sendmail("you@example.org", ["demo@localhost"],
                            make_message(subject="lunch", body="Shall we meet at noon?\r\n"))
        delivered = server.wait_delivered(1)[0]
        self.assertEqual(len(server.delivered()), 1)
        self.assertRegex(delivered, rb"\r\nX-Spamd-Result: default: False \[0\.00 / 15\.00\]",
                         delivered[:2000])
        queue_id = re.search(rb"\r\nX-Rspamd-Queue-Id: (\S+)\r\n", delivered)
        self.assertIsNotNone(queue_id, delivered[:2000])
        self.assertIn(b"id " + queue_id.group(1), delivered)  # our Received field's id
        self.assertIn(b"Subject: lunch\r\n", delivered)
        # Offline: rspamd asked no DNS for either message.
        scans = re.findall(r"rspamd_task_write_log: .*dns req: (\d+)", rspamd.log())
        self.assertEqual(scans, ["0", "0"], rspamd.log()[-3000:])


@needs.tools(SPAMD, SPAMC, SPAMASS_MILTER)
class SpamAssassinMilter(ServerTestCase):

    def test_spamass_milter_rejects_gtube_and_heads_clean_mail(self):
        # spamd compiles its rules (seconds, on one core) while smtpsd starts.
        spamassassin = SpamAssassin(self.tmp, reject_score=15).launch()
        self.addCleanup(spamassassin.stop)
        server = self.new_server(
            listeners=[{"role": "smtp", "milters": ["spamassassin"]}],
            extra_toml=milter_toml("spamassassin", spamassassin.socket, "10s"))
        server.start()
        try:
            spamassassin.wait_ready(timeout=60)
        except RuntimeError as error:
            self.fail(str(error))
        # GTUBE scores 1000 (a body rule of Debian's rules), above spamass-milter's -r 15:
        # its reject, with its own reply, at the end of data; nothing stored.
        with server.smtp(starttls=False) as client:
            with self.assertRaises(smtplib.SMTPDataError) as caught:
                client.sendmail("you@example.org", ["demo@localhost"],
                                make_message(subject="gtube", body=f"{GTUBE}\r\n"))
        self.assertEqual((caught.exception.smtp_code, caught.exception.smtp_error),
                         (550, b"5.7.1 Blocked by SpamAssassin"), spamassassin.log()[-3000:])
        # A clean message: delivered with the X-Spam-* fields spamd computed, which
        # spamass-milter adds at the end of the message.
        with server.smtp(starttls=False) as client:
            client.sendmail("you@example.org", ["demo@localhost"],
                            make_message(subject="lunch", message_id="lunch@example.org",
                                         body="Shall we meet at noon?\r\n"))
        delivered = server.wait_delivered(1)[0]
        self.assertEqual(len(server.delivered()), 1)
        self.assertIn(b"Subject: lunch\r\n", delivered)
        self.assertRegex(delivered, rb"\r\nX-Spam-Checker-Version: SpamAssassin 4\.[0-9.]+ ",
                         delivered[:2000])
        self.assertRegex(delivered, rb"\r\nX-Spam-Status: No, score=-?[0-9.]+ required=5\.0 ",
                         delivered[:2000])
        self.assertNotIn(b"GTUBE", delivered)
        # spamd scanned both (its log: one spam at 1000 points or more, one clean message).
        log = spamassassin.log()
        self.assertRegex(log, r"spamd: identified spam \(10\d\d\.\d+/5\.0\)", log[-3000:])
        self.assertIn("spamd: clean message (", log)
