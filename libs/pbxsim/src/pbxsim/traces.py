"""Read the Asterisk transcripts of shared/asterisk-traces and compare AMI streams with them.

Transcript format (see the traces' README): `# t=<ms>` starts every frame, `<< ` lines come
from Asterisk, `>> ` lines from the client, `## ` lines are harness notes, and
`# ---- Connection N` / `# ---- Session N` start a new connection.

Channel names, Uniqueids and bridge ids differ from run to run, so both streams are
normalised first: every such value becomes a token numbered by first appearance
(`PJSIP/trunk-<C1>`, `<U3>`, `<B1>`). Two streams that do the same things in the same order
then normalise to the same text.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pbxsim.amiclient import AmiClient, Frame, find_header, split_header
from pbxsim.simulator import PbxSimulator

Headers = list[tuple[str, str]]

_CHANNEL = re.compile(r"\b((?:PJSIP|Local|DAHDI)/[^\s,|]*?-)([0-9a-f]{8})(?=;|\b)")
_UNIQUEID = re.compile(r"\b1\d{9}\.\d{1,5}\b")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_TOKEN = re.compile(r"<([CUB])(\d+)>")
_NORMALIZED_CHANNEL = re.compile(r"(?:PJSIP|Local|DAHDI)/[^\s,|]*?-<C\d+>")

# Values that change from run to run by nature (time, addresses, random ids).
VOLATILE = frozenset(
    {
        "Uptime",
        "LastReload",
        "EventTV",
        "SessionTV",
        "SessionID",
        "LocalAddress",
        "RemoteAddress",
        "CommandId",
        "Timestamp",
        "Duration",
        "Seconds",
        "LoginTime",
        "Challenge",
    }
)


@dataclass
class TraceFrame:
    t: int
    direction: str  # "<<" from Asterisk, ">>" from the client
    lines: list[str]
    note: str = ""

    @property
    def headers(self) -> Headers:
        return [h for h in map(split_header, self.lines) if h is not None]

    def get(self, name: str) -> str | None:
        return find_header(self.headers, name)

    @property
    def event(self) -> str | None:
        return self.get("Event") if self.direction == "<<" else None

    @property
    def is_response(self) -> bool:
        return self.direction == "<<" and bool(self.lines) and self.lines[0].startswith("Response:")


@dataclass
class Trace:
    path: Path
    comments: list[str]
    connections: list[list[TraceFrame]] = field(default_factory=list)

    @property
    def frames(self) -> list[TraceFrame]:
        return self.connections[0] if self.connections else []

    def received(self, connection: int = 0) -> list[TraceFrame]:
        return [f for f in self.connections[connection] if f.direction == "<<"]

    def sent(self, connection: int = 0) -> list[TraceFrame]:
        return [f for f in self.connections[connection] if f.direction == ">>"]

    def first(self, event: str, channel_prefix: str = "", connection: int = 0) -> TraceFrame:
        """The first event of that name on a channel whose name starts with `channel_prefix`."""
        for frame in self.received(connection):
            if frame.event == event and (frame.get("Channel") or "").startswith(channel_prefix):
                return frame
        raise LookupError(f"{self.path.name}: no {event} on {channel_prefix}*")


def load_trace(path: Path) -> Trace:
    trace = Trace(path, [])
    frames: list[TraceFrame] = []
    current: TraceFrame | None = None
    t = 0
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("# ---- "):
            if frames:
                trace.connections.append(frames)
            frames, current = [], None
        elif raw.startswith("# t="):
            t = int(raw[4:].strip())
            current = None
        elif raw.startswith("## "):
            if frames:
                frames[-1].note = raw[3:]
        elif raw.startswith(("<<", ">>")):
            direction, text = raw[:2], raw[3:]
            if current is None or current.direction != direction:
                current = TraceFrame(t, direction, [])
                frames.append(current)
            if text:
                current.lines.append(text)
        elif raw.startswith("#"):
            trace.comments.append(raw)
    if frames:
        trace.connections.append(frames)
    # drop the empty frames a bare "<< " line may leave behind
    trace.connections = [[f for f in conn if f.lines] for conn in trace.connections]
    return trace


class Normalizer:
    """Replaces run-specific identifiers by tokens numbered in order of first appearance."""

    def __init__(self) -> None:
        self.forward: dict[str, str] = {}
        self.back: dict[str, str] = {}
        self._counts = {"C": 0, "U": 0, "B": 0}

    def _token(self, kind: str, value: str) -> str:
        token = self.forward.get(value)
        if token is None:
            self._counts[kind] += 1
            token = f"<{kind}{self._counts[kind]}>"
            self.forward[value] = token
            self.back[token] = value
        return token

    def _channel(self, match: re.Match[str]) -> str:
        normalized = match.group(1) + self._token("C", match.group(0))
        self.back[normalized] = match.group(0)
        return normalized

    def normalize(self, value: str, key: str = "") -> str:
        value = _CHANNEL.sub(self._channel, value)
        if key.lower().endswith(("bridgeuniqueid", "bridgeid")):
            value = _UUID.sub(lambda m: self._token("B", m.group(0)), value)
        return _UNIQUEID.sub(lambda m: self._token("U", m.group(0)), value)

    def denormalize(self, value: str, fallback: Normalizer | None = None) -> str:
        """Tokens back to this side's values; a token this side never saw maps through
        `fallback` (the other side) to that side's value, e.g. a channel that does not exist."""

        def back(match: re.Match[str]) -> str:
            original = self.back.get(match.group(0))
            if original is None and fallback is not None:
                original = fallback.back.get(match.group(0))
            if original is None:
                raise KeyError(f"{match.group(0)} was never seen")
            return original

        value = _NORMALIZED_CHANNEL.sub(back, value)
        return _TOKEN.sub(back, value)

    def headers(self, headers: Headers) -> Headers:
        return [(k, self.normalize(v, k)) for k, v in headers]


