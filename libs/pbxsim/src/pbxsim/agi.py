"""FastAGI client: what Asterisk's AGI(agi://…) does on a channel.

Connects to the FastAGI server, sends the 22-line `agi_*` environment (fastagi-inbound.txt),
then answers commands the way Asterisk 22 does (fastagi-commands.txt): results, the 510/511/520
replies, the unsolicited `HANGUP` line after a hang-up, and AGIExecStart/AGIExecEnd on AMI.
Lines end in LF only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pbxsim.clock import resolve
from pbxsim.dialplan import expand, parse_callerid
from pbxsim.model import Channel, ChannelState
from pbxsim.recording import resolve_path, write_wav

if TYPE_CHECKING:
    from pbxsim.pbx import Pbx

log = logging.getLogger(__name__)

DEAD = "511 Command Not Permitted on a dead channel or intercept routine"
SAMPLES_PER_SECOND = 8000


@dataclass
class Reply:
    text: str
    code: int = 200
    result: str = "Success"


def parse_args(line: str) -> list[str]:
    """Split a command as res_agi's parse_args does: whitespace separates, double quotes group
    (and `""` is an empty argument), backslash escapes the next character."""
    args: list[str] = []
    current: list[str] = []
    in_arg = quoted = escaped = False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
            in_arg = True
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
            in_arg = True
        elif char in " \t" and not quoted:
            if in_arg:
                args.append("".join(current))
                current, in_arg = [], False
        else:
            current.append(char)
            in_arg = True
    if in_arg:
        args.append("".join(current))
    return args


def usage_reply(lines: list[str]) -> Reply:
    body = "\n".join(lines)
    return Reply(f"520-Invalid command syntax.  Proper usage follows:\n{body}\n520 End of proper usage.", 520, "Usage")


# Usage texts as res_agi prints them (the documentation of each command). STREAM FILE is
# verbatim from fastagi-commands.txt.
USAGE: dict[str, list[str]] = {
    "STREAM FILE": [
        "Send the given file, allowing playback to be interrupted by the given digits, if any. Returns "
        "<literal>0</literal> if playback completes without a digit being pressed, or the ASCII numerical value "
        "of the digit if one was pressed, or <literal>-1</literal> on error or if the channel was disconnected. "
        "If musiconhold is playing before calling stream file it will be automatically stopped and will not be "
        "restarted after completion.",
        "It sets the following channel variables upon completion:",
        "<variable>PLAYBACKSTATUS</variable>: The status of the playback attempt as a text string.",
        "    <value>SUCCESS</value>",
        "    <value>FAILED</value>",
    ],
    "GET DATA": ["Stream the given <replaceable>file</replaceable>, and receive DTMF data."],
    "GET VARIABLE": [
        "Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set. Returns "
        "<literal>1</literal> if <replaceable>variablename</replaceable> is set and returns the variable in "
        "parentheses."
    ],
    "GET FULL VARIABLE": [
        "Evaluates the given <replaceable>expression</replaceable> against the channel specified by "
        "<replaceable>variablename</replaceable>, or the current channel if channelname is not provided."
    ],
    "SET VARIABLE": ["Sets a variable to the current channel."],
    "SAY DIGITS": [
        "Say a given digit string, returning early if any of the given DTMF digits are received on the channel."
    ],
    "RECORD FILE": ["Record to a file until a given dtmf digit in the sequence is received."],
    "EXEC": ["Executes <replaceable>application</replaceable> with given <replaceable>options</replaceable>."],
    "WAIT FOR DIGIT": [
        "Waits up to <replaceable>timeout</replaceable> milliseconds for channel to receive a DTMF digit."
    ],
    "GET OPTION": ["Behaves similar to STREAM FILE but used with a timeout option."],
    "SET CONTEXT": ["Sets the context for continuation upon exiting the application."],
    "SET EXTENSION": ["Changes the extension for continuation upon exiting the application."],
    "SET PRIORITY": ["Changes the priority for continuation upon exiting the application."],
    "SET MUSIC": ["Enables/Disables the music on hold generator."],
    "SET CALLERID": ["Changes the callerid of the current channel."],
    "VERBOSE": ["Sends <replaceable>message</replaceable> to the console via verbose message system."],
}


class AgiSession:
    def __init__(self, pbx: Pbx, ch: Channel, data: str) -> None:
        self.pbx = pbx
        self.ch = ch
        url, *self.args = data.split(",")
        self.url = url
        self.dead = False
        self.status = "SUCCESS"
        self.goto: list[str | int | None] = [None, None, None]  # SET CONTEXT / EXTENSION / PRIORITY
        self.current: str | None = None  # the command being carried out
        self._hung_up = asyncio.Event()
        self._pausing: asyncio.Future[bool] | None = None
        self._hangup_noticed = False
        self._notice_pending = False
        self._waiting_for_server = True
        self._writer: asyncio.StreamWriter | None = None
        self._external = True  # counted in pbx.external_waits while waiting for the server
        pbx.external_waits += 1
        self._commands: dict[tuple[str, ...], tuple[Callable[[list[str]], Awaitable[Reply]], bool]] = {
            ("ANSWER",): (self._answer, False),
            ("STREAM", "FILE"): (self._stream_file, False),
            ("GET", "DATA"): (self._get_data, False),
            ("GET", "OPTION"): (self._get_option, False),
            ("WAIT", "FOR", "DIGIT"): (self._wait_for_digit, False),
            ("SAY", "DIGITS"): (self._say_digits, False),
            ("RECORD", "FILE"): (self._record_file, False),
            ("SET", "VARIABLE"): (self._set_variable, True),
            ("GET", "VARIABLE"): (self._get_variable, True),
            ("GET", "FULL", "VARIABLE"): (self._get_full_variable, True),
            ("CHANNEL", "STATUS"): (self._channel_status, False),
            ("EXEC",): (self._exec, True),
            ("NOOP",): (self._noop, True),
            ("VERBOSE",): (self._verbose, True),
            ("HANGUP",): (self._hangup, False),
            ("SET", "CONTEXT"): (self._set_context, False),
            ("SET", "EXTENSION"): (self._set_extension, False),
            ("SET", "PRIORITY"): (self._set_priority, False),
            ("SET", "MUSIC"): (self._set_music, False),
            ("SET", "CALLERID"): (self._set_callerid, False),
        }

    # -- life cycle --------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._session()
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            log.info("%s: FastAGI %s: %s", self.ch.name, self.url, exc)
            if not self.dead:
                self.status = "FAILURE"
        finally:
            self._set_external(False)
            if self._writer is not None:
                self._writer.close()
                with contextlib.suppress(OSError, ConnectionError):
                    await self._writer.wait_closed()
            self.pbx.agi_finished(self)

    async def _session(self) -> None:
        parts = urlsplit(self.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 4573
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), self.pbx.config.agi_connect_timeout
        )
        self._writer = writer
        script = parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
        writer.write(self._environment(script).encode())
        while True:
            raw = await reader.readline()
            if not raw:
                return  # the server closed the socket: AGI() returns (01)
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            self._set_external(False)
            reply = await self._execute(line)
            if not writer.is_closing():
                writer.write(f"{reply.text}\n".encode())
            self._set_external(True)

    def _set_external(self, waiting: bool) -> None:
        """Count this session in `pbx.external_waits` while its server owes the next move: it is
        waiting for the server and has nothing of its own still to send (the HANGUP line)."""
        self._waiting_for_server = waiting
        owed = waiting and not self._notice_pending
        if owed != self._external:
            self._external = owed
            self.pbx.external_waits += 1 if owed else -1
            self.pbx.activity.set()

    def _environment(self, script: str) -> str:
        ch = self.ch
        env = [
            ("agi_network", "yes"),
            ("agi_network_script", script),
            ("agi_request", self.url),
            ("agi_channel", ch.name),
            ("agi_language", ch.language),
            ("agi_type", ch.tech),
            ("agi_uniqueid", ch.uniqueid),
            ("agi_version", self.pbx.config.asterisk_version),
            ("agi_callerid", ch.caller_num or "unknown"),
            ("agi_calleridname", ch.caller_name or "unknown"),
            ("agi_callingpres", "0"),
            ("agi_callingani2", "0"),
            ("agi_callington", "0"),
            ("agi_callingtns", "0"),
            ("agi_dnid", ch.dnid or "unknown"),
            ("agi_rdnis", "unknown"),
            ("agi_context", ch.context),
            ("agi_extension", ch.exten),
            ("agi_priority", str(ch.priority)),
            ("agi_enhanced", "0.0"),
            ("agi_accountcode", ch.accountcode),
            ("agi_threadid", str(139799869580992 + ch.order)),
        ]
        env += [(f"agi_arg_{i}", arg) for i, arg in enumerate(self.args, start=1)]
        return "".join(f"{k}: {v}\n" for k, v in env) + "\n"

    def channel_hung_up(self) -> None:
        """The channel was hung up (or taken away from the AGI). Pending commands return and,
        about 40 ms later, the server gets the unsolicited HANGUP line (fastagi-commands.txt)."""
        if self.dead:
            return
        self.dead = True
        if self.status == "SUCCESS":
            self.status = "HANGUP"
        self._hung_up.set()
        if self._pausing is not None:
            resolve(self._pausing, False)
        self._notice_hangup()

    def _notice_hangup(self) -> None:
        if self._hangup_noticed:
            return
        self._hangup_noticed = True
        self._notice_pending = True
        self._set_external(self._waiting_for_server)

        def send() -> None:
            if self._writer is not None and not self._writer.is_closing():
                self._writer.write(b"HANGUP\n")
            self._notice_pending = False
            self._set_external(self._waiting_for_server)

        self.pbx.clock.call_later(self.pbx.config.agi_hangup_notice, send)

    async def _pause(self, seconds: float) -> bool:
        """Let `seconds` of channel time pass; False when the channel hangs up meanwhile."""
        if self.dead:
            return False
        if seconds <= 0:
            return True
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pausing = done
        timer = self.pbx.clock.call_later(seconds, functools.partial(resolve, done, True))
        try:
            return await done
        finally:
            timer.cancel()
            self._pausing = None

    # -- commands ----------------------------------------------------------------------------------
    async def _execute(self, line: str) -> Reply:
        args = parse_args(line)
        self.current = line
        command_id = random.randrange(1, 2**31)
        self.pbx.events.agi_exec_start(self.ch, command_id, line)
        upper = [a.upper() for a in args]
        handler = None
        for words, (fn, dead_ok) in sorted(self._commands.items(), key=lambda kv: -len(kv[0])):
            if tuple(upper[: len(words)]) == words:
                handler, name = (fn, dead_ok), " ".join(words)
                break
        if handler is None:
            reply = Reply("510 Invalid or unknown command", 510, "Invalid or unknown command")
        elif self.dead and not handler[1]:
            reply = Reply(DEAD, 511, DEAD[4:])
        else:
            reply = await handler[0](args)
            if reply.code == 520 and not reply.text.count("\n"):
                reply = usage_reply(USAGE.get(name, [f"Usage: {name}"]))
        self.pbx.events.agi_exec_end(self.ch, command_id, line, reply.code, reply.result)
        self.current = None
        return reply

    @staticmethod
    def _usage() -> Reply:
        return Reply("520", 520, "Usage")

    async def _answer(self, args: list[str]) -> Reply:
        if self.ch.state != ChannelState.UP:
            self.pbx.answer(self.ch)
            if not await self._pause(self.pbx.config.answer_seconds):
                return Reply("200 result=-1")
        return Reply("200 result=0")

    def _prompt(self, name: str) -> float | None:
        return self.pbx.sounds.duration(name, self.ch.language)

    async def _play(self, seconds: float, escape: str) -> tuple[int, float] | None:
        """Play for `seconds`; (digit or 0, seconds played), or None on hang-up. A scripted digit
        that is an escape digit interrupts the prompt."""
        digit = self.pbx.next_digit(self.ch)
        if digit is not None and digit in escape:
            played = min(seconds, self.pbx.config.dtmf_interval)
            if not await self._pause(played):
                return None
            return ord(self.pbx.take_digit(self.ch)), played
        if not await self._pause(seconds):
            return None
        return 0, seconds

    async def _stream_file(self, args: list[str]) -> Reply:
        if len(args) not in (4, 5):
            return self._usage()
        seconds = self._prompt(args[2])
        if seconds is None:
            return Reply("200 result=-1 endpos=0", -1, "Failure")  # missing file (fastagi-commands)
        offset = int(args[4]) / SAMPLES_PER_SECOND if len(args) == 5 and args[4].isdigit() else 0.0
        outcome = await self._play(max(0.0, seconds - offset), args[3])
        if outcome is None:
            return Reply("200 result=-1 endpos=0")
        digit, played = outcome
        self.pbx.set_var(self.ch, "PLAYBACKSTATUS", "SUCCESS")
        return Reply(f"200 result={digit} endpos={int((offset + played) * SAMPLES_PER_SECOND)}")

    async def _get_data(self, args: list[str]) -> Reply:
        if len(args) < 3:
            return self._usage()
        timeout = self.pbx.config.default_digit_timeout
        if len(args) > 3 and args[3].lstrip("-").isdigit() and int(args[3]) > 0:
            timeout = int(args[3]) / 1000
        max_digits = int(args[4]) if len(args) > 4 and args[4].isdigit() and int(args[4]) > 0 else 1024
        prompt = self._prompt(args[2]) or 0.0
        digits = ""
        while True:
            if self.pbx.next_digit(self.ch) is None:
                # the caller presses nothing more: the prompt ends, then the timeout (fastagi-commands: 1500 ms)
                wait = (prompt if not digits else 0.0) + timeout
                if not await self._pause(wait):
                    return Reply("200 result=-1")
                self.pbx.end_input(self.ch)
                return Reply(f"200 result={digits} (timeout)")
            if not await self._pause(self.pbx.config.dtmf_interval):
                return Reply("200 result=-1")
            digit = self.pbx.take_digit(self.ch)
            if digit == "#":
                return Reply(f"200 result={digits}")
            digits += digit
            if len(digits) >= max_digits:
                return Reply(f"200 result={digits}")

    async def _get_option(self, args: list[str]) -> Reply:
        if len(args) not in (4, 5):
            return self._usage()
        seconds = self._prompt(args[2])
        if seconds is None:
            return Reply("200 result=-1 endpos=0", -1, "Failure")
        outcome = await self._play(seconds, args[3])
        if outcome is None:
            return Reply("200 result=-1 endpos=0")
        digit, played = outcome
        if digit == 0:
            timeout = (
                int(args[4]) / 1000 if len(args) == 5 and args[4].isdigit() else self.pbx.config.default_digit_timeout
            )
            waited = await self._digit_within(timeout, args[3])
            if waited is None:
                return Reply("200 result=-1 endpos=0")
            digit = waited
        return Reply(f"200 result={digit} endpos={int(played * SAMPLES_PER_SECOND)}")

    async def _digit_within(self, timeout: float, accept: str | None) -> int | None:
        digit = self.pbx.next_digit(self.ch)
        if digit is not None and (accept is None or digit in accept):
            if not await self._pause(self.pbx.config.dtmf_interval):
                return None
            return ord(self.pbx.take_digit(self.ch))
        if timeout < 0:
            await self._hung_up.wait()
            return None
        if not await self._pause(timeout):
            return None
        self.pbx.end_input(self.ch)
        return 0

    async def _wait_for_digit(self, args: list[str]) -> Reply:
        if len(args) != 4 or not args[3].lstrip("-").isdigit():
            return self._usage()
        timeout = int(args[3])
        digit = await self._digit_within(timeout / 1000 if timeout >= 0 else -1.0, None)
        return Reply("200 result=-1" if digit is None else f"200 result={digit}")

    async def _say_digits(self, args: list[str]) -> Reply:
        if len(args) != 4:
            return self._usage()
        durations = [self._prompt(f"digits/{c}") for c in args[2] if c.isdigit()]
        if any(d is None for d in durations):
            return Reply("200 result=-1")
        outcome = await self._play(sum(d for d in durations if d is not None), args[3])
        if outcome is None:
            return Reply("200 result=-1")
        return Reply(f"200 result={outcome[0]}")

    async def _record_file(self, args: list[str]) -> Reply:
        if len(args) < 6 or not args[5].lstrip("-").isdigit():
            return self._usage()
        filename, fmt, escape, timeout = args[2], args[3], args[4], int(args[5])
        beep = "BEEP" in (a.upper() for a in args[6:])
        if beep and not await self._pause(self._prompt("beep") or 0.0):
            return Reply("200 result=-1 (hangup) endpos=0")
        path = resolve_path(f"{filename}.{fmt}", self.pbx.config.recordings_dir, self.pbx.config.monitor_dir)
        digit = self.pbx.next_digit(self.ch)
        if digit is not None and digit in escape:
            if not await self._pause(self.pbx.config.dtmf_interval):
                return Reply("200 result=-1 (hangup) endpos=0")
            pressed = ord(self.pbx.take_digit(self.ch))
            self._write_recording(path, fmt, self.pbx.config.dtmf_interval)
            return Reply(
                f"200 result={pressed} (dtmf) endpos={int(self.pbx.config.dtmf_interval * SAMPLES_PER_SECOND)}"
            )
        if timeout < 0:
            await self._hung_up.wait()
            self._write_recording(path, fmt, 0.0)
            return Reply("200 result=-1 (hangup) endpos=0")
        if not await self._pause(timeout / 1000):
            self._write_recording(path, fmt, 0.0)
            return Reply("200 result=-1 (hangup) endpos=0")
        # No audio reaches the simulator, so as in the traces nothing is heard: timeout, endpos 0.
        self._write_recording(path, fmt, 0.0)
        return Reply("200 result=0 (timeout) endpos=0")

    @staticmethod
    def _write_recording(target: Path, fmt: str, seconds: float) -> None:
        try:
            if fmt.lower().startswith("wav"):
                write_wav(target, seconds)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(b"")
        except OSError:
            log.exception("cannot write %s", target)

    async def _set_variable(self, args: list[str]) -> Reply:
        if len(args) != 4:
            return self._usage()
        self.pbx.set_var(self.ch, args[2], args[3])
        return Reply("200 result=1")

    async def _get_variable(self, args: list[str]) -> Reply:
        if len(args) != 3:
            return self._usage()
        value = self.pbx.get_var(self.ch, args[2])
        return Reply("200 result=0" if value is None else f"200 result=1 ({value})")

    async def _get_full_variable(self, args: list[str]) -> Reply:
        if len(args) not in (4, 5):
            return self._usage()
        ch: Channel | None = self.ch
        if len(args) == 5:
            ch = self.pbx.find(args[4])
            if ch is None:
                return Reply("200 result=0")
        assert ch is not None
        return Reply(f"200 result=1 ({expand(args[3], ch)})")

    async def _channel_status(self, args: list[str]) -> Reply:
        if len(args) > 3:
            return self._usage()
        ch = self.pbx.find(args[2]) if len(args) == 3 else self.ch
        return Reply("200 result=-1" if ch is None else f"200 result={int(ch.state)}")

    async def _exec(self, args: list[str]) -> Reply:
        if len(args) < 2:
            return self._usage()
        app, data = args[1].lower(), args[2] if len(args) > 2 else ""
        if self.dead:
            return Reply("200 result=-1")
        result = await self._run_app(app, data)
        return Reply(f"200 result={result}", 200, "Success" if result == 0 else "Unknown Result")

    async def _run_app(self, app: str, data: str) -> int:
        """The applications an IVR runs through EXEC; -2 for an application Asterisk does not know."""
        ch = self.ch
        if app in ("playback", "background"):
            files = [f for f in data.split(",")[0].split("&") if f]
            durations = [self._prompt(f) for f in files]
            ok = bool(durations) and all(d is not None for d in durations)
            if not await self._pause(sum(d for d in durations if d is not None)):
                return -1
            self.pbx.set_var(ch, "PLAYBACKSTATUS", "SUCCESS" if ok else "FAILED")
            return 0
        if app == "wait":
            try:
                seconds = float(data or 0)
            except ValueError:
                seconds = 0.0
            return 0 if await self._pause(seconds) else -1
        if app == "set":
            name, _, value = data.partition("=")
            self.pbx.set_var(ch, name, value)
            return 0
        if app in ("noop", "verbose", "log"):
            return 0
        if app == "answer":
            if ch.state != ChannelState.UP:
                self.pbx.answer(ch)
            return 0
        if app == "hangup":
            if data.isdigit():
                ch.hangupcause = int(data)
            self.pbx.agi_hangup_self(ch)
            self.channel_hung_up()
            self.status = "FAILURE"
            return -1
        if app == "saydigits":
            durations = [self._prompt(f"digits/{c}") for c in data if c.isdigit()]
            return 0 if await self._pause(sum(d for d in durations if d is not None)) else -1
        return -2

    async def _noop(self, args: list[str]) -> Reply:
        return Reply("200 result=0")

    async def _verbose(self, args: list[str]) -> Reply:
        if len(args) < 2:
            return self._usage()
        return Reply("200 result=1")

    async def _hangup(self, args: list[str]) -> Reply:
        if len(args) > 2:
            return self._usage()
        if len(args) == 2 and args[1] != self.ch.name:
            other = self.pbx.find(args[1])
            if other is None:
                return Reply("200 result=-1")
            self.pbx.request_hangup(other)
            return Reply("200 result=1")
        self.pbx.agi_hangup_self(self.ch)
        self.channel_hung_up()
        self.status = "FAILURE"  # AGISTATUS after AGI HANGUP (fastagi-commands-ami.txt)
        return Reply("200 result=1")

    async def _set_context(self, args: list[str]) -> Reply:
        if len(args) != 3:
            return self._usage()
        self.goto[0] = args[2]
        return Reply("200 result=0")

    async def _set_extension(self, args: list[str]) -> Reply:
        if len(args) != 3:
            return self._usage()
        self.goto[1] = args[2]
        return Reply("200 result=0")

    async def _set_priority(self, args: list[str]) -> Reply:
        if len(args) != 3 or not args[2].isdigit():
            return self._usage()
        self.goto[2] = int(args[2])
        return Reply("200 result=0")

    async def _set_music(self, args: list[str]) -> Reply:
        if len(args) not in (3, 4) or args[2].lower() not in ("on", "off"):
            return self._usage()
        moh_class = args[3] if len(args) == 4 else "default"
        if args[2].lower() == "on" and self.ch.moh_class is None:
            self.ch.moh_class = moh_class
            self.pbx.events.moh_start(self.ch, moh_class)
        elif args[2].lower() == "off" and self.ch.moh_class is not None:
            self.ch.moh_class = None
            self.pbx.events.moh_stop(self.ch)
        return Reply("200 result=0")

    async def _set_callerid(self, args: list[str]) -> Reply:
        if len(args) != 3:
            return self._usage()
        num, name = parse_callerid(args[2])
        self.ch.set_caller(num, name if name is not None else self.ch.caller_name)
        self.pbx.events.newcallerid(self.ch)
        return Reply("200 result=1")
