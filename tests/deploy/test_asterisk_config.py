"""deploy/asterisk/ checked without an Asterisk binary.

The .conf files are parsed in Asterisk's own dialect (sections with templates, `=>`, `same =>`,
`#include`), and the dialplan is run by a small evaluator of the applications and functions it
uses (Set, Goto/GotoIf, Gosub/Return, ${...} with CUT/IF/FILTER/STRFTIME, $[...] expressions),
so the tests can follow a call through it: which context it reaches, what it dials, whether it is
recorded. The dialplans printed in the headers of shared/asterisk-traces go through the same
parser and evaluator, and the contexts they show must behave the same way here.

An application or function the evaluator does not know fails the test on purpose: teach the
evaluator (and check Asterisk's documentation of it) before the dialplan may use it.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "asterisk"
# <repo>/../shared/asterisk-traces, as in tests/pbxsim/conftest.py
TRACES = (REPO / ".." / "shared" / "asterisk-traces").resolve()

AGENTS = [str(n) for n in range(1001, 1031)]
SUPERVISORS = [str(n) for n in range(1901, 1906)]
EPOCH = 1796000437  # 2026-11-30 09:00:37 in Asia/Shanghai, where the traces' Uniqueids start
UNIQUEID = f"{EPOCH}.7"
RECORDING_DIR = "/var/spool/asterisk/monitor"


# == Asterisk's config dialect =====================================================================


@dataclass
class Section:
    name: str
    template: bool
    bases: tuple[str, ...]
    own: list[tuple[str, str]]
    where: str
    items: list[tuple[str, str]] = field(default_factory=list)  # with the templates' items first

    def values(self, key: str) -> list[str]:
        return [v for k, v in self.items if k == key]

    def get(self, key: str) -> str | None:
        found = self.values(key)
        return found[-1] if found else None


SECTION = re.compile(r"^\[([^\]]+)\](?:\(([^)]*)\))?$")


def strip_comment(line: str) -> str:
    out = re.split(r"(?<!\\);", line, maxsplit=1)[0]
    return out.replace("\\;", ";").rstrip()


def parse_sections(text: str, where: str, include_dir: Path | None = None) -> list[Section]:
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = strip_comment(raw).strip()
        if not line:
            continue
        if line.startswith("#include"):
            assert include_dir is not None, f"{where}:{number}: #include outside a config directory"
            name = line.split(None, 1)[1].strip().strip('"<>')
            included = include_dir / name
            assert included.is_file(), f"{where}:{number}: #include {name}: no such file"
            sections += parse_sections(included.read_text(), included.name, include_dir)
            continue
        assert not line.startswith("#exec"), f"{where}:{number}: #exec runs a program at load time"
        header = SECTION.match(line)
        if header:
            bases = tuple(b.strip() for b in (header.group(2) or "").split(",") if b.strip())
            template, bases = "!" in bases, tuple(b for b in bases if b != "!")
            sections.append(Section(header.group(1), template, bases, [], f"{where}:{number}"))
            continue
        assert "=" in line, f"{where}:{number}: not 'key = value': {raw!r}"
        assert sections, f"{where}:{number}: setting outside any section"
        key, _, value = line.partition("=")
        value = value[1:] if value.startswith(">") else value
        sections[-1].own.append((key.strip(), value.strip()))
    return sections


def parse_config(text: str, where: str, include_dir: Path | None = None) -> list[Section]:
    sections = parse_sections(text, where, include_dir)
    resolve_templates(sections)
    return sections


def resolve_templates(sections: list[Section]) -> None:
    """A section starts with the settings of its templates, as Asterisk copies them in."""
    for index, section in enumerate(sections):
        items: list[tuple[str, str]] = []
        for base in section.bases:
            earlier = [s for s in sections[:index] if s.name == base and s.template]
            assert earlier, f"{section.where}: template {base!r} is not defined before [{section.name}]"
            items += earlier[-1].items
        section.items = items + section.own


def load(name: str) -> list[Section]:
    return parse_config((DEPLOY / name).read_text(), name, DEPLOY)


def real(sections: list[Section], **match: str) -> list[Section]:
    """The non-template sections whose settings include every key=value given."""
    return [s for s in sections if not s.template and all(s.get(k) == v for k, v in match.items())]


def ranges(spec: str) -> list[int]:
    numbers: list[int] = []
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        numbers += range(int(low), int(high or low) + 1)
    return numbers


# == the dialplan ==================================================================================


@dataclass(frozen=True)
class Step:
    priority: int
    label: str | None
    app: str
    data: str
    where: str


@dataclass
class Extension:
    name: str
    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def step(self, priority: int) -> Step | None:
        return next((s for s in self.steps if s.priority == priority), None)

    def label(self, label: str) -> int | None:
        return next((s.priority for s in self.steps if s.label == label), None)


@dataclass
class Context:
    name: str
    extensions: dict[str, Extension] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)


PRIORITY = re.compile(r"^(n|\d+)(?:\(([\w-]+)\))?$")
NOT_CONTEXTS = {"general", "globals"}


class Dialplan:
    def __init__(self, sections: list[Section]):
        self.globals: dict[str, str] = {}
        self.contexts: dict[str, Context] = {}
        for section in sections:
            if section.name == "globals":
                self.globals.update(section.own)
            elif section.name not in NOT_CONTEXTS:
                self._add_context(section)

    def _add_context(self, section: Section) -> None:
        context = self.contexts.setdefault(section.name, Context(section.name))
        current: Extension | None = None
        for key, value in section.own:
            if key == "include":
                context.includes.append(value)
                continue
            assert key in ("exten", "same"), f"[{section.name}]: unexpected {key} => {value}"
            if key == "exten":
                name, prio, app = [*value.split(",", 2), "", ""][:3]
                current = context.extensions.setdefault(name.strip(), Extension(name.strip()))
            else:
                assert current is not None, f"[{section.name}]: same => before any exten =>"
                prio, _, app = value.partition(",")
            self._add_step(section.name, current, prio.strip(), app.strip())

    @staticmethod
    def _add_step(context: str, ext: Extension, prio: str, app: str) -> None:
        where = f"[{context}] {ext.name}"
        parsed = PRIORITY.match(prio)
        if parsed is None:
            ext.problems.append(f"{where}: priority {prio!r} is neither a number nor n")
            return
        previous = ext.steps[-1].priority if ext.steps else 0
        number = previous + 1 if parsed.group(1) == "n" else int(parsed.group(1))
        if number != previous + 1:
            ext.problems.append(f"{where}: priority {number} follows {previous}")
        name, paren, rest = app.partition("(")
        if paren and not rest.endswith(")"):
            ext.problems.append(f"{where}: unbalanced parentheses in {app}")
        ext.steps.append(Step(number, parsed.group(2), name.strip(), rest[:-1] if paren else "", where))

    def find(self, context: str, exten: str, seen: frozenset[str] = frozenset()) -> Extension | None:
        """The extension Asterisk runs for `exten` dialled in `context`: the best match in the
        context itself, then in its includes, in order."""
        ctx = self.contexts.get(context)
        if ctx is None or context in seen:
            return None
        if exten in ctx.extensions:
            return ctx.extensions[exten]
        patterns = sorted((n for n in ctx.extensions if n.startswith("_")), key=specificity)
        for name in patterns:
            if pattern_regex(name).fullmatch(exten):
                return ctx.extensions[name]
        for included in ctx.includes:
            found = self.find(included, exten, seen | {context})
            if found is not None:
                return found
        return None

    def steps(self) -> Iterator[tuple[str, Extension, Step]]:
        for context in self.contexts.values():
            for ext in context.extensions.values():
                for step in ext.steps:
                    yield context.name, ext, step


CLASSES = {"X": "0123456789", "Z": "123456789", "N": "23456789"}


def pattern_parts(pattern: str) -> list[str]:
    """`_0X[3-9].` -> ['0', 'X', '[3-9]', '.']; dashes outside brackets are decoration."""
    parts, i = [], 1
    while i < len(pattern):
        if pattern[i] == "[":
            end = pattern.index("]", i)
            parts.append(pattern[i : end + 1])
            i = end + 1
        else:
            if pattern[i] != "-":
                parts.append(pattern[i].upper() if pattern[i].upper() in CLASSES else pattern[i])
            i += 1
    return parts


def expand_set(part: str) -> str:
    body, chars, i = part[1:-1], "", 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            chars += "".join(chr(c) for c in range(ord(body[i]), ord(body[i + 2]) + 1))
            i += 3
        else:
            chars += body[i]
            i += 1
    return chars


def pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    for part in pattern_parts(pattern):
        if part in CLASSES:
            out += f"[{CLASSES[part]}]"
        elif part.startswith("["):
            out += "[" + re.escape(expand_set(part)) + "]"
        elif part == ".":
            out += ".+"
        elif part == "!":
            out += ".*"
        else:
            out += re.escape(part)
    return re.compile(out)


def specificity(pattern: str) -> tuple[tuple[int, str], ...]:
    """Asterisk tries the pattern whose first differing place matches fewer characters first."""
    weights = []
    for part in pattern_parts(pattern):
        if part in CLASSES:
            weights.append((len(CLASSES[part]), CLASSES[part][0]))
        elif part.startswith("["):
            chars = expand_set(part)
            weights.append((len(chars), min(chars)))
        elif part in ".!":
            weights.append((1000 + (part == "!"), ""))
        else:
            weights.append((1, part))
    return tuple(weights)


def sample(pattern: str) -> str:
    """A number the pattern matches: `_0X.` -> '0555'."""
    if not pattern.startswith("_"):
        return pattern
    out = ""
    for part in pattern_parts(pattern):
        out += {"X": "5", "Z": "5", "N": "5", ".": "55", "!": "5"}.get(part) or (
            expand_set(part)[0] if part.startswith("[") else part
        )
    return out


# == a small evaluator =============================================================================


class EvaluatorGap(AssertionError):
    """The dialplan uses something this evaluator does not model."""


def split_args(text: str, limit: int = -1) -> list[str]:
    """Asterisk's argument split: commas, except escaped (\\,) or inside parentheses or quotes."""
    args, current, depth, quoted, i = [], "", 0, False, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            current += text[i + 1]
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == "(" and not quoted:
            depth += 1
        elif c == ")" and not quoted:
            depth -= 1
        elif c == "," and depth == 0 and not quoted and (limit < 0 or len(args) < limit):
            args.append(current)
            current = ""
            i += 1
            continue
        current += c
        i += 1
    args.append(current)
    return args


