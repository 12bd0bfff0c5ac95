"""The user documentation is checked against the real thing.

- Every fenced ``python`` block of README.md and docs/*.md runs, page by page in one scratch folder
  (so a later block may use a file an earlier one wrote), each in its own interpreter.
- Shell blocks marked ``<!-- doc-check: run -->`` on the line before the fence run too: a ``sh``
  block as one bash script, a ``console`` block line by line (the ``$ `` lines); every output line a
  console block shows must be in what its command printed (``...`` skips lines; mark a block
  ``output-varies`` when its figures depend on the machine).
- ``module:NAME`` in a marker skips the block where that module (an optional extra) is missing.
- ``<!-- doc-check: needs-peer -->`` runs the block against a real ``edgesplit peer`` started here,
  replacing ``tcp://SERVER:5555``; ``<!-- doc-check: needs-daemon -->`` against a real ``edgesplit
  serve``, replacing ``/run/edgesplit/api.sock``. ``workstation`` blocks need torch and onnx and are
  skipped without them. ``<!-- doc-check: skip REASON -->`` skips a block; only a few may.
- Every ``edgesplit COMMAND ...`` line in a shell block, an indented code block or inline code
  names a real command, and every ``--flag`` it uses is in that command's ``--help``: stale flags
  fail here.
- The other way round, every option a command's ``--help`` lists is mentioned somewhere in the docs,
  and ``systemd/install.sh`` lines use only options its ``--help`` lists.
- Every relative link points to an existing file (and, for ``.md#anchor``, an existing heading); the
  README's command table lists exactly the installed commands and its layout names every folder.
- The reference tables match the code: the daemon and board config keys, the trace schema (from a
  real database), the manifest fields (from the embedded bundle), the wire headers, the policy
  metadata and the profile schema.
- README.md stays at most 25,000 bytes: it is the door, the reference lives in docs/.
"""
import contextlib
import functools
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
README_MAX_BYTES = 25000
MAX_SKIPPED_BLOCKS = 5
BLOCK_TIMEOUT_S = 180
SHELL_LANGS = ("sh", "bash", "shell", "console")
PEER_PLACEHOLDER = "tcp://SERVER:5555"
DAEMON_PLACEHOLDER = "/run/edgesplit/api.sock"

FENCE = re.compile(r"^```\s*([\w-]*)\s*$")
MARKER = re.compile(r"^<!--\s*doc-check:\s*(.*?)\s*-->\s*$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
FLAG = re.compile(r"^\[?(--?[A-Za-z][\w-]*)")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    markers: List[str] = field(default_factory=list)
    skip_reason: str = ""

    @property
    def where(self) -> str:
        return "%s:%d" % (self.page.relative_to(ROOT), self.line)

    @property
    def is_shell(self) -> bool:
        return self.lang in SHELL_LANGS

    @property
    def runs(self) -> bool:
        if self.skip_reason:
            return False
        if self.lang == "python":
            return True
        return self.is_shell and bool({"run", "needs-peer", "needs-daemon"} & set(self.markers))


def parse_blocks(page: Path) -> List[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError("%s:%d: code fence never closed" % (page, index + 1))
        block = Block(page, index + 1, opening.group(1).lower(), "\n".join(lines[index + 1:end]) + "\n")
        previous = index - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        marker = MARKER.match(lines[previous]) if previous >= 0 else None
        if marker:
            words = marker.group(1).split()
            if words and words[0] == "skip":
                block.skip_reason = " ".join(words[1:]) or "(no reason given)"
            else:
                block.markers = words
        blocks.append(block)
        index = end + 1
    return blocks


def prose_of(page: Path) -> str:
    """The page without its fenced blocks (links and inline code inside them are not checked)."""
    kept, inside = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line) or (inside and line.strip() == "```"):
            inside = not inside
            continue
        if not inside:
            kept.append(line)
    return "\n".join(kept)


def has_workstation_extras() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "onnx"))


def has_modules(block: "Block") -> bool:
    """A ``module:NAME`` marker: the block needs that importable module (an optional extra)."""
    names = [m.split(":", 1)[1] for m in block.markers if m.startswith("module:")]
    return all(importlib.util.find_spec(name) is not None for name in names)


def load_pyproject() -> dict:
    try:
        import tomllib
    except ImportError:  # Python < 3.11: the same parser, a dependency of edgesplit there
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


