#!/usr/bin/python3
"""rfc7208_suite_convert.py — turns the openspf RFC 7208 test suite (YAML, shipped by Debian's
python3-spf) into a line file the C++ unit test reads without a YAML parser.

Usage: rfc7208_suite_convert.py rfc7208-tests.yml.gz output.txt

Output, one record per line, fields separated by TAB, every octet outside 0x21..0x7E and the
backslash written as \\xHH:
  Z <scenario> <name> <type> <value>   a zone record (MX: "<preference> <exchange>";
                                       TIMEOUT: the name's other types time out; NAME:
                                       the name exists; both with an empty value)
  T <scenario> <test> <host> <mailfrom> <helo> <result[,result...]> <explanation>
SPF-type records become TXT records of names that have no TXT record of their own (the
suite's rule for RFC 7208 drivers: it writes SPF and means both); "TXT: NONE" says the name
has no TXT record (and keeps its SPF records from being copied).
"""
import gzip
import sys

import yaml


def escape(value):
    if isinstance(value, bytes):
        data = value
    else:
        data = str(value).encode("utf-8")
    out = []
    for octet in data:
        if 0x21 <= octet <= 0x7E and octet != 0x5C:
            out.append(chr(octet))
        else:
            out.append("\\x%02x" % octet)
    return "".join(out)


def text_of(value):
    if isinstance(value, list):
        return "".join(str(part) for part in value)
    return str(value)


def main():
    source, target = sys.argv[1], sys.argv[2]
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        scenarios = list(yaml.safe_load_all(handle))
    lines = []
    for number, scenario in enumerate(scenarios):
        zone = scenario.get("zonedata") or {}
        for name, records in zone.items():
            records = records or []
            has_txt = any(isinstance(r, dict) and "TXT" in r for r in records)
            lines.append(["Z", str(number), name, "NAME", ""])  # the name exists
            for record in records:
                if record == "TIMEOUT":
                    lines.append(["Z", str(number), name, "TIMEOUT", ""])
                    continue
                ((kind, value),) = record.items()
                if kind == "SPF":
                    if has_txt:
                        continue
                    kind = "TXT"
                if kind == "TXT":
                    if value == "NONE":  # the suite's mark for "no TXT record here"
                        continue
                    value = text_of(value)
                elif kind == "MX":
                    value = "%s %s" % (value[0], value[1])
                lines.append(["Z", str(number), name, kind, escape(value)])
        for test, spec in (scenario.get("tests") or {}).items():
            results = spec["result"]
            if not isinstance(results, list):
                results = [results]
            lines.append(["T", str(number), test, escape(spec["host"]),
                          escape(spec.get("mailfrom", "")), escape(spec.get("helo", "")),
                          ",".join(results), escape(spec.get("explanation", ""))])
    with open(target, "w", encoding="ascii") as out:
        for fields in lines:
            out.write("\t".join(f if f else "" for f in fields) + "\n")


if __name__ == "__main__":
    main()