TOKEN = re.compile(r'\s*(?:("[^"]*")|(!=|<=|>=|[=<>|&()])|([^\s"=<>|&()!]+))')


def evaluate_expression(text: str) -> str:
    """$[...] with the operators the dialplan uses: | & = != < > <= >= and parentheses."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text.rstrip()):
        m = TOKEN.match(text, pos)
        if m is None:
            raise EvaluatorGap(f"expression {text!r}")
        kind = "str" if m.group(1) else "op" if m.group(2) else "word"
        tokens.append((kind, (m.group(1) or m.group(2) or m.group(3) or "").strip('"')))
        pos = m.end()

    def value(i: int) -> tuple[str, int]:
        kind, tok = tokens[i]
        if kind == "op" and tok == "(":
            result, i = either(i + 1)
            return result, i + 1
        return tok, i + 1

    def compare(i: int) -> tuple[str, int]:
        left, i = value(i)
        while i < len(tokens) and tokens[i][1] in ("=", "!=", "<", ">", "<=", ">="):
            op = tokens[i][1]
            right, i = value(i + 1)
            a: float | str = left
            b: float | str = right
            if re.fullmatch(r"-?\d+", left) and re.fullmatch(r"-?\d+", right):
                a, b = int(left), int(right)
            ok = {"=": a == b, "!=": a != b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]  # type: ignore[operator]
            left = "1" if ok else "0"
        return left, i

    def both(i: int) -> tuple[str, int]:
        left, i = compare(i)
        while i < len(tokens) and tokens[i][1] == "&":
            right, i = compare(i + 1)
            left = "1" if truthy(left) and truthy(right) else "0"
        return left, i

    def either(i: int) -> tuple[str, int]:
        left, i = both(i)
        while i < len(tokens) and tokens[i][1] == "|":
            right, i = both(i + 1)
            left = "1" if truthy(left) or truthy(right) else "0"
        return left, i

    result, end = either(0)
    if end != len(tokens):
        raise EvaluatorGap(f"expression {text!r}")
    return result


def truthy(value: str) -> bool:
    return value.strip() not in ("", "0")


@dataclass(frozen=True)
class Ran:
    context: str
    exten: str
    priority: int
    app: str
    data: str  # after ${...} expansion


BLOCKING = {"MusicOnHold", "ChanSpy", "Bridge", "Record"}
NOTHING_TO_MODEL = {"NoOp", "Answer", "Progress", "Playback", "Log", "UserEvent", "Wait", "MixMonitor", "AGI"}


class Channel:
    """One channel running the dialplan. The world around it is given as callbacks: `ivr` is the
    FastAGI server (it may set variables), `dial` answers each Dial with a DIALSTATUS, and
    `resume` names the blocking applications that return (MusicOnHold timing out, Record done)."""

    def __init__(
        self,
        plan: Dialplan,
        *,
        name: str = "PJSIP/trunk-00000005",
        callerid: str = "13800138000",
        variables: dict[str, str] | None = None,
        ivr: Callable[[Channel, str], None] | None = None,
        dial: Callable[[Channel, Ran], str] | None = None,
        resume: frozenset[str] = frozenset(),
        uniqueid: str = UNIQUEID,
    ):
        self.plan = plan
        self.name = name
        self.uniqueid = uniqueid
        self.callerid = {"num": callerid, "name": callerid, "pres": "allowed_not_screened"}
        self.vars: dict[str, str] = dict(variables or {})
        self.inherited: set[str] = set()
        self.ivr = ivr
        self.dial = dial or (lambda ch, ran: "ANSWER")
        self.resume = resume
        self.ran: list[Ran] = []
        self.callees: list[Channel] = []
        self.ended = ""
        self.context = self.exten = ""
        self._stack: list[tuple[str, str, int, list[str]]] = []

    # -- ${...} and $[...] ----------------------------------------------------------------------
    def expand(self, text: str) -> str:
        out, i = [], 0
        while i < len(text):
            if text.startswith(("${", "$["), i):
                opening = text[i + 1]
                closing = "}" if opening == "{" else "]"
                depth, j = 1, i + 2
                while depth:
                    if j >= len(text):
                        raise EvaluatorGap(f"unbalanced {text!r}")
                    depth += (text[j] == opening) - (text[j] == closing)
                    j += 1
                inner = self.expand(text[i + 2 : j - 1])
                out.append(self.variable(inner) if opening == "{" else evaluate_expression(inner))
                i = j
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def variable(self, inner: str) -> str:
        call = re.fullmatch(r"([A-Z_]+)\((.*)\)", inner, re.S)
        if call:
            return self.function(call.group(1), call.group(2))
        name, *offsets = inner.split(":")
        value = self.lookup(name)
        if offsets:
            start = int(offsets[0] or 0)
            value = value[start:] if len(offsets) == 1 else value[start : start + int(offsets[1])]
        return value

    def lookup(self, name: str) -> str:
        builtin = {
            "EXTEN": self.exten,
            "CONTEXT": self.context,
            "CHANNEL": self.name,
            "UNIQUEID": self.uniqueid,
            "EPOCH": str(EPOCH),
        }
        if name in builtin:
            return builtin[name]
        if re.fullmatch(r"ARG\d+", name) and self._stack:
            args = self._stack[-1][3]
            index = int(name[3:]) - 1
            return args[index] if index < len(args) else ""
        return self.vars.get(name, self.plan.globals.get(name, ""))

    def function(self, name: str, args: str) -> str:
        if name == "CALLERID":
            return self.callerid[args]
        if name == "IF":
            condition, _, branches = args.partition("?")
            yes, _, no = branches.partition(":")
            return yes if truthy(condition) else no
        if name == "CUT":
            variable, delimiter, fieldspec = split_args(args)
            fields = self.lookup(variable).split(delimiter or "-")
            index = int(fieldspec) - 1
            return fields[index] if index < len(fields) else ""
        if name == "FILTER":
            allowed, text = split_args(args, 1)
            return "".join(c for c in text if c in allowed)
        if name == "LEN":
            return str(len(args))
        if name == "STRFTIME":
            epoch, zone, fmt = split_args(args, 2)
            when = datetime.fromtimestamp(int(epoch or EPOCH), ZoneInfo(zone or "UTC"))
            return when.strftime(fmt)
        raise EvaluatorGap(f"function {name}()")

    # -- running ----------------------------------------------------------------------------------
    def run(self, context: str, exten: str, priority: int | str = 1) -> Channel:
        if not self._jump(context, exten, priority):
            return self
        for _ in range(500):
            ext = self.plan.find(self.context, self.exten)
            step = ext.step(self.priority) if ext else None
            if step is None:
                self.ended = self.ended or "end"
                return self
            data = self.expand(step.data)
            ran = Ran(self.context, self.exten, step.priority, step.app, data)
            self.ran.append(ran)
            self.priority += 1
            if self._execute(ran) == "stop":
                return self
        raise AssertionError(f"{self.name}: the dialplan loops: {self.ran[-5:]}")

    def _jump(self, context: str, exten: str, priority: int | str) -> bool:
        ext = self.plan.find(context, exten)
        number: int | None
        if isinstance(priority, int) or priority.isdigit():
            number = int(priority)
        else:
            number = ext.label(priority) if ext else None
        if ext is None or number is None or ext.step(number) is None:
            self.ended = f"invalid {exten}@{context},{priority}"
            return False
        self.context, self.exten, self.priority = context, exten, number
        return True

    def _goto(self, target: str) -> str:
        parts = [p.strip() for p in target.split(",")]
        context = parts[-3] if len(parts) == 3 else self.context
        exten = parts[-2] if len(parts) >= 2 else self.exten
        return "next" if self._jump(context, exten, parts[-1]) else "stop"

    def _execute(self, ran: Ran) -> str:
        app, data = ran.app, ran.data
        if app == "Set":
            name, _, value = data.partition("=")
            if name.startswith("CALLERID("):
                self.callerid[name[9:-1]] = value
            else:
                if name.startswith("__"):
                    self.inherited.add(name[2:])
                self.vars[name.lstrip("_")] = value
            return "next"
        if app == "Goto":
            return self._goto(data)
        if app == "GotoIf":
            condition, _, branches = data.partition("?")
            yes, _, no = branches.partition(":")
            target = yes if truthy(condition) else no
            return self._goto(target) if target else "next"
        if app == "Gosub":
            target, _, args = data.partition("(")
            self._stack.append((self.context, self.exten, self.priority, split_args(args[:-1]) if args else []))
            return self._goto(target)
        if app == "Return":
            if not self._stack:  # a subroutine run on its own by a test
                self.ended = "Return"
                return "stop"
            context, exten, priority, _ = self._stack.pop()
            self.context, self.exten, self.priority = context, exten, priority
            return "next"
        if app == "MixMonitor":
            self.vars["MIXMONITOR_FILENAME"] = split_args(data)[0]
        if app == "AGI" and self.ivr is not None:
            self.ivr(self, data)
        if app == "Dial":
            return self._dial(ran)
        if app in BLOCKING:
            if app in self.resume:
                return "next"
            self.ended = app
            return "stop"
        if app in ("Hangup", "Congestion"):
            self.ended = "Hangup"
            return "stop"
        if app in NOTHING_TO_MODEL:
            return "next"
        raise EvaluatorGap(f"application {app}() at {ran}")

    def _dial(self, ran: Ran) -> str:
        status = self.dial(self, ran)
        self.vars["DIALSTATUS"] = status
        if status != "ANSWER":
            return "next"
        options = [*split_args(ran.data), "", "", ""][2]
        gosub = re.search(r"U\(([^)]*)\)", options)
        if gosub:
            sub, *args = gosub.group(1).split("^")
            callee = Channel(self.plan, name=f"{split_args(ran.data)[0]}-00000009", uniqueid=f"{EPOCH}.9")
            callee._stack.append(("", "", 0, args))
            callee.run(sub, "s")
            assert callee.ran[-1].app == "Return", f"U({sub}) did not Return: {callee.ran}"
            self.callees.append(callee)
        # Without the g option the caller is hung up when the answered call ends.
        self.ended = "bridged"
        return "stop"

    # -- what happened ----------------------------------------------------------------------------
    def apps(self, *names: str) -> list[Ran]:
        return [r for r in self.ran if r.app in names]

    def first(self, name: str) -> Ran:
        found = self.apps(name)
        assert found, f"{self.name} never ran {name}(): {[(r.context, r.app, r.data) for r in self.ran]}"
        return found[0]

    def recorded(self) -> bool:
        return bool(self.vars.get("MIXMONITOR_FILENAME")) or any(
            c.vars.get("MIXMONITOR_FILENAME") for c in self.callees
        )


# == fixtures ======================================================================================


@pytest.fixture(scope="module")
def plan() -> Dialplan:
    return Dialplan(load("extensions.conf"))


@pytest.fixture(scope="module")
def pjsip() -> list[Section]:
    return load("pjsip.conf")


@pytest.fixture(scope="module")
def traces() -> dict[str, Dialplan]:
    """The dialplan printed in each trace's header block, by file name."""
    if not (TRACES / "README.md").is_file():
        pytest.fail(f"Asterisk traces not found at {TRACES} (shared/asterisk-traces next to the repository)")
    found = {}
    for path in sorted(TRACES.glob("*.txt")):
        header = []
        for line in path.read_text().splitlines():
            if line.startswith("# t="):
                break
            text = line[2:] if line.startswith("# ") else ""
            if re.match(r"^\[[\w-]+\]$", text.strip()) or re.match(r"^\s*(exten|same)\s*=>", text):
                header.append(text)
        if header:
            found[path.name] = Dialplan(parse_config("\n".join(header), path.name))
    assert len(found) >= 12, f"trace dialplans not found in {TRACES}"
    return found