# Commands registered through the edgesplit.commands entry points (workstation code): without the
# codegen extra their --help may only say what to install.
WORKSTATION_COMMANDS = tuple(load_pyproject()["project"]["entry-points"]["edgesplit.commands"])


# ---------------------------------------------------------------- command lines and flags


def logical_lines(block: Block) -> List[str]:
    """Shell command lines of a block: backslash continuations joined; console output lines dropped."""
    commands, pending = [], ""
    for raw in block.text.splitlines():
        line = raw.rstrip()
        if block.lang == "console" and not pending:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        commands.append(pending + line)
        pending = ""
    return [c for c in commands if c.strip()]


def tokens_of(line: str) -> List[str]:
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote in a synopsis: words are enough to find flags
        return line.split("#")[0].split()


def edgesplit_invocations(line: str, program: str = "edgesplit") -> List[List[str]]:
    """The argument lists of every ``edgesplit ...`` (or other ``program``) command in one shell line."""
    found = []
    words = tokens_of(line)
    for start, word in enumerate(words):
        at_command_position = start == 0 or words[start - 1] in ("sudo", "&&", "||", ";", "|", "$")
        if word != program or not at_command_position:
            continue
        args = []
        for position in range(start + 1, len(words)):
            token = words[position]
            if token in ("&&", "||", ";") or token.startswith(">") or token.startswith("2>"):
                break
            if token == "|":
                following = words[position + 1] if position + 1 < len(words) else ""
                if not following.startswith(("-", "[")):
                    break  # a pipe into another program; a '|' between alternatives stays
                continue
            args.append(token)
        found.append(args)
    return found


def split_command(args: List[str]) -> Tuple[Optional[str], Optional[str], List[str]]:
    """(command, subcommand, the rest) with global options before the command skipped."""
    rest = list(args)
    while rest and rest[0].startswith("-"):
        rest.pop(0)
    if not rest:
        return None, None, []
    command = rest.pop(0)
    subcommand = None
    if subcommands_of(command) and rest and not rest[0].startswith(("-", "[")):
        subcommand = rest.pop(0)  # a group (board, traces, keys, ...): the next word picks the subcommand
    return command, subcommand, rest


@functools.lru_cache(maxsize=None)
def subcommands_of(command: str) -> Tuple[str, ...]:
    """The subcommands of a command group; () for a plain command or one this install lacks."""
    try:
        return tuple(listed_commands(help_text(command)))
    except AssertionError:
        return ()


def is_placeholder(word: str) -> bool:
    return word.isupper() or word.startswith("<")


@dataclass
class Usage:
    where: str
    command: str
    subcommand: Optional[str]
    flags: List[str]


def command_usages() -> List[Usage]:
    usages = []
    for page in PAGES:
        for block in parse_blocks(page):
            if not block.is_shell:
                continue
            for line in logical_lines(block):
                for args in edgesplit_invocations(line):
                    usages.append(make_usage(block.where, args))
        for line in prose_of(page).splitlines():
            indented = re.match(r"^ {4}(?:\$ )?(edgesplit .*)$", line)  # an indented code block
            if indented:
                for args in edgesplit_invocations(indented.group(1)):
                    usages.append(make_usage("%s (indented `%s`)" % (page.relative_to(ROOT), indented.group(1)), args))
        for match in INLINE_CODE.finditer(prose_of(page)):
            text = match.group(1)
            if text.startswith("edgesplit "):
                for args in edgesplit_invocations(text):
                    usages.append(make_usage("%s (inline `%s`)" % (page.relative_to(ROOT), text), args))
    return [u for u in usages if u.command is not None and not is_placeholder(u.command)]


def make_usage(where: str, args: List[str]) -> Usage:
    command, subcommand, rest = split_command(args)
    if subcommand is not None and is_placeholder(subcommand):
        subcommand = None
    flags = []
    for token in rest:
        match = FLAG.match(token)
        if match and match.group(1) not in flags:
            flags.append(match.group(1))
    return Usage(where, command, subcommand, flags)


@functools.lru_cache(maxsize=None)
def help_text(*words: str) -> str:
    """``edgesplit WORDS --help``, through the real entry point (in this process: it is only argparse)."""
    from edgesplit.runtime.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = main(list(words) + ["--help"])
        except SystemExit as exc:
            code = exc.code
    assert code in (0, None), "edgesplit %s --help failed (%s):\n%s" % (" ".join(words), code, out.getvalue())
    return out.getvalue()


