"""pbxsim: an Asterisk 22 stand-in speaking real AMI and FastAGI, for the embedded mode, tests
and benchmarks. See README.md."""

from pbxsim.clock import Clock, RealClock, VirtualClock
from pbxsim.config import (
    Answer,
    Behaviour,
    Busy,
    ContextSpec,
    DialContext,
    EndpointConfig,
    InboundContext,
    Manual,
    NoAnswer,
    OutboundContext,
    SimConfig,
    WaitingContext,
    default_contexts,
)
from pbxsim.simulator import BridgeInfo, CallHandle, ChannelInfo, Endpoint, PbxSimulator

__all__ = [
    "Answer",
    "Behaviour",
    "BridgeInfo",
    "Busy",
    "CallHandle",
    "ChannelInfo",
    "Clock",
    "ContextSpec",
    "DialContext",
    "Endpoint",
    "EndpointConfig",
    "InboundContext",
    "Manual",
    "NoAnswer",
    "OutboundContext",
    "PbxSimulator",
    "RealClock",
    "SimConfig",
    "VirtualClock",
    "WaitingContext",
    "default_contexts",
]