def ivr_routes(route: str | None = None, **variables: str) -> Callable[[Channel, str], None]:
    """A FastAGI server that sets ROUTE (and other variables) as services/ivr will."""

    def serve(channel: Channel, url: str) -> None:
        if route is not None:
            channel.vars["ROUTE"] = route
        channel.vars.update(variables)

    return serve


def recording_path(directory: str = RECORDING_DIR, uniqueid: str = UNIQUEID) -> str:
    return f"{directory}/2026/11/30/{uniqueid}.wav"


# == the files =====================================================================================


def test_every_file_parses_in_asterisks_dialect():
    included = {m for p in DEPLOY.glob("*.conf") for m in re.findall(r"^#include\s+(\S+)", p.read_text(), re.M)}
    assert included == {"pjsip_phones.conf"}
    for path in sorted(DEPLOY.glob("*.conf")):
        # system.conf is DAHDI's own key=value format (test_core_1_e1_has_30_b_channels);
        # an #included file is only ever read as part of the file that includes it.
        if path.name == "system.conf" or path.name in included:
            continue
        sections = load(path.name)
        assert sections, f"{path.name} has no sections"
    assert "pjsip_phones.conf" in {s.where.split(":")[0] for s in load("pjsip.conf")}, "#include not followed"


def test_every_extension_counts_priorities_from_1_without_gaps(plan, traces):
    for where, dialplan in [("extensions.conf", plan), *traces.items()]:
        for context in dialplan.contexts.values():
            for ext in context.extensions.values():
                assert not ext.problems, f"{where}: {ext.problems}"
                assert ext.steps and ext.steps[0].priority == 1, (
                    f"{where} [{context.name}] {ext.name} has no priority 1"
                )
                labels = [s.label for s in ext.steps if s.label]
                assert len(labels) == len(set(labels)), f"{where} [{context.name}] {ext.name}: label used twice"
                # Asterisk drops '-' from extension names ("555-1212" is 5551212), so a Goto to
                # "no-target" would never find it.
                assert ext.name.startswith("_") or "-" not in ext.name, f"[{context.name}] {ext.name}"