@dataclass
class Rules:
    """How strictly two AMI streams are compared."""

    # Events left out of the comparison: noise, and what the simulator does not model.
    ignore: frozenset[str] = frozenset({"VarSet", "Newexten", "RTCPSent", "DeviceStateChange"})
    # Events whose position Asterisk does not fix (published from another thread, or sent in
    # reply to a client action whose timing differs). Compared as a multiset, not in sequence.
    racy: frozenset[str] = frozenset()
    volatile: frozenset[str] = VOLATILE
    ignore_values: dict[str, frozenset[str]] = field(default_factory=dict)


def _render(name: str, headers: Headers, rules: Rules) -> list[str]:
    skip = rules.volatile | rules.ignore_values.get(name, frozenset())
    return [f"{k}: {'*' if k in skip else v}" for k, v in headers]


def _name(headers: Headers) -> str:
    key, value = headers[0] if headers else ("", "")
    return value if key == "Event" else f"Response:{value}"


def compare_streams(expected: Sequence[Headers], actual: Sequence[Headers], rules: Rules) -> list[str]:
    """Differences between two normalised AMI streams, empty if none. Events are compared in
    order among themselves, and so are responses; how the two interleave is not compared, since
    it depends on when the client sent its actions."""
    problems: list[str] = []
    for kind, is_event in (("events", True), ("responses", False)):
        exp = [h for h in expected if h and (h[0][0] == "Event") == is_event and _name(h) not in rules.ignore]
        act = [h for h in actual if h and (h[0][0] == "Event") == is_event and _name(h) not in rules.ignore]
        problems += _compare_sequence(kind, exp, act, rules)
    return problems


def _compare_sequence(kind: str, exp: list[Headers], act: list[Headers], rules: Rules) -> list[str]:
    exp_strict = [h for h in exp if _name(h) not in rules.racy]
    act_strict = [h for h in act if _name(h) not in rules.racy]
    exp_names, act_names = [_name(h) for h in exp_strict], [_name(h) for h in act_strict]
    if exp_names != act_names:
        diff = difflib.unified_diff(exp_names, act_names, "trace", "simulator", lineterm="", n=2)
        return [f"{kind}: order differs:\n" + "\n".join(diff)]
    problems: list[str] = []
    for index, (e, a) in enumerate(zip(exp_strict, act_strict, strict=True)):
        problems += _compare_one(index, _name(e), e, a, rules)
    for name in sorted(rules.racy):
        e_group = sorted(_render(name, h, rules) for h in exp if _name(h) == name)
        a_group = sorted(_render(name, h, rules) for h in act if _name(h) == name)
        if e_group != a_group:
            problems.append(f"{name} events differ:\n  trace:     {e_group}\n  simulator: {a_group}")
    return problems


