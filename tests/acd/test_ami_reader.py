"""The AMI reader on its own: framing, noise skipping, and malformed input that must not break it."""

from __future__ import annotations

import logging

import pytest
from acd_support import new_replay, received_chunks, trace_path

from acd.ami import AmiReader, parse_headers

NEWCHANNEL = (
    b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/trunk-00000001\r\nChannelState: 4\r\n"
    b"ChannelStateDesc: Ring\r\nCallerIDNum: 13800138000\r\nCallerIDName: \xe5\xbc\xa0\xe4\xb8\x89\r\n"
    b"ConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\nLanguage: en\r\nAccountCode: \r\n"
    b"Context: from-trunk\r\nExten: 4008001234\r\nPriority: 1\r\nUniqueid: 1796000001.1\r\n"
    b"Linkedid: 1796000001.1\r\n\r\n"
)


def test_parse_headers_keeps_empty_values_and_ignores_lines_without_colon() -> None:
    assert parse_headers("Event: X\r\nAccountCode: \r\nno colon here\r\nBare:\r\nA: b: c") == {
        "Event": "X",
        "AccountCode": "",
        "Bare": "",
        "A": "b: c",
    }


def test_a_whole_trace_fed_byte_by_byte_gives_the_same_facts() -> None:
    # TCP may cut anywhere: in the banner, in a header, inside a UTF-8 character.
    whole = b"".join(chunk for _, chunk in received_chunks(trace_path("06")))
    once, bytewise = new_replay(), new_replay()
    once.feed(whole)
    for i in range(len(whole)):
        bytewise.feed(whole[i : i + 1])
    assert bytewise.names == once.names
    assert len(once.names) == 9
    assert bytewise.reader.banner == "Asterisk Call Manager/11.0.0"


def test_utf8_caller_name_split_across_chunks_is_kept() -> None:
    r = new_replay()
    cut = NEWCHANNEL.index(b"\xe5\xbc") + 1
    r.feed(NEWCHANNEL[:cut])
    r.feed(NEWCHANNEL[cut:])
    assert r.model.channels["1796000001.1"].caller_name == "张三"
    assert r.data("call.started")["caller_name"] == "张三"


def test_malformed_input_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    r = new_replay()
    caplog.set_level(logging.WARNING, logger="acd.ami")
    r.feed(b"Asterisk Call Manager/11.0.0\r\n")
    r.feed(b"this is not AMI at all\r\nneither is this\r\n\r\n")  # garbage lines
    r.feed(b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/trunk-1\r\n\r\n")  # no Uniqueid
    r.feed(
        b"Event: Hangup\r\nChannel: PJSIP/x-1\r\nUniqueid: 1.1\r\nCause: sixteen\r\n\r\n"
    )  # unknown channel, bad cause
    r.feed(b"Event: VarSet\r\nUniqueid: 1.1\r\nVariable: DNIS\r\nValue: " + b"9" * 100_000 + b"\r\n\r\n")  # huge
    r.feed(b"Event: TotallyNewEvent\r\nFoo: bar\r\n\r\n")  # unknown event
    r.feed(b"Event: Newstate\r\nUniqueid: \xff\xfe\xfd\r\nChannelState: 6\r\n\r\n")  # not UTF-8
    r.feed(b"\r\n\r\n\r\n")  # stray blank lines
    r.feed(NEWCHANNEL)  # and a good frame still goes through
    assert r.names == ["call.started"]
    counts = r.reader.counts
    assert counts.malformed == 3  # garbage, missing Uniqueid, the oversized frame
    assert counts.ignored >= 1  # the unknown event
    warnings = [rec.getMessage() for rec in caplog.records]
    assert any("neither Event nor Response" in w for w in warnings)
    assert any("KeyError" in w and "Uniqueid" in w for w in warnings)
    assert any("limit 65536" in w for w in warnings)


def test_an_endless_frame_is_dropped_without_growing_the_buffer(caplog: pytest.LogCaptureFixture) -> None:
    r = new_replay()
    caplog.set_level(logging.WARNING, logger="acd.ami")
    r.feed(b"Event: VarSet\r\nValue: ")
    for _ in range(40):
        r.feed(b"x" * 8192)  # 320 KiB and no end of frame
        assert len(r.reader._rest) <= r.reader.max_frame_bytes + 8192
    r.feed(b"\r\n\r\n" + NEWCHANNEL)
    assert r.names == ["call.started"]
    assert r.reader.counts.malformed == 1


def test_noise_is_skipped_before_parsing() -> None:
    parsed: list[str] = []

    def apply(name: str, headers: dict[str, str]) -> bool:
        parsed.append(name)
        return True

    reader = AmiReader(
        wanted=frozenset({"Hangup"}),
        tracks_variable=lambda name: name == "DNIS",
        apply=apply,
        on_reply=lambda text: parsed.append("reply"),
        is_pending=lambda action_id: action_id == "resync-1",
    )
    reader.feed(b"Event: RTCPSent\r\nUniqueid: 1\r\n\r\n")
    reader.feed(b"Event: VarSet\r\nUniqueid: 1\r\nVariable: BRIDGEPEER\r\nValue: x\r\n\r\n")
    reader.feed(b"Event: VarSet\r\nUniqueid: 1\r\nVariable: DNIS\r\nValue: 400\r\n\r\n")
    reader.feed(b"Event: CoreShowChannel\r\nActionID: resync-1\r\nUniqueid: 1\r\n\r\n")  # list item: a reply
    reader.feed(b"Event: CoreShowChannel\r\nActionID: other\r\nUniqueid: 1\r\n\r\n")  # nobody asked
    reader.feed(b"Response: Success\r\nActionID: resync-1\r\n\r\n")
    reader.feed(b"Event: Hangup\r\nUniqueid: 1\r\n\r\n")
    assert parsed == ["VarSet", "reply", "reply", "Hangup"]
    assert reader.counts.ignored == 3