def literal_targets(plan: Dialplan) -> Iterator[tuple[Step, str, str, str]]:
    """(step, context, exten, priority) of every Goto/GotoIf/Gosub/Dial U() with a fixed target."""
    for context, ext, step in plan.steps():
        targets: list[str] = []
        if step.app == "Goto":
            targets = [step.data]
        elif step.app == "GotoIf":
            targets = [t for t in step.data.partition("?")[2].split(":") if t]
        elif step.app == "Gosub":
            targets = [step.data.partition("(")[0]]
        elif step.app == "Dial":
            targets = [f"{m.split('^')[0]},s,1" for m in re.findall(r"U\(([^)]*)\)", step.data)]
        for target in targets:
            parts = [p.strip() for p in target.split(",")]
            full = [context, ext.name][: 3 - len(parts)] + parts
            yield step, full[0], full[1], full[2]


def test_every_goto_gosub_dial_and_agi_target_exists(plan, pjsip):
    dynamic = []
    for step, context, exten, priority in literal_targets(plan):
        if "${" in context:
            dynamic.append(step.where)
            continue
        assert context in plan.contexts, f"{step.where}: {step.app} to missing context [{context}]"
        if "${" in exten:
            continue
        ext = plan.find(context, exten)
        assert ext is not None, f"{step.where}: {step.app} to missing {exten}@{context}"
        found = ext.step(int(priority)) if priority.isdigit() else ext.label(priority)
        assert found, f"{step.where}: {step.app} to {exten}@{context} which has no priority {priority}"
        if step.app in ("Gosub", "Dial"):
            assert any(s.app == "Return" for s in ext.steps), f"{step.where}: subroutine {context} never Returns"
    # The one jump whose context is data: the IVR's ROUTE, checked against a list first
    # (test_core_3_1_the_ivr_route_decides_where_the_call_goes).
    assert dynamic == ["[from-trunk] _X."], dynamic

    endpoints = {s.name for s in real(pjsip, type="endpoint")}
    groups = {g for s in load("chan_dahdi.conf") for g in s.values("group")}
    for *_, step in plan.steps():
        if step.app == "Dial":
            for target in split_args(step.data)[0].split("&"):
                tech, _, resource = target.partition("/")
                assert tech in ("PJSIP", "DAHDI"), f"{step.where}: Dial({target})"
                if tech == "PJSIP" and "@" in resource:
                    assert resource.split("@")[1] in endpoints, f"{step.where}: no endpoint for {target}"
                if tech == "DAHDI":
                    assert resource.split("/")[0] in {f"g{g}" for g in groups}, f"{step.where}: no group {target}"
        if step.app == "AGI":
            assert re.fullmatch(r"agi://\$\{IVR_HOST\}:4573/ivr\?dnis=\$\{EXTEN\}", step.data), step.data
            assert "IVR_HOST" in plan.globals
    for section in load("pjsip.conf") + load("chan_dahdi.conf"):
        for context in section.values("context"):
            assert context in plan.contexts, f"{section.where}: context={context} is not in extensions.conf"