def _compare_one(index: int, name: str, expected: Headers, actual: Headers, rules: Rules) -> list[str]:
    e_keys, a_keys = [k for k, _ in expected], [k for k, _ in actual]
    if e_keys != a_keys:
        return [f"#{index} {name}: headers differ\n  trace:     {e_keys}\n  simulator: {a_keys}"]
    e_lines, a_lines = _render(name, expected, rules), _render(name, actual, rules)
    if e_lines != a_lines:
        pairs = [f"{x}  !=  {y}" for x, y in zip(e_lines, a_lines, strict=True) if x != y]
        return [f"#{index} {name}: values differ: " + "; ".join(pairs)]
    return []


# -- replaying a trace's client side ---------------------------------------------------------------

World = list[tuple[int, Callable[[], object]]]
_BARRIER = "pbxsim-barrier-"


@dataclass
class Replay:
    """What the trace shows and what the simulator sent, both normalised."""

    expected: list[Headers]
    actual: list[Headers]
    frames: list[Frame]


async def replay_trace(
    sim: PbxSimulator,
    trace: Trace,
    world: World,
    *,
    connection: int = 0,
    skip_actions: frozenset[str] = frozenset(),
    ignore: frozenset[str] = Rules().ignore,
) -> Replay:
    """Play the client side of one trace connection against a simulator on a `VirtualClock`,
    on the trace's own timeline, together with `world` (calls arriving, callers hanging up:
    callables run at their trace time in ms). Channel names, Uniqueids and bridge ids in the
    client's actions are translated to the simulator's; an MD5 login gets a key for the
    simulator's challenge (the secret is the first AMI user's)."""
    frames_in = trace.connections[connection]
    skipped_ids = {
        f.get("ActionID") for f in frames_in if f.direction == ">>" and (f.get("Action") or "").lower() in skip_actions
    }
    trace_norm = Normalizer()
    # identifiers are numbered over the frames that are compared, so noise does not shift them
    expected = [
        trace_norm.headers(f.headers)
        for f in frames_in
        if f.direction == "<<"
        and f.event not in ignore
        and (f.get("ActionID") is None or f.get("ActionID") not in skipped_ids)
    ]
    sim_norm = Normalizer()
    client = AmiClient()
    assert sim.ami_port is not None
    await client.connect(sim.config.host, sim.ami_port)
    seen = barriers = 0

    async def catch_up() -> None:
        """A Ping round trip, so every frame the simulator sent so far has been read."""
        nonlocal seen, barriers
        if client.closed.is_set():
            return
        barriers += 1
        with contextlib.suppress(ConnectionError):
            await client.send("Ping", ActionID=f"{_BARRIER}{barriers}")
        for frame in client.frames[seen:]:
            if frame.event not in ignore:
                sim_norm.headers(frame.headers)
        seen = len(client.frames)

    steps: list[tuple[int, int, Callable[[], object] | TraceFrame]] = [(t, 0, fn) for t, fn in world]
    steps += [(f.t, 1, f) for f in frames_in if f.direction == ">>"]
    steps.sort(key=lambda step: (step[0], step[1]))
    challenge = ""
    try:
        for t, _, payload in steps:
            await sim.advance(max(0.0, t / 1000 - sim.clock.now()))
            if not isinstance(payload, TraceFrame):
                result = payload()
                if asyncio.iscoroutine(result):
                    await result
                continue
            action = (payload.get("Action") or "").lower()
            if action in skip_actions or client.closed.is_set():
                continue
            await catch_up()
            headers = [(k, sim_norm.denormalize(trace_norm.normalize(v, k), trace_norm)) for k, v in payload.headers]
            if action == "login" and payload.get("Key") is not None:
                secret = next(iter(sim.config.users.values()))
                key = hashlib.md5(f"{challenge}{secret}".encode()).hexdigest()
                headers = [(k, key if k.lower() == "key" else v) for k, v in headers]
            client.send_raw(("".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode())
            action_id = next((v for k, v in headers if k.lower() == "actionid"), None)

            def answered(f: Frame, aid: str | None = action_id) -> bool:
                if f.get("ActionID") != aid:
                    return False
                return (f.is_response and f.get("EventList") != "start") or f.get("EventList") == "Complete"

            with contextlib.suppress(ConnectionError):
                reply = await client.wait_for(answered)
                challenge = reply.get("Challenge") or challenge
        await sim.settle()
        await catch_up()
    finally:
        await client.close()
    frames = [f for f in client.frames if not (f.get("ActionID") or "").startswith(_BARRIER)]
    actual_norm = Normalizer()
    return Replay(expected, [actual_norm.headers(f.headers) for f in frames if f.event not in ignore], frames)
