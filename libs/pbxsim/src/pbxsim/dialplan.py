"""The small dialplan the simulator runs, and Asterisk's ${...} expansion.

Each context of `SimConfig.contexts` becomes a list of steps per extension, numbered like
dialplan priorities. The steps mirror the dialplan printed in the trace headers, so the
Newexten / Context / Exten / Priority values match (01, 05, 08b, 09).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pbxsim.config import (
    ContextSpec,
    DialContext,
    InboundContext,
    OutboundContext,
    SimConfig,
    WaitingContext,
)
from pbxsim.model import UNKNOWN, Channel


@dataclass(frozen=True)
class Step:
    app: str
    data: str = ""  # may hold ${...}; expanded when the step runs


@dataclass
class PbxRun:
    """Where a channel is in the dialplan. `index` is priority - 1."""

    context: str
    exten: str
    steps: list[Step]
    index: int = 0

    @property
    def priority(self) -> int:
        return self.index + 1


def build_steps(config: SimConfig, context: str, exten: str) -> list[Step] | None:
    spec: ContextSpec | None = config.contexts.get(context)
    if spec is None:
        return None
    if isinstance(spec, InboundContext):
        steps = [Step("NoOp", spec.noop)]
        if spec.answer:
            steps.append(Step("Answer"))
        if config.agi_url:
            steps.append(Step("AGI", config.agi_url))
        steps += [Step("Set", f"{name}={value}") for name, value in spec.variables]
        steps.append(Step("Route", f"{spec.waiting_context},s,1"))
        return steps
    if isinstance(spec, WaitingContext):
        return [Step("NoOp", spec.noop), Step("MusicOnHold", spec.moh_class), Step("Hangup")]
    if isinstance(spec, DialContext):
        target = spec.target or exten
        return [Step("NoOp", spec.noop), Step("Dial", f"PJSIP/{target},{spec.timeout}"), Step("Hangup")]
    if isinstance(spec, OutboundContext):
        # exten => _0X.,… : a leading 0 then at least two more digits
        if not re.fullmatch(r"0[0-9]\d+", exten):
            return None
        return [
            Step("NoOp", spec.noop),
            Step("Dial", f"PJSIP/${{EXTEN:{spec.strip}}}@{spec.trunk},{spec.timeout}"),
            Step("Hangup"),
        ]
    return None


# -- variables and ${...} ------------------------------------------------------------------------


def bare_name(name: str) -> str:
    return name.lstrip("_")


def lookup(ch: Channel, name: str) -> str | None:
    """What ${name} gives on the channel: a few built-ins and functions, then channel variables."""
    upper = name.upper()
    caller_num = ch.caller_num or ""
    caller_name = ch.caller_name or ""
    builtin = {
        "EXTEN": ch.exten,
        "CONTEXT": ch.context,
        "PRIORITY": str(ch.priority),
        "CHANNEL": ch.name,
        "UNIQUEID": ch.uniqueid,
        "LINKEDID": ch.linkedid,
        "CALLERID(NUM)": caller_num,
        "CALLERID(NAME)": caller_name,
        "CALLERID(ALL)": f'"{caller_name}" <{caller_num}>' if caller_name else caller_num,
        "CALLERID(DNID)": ch.dnid,
        "CONNECTEDLINE(NUM)": ch.connected_num or "",
        "CONNECTEDLINE(NAME)": ch.connected_name or "",
        "CHANNEL(LANGUAGE)": ch.language,
        "CHANNEL(NAME)": ch.name,
        "CHANNEL(UNIQUEID)": ch.uniqueid,
        "CHANNEL(LINKEDID)": ch.linkedid,
        "CHANNEL(STATE)": str(int(ch.state)),
        "CDR(DNID)": ch.dnid,
    }
    if upper in builtin:
        return builtin[upper]
    return ch.variables.get(bare_name(name))


def _substring(value: str, spec: str) -> str:
    parts = spec.split(":")
    try:
        offset = int(parts[0]) if parts[0] else 0
        length = int(parts[1]) if len(parts) > 1 and parts[1] else None
    except ValueError:
        return value
    value = value[offset:] if offset >= 0 else value[len(value) + offset :]
    return value if length is None else value[:length]  # a negative length drops characters at the end


def expand(template: str, ch: Channel) -> str:
    """Expand ${VAR}, ${FUNC(arg)} and ${VAR:offset:length}, nested, as pbx_substitute_variables does."""
    out: list[str] = []
    i = 0
    while i < len(template):
        start = template.find("${", i)
        if start < 0:
            out.append(template[i:])
            break
        out.append(template[i:start])
        depth, j = 1, start + 2
        while j < len(template) and depth:
            if template.startswith("${", j):
                depth += 1
                j += 2
                continue
            if template[j] == "}":
                depth -= 1
            j += 1
        if depth:
            out.append(template[start:])
            break
        inner = expand(template[start + 2 : j - 1], ch)
        name, substring = inner, ""
        paren = inner.rfind(")")
        colon = inner.find(":", paren + 1 if paren >= 0 else 0)
        if colon >= 0:
            name, substring = inner[:colon], inner[colon + 1 :]
        value = lookup(ch, name) or ""
        out.append(_substring(value, substring) if substring else value)
        i = j
    return "".join(out)


def format_callerid(num: str | None, name: str | None) -> str:
    if num is None and name is None:
        return UNKNOWN
    return f'"{name or ""}" <{num or ""}>'


def parse_callerid(value: str) -> tuple[str | None, str | None]:
    """`"Agent 1001" <1001>` -> ("1001", "Agent 1001"); a bare `1001` has no name."""
    match = re.fullmatch(r'\s*(?:"([^"]*)"|([^<]*?))\s*<([^>]*)>\s*', value)
    if match:
        name = match.group(1) if match.group(1) is not None else (match.group(2) or "").strip()
        number = match.group(3).strip()
        return (number or None), (name or None)
    value = value.strip()
    return (value or None), None