def test_contexts_the_acd_and_the_traces_use_exist(plan, traces):
    acd_entry_points = {
        ("from-trunk", "4008001234"),  # every DNIS, CORE-3.1
        ("waiting", "s"),  # the ACD's queue (01)
        ("agents-dial", "1002"),  # BlindTransfer / Atxfer (05, 06)
        ("redirected", "1002"),
        ("redirected", "s"),  # Redirect (08b)
        ("outbound", "013900139000"),  # Originate Context=outbound (09)
        ("auto-dialer", "s"),  # CORE-5
        ("chanspy", "listen"),
        ("chanspy", "whisper"),
        ("chanspy", "barge"),
        ("chanspy", "intercept"),  # AGENT-15/16/17
        ("voicemail", "s"),
        ("voicemail", "123"),  # AGENT-23
        ("from-agent", "1002"),  # the phones' own context (01: context=from-agent)
        ("from-supervisor", "1001"),
    }
    for dialplan in traces.values():
        for context in dialplan.contexts.values():
            acd_entry_points |= {(context.name, sample(name)) for name in context.extensions}
    for context, exten in sorted(acd_entry_points):
        assert plan.find(context, exten) is not None, f"{exten}@{context} does not exist"


# Trace extensions that are reference captures, not production paths: app_queue (the ACD routes
# calls itself; Queue() is not used) and the FastAGI command bench (the IVR's own flows run on
# any DNIS here, through the one AGI entry).
REFERENCE_ONLY = {
    ("11-app-queue-reference.txt", "from-trunk", "4008005555"),
    ("fastagi-commands.txt", "from-trunk", "4008009999"),
    ("fastagi-commands.txt", "from-trunk", "4008009998"),
}
# What the ACD supplies when it sends a caller to an extension (README.md).
ACD_INPUTS = {("redirected", "s"): {"ACD_TARGET": "1002"}}


def observable(channel: Channel) -> list[str]:
    """What the caller and the ACD can tell apart: answered, which IVR entry, waiting, who was dialled."""
    seen = []
    for ran in channel.ran:
        if ran.app in ("Answer", "MusicOnHold", "ChanSpy", "Bridge", "Queue"):
            seen.append(ran.app)
        elif ran.app == "AGI":
            seen.append("AGI " + ran.data.partition("?")[2])
        elif ran.app == "Dial":
            seen.append("Dial " + split_args(ran.data)[0])
    return seen


def test_trace_dialplans_behave_the_same_here(plan, traces):
    checked = set()
    for file, dialplan in traces.items():
        for context in dialplan.contexts.values():
            for name in context.extensions:
                key = (file, context.name, name)
                if key in REFERENCE_ONLY:
                    continue
                exten = sample(name)
                inputs = ACD_INPUTS.get((context.name, exten), {})
                theirs = Channel(dialplan, variables=inputs).run(context.name, exten)
                ours = Channel(plan, variables=inputs).run(context.name, exten)
                assert observable(ours) == observable(theirs), f"{file}: {exten}@{context.name}"
                checked.add((context.name, exten))
    assert {c for c, _ in checked} >= {"from-trunk", "waiting", "agents-dial", "redirected", "outbound"}
    present = {(f, c.name, e) for f, d in traces.items() for c in d.contexts.values() for e in c.extensions}
    assert REFERENCE_ONLY.issubset(present), "a reference-only trace extension is gone: update REFERENCE_ONLY"


# == CORE ==========================================================================================


def test_core_1_e1_has_30_b_channels(plan):
    system = dict(
        line.split("=", 1)
        for line in (DEPLOY / "system.conf").read_text().splitlines()
        if line and not line.startswith("#")
    )
    span = system["span"].split(",")
    assert span[0] == "1" and span[3:] == ["ccs", "hdb3", "crc4"], span
    assert span[1] == "1", "the CPE takes its clock from the carrier"
    bchan = ranges(system["bchan"])
    assert len(bchan) == 30 and 16 not in bchan and system["dchan"] == "16"

    channels = real(load("chan_dahdi.conf"))
    [section] = [s for s in channels if s.name == "channels"]
    assert section.get("signalling") == "pri_cpe" and section.get("switchtype") == "euroisdn"
    assert section.get("context") == "from-trunk" and "from-trunk" in plan.contexts
    assert ranges(section.get("channel") or "") == bchan, "chan_dahdi must use exactly the B-channels of system.conf"
    assert section.get("group") == "1"
    assert any(r.data.startswith("DAHDI/g1/") for r in outbound_call(plan, carrier="CHANUNAVAIL").apps("Dial"))


def test_core_1_thirty_agent_phones_have_auth_and_aor(pjsip, plan):
    by_type = {t: {s.name: s for s in real(pjsip, type=t)} for t in ("endpoint", "auth", "aor")}
    for ext in AGENTS + SUPERVISORS:
        endpoint = by_type["endpoint"][ext]
        auth = by_type["auth"][endpoint.get("auth") or ""]
        aor = by_type["aor"][endpoint.get("aors") or ""]
        assert auth.get("username") == ext and auth.get("password") == f"{{{{SIP_SECRET_{ext}}}}}"
        assert aor.get("max_contacts") == "1"
        assert endpoint.get("direct_media") == "no", "media must pass Asterisk for MixMonitor and ChanSpy"
        assert endpoint.get("allow") == "!all,alaw,ulaw,g722"
        assert endpoint.get("send_connected_line") == "no"
        expected = ("from-agent", "PHONE_ROLE=agent") if ext in AGENTS else ("from-supervisor", "PHONE_ROLE=supervisor")
        assert (endpoint.get("context"), endpoint.get("set_var")) == expected
        assert f"<{ext}>" in (endpoint.get("callerid") or "")
    assert set(by_type["endpoint"]) == set(AGENTS + SUPERVISORS + ["carrier"])

    transports = {s.name: s.get("protocol") for s in real(pjsip, type="transport")}
    assert sorted(transports.values()) == ["tcp", "udp"]
    carrier = by_type["endpoint"]["carrier"]
    assert carrier.get("context") == "from-trunk" and carrier.get("transport") in transports
    assert carrier.get("outbound_auth") in by_type["auth"] and carrier.get("aors") in by_type["aor"]
    assert real(pjsip, type="identify", endpoint="carrier") and real(pjsip, type="registration", endpoint="carrier")


DNIS = ["4008001234", "4008005555", "02088880000", "075588880000", "88880000"]


@pytest.mark.parametrize("dnis", DNIS)
def test_core_3_1_every_called_number_enters_the_one_ivr(plan, dnis):
    call = Channel(plan, ivr=ivr_routes()).run("from-trunk", dnis)
    assert call.first("Answer").priority < call.first("AGI").priority
    assert call.first("AGI").data == f"agi://{{{{IVR_HOST}}}}:4573/ivr?dnis={dnis}"
    assert call.vars["DNIS"] == dnis and "DNIS" in call.inherited
    assert (call.ended, call.context) == ("MusicOnHold", "waiting")