def listed_commands(help_output: str) -> List[str]:
    """Subcommand names from an argparse help page (the indented names under the positional group)."""
    names = []
    for line in help_output.splitlines():
        match = re.match(r"^    ([a-z][\w-]*)(\s|$)", line)
        if match:
            names.append(match.group(1))
    return names


def flag_in_help(flag: str, text: str) -> bool:
    return re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(flag), text) is not None


USAGES = command_usages()


def test_docs_show_edgesplit_command_lines():
    # The check below is only worth something if the extraction finds the examples.
    assert len(USAGES) > 40, [u.where for u in USAGES]


@pytest.mark.parametrize("command", sorted({u.command for u in USAGES}))
def test_documented_commands_and_flags_exist(command):
    if command in WORKSTATION_COMMANDS and not has_workstation_extras():
        pytest.skip("%s needs the codegen extra (torch, onnx)" % command)
    known = listed_commands(help_text())
    usages = [u for u in USAGES if u.command == command]
    assert command in known, "%s: 'edgesplit %s' is not a command (known: %s)" % (usages[0].where, command,
                                                                                  ", ".join(known))
    problems = []
    for usage in usages:
        words = (command,) if usage.subcommand is None else (command, usage.subcommand)
        if usage.subcommand is not None and usage.subcommand not in listed_commands(help_text(command)):
            problems.append("%s: 'edgesplit %s %s' is not a subcommand" % (usage.where, command, usage.subcommand))
            continue
        text = help_text(*words)
        for flag in usage.flags:
            if flag in ("-h", "--help"):
                continue
            if not flag_in_help(flag, text):
                problems.append("%s: 'edgesplit %s' has no option %s" % (usage.where, " ".join(words), flag))
    assert not problems, "\n".join(problems)


