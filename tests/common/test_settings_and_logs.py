"""Settings refuse placeholder secrets in prod; logs are JSON lines carrying the correlation id;
events inherit the correlation id of the request or event that caused them (issue #2)."""

from __future__ import annotations

import json
import logging
from typing import ClassVar

import pytest
from pydantic import ValidationError

from callcenter_common.events import Envelope, Event
from callcenter_common.observability import JsonFormatter, correlation_id
from callcenter_common.settings import PlatformSettings, ServiceSettings


class Pinged(Event):
    name: ClassVar[str] = "test.pinged"


def test_prod_refuses_default_broker_credentials_and_missing_key() -> None:
    with pytest.raises(ValidationError, match="guest"):
        PlatformSettings(env="prod", jwt_public_key="-----BEGIN PUBLIC KEY-----")
    with pytest.raises(ValidationError, match="JWT_PUBLIC_KEY"):
        PlatformSettings(env="prod", amqp_url="amqp://cc:s3cret-long@mq:5672/")
    ok = PlatformSettings(env="prod", amqp_url="amqp://cc:s3cret-long@mq:5672/", jwt_public_key="k")
    assert ok.env == "prod"
    assert PlatformSettings(env="dev").amqp_url.startswith("amqp://guest:guest@")


def test_service_secret_placeholder_refused_in_prod_only() -> None:
    prod = ServiceSettings(platform=PlatformSettings(env="prod", amqp_url="amqp://a:b@mq/", jwt_public_key="k"))
    with pytest.raises(ValueError, match="placeholder"):
        prod.require_secret("PATIENT_ID_KEY", "changeme")
    assert prod.require_secret("PATIENT_ID_KEY", "a-real-key") == "a-real-key"
    assert ServiceSettings().require_secret("PATIENT_ID_KEY", "changeme") == "changeme"


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCENTER_AMQP_URL", "amqp://u:p@broker:5672/cc")
    monkeypatch.setenv("CALLCENTER_CONSUMER_MAX_DELIVERIES", "7")
    platform = PlatformSettings()
    assert platform.amqp_url == "amqp://u:p@broker:5672/cc"
    assert platform.consumer_max_deliveries == 7


def test_json_log_lines_carry_the_correlation_id() -> None:
    record = logging.LogRecord("callcenter.test", logging.INFO, __file__, 1, "call %s routed", ("1.42",), None)
    token = correlation_id.set("1700000000.42")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        correlation_id.reset(token)
    assert line["msg"] == "call 1.42 routed"
    assert line["correlation_id"] == "1700000000.42"
    assert line["level"] == "INFO"


def test_events_inherit_the_current_correlation_id_unless_given() -> None:
    token = correlation_id.set("req-7")
    try:
        assert Pinged().envelope("test").correlation_id == "req-7"
        assert Pinged().envelope("test", correlation_id="1700000000.1").correlation_id == "1700000000.1"
    finally:
        correlation_id.reset(token)
    assert Pinged().envelope("test").correlation_id is None


def test_envelope_rejects_a_bad_name_and_round_trips() -> None:
    with pytest.raises(ValidationError):
        Envelope(name="NotDotted", source="t")
    env = Pinged().envelope("test", correlation_id="c")
    assert Envelope.from_bytes(env.to_bytes()) == env