def test_core_3_1_called_numbers_in_e164_or_missing_still_reach_the_ivr(plan):
    assert Channel(plan).run("from-trunk", "+864008001234").first("AGI").data.endswith("dnis=4008001234")
    assert Channel(plan).run("from-trunk", "+442071234567").first("AGI").data.endswith("dnis=442071234567")
    rendered = Dialplan(load("extensions.conf"))
    rendered.globals["MAIN_DNIS"] = "4008001234"  # render.sh's value at deploy
    assert Channel(rendered).run("from-trunk", "s").first("AGI").data.endswith("dnis=4008001234")


@pytest.mark.parametrize(
    ("route", "context", "ended"),
    [
        (None, "waiting", "MusicOnHold"),  # no route, or the IVR unreachable: the ACD's queue
        ("waiting,s,1", "waiting", "MusicOnHold"),
        ("voicemail", "voicemail", "Record"),
        ("voicemail,123", "voicemail", "Record"),
        ("agents-dial,1002,1", "agents-dial", "bridged"),
        ("hangup", "from-trunk", "Hangup"),
        ("outbound,013900139000,1", "waiting", "MusicOnHold"),  # never: toll fraud
        ("chanspy,listen", "waiting", "MusicOnHold"),
    ],
)
def test_core_3_1_the_ivr_route_decides_where_the_call_goes(plan, route, context, ended):
    call = Channel(plan, ivr=ivr_routes(route)).run("from-trunk", "4008001234")
    assert (call.context, call.ended) == (context, ended), call.ran
    assert not [r for r in call.apps("Dial") if "@carrier" in r.data or "DAHDI" in r.data]


def test_core_3_4_waiting_callers_hear_the_uploaded_ringback(plan):
    classes = {s.name: s for s in real(load("musiconhold.conf"))}
    assert classes["default"].get("mode") == "files"
    assert classes["ringback"].get("mode") == "files"
    assert classes["ringback"].get("directory") == "/var/lib/callcenter/prompts/ringback"

    call = Channel(plan, ivr=ivr_routes()).run("from-trunk", "4008001234")
    assert call.first("MusicOnHold").data == "ringback,1800"
    # The IVR may choose another class per DNIS.
    call = Channel(plan, ivr=ivr_routes(MOH_CLASS="default")).run("from-trunk", "4008001234")
    assert call.first("MusicOnHold").data == "default,1800"
    # Nobody took the call: the caller may leave a message instead of waiting for ever.
    call = Channel(plan, resume=frozenset({"MusicOnHold"})).run("waiting", "s")
    assert (call.context, call.ended) == ("voicemail", "Record")


def dial_sites(plan: Dialplan) -> Iterator[tuple[str, Extension, Step]]:
    for context, ext, step in plan.steps():
        if step.app == "Dial":
            yield context, ext, step


@pytest.mark.parametrize(
    "site", list(dial_sites(Dialplan(load("extensions.conf")))), ids=lambda s: f"{s[0]}:{s[1].name}:{s[2].priority}"
)
def test_core_4_every_answered_call_is_recorded(plan, site):
    """Every Dial the dialplan makes is answered with a recording running, on the caller (a
    customer redirected or transferred, an agent's internal call) or on the far end of an
    outside call (Dial option U). The calls the ACD bridges itself with Bridge() are recorded by
    the ACD's AMI MixMonitor (trace 01; manager.conf grants the class it needs)."""
    context, ext, step = site
    call = Channel(
        plan,
        name="PJSIP/1001-00000006",
        variables={"PHONE_ROLE": "agent", "ACD_TARGET": "1002"},
        dial=lambda ch, ran: "ANSWER" if (ran.context, ran.priority) == (context, step.priority) else "CHANUNAVAIL",
    ).run(context, sample(ext.name))
    assert call.ended == "bridged" and call.ran[-1].priority == step.priority, call.ran
    assert call.recorded(), f"{step.where}: Dial({step.data}) answered without a recording"
    files = [c.vars["MIXMONITOR_FILENAME"] for c in [call, *call.callees] if "MIXMONITOR_FILENAME" in c.vars]
    assert len(files) == 1, f"{step.where}: one conversation, one file: {files}"


def test_core_4_recordings_are_named_by_day_and_uniqueid(plan):
    call = Channel(plan).run("sub-record", "s")
    assert call.first("MixMonitor").data == f"{recording_path()},b"
    assert call.ran[-1].app == "Return"
    # Started once: a channel recording already (the ACD's MixMonitor) is left alone.
    again = Channel(plan, variables={"MIXMONITOR_FILENAME": "/x.wav"}).run("sub-record", "s")
    assert not again.apps("MixMonitor")
    # Consultation legs of attended transfers (trace 06) are not customer calls.
    local = Channel(plan, name="Local/1002@agents-dial-00000000;2").run("sub-record", "s")
    assert not local.apps("MixMonitor")
    # The far end of an outside call is the customer, recorded under its own Uniqueid.
    outside = outbound_call(plan)
    [callee] = outside.callees
    assert callee.first("MixMonitor").data == f"{recording_path(uniqueid=callee.uniqueid)},b"


def test_core_4_the_acd_can_start_recordings_of_the_calls_it_bridges():
    [acd] = [s for s in real(load("manager.conf")) if s.name == "acd"]
    assert "system" in classes(acd.get("write")), "AMI MixMonitor is registered with the system class only"
    assert load("asterisk.conf") and real(load("asterisk.conf"))[0].get("astspooldir") == "/var/spool/asterisk"


def test_core_5_campaign_calls_queue_like_inbound_calls(plan):
    call = Channel(plan, name="PJSIP/carrier-00000010", variables={"CAMPAIGN_ID": "7", "TASK_ID": "42"}).run(
        "auto-dialer", "s"
    )
    assert (call.context, call.ended) == ("waiting", "MusicOnHold")
    assert call.vars["CALL_ORIGIN"] == "campaign" and "CALL_ORIGIN" in call.inherited
    # Asterisk runs a "failed" extension on a dummy channel when an Originate into the context fails.
    for context in ("auto-dialer", "outbound", "chanspy"):
        assert "failed" not in plan.contexts[context].extensions


# == AGENT =========================================================================================