def options_in_help(text: str) -> List[str]:
    """The long options an argparse help page lists (the first column of its option lines)."""
    found = []
    for line in text.splitlines():
        match = re.match(r"^  +(-\S.*?)(?:  |$)", line)
        if match:
            found += [f for f in re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", match.group(1)) if f not in found]
    return [f for f in found if f != "--help"]


def documented_text() -> str:
    return "\n".join(page.read_text(encoding="utf-8") for page in PAGES)


def command_words() -> List[Tuple[str, ...]]:
    words = []
    for command in listed_commands(help_text()):
        if subcommands_of(command):
            words += [(command, sub) for sub in subcommands_of(command)]
        else:
            words.append((command,))
    return words


# Options every command takes, documented once for all of them (commands.md's first paragraph, README.md).
EVERY_COMMAND_OPTIONS = ("--verbose",)


def _word(text: str) -> "re.Pattern":
    return re.compile(r"(?<![\w-])%s(?![\w-])" % re.escape(text))


def test_every_option_is_documented():
    # The other direction: an option added to a command must show up in the docs, in a section (a heading and what
    # follows it, up to the next heading) that names that command: a flag that another command documents (--force,
    # --name) does not count for this one.
    text = documented_text()
    sections = [part for page in PAGES for part in re.split(r"(?m)^#{1,6} ", page.read_text(encoding="utf-8"))]
    missing, checked = [], 0
    for words in command_words():
        try:
            page = help_text(*words)
        except AssertionError:
            if words[0] in WORKSTATION_COMMANDS and not has_workstation_extras():
                continue  # its --help needs the codegen extra
            raise
        command = _word(" ".join(words))
        for flag in options_in_help(page):
            checked += 1
            flag_word = _word(flag)
            if flag in EVERY_COMMAND_OPTIONS:
                documented = bool(flag_word.search(text))
            else:
                documented = any(flag_word.search(part) and command.search(part) for part in sections)
            if not documented:
                missing.append("edgesplit %s %s" % (" ".join(words), flag))
    assert checked >= 100, "only %d options found in the --help pages: has their layout changed?" % checked
    assert not missing, ("options in --help that no section of README.md or docs/ naming the command mentions:\n"
                         + "\n".join(missing))


def test_install_script_lines_use_its_options():
    completed = subprocess.run(["sh", str(ROOT / "systemd" / "install.sh"), "--help"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=30)
    text = completed.stdout.decode("utf-8", "replace")
    assert completed.returncode == 0, text
    problems, lines = [], 0
    for page in PAGES:
        for block in parse_blocks(page):
            if not block.is_shell:
                continue
            for line in logical_lines(block):
                for args in edgesplit_invocations(line, program="systemd/install.sh"):
                    lines += 1
                    problems += ["%s: systemd/install.sh has no option %s" % (block.where, flag)
                                 for flag in make_usage(block.where, ["install.sh"] + args).flags
                                 if not flag_in_help(flag, text)]
    assert lines >= 3 and not problems, "\n".join(problems) or "only %d install.sh lines found" % lines


def test_benchmark_commands_exist():
    # docs/benchmarks.md says which command produced each number: the script and its options must exist.
    problems, seen = [], 0
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"python3? (bench/[\w/]+\.py)([^`\n]*)", text):
            seen += 1
            script = ROOT / match.group(1)
            if not script.exists():
                problems.append("%s: %s does not exist" % (page.relative_to(ROOT), match.group(1)))
                continue
            source = script.read_text(encoding="utf-8")
            problems += ["%s: %s has no option %s" % (page.relative_to(ROOT), match.group(1), flag)
                         for flag in re.findall(r"(?<![\w-])--[a-z][\w-]*", match.group(2))
                         if '"%s"' % flag not in source]
    assert seen >= 5 and not problems, "\n".join(problems) or "only %d benchmark commands found" % seen


def test_readme_command_table_lists_every_command():
    table_commands = set(re.findall(r"^\| \[`([\w-]+)`\]", (ROOT / "README.md").read_text(encoding="utf-8"), re.M))
    known = set(listed_commands(help_text()))
    if not has_workstation_extras():
        known |= set(WORKSTATION_COMMANDS)
    assert table_commands == known, "README command table: missing %s, not commands %s" % (
        sorted(known - table_commands), sorted(table_commands - known))


# ---------------------------------------------------------------- links and size


def heading_anchors(page: Path) -> set:
    anchors = set()
    for line in prose_of(page).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).replace("`", "").lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def test_relative_links_resolve():
    problems = []
    for page in PAGES:
        for target in LINK.findall(prose_of(page)):
            if re.match(r"^[a-z]+:", target):
                continue  # http:, https:, mailto:
            path_part, _, anchor = target.partition("#")
            resolved = (page.parent / path_part).resolve() if path_part else page
            where = "%s: link %s" % (page.relative_to(ROOT), target)
            if not resolved.exists():
                problems.append("%s: no such file %s" % (where, resolved))
            elif anchor and resolved.suffix == ".md" and anchor not in heading_anchors(resolved):
                problems.append("%s: no heading #%s in %s" % (where, anchor, resolved.name))
    assert not problems, "\n".join(problems)


def undocumented_config_keys(config_class, pages: List[Path]) -> List[str]:
    """Keys of a TOML config dataclass missing from the docs' key tables (rows ``| `[table]` | `key`, ... |``)."""
    import dataclasses
    import typing

    rows = {}  # type: Dict[str, set]
    for page in pages:
        for line in page.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^\| (\(top\)|top|`\[(\w+)\]`) \|(.*)\|\s*$", line)
            if match:
                rows.setdefault(match.group(2) or "", set()).update(re.findall(r"`(\w+)`", match.group(3)))

    def toml_keys(cls):
        return [f for f in dataclasses.fields(cls) if f.metadata.get("toml", True)]

    hints = typing.get_type_hints(config_class)
    missing = []
    for top in toml_keys(config_class):
        table = hints[top.name]
        if getattr(table, "__origin__", None) is typing.Union:  # Optional[Section]: an optional table
            table = next(arg for arg in table.__args__ if arg is not type(None))
        if dataclasses.is_dataclass(table):
            missing += ["[%s] %s" % (top.name, key.name) for key in toml_keys(table)
                        if key.name not in rows.get(top.name, set())]
        elif top.name not in rows.get("", set()):
            missing.append(top.name)
    return missing


def test_daemon_config_table_lists_every_key():
    from edgesplit.runtime.daemon.config import DaemonConfig

    missing = undocumented_config_keys(DaemonConfig, [ROOT / "docs" / "daemon.md"])
    assert not missing, "docs/daemon.md config table lacks: %s" % ", ".join(missing)


