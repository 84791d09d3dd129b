from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from callcenter_common.settings import ServiceSettings


class AcdSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ACD_", extra="ignore")

    service_name: str = "acd"
    database_url: str = "sqlite+aiosqlite:///var/acd.db"

    # The AMI of the one Asterisk this ACD drives (manager.conf user with read=all write=all).
    # The defaults match the PBX simulator's, for the embedded mode.
    ami_host: str = "127.0.0.1"
    ami_port: int = Field(default=5038, ge=1, le=65_535)
    ami_username: str = "admin"
    ami_secret: str = "admin"
    ami_reconnect_initial_seconds: float = Field(default=0.2, gt=0)
    ami_reconnect_max_seconds: float = Field(default=10.0, gt=0)
    ami_ping_seconds: int = Field(default=10, ge=1)
    # No byte for this long (pings included) means the connection is dead: drop and reconnect.
    ami_idle_timeout_seconds: float = Field(default=35.0, gt=0)
    ami_action_timeout_seconds: float = Field(default=10.0, gt=0)
    # A frame larger than this is logged and skipped (the largest real ones are a few KiB).
    ami_max_frame_bytes: int = Field(default=65_536, ge=1_024)

    # Besides after every (re)connect, the model is checked against CoreShowChannels this often; 0 = never.
    resync_interval_seconds: float = Field(default=300.0, ge=0)
    # A channel named like this is an agent's phone; group 1 is the extension.
    agent_channel_pattern: str = r"PJSIP/(\d{2,8})"
    # Channel variables the model keeps (VarSet; `__` inheritance prefixes are dropped); `X_*` = prefix.
    tracked_variables: str = "DNIS,ACD_*,IVR_*"
    # Variables asked for with Status when a resync finds channels it did not know.
    resync_variables: str = "DNIS,ACD_CALLER,ACD_SKILL"

    # Facts waiting for the database; past this the AMI reader pauses (TCP back-pressure) until half are written.
    fact_queue_limit: int = Field(default=100_000, ge=10)
    fact_batch_size: int = Field(default=500, ge=1, le=10_000)
    # How long the writer lets facts gather before a transaction (latency traded for fewer commits).
    fact_linger_seconds: float = Field(default=0.05, ge=0, le=1)

    # Routing (issue #6). Calls of a number bound to no queue go to this queue; "" = not routed.
    default_queue: str = ""
    # Timers (personal waits, maximum waits) are checked this often.
    routing_tick_seconds: float = Field(default=0.2, gt=0, le=5)
    # A blacklisted caller is redirected here (`context,exten,priority`: a message, then hang-up); "" = AMI Hangup.
    blocked_context: str = ""
    # A call overflowing to a call-back is redirected here; "" = AMI Hangup after `callback.requested`.
    callback_context: str = ""
    # A pick-up (AGENT-13) redirects the caller to `<context>,<extension>,1`, which dials that agent.
    pickup_context: str = "agents-dial"
    # MixMonitor on every caller the ACD connects (CORE-4); `{uniqueid}` is the caller channel's.
    recording_path: str = "/var/spool/asterisk/monitor/inbound-{uniqueid}.wav"
    # Start-up copies: agent-state's GET /agents/routable and patient's GET /owners ("" = fed by events only),
    # read with this bearer token (a service token issued by agent-state; the ACD can mint none).
    # Live figures (queue.figures_updated) pushed to this group's screens this often; 0 = not pushed.
    figures_seconds: float = Field(default=1.0, ge=0)
    figures_group: str = "supervisors"
    agent_state_url: str = ""
    agent_state_token: str = ""
    patient_url: str = ""

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> "AcdSettings":
        self.require_secret("ACD_AMI_SECRET", "" if self.ami_secret == "admin" else self.ami_secret)
        return self

    def tracked_variable_list(self) -> list[str]:
        return [v.strip() for v in self.tracked_variables.split(",") if v.strip()]

    def resync_variable_list(self) -> list[str]:
        return [v.strip() for v in self.resync_variables.split(",") if v.strip()]