@pytest.mark.parametrize(
    ("received", "canonical"),
    [
        ("13800138000", "13800138000"),
        ("013800138000", "13800138000"),  # chan_dahdi's nationalprefix on a mobile
        ("+8613800138000", "13800138000"),
        ("008613800138000", "13800138000"),
        ("02088880000", "02088880000"),
        ("+862088880000", "02088880000"),
        ("008675588880000", "075588880000"),
        ("01012345678", "01012345678"),  # Beijing landline, not a mobile with a 0
        ("+861012345678", "01012345678"),
        ("00861012345678", "01012345678"),
        ("88880000", "{{LOCAL_AREA_CODE}}88880000"),
        ("4008001234", "4008001234"),
        ("95555", "95555"),
        ("", ""),
        ("anonymous", "anonymous"),
    ],
)
def test_agent_10_caller_numbers_are_normalised(plan, received, canonical):
    call = Channel(plan, callerid=received, ivr=ivr_routes()).run("from-trunk", "4008001234")
    assert call.callerid["num"] == canonical
    assert call.vars["CALLERID_RAW"] == received
    assert call.ended == "MusicOnHold", "a strange caller id must never drop the call"


def outbound_call(plan: Dialplan, *, carrier: str = "ANSWER", role: str = "agent", **variables: str) -> Channel:
    def dial(channel: Channel, ran: Ran) -> str:
        return carrier if "@carrier" in ran.data else "ANSWER"

    return Channel(
        plan,
        name="PJSIP/1001-00000006",
        callerid="13900139000",  # the ACD's Originate CallerID, shown on the agent's phone
        variables={"PHONE_ROLE": role, **variables} if role else variables,
        dial=dial,
    ).run("outbound", "013900139000")


def test_agent_7_1_outside_calls_go_out_with_our_caller_id(plan):
    call = outbound_call(plan)
    [dial] = call.apps("Dial")
    assert dial.data.startswith("PJSIP/13900139000@carrier,60,T"), "the ACD may Atxfer the agent's outside call"
    assert call.callerid["num"] == "{{OUTBOUND_CALLERID}}"
    assert outbound_call(plan, OUTBOUND_CID="02088880000").callerid["num"] == "02088880000"
    # SIP trunk down: the E1.
    fallback = outbound_call(plan, carrier="CHANUNAVAIL").apps("Dial")
    assert [split_args(d.data)[0] for d in fallback] == ["PJSIP/13900139000@carrier", "DAHDI/g1/13900139000"]


def test_agent_8_1_transfers_reach_the_target_and_fall_back_to_the_queue(plan):
    transferred = Channel(plan, variables={"MIXMONITOR_FILENAME": "/x.wav"}).run("agents-dial", "1002")
    assert transferred.first("Dial").data == "PJSIP/1002,20,t", "t for the agent, no T for the customer"
    assert not transferred.apps("MixMonitor"), "the transferred caller records already"
    missed = Channel(plan, variables={"MIXMONITOR_FILENAME": "/x.wav"}, dial=lambda c, r: "NOANSWER")
    assert (missed.run("agents-dial", "1002").context, missed.ended) == ("waiting", "MusicOnHold")
    consult = Channel(plan, name="Local/1002@agents-dial-00000000;2", dial=lambda c, r: "NOANSWER")
    assert consult.run("agents-dial", "1002").ended == "Hangup"
    # A customer transferred to an outside number: our caller id, no transfer codes, one file.
    out = outbound_call(plan, role="", MIXMONITOR_FILENAME="/x.wav")
    assert ",60,U(" in out.first("Dial").data and not out.callees[0].apps("MixMonitor")

    features = {s.name: s for s in real(load("features.conf"))}
    assert features["featuremap"].get("atxfer") == "*2" and features["featuremap"].get("blindxfer") == "#1"
    assert features["general"].get("transferdigittimeout") == "3"
    assert features["general"].get("transferannouncesound") == "", "README surprise 11"
    assert features["featuremap"].get("disconnect") is None


def reachable(plan: Dialplan, start: str) -> set[str]:
    edges: dict[str, set[str]] = {name: set(ctx.includes) for name, ctx in plan.contexts.items()}
    for step, context, _, _ in literal_targets(plan):
        source = step.where.split("]")[0][1:]
        if "${" not in context:
            edges[source].add(context)
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += edges.get(name, set())
    return seen


def test_agent_8_3_no_phone_or_trunk_reaches_outside_lines_by_itself(plan, pjsip):
    entry = {c for s in load("pjsip.conf") + load("chan_dahdi.conf") for c in s.values("context")}
    assert entry == {"from-agent", "from-supervisor", "from-trunk"}
    for context in entry:
        assert not reachable(plan, context) & {"outbound", "chanspy", "auto-dialer"}, context
    for context, _, step in dial_sites(plan):
        if "@carrier" in step.data or "DAHDI/" in step.data:
            assert context == "outbound", f"{step.where} dials out"
    refused = Channel(plan, name="PJSIP/1001-00000006").run("from-agent", "013900139000")
    assert refused.ended == "Hangup" and not refused.apps("Dial")
    internal = Channel(plan, name="PJSIP/1001-00000006").run("from-supervisor", "1002")
    assert internal.first("Dial").data == "PJSIP/1002,20,tT"


@pytest.mark.parametrize(("exten", "options"), [("listen", "qE"), ("whisper", "qEw"), ("barge", "qEB")])
def test_agent_15_16_supervisors_listen_whisper_and_barge(plan, exten, options):
    spy = Channel(plan, name="PJSIP/1901-00000008", variables={"SPY_TARGET": "PJSIP/1001-00000006"}).run(
        "chanspy", exten
    )
    assert spy.first("ChanSpy").data == f"PJSIP/1001-00000006,{options}"
    # ChanSpy with an empty prefix would spy on any channel at all.
    assert not Channel(plan).run("chanspy", exten).apps("ChanSpy")


def test_agent_17_supervisor_intercepts_the_customer(plan):
    lead = Channel(plan, name="PJSIP/1901-00000008", variables={"ACD_CALLER": "PJSIP/trunk-00000005"})
    assert lead.run("chanspy", "intercept").first("Bridge").data == "PJSIP/trunk-00000005,T"
    assert not Channel(plan).run("chanspy", "intercept").apps("Bridge")


def test_agent_23_voicemail_is_recorded_into_the_recording_spool(plan):
    call = Channel(plan, ivr=ivr_routes("voicemail,123")).run("from-trunk", "4008001234")
    assert call.first("Record").data == f"{recording_path(RECORDING_DIR + '/voicemail')},5,180,k"
    call.vars["RECORD_STATUS"] = "HANGUP"
    call.run("voicemail", "h")
    assert call.first("UserEvent").data.startswith(
        "CallcenterVoicemail,Box: 123,File: /var/spool/asterisk/monitor/voicemail/"
    )
    assert "app_voicemail.so" in real(load("modules.conf"))[0].values("noload")


# == AMI, modules, CDR ============================================================================


def classes(value: str | None) -> set[str]:
    return {c.strip().lower() for c in (value or "").split(",") if c.strip()}


