"""The man pages (doc/man/*.scd, scdoc sources) against what the programs and the parser know:

- every subcommand and long option that `smtpsd --help`, `smtpsd SUB --help`, `smtpsctl
  --help` and `smtpsctl SUB [SUB2 [SUB3]] --help` print is documented in smtpsd(8) or
  smtpsctl(1), under that command's synopsis (a line that starts with the command in bold,
  such as `*smtpsctl queue list*`);
- every configuration key the parser accepts appears in smtpsd.toml(5) under its table's
  heading. The keys come from the parser itself: each `only_keys(table, prefix, {...})` call
  of src/config/config.cpp is the complete list of a table's keys (anything else is refused
  as "unknown key"), and its prefix names the table;
- the pages render with scdoc when it is installed (the build makes them the same way).

Standard library only; the sources are read, so no page needs to be built.
"""

import os
import re
import shutil
import subprocess
import unittest

from harness import SMTPSD

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SMTPSCTL = os.path.join(os.path.dirname(SMTPSD), "smtpsctl")
PAGES = {"smtpsd": "smtpsd.8.scd", "smtpsctl": "smtpsctl.1.scd"}


def page_text(name):
    with open(os.path.join(ROOT, "doc", "man", name)) as f:
        return f.read()


def help_of(program, words):
    """(long options, subcommands) that `program words... --help` prints: every --option in
    the text (CLI11's "Options:" or a hand-written usage line), and the names CLI11 lists
    under "Subcommands:"."""
    done = subprocess.run([program, *words, "--help"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, (words, done.stdout, done.stderr)
    options = set(re.findall(r"(?<![A-Za-z0-9-])(--[a-z0-9][a-z0-9-]*)", done.stdout))
    subcommands, section = [], None
    for line in done.stdout.splitlines():
        if re.match(r"^[A-Z][A-Za-z ]*:\s*$", line):
            section = line.strip().rstrip(":").lower()
        elif section == "subcommands" and re.match(r"^  [a-z]", line):
            subcommands.append(line.split()[0])
    return options, subcommands


def commands_of(program):
    """{(word, ...): long options} for the program and each subcommand, three levels down
    (smtpsctl user alias add)."""
    found, pending = {}, [()]
    while pending:
        words = pending.pop()
        options, subcommands = help_of(program, list(words))
        found[words] = options
        if len(words) < 3:
            pending.extend(words + (sub,) for sub in subcommands)
    return found


def synopsis_blocks(text, program):
    """{(word, ...): text}: each block starts at a line `*program word...*` (a synopsis)."""
    blocks, key = {}, None
    for line in text.splitlines():
        heading = re.match(rf"^\*{re.escape(program)}((?: [a-z][a-z0-9-]*)*)\*", line)
        if heading:
            key = tuple(heading.group(1).split())
            blocks.setdefault(key, "")
        if key is not None:
            blocks[key] += line.replace("\\", "") + "\n"
    return blocks


def option_documented(option, text):
    return re.search(rf"(?<![a-z0-9-]){re.escape(option)}(?![a-z0-9-])", text) is not None


class CommandLines(unittest.TestCase):
    def check_program(self, program, path):
        text = page_text(PAGES[program])
        blocks = synopsis_blocks(text, program)
        missing = []
        for words, options in sorted(commands_of(path).items()):
            command = " ".join((program,) + words)
            # A group (smtpsctl queue) is told through its members' synopses.
            scope = "".join(body for key, body in blocks.items() if key[:len(words)] == words)
            if not scope:
                missing.append(f"{command}: no synopsis line `*{command}...*`")
                continue
            for option in sorted(options):
                where = text if option in ("--help", "--version") else scope
                if not option_documented(option, where):
                    missing.append(f"{command} {option}")
        self.assertEqual(missing, [], f"undocumented in {PAGES[program]}")

    def test_every_smtpsd_command_and_option_is_in_smtpsd_8(self):
        self.check_program("smtpsd", SMTPSD)

    def test_every_smtpsctl_command_and_option_is_in_smtpsctl_1(self):
        self.check_program("smtpsctl", SMTPSCTL)


def parser_tables():
    """{table: keys} from the only_keys calls of src/config/config.cpp (see the docstring)."""
    with open(os.path.join(ROOT, "src", "config", "config.cpp")) as f:
        source = f.read()
    tables = {}
    top_level = re.search(r'\.only_keys\(\s*root,\s*"",\s*\{([^}]*)\}', source)
    top_level = re.findall(r'"([a-z_]+)"', top_level.group(1))
    for call in re.finditer(r"\.only_keys\(\s*([^,]+),\s*([^,]+),\s*\{([^}]*)\}", source):
        keys = re.findall(r'"([a-z0-9_]+)"', call.group(3))
        prefix = call.group(2).strip()
        before = source[:call.start()]
        # The function the call is in: from its signature (a line at column 0) on.
        signature = list(re.finditer(r"(?m)^[A-Za-z].*?\b([a-z_]+)\(", before))[-1]
        function, body = signature.group(1), before[signature.start():]
        if prefix.startswith('"'):
            names = [prefix.strip('"')]
        else:
            # A variable: its assignment from a literal in the function ("delivery",
            # fmt::format("listeners[{}]", ...), fmt::format("{}.dkim[{}]", prefix, ...)).
            assigned = list(re.finditer(
                rf"\b{re.escape(prefix)}\s*=\s*(?:fmt::format\()?\"([^\"]*)\"", body))
            if assigned:
                literal = assigned[-1].group(1)
                name = re.sub(r"\[.*$", "", literal)
                names = [name.replace("{}.", "domains.")] if literal.startswith("{}.") else [name]
            else:
                # A parameter: the top-level table names its callers pass as literals.
                names = []
                for caller in re.finditer(rf"\b{function}\(([^;]*)\);", source):
                    names += [literal for literal in re.findall(r'"([a-z_]+)"', caller.group(1))
                              if literal in top_level]
        assert names, f"config.cpp: no table found for the keys {keys}"
        for name in names:
            tables.setdefault(name, []).extend(keys)
    return tables


def documented_tables(text):
    """{table: text of its section} from the page's headings `# [name]`, `# [[name]]` and
    `# [[domains]] dkim` (an array of tables inside an entry)."""
    sections, name = {}, None
    for line in text.splitlines():
        heading = re.match(r"^# \[\[?([a-z_.]+)\]\]?( [a-z_]+)?\s*$", line)
        if heading:
            name = heading.group(1) + ("." + heading.group(2).strip() if heading.group(2) else "")
            sections[name] = ""
        elif line.startswith("# "):
            name = None
        elif name is not None:
            sections[name] += line + "\n"
    return sections


class ConfigurationKeys(unittest.TestCase):
    def test_every_key_the_parser_knows_is_in_smtpsd_toml_5(self):
        tables = parser_tables()
        self.assertGreater(sum(len(keys) for keys in tables.values()), 100)
        text = page_text("smtpsd.toml.5.scd")
        sections = documented_tables(text)
        missing = []
        for table, keys in sorted(tables.items()):
            if table == "":  # the top-level tables: each has its section
                missing += [f"[{key}]" for key in keys if key not in sections]
                continue
            if table not in sections:
                missing.append(f"[{table}] (no section)")
                continue
            missing += [f"{table}.{key}" for key in keys
                        if not re.search(rf"(?m)^\*{key}\* =", sections[table])]
        self.assertEqual(missing, [], "undocumented in smtpsd.toml.5.scd")


class Rendering(unittest.TestCase):
    def test_each_page_renders_with_scdoc(self):
        if not shutil.which("scdoc"):
            import needs
            needs.missing("scdoc not installed")
        for name in ("smtpsd.8.scd", "smtpsctl.1.scd", "smtpsd.toml.5.scd"):
            done = subprocess.run(["scdoc"], input=page_text(name), capture_output=True,
                                  text=True, timeout=30)
            self.assertEqual(done.returncode, 0, f"{name}: {done.stderr}")
            self.assertIn(".TH ", done.stdout)


if __name__ == "__main__":
    unittest.main()