def test_board_config_table_lists_every_key():
    from edgesplit.runtime.boards.config import BoardConfig

    pages = [p for p in (ROOT / "docs" / "sensors.md", ROOT / "docs" / "boards.md") if p.exists()]
    missing = undocumented_config_keys(BoardConfig, pages)
    assert not missing, "the board config key table (docs/boards.md) lacks: %s" % ", ".join(missing)


def test_trace_schema_page_lists_every_column(tmp_path):
    import sqlite3

    from edgesplit.runtime.traces.schema import SCHEMA_VERSION
    from edgesplit.runtime.traces.store import TraceStore

    TraceStore(tmp_path / "t.db", background_flush=False).close()  # a real, current-schema database
    page = (ROOT / "docs" / "traces.md").read_text(encoding="utf-8")
    assert "## Schema (version %d: `PRAGMA user_version = %d`" % (SCHEMA_VERSION, SCHEMA_VERSION) in page, (
        "docs/traces.md: the schema heading must name version %d" % SCHEMA_VERSION)
    documented = set(re.findall(r"`(\w+)`", page))
    with sqlite3.connect(str(tmp_path / "t.db")) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        missing = ["%s.%s" % (table, column[1]) for table in tables
                   for column in conn.execute("PRAGMA table_info(%s)" % table) if column[1] not in documented]
    missing += [table for table in tables if table not in documented]
    assert not missing, "docs/traces.md does not describe: %s" % ", ".join(missing)


def test_bundle_page_names_every_manifest_field():
    import json

    from edgesplit.runtime.default_bundle import default_bundle_path

    manifest = json.loads((default_bundle_path() / "manifest.json").read_text(encoding="utf-8"))
    fields = set(manifest)
    for key in ("segments", "cuts", "exits", "inputs", "outputs"):
        for item in manifest[key]:
            fields |= set(item)
            for tensor in item.get("tensors", []) + item.get("inputs", []) + item.get("outputs", []):
                fields |= set(tensor)
    page = (ROOT / "docs" / "bundle.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"[`\"\.](\w+)[`\"\[/]", page))
    missing = sorted(fields - documented)
    assert not missing, "docs/bundle.md does not describe manifest field(s): %s" % ", ".join(missing)


def test_wire_page_shows_the_headers_the_code_writes():
    import json

    import numpy as np

    from edgesplit.runtime.transport import wire

    request = json.loads(bytes(wire.encode_request(17, "infer", "0" * 64, 2, 0.18, {"h2": np.zeros((1, 2), np.float32)},
                                                   thresholds=[0.3])[0]))
    reply = json.loads(bytes(wire.encode_reply(17, "ok", exit_id=3, tensors={"y": np.zeros((1, 2), np.float32)})[0]))
    samples = [b.text for b in parse_blocks(ROOT / "docs" / "wire.md") if b.lang == "text"]
    assert len(samples) == 2, "docs/wire.md: expected a request and a reply header sample"
    for sample, header in zip(samples, (request, reply)):
        keys = set(header) | set(header["tensors"][0])
        shown = set(re.findall(r'"(\w+)":', sample))
        assert shown == keys, "docs/wire.md header sample: shows %s, the code writes %s" % (sorted(shown), sorted(keys))
    shown_statuses = re.findall(r'"(\w+)"', samples[1].split('"status":')[1].split(",\n")[0])
    assert sorted(shown_statuses) == sorted(wire.STATUSES), shown_statuses


def test_commands_page_shows_the_demo_series_columns_the_demo_prints():
    import ast

    # Read from the source: command modules are entry points, imported by the CLI alone (test_module_layering).
    demo = ast.parse((ROOT / "runtime" / "commands" / "demo.py").read_text(encoding="utf-8"))
    headers = next(ast.literal_eval(node.value) for node in demo.body if isinstance(node, ast.Assign)
                          and [getattr(t, "id", None) for t in node.targets] == ["SERIES_HEADERS"])
    samples = "\n".join(b.text for b in parse_blocks(ROOT / "docs" / "commands.md") if b.lang == "text")
    shown = [h for h in headers if h]
    pattern = r"^" + r"\s+".join(re.escape(h) for h in shown) + r"$"
    assert re.search(pattern, samples, re.M), "docs/commands.md: the demo's series table header is %s" % shown