# The class Asterisk checks for each action the traces send (the action's registration in
# Asterisk's source; "manager show command <Action>" prints it). An empty set: any logged-in user.
ACTION_CLASSES = {
    "login": set(),
    "logoff": set(),
    "ping": set(),
    "challenge": set(),
    "events": set(),
    "bridgelist": set(),
    "bridgeinfo": set(),
    "queuestatus": set(),
    "queuesummary": set(),
    "originate": {"originate"},
    "mixmonitor": {"system"},
    "hangup": {"system", "call"},
    "redirect": {"call"},
    "blindtransfer": {"call"},
    "atxfer": {"call"},
    "status": {"system", "call", "reporting"},
    "coreshowchannels": {"system", "reporting"},
    "queueadd": {"agent"},
    "queueremove": {"agent"},
}
# Event classes the ACD does not receive, and why (manager.conf).
NOT_READ = {
    "dtmf": "IVR PINs and payment digits",
    "agi": "the IVR's",
    "reporting": "RTCP noise",
    "security": "not the ACD's",
}


def test_manager_gives_the_acd_what_it_needs_and_no_more(traces):
    sections = {s.name: s for s in real(load("manager.conf"))}
    general, acd = sections["general"], sections["acd"]
    assert (general.get("enabled"), general.get("port"), general.get("webenabled")) == ("yes", "5038", "no")
    assert set(sections) == {"general", "acd"}, "the ACD is the only AMI client"
    assert acd.get("secret") == "{{AMI_SECRET}}", "the secret is filled in at deploy, never committed"
    assert acd.values("deny") == ["0.0.0.0/0.0.0.0"] and acd.values("permit") == ["{{ACD_NETWORK}}"]

    actions, events = set(), {}
    for path in TRACES.glob("*.txt"):
        event = None
        for line in path.read_text().splitlines():
            if line.lower().startswith(">> action:"):
                actions.add(line.split(":", 1)[1].strip().lower())
            elif line.startswith("<< Event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("<< Privilege:") and event:
                events[event] = line.split(":", 1)[1].strip().split(",")[0].lower()
    actions.discard("foobarbaz")  # 12-login-variants sends an unknown action on purpose
    write, read = classes(acd.get("write")), classes(acd.get("read"))
    for action in sorted(actions):
        needed = ACTION_CLASSES[action]
        assert not needed or needed & write, f"the ACD cannot send {action}: needs one of {needed}"
    assert {"command", "config", "all"}.isdisjoint(write)
    for event, event_class in events.items():
        if event_class in NOT_READ:
            assert event_class not in read, f"{event} ({event_class}) should not reach the ACD: {NOT_READ[event_class]}"
        else:
            assert event_class in read, f"the ACD would not see {event} ({event_class})"
    assert "FullyBooted" in events and events["FullyBooted"] in read  # panoramisk waits for it
    assert "user" in read  # UserEvent CallcenterVoicemail


# Where each application and dialplan function the dialplan uses comes from (None: the core).
PROVIDERS = {
    "Answer": None, "NoOp": None, "Set": None, "Goto": None, "GotoIf": None, "Hangup": None,
    "Progress": None, "Bridge": None, "Congestion": None, "Wait": None,
    "Log": "app_verbose.so", "MusicOnHold": "res_musiconhold.so", "AGI": "res_agi.so",
    "Dial": "app_dial.so", "MixMonitor": "app_mixmonitor.so", "ChanSpy": "app_chanspy.so",
    "Record": "app_record.so", "Playback": "app_playback.so", "Gosub": "app_stack.so",
    "Return": "app_stack.so", "UserEvent": "app_userevent.so",
    "CALLERID": "func_callerid.so", "CUT": "func_cut.so", "IF": "func_logic.so",
    "FILTER": "func_strings.so", "STRFTIME": "func_strings.so",
}  # fmt: skip


def test_modules_load_what_the_dialplan_uses_and_not_the_noise(plan):
    [modules] = real(load("modules.conf"))
    assert modules.get("autoload") == "yes"
    required, noload = set(modules.values("require")), set(modules.values("noload"))
    used = {step.app for _, _, step in plan.steps()}
    used |= set(re.findall(r"\$\{([A-Z]+)\(", (DEPLOY / "extensions.conf").read_text()))
    for name in used:
        assert name in PROVIDERS, f"{name}: which module provides it?"
        module = PROVIDERS[name]
        assert module is None or (module in required and module not in noload), f"{name} needs {module}"
    assert {"chan_pjsip.so", "pbx_config.so", "format_wav.so"} <= required
    assert {"chan_alsa.so", "chan_console.so", "res_hep.so", "res_hep_pjsip.so", "res_hep_rtcp.so"} <= noload
    assert not required & noload


def test_core_10_reporting_uses_the_acds_events_so_cdr_and_cel_are_off():
    for name in ("cdr.conf", "cel.conf"):
        [general] = real(load(name))
        assert general.get("enable") == "no", name


# == deploy ========================================================================================


def placeholders() -> set[str]:
    return {p for path in DEPLOY.glob("*.conf") for p in re.findall(r"\{\{([A-Z0-9_]+)\}\}", path.read_text())}


def test_render_fills_every_placeholder_and_refuses_missing_ones(tmp_path):
    names = placeholders()
    assert {"AMI_SECRET", "ACD_NETWORK", "IVR_HOST", "CARRIER_SECRET"} <= names
    assert {f"SIP_SECRET_{e}" for e in AGENTS + SUPERVISORS} <= names
    env = {"PATH": os.environ["PATH"], **{name: f"value-of-{name.lower()}" for name in names}}
    env["AMI_SECRET"] = r"s3cr&t|with\specials"
    subprocess.run(["sh", str(DEPLOY / "render.sh"), str(tmp_path / "etc")], env=env, check=True, timeout=10)
    rendered = {p.name: p.read_text() for p in (tmp_path / "etc").iterdir()}
    assert set(rendered) == {p.name for p in DEPLOY.glob("*.conf")}
    assert not [name for name, text in rendered.items() if "{{" in text]
    assert "secret=s3cr&t|with\\specials\n" in rendered["manager.conf"]

    del env["CARRIER_SECRET"]
    missing = subprocess.run(
        ["sh", str(DEPLOY / "render.sh"), str(tmp_path / "again")], env=env, capture_output=True, text=True, timeout=10
    )
    assert missing.returncode != 0 and "CARRIER_SECRET" in missing.stderr and not (tmp_path / "again").exists()


def test_readme_covers_the_files_the_placeholders_and_the_walkthrough():
    readme = (DEPLOY / "README.md").read_text()
    for path in DEPLOY.iterdir():
        if path.name != "README.md":
            assert f"`{path.name}`" in readme, f"README.md does not describe {path.name}"
    for name in placeholders() - {f"SIP_SECRET_{e}" for e in AGENTS + SUPERVISORS}:
        assert f"`{name}`" in readme, f"README.md does not say what {name} is"
    for trace in ("01-inbound-to-agent.txt", "fastagi-inbound.txt"):
        assert trace in readme
