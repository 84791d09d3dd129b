"""Configuration of the simulator: AMI users, endpoints and how they behave, the dialplan."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# -- how the far end of a leg behaves when it is called -----------------------------------------


@dataclass(frozen=True)
class Answer:
    """Rings, then answers (sipp uas: 100, 180, 200 after 300 ms in the traces)."""

    after: float = 0.3
    hangup_after: float | None = None  # the far end sends BYE this long after answering


@dataclass(frozen=True)
class Busy:
    """Answers the INVITE with 486 Busy Here (03-agent-busy.txt)."""

    after: float = 0.0


@dataclass(frozen=True)
class NoAnswer:
    """Sends 180 and never answers (02-agent-no-answer.txt)."""


@dataclass(frozen=True)
class Manual:
    """Rings until the test calls `sim.endpoint(ext).answer()` or `.reject()`."""


Behaviour = Answer | Busy | NoAnswer | Manual


@dataclass(frozen=True)
class EndpointConfig:
    """A PJSIP endpoint (an agent phone). `callerid` mirrors pjsip.conf `callerid="Agent 1001" <1001>`."""

    behaviour: Behaviour = Answer()
    callerid_name: str | None = None
    callerid_num: str | None = None
    context: str = "from-agent"


# -- dialplan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundContext:
    """[from-trunk] of the traces: NoOp, Answer(), AGI(agi_url) when configured, Set() of
    `variables`, then the route: `Goto(waiting,s,1)` unless the IVR set the route variable
    (see `SimConfig.route_variable`)."""

    noop: str = "Inbound call DNIS ${EXTEN} from ${CALLERID(num)}"
    answer: bool = True  # False leaves answering to the IVR (AGI ANSWER), as in fastagi-commands
    variables: tuple[tuple[str, str], ...] = ()
    waiting_context: str = "waiting"


@dataclass(frozen=True)
class WaitingContext:
    """[waiting]: NoOp, MusicOnHold(class), Hangup(). The ACD takes callers from here."""

    moh_class: str = "default"
    noop: str = "Caller waiting for agent"


@dataclass(frozen=True)
class DialContext:
    """[agents-dial] / [redirected]: NoOp, Dial(PJSIP/<target or the dialled exten>,timeout), Hangup()."""

    target: str | None = None
    timeout: int = 20
    noop: str = "Transfer target ${EXTEN}"


@dataclass(frozen=True)
class OutboundContext:
    """[outbound] exten => _0X.: NoOp, Dial(PJSIP/${EXTEN:strip}@trunk,timeout), Hangup()."""

    trunk: str = "carrier"
    strip: int = 1
    timeout: int = 30
    noop: str = "Outbound to ${EXTEN}"


ContextSpec = InboundContext | WaitingContext | DialContext | OutboundContext


def default_contexts() -> dict[str, ContextSpec]:
    return {
        "from-trunk": InboundContext(),
        "waiting": WaitingContext(),
        "agents-dial": DialContext(),
        "outbound": OutboundContext(),
    }


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 5038  # 0 picks a free port; read it back from PbxSimulator.ami_port
    users: dict[str, str] = field(default_factory=lambda: {"admin": "admin"})  # AMI username -> secret
    failed_login_delay: float = 1.0  # Asterisk waits ~1 s before "Authentication failed" (12-login-variants)
    asterisk_version: str = "22.10.1"

    # FastAGI: `${EXTEN}` and other ${...} are expanded per call, as in AGI(agi://…/inbound?dnis=${EXTEN}).
    agi_url: str | None = None
    route_variable: str = "ROUTE"
    sounds_dir: Path | None = None  # None: every prompt exists and lasts `default_prompt_seconds`
    default_prompt_seconds: float = 1.0
    language: str = "en"

    recordings_dir: Path = Path("var/recordings")
    monitor_dir: str = "/var/spool/asterisk/monitor"  # MixMonitor paths under it land in recordings_dir
    recording_tone_hz: float = 0.0  # 0 writes silence, like the traces (sipp sent no RTP)

    trunk_endpoint: str = "trunk"
    trunk_context: str = "from-trunk"
    trunk_capacity: int = 30  # CORE-1: one E1 PRI, 30 B-channels, shared by inbound and outbound legs
    carrier_endpoint: str = "carrier"
    carrier_behaviour: Behaviour = Answer(after=0.8)
    carrier_numbers: dict[str, Behaviour] = field(default_factory=dict)

    endpoints: dict[str, EndpointConfig] = field(default_factory=dict)
    # Endpoint used for PJSIP/<ext> not listed in `endpoints`; None makes such Originates fail.
    default_endpoint: EndpointConfig | None = field(default_factory=EndpointConfig)
    contexts: dict[str, ContextSpec] = field(default_factory=default_contexts)
    atxfer_code: str = "*2"  # features.conf [featuremap] atxfer

    # Delays of the call model, in seconds (measured in the traces).
    answer_seconds: float = 0.5  # Answer() / AGI ANSWER
    dtmf_interval: float = 0.3  # between scripted caller digits
    default_digit_timeout: float = 5.0  # GET DATA without a timeout
    chanspy_delay: float = 0.1  # answer -> ChanSpyStart (07)
    agi_hangup_notice: float = 0.04  # hang-up -> unsolicited "HANGUP" line (fastagi-commands)
    agi_connect_timeout: float = 5.0

    # A session whose unsent output grows past this is dropped, as Asterisk drops a client
    # that does not read (manager.conf writetimeout).
    write_buffer_limit: int = 64 * 1024 * 1024
    # Real seconds `PbxSimulator.advance()` waits for a FastAGI server before giving up.
    settle_timeout: float = 10.0

    def __post_init__(self) -> None:
        self.recordings_dir = Path(self.recordings_dir)
        if self.sounds_dir is not None:
            self.sounds_dir = Path(self.sounds_dir)