def test_policy_page_shows_the_metadata_the_code_writes(tmp_path):
    import json

    import numpy as np

    from edgesplit.policies_lite import edgeml_decoder, save_policy

    path = tmp_path / "p.npz"
    save_policy(path, features=["a", "b"], layers=[(np.zeros((4, 2)), np.zeros(4))], activations=["identity"],
                decoder=edgeml_decoder(2, 4), provenance={"traces": [], "algorithm": "test"})
    with np.load(str(path), allow_pickle=False) as arrays:
        meta = json.loads(str(arrays["meta"]))
    keys = set(meta) | set(meta["decoder"]) | set(meta["normalisation"]) | set(meta["provenance"])
    sample = [b.text for b in parse_blocks(ROOT / "docs" / "policy.md") if b.lang == "json"]
    assert len(sample) == 1, "docs/policy.md: expected one json sample of the metadata"
    shown = set(re.findall(r'"(\w+)":', sample[0]))
    assert keys <= shown, "docs/policy.md metadata sample lacks %s" % sorted(keys - shown)


def test_profile_schema_lists_every_field(tmp_path):
    import json

    argv = ["profile", "default", "--repeats", "2", "--warmup", "1", "--no-save", "--json"]  # the detected board
    completed = subprocess.run([sys.executable, "-m", "edgesplit.runtime.cli"] + argv, cwd=str(tmp_path),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert completed.returncode == 0, completed.stderr.decode("utf-8", "replace")
    profile = json.loads(completed.stdout)
    fields = set(profile) | set(profile["segments"][0]) | set(profile["cuts"][0]) | set(profile["host"]) | set(
        profile["settings"])
    page = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    schema = page[page.index("Profile schema"):]
    schema = schema[:schema.index("\n\n")]
    missing = sorted(fields - set(re.findall(r"\w+", schema)))
    assert not missing, "docs/commands.md profile schema lacks %s" % ", ".join(missing)


def test_readme_layout_names_every_folder():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout"):]
    layout = layout[:layout.index("\n## ", 1)]
    ignored = {"build", "dist", "out", "notes", "__pycache__"}
    folders = [p for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in ignored
               and not p.name.endswith(".egg-info")]
    folders += [p for parent in ("runtime", "codegen") for p in (ROOT / parent).iterdir()
                if p.is_dir() and p.name not in ignored]
    missing = [str(p.relative_to(ROOT)) for p in folders if not re.search(r"(?<![\w/])%s/" % re.escape(p.name), layout)]
    assert not missing, "README layout does not name: %s" % ", ".join(sorted(missing))
    # ... and every folder it names exists (top level at 4 spaces, their subfolders at 6).
    stale, top = [], ROOT
    for line in layout.splitlines():
        entry = re.match(r"^( {4}| {6})([\w.-]+)/(\s|$)", line)
        if entry:
            path = (ROOT if len(entry.group(1)) == 4 else top) / entry.group(2)
            if len(entry.group(1)) == 4:
                top = path
            if not path.is_dir():
                stale.append(str(path.relative_to(ROOT)))
    assert not stale, "README layout names folders that do not exist: %s" % ", ".join(stale)


def test_readme_extras_table_matches_pyproject():
    extras = load_pyproject()["project"]["optional-dependencies"]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([\w-]+)` \|(.*)$",
                                                        (ROOT / "README.md").read_text(encoding="utf-8"), re.M)}
    problems = []
    for extra, requirements in extras.items():
        if extra not in rows:
            problems.append("extra %s is not in the README's install table" % extra)
            continue
        for requirement in requirements:
            name = re.match(r"[\w.-]+", requirement).group(0)
            if name != "numpy" and name not in rows[extra]:
                problems.append("extra %s: the README's install table does not name %s" % (extra, name))
    assert not problems, "\n".join(problems)


def test_every_page_is_reachable():
    index = prose_of(ROOT / "docs" / "index.md")
    readme = prose_of(ROOT / "README.md")
    unlinked = [p.name for p in PAGES[1:] if p.name != "index.md"
                and ("(%s" % p.name not in index or "(docs/%s" % p.name not in readme)]
    assert not unlinked, "pages not linked from both docs/index.md and the README: %s" % ", ".join(unlinked)


def test_readme_is_the_door_not_the_reference():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_MAX_BYTES, "README.md is %d bytes; move reference into docs/ (limit %d)" % (
        size, README_MAX_BYTES)


def test_only_a_few_examples_are_skipped():
    skipped = [b.where + ": " + b.skip_reason for page in PAGES for b in parse_blocks(page) if b.skip_reason]
    assert len(skipped) <= MAX_SKIPPED_BLOCKS, "\n".join(skipped)


# ---------------------------------------------------------------- running the examples


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """Starts a real peer and a real daemon the first time a page needs one; stops them at the end."""
    started = {}  # type: Dict[str, object]

    def get(kind: str):
        if kind not in started:
            if kind == "peer":
                from edgesplit.runtime.default_bundle import default_bundle_path
                from edgesplit.runtime.peer.process import PeerProcess

                started[kind] = PeerProcess(default_bundle_path())
            else:
                from support.daemon_process import DaemonProcess

                started[kind] = DaemonProcess(tmp_path_factory.mktemp("daemon")).start()
        return started[kind]

    yield get
    if "peer" in started:
        started["peer"].stop()
    if "daemon" in started:
        started["daemon"].stop()
        started["daemon"].cleanup()


def example_env() -> Dict[str, str]:
    env = dict(os.environ)
    # `python3` and `edgesplit` in the examples are this interpreter's.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONPATH", None)
    return env


def run_checked(block: Block, argv: List[str], cwd: Path, what: str) -> str:
    """Run one example; fail naming the page and line unless it exits 0. Returns stdout and stderr."""
    completed = subprocess.run(argv, cwd=str(cwd), env=example_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=BLOCK_TIMEOUT_S)
    out, err = (stream.decode("utf-8", "replace") for stream in (completed.stdout, completed.stderr))
    assert completed.returncode == 0, "%s: example failed (exit %d): %s\n--- stdout\n%s\n--- stderr\n%s" % (
        block.where, completed.returncode, what, out[-3000:], err[-3000:])
    return out + err


def console_steps(text: str) -> List[Tuple[str, List[str]]]:
    """(command, the output lines shown after it) for each ``$ `` line of a console block."""
    steps = []  # type: List[Tuple[str, List[str]]]
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if pending or line.startswith("$ "):
            command = pending + (line if pending else line[2:])
            if command.endswith("\\"):
                pending = command[:-1] + " "
                continue
            pending = ""
            steps.append((command, []))
        elif steps and line.strip():
            steps[-1][1].append(line)
    return steps


def normalised(line: str) -> str:
    return " ".join(line.split())


def check_shown_output(block: Block, command: str, shown: List[str], actual: str) -> None:
    """Every output line the docs show must be in what the command printed ('...' stands for lines left out)."""
    printed = {normalised(line) for line in actual.splitlines()}
    missing = [line for line in shown if line.strip() != "..." and normalised(line) not in printed]
    assert not missing, "%s: '%s' no longer prints what the docs show:\n%s\n--- it printed\n%s" % (
        block.where, command, "\n".join(missing), actual[-3000:])


def run_block(block: Block, cwd: Path, services) -> None:
    text = block.text
    if "needs-peer" in block.markers:
        text = text.replace(PEER_PLACEHOLDER, services("peer").endpoint)
    if "needs-daemon" in block.markers:
        text = text.replace(DAEMON_PLACEHOLDER, str(services("daemon").socket))
    if block.lang == "python":
        script = cwd / ("example_line%d.py" % block.line)
        script.write_text(text, encoding="utf-8")
        run_checked(block, [sys.executable, str(script)], cwd, "python block")
    elif block.lang == "console":
        for command, shown in console_steps(text):
            printed = run_checked(block, ["bash", "-o", "pipefail", "-c", command], cwd, command)
            if "output-varies" not in block.markers:
                check_shown_output(block, command, shown, printed)
    else:
        run_checked(block, ["bash", "-e", "-o", "pipefail", "-c", text], cwd, "shell block")


PAGES_WITH_EXAMPLES = [p for p in PAGES if any(b.runs for b in parse_blocks(p))]


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run(page, tmp_path, services):
    workstation = has_workstation_extras()
    ran = 0
    for block in parse_blocks(page):
        if not block.runs or ("workstation" in block.markers and not workstation) or not has_modules(block):
            continue
        run_block(block, tmp_path, services)
        ran += 1
    if not ran:  # said, not passed: every runnable block of this page needs what this install lacks
        pytest.skip("no example of %s runs here (each needs the workstation extras or a missing module)" % page)
