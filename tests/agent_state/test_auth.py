"""AGENT-1…4: login, logout, exit, password change; tokens, refresh rotation, lockout, signing keys."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from agent_state.config import AgentStateSettings
from agent_state.main import create_app
from callcenter_common.auth import generate_keypair
from callcenter_common.settings import PlatformSettings


async def test_agent_1_login_with_work_number_extension_and_password(agent_state, events, jwt_keys):
    client = agent_state.client
    response = await client.post(
        "/auth/login", json={"work_number": "8001", "password": "demo1234", "extension": "1001"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900 and body["refresh_token"]
    assert body["user"]["work_number"] == "8001" and body["user"]["role"] == "agent"

    public_key = (await client.get("/auth/public-key")).text
    assert public_key == jwt_keys[1]
    claims = jwt.decode(body["access_token"], public_key, algorithms=["EdDSA"], audience="callcenter")
    booking = await agent_state.group_id("预约组", body["access_token"])
    assert claims["sub"] == agent_state.users["8001"] and claims["wn"] == "8001" and claims["ext"] == "1001"
    assert claims["roles"] == ["agent"] and claims["groups"] == [booking] and claims["sid"] == body["session_id"]
    assert claims["exp"] - claims["iat"] == pytest.approx(900, abs=1)
    assert "call.transfer.external" not in claims["perms"]  # AGENT-8.3: off for agents by default

    state = await agent_state.state(body["access_token"])
    assert (state["state"], state["extension"]) == ("idle", "1001")
    event = await events.wait_for("agent.state_changed", lambda d: d["work_number"] == "8001")
    assert (event.data["previous_state"], event.data["state"], event.data["extension"]) == (
        "logged_out",
        "idle",
        "1001",
    )
    assert event.data["groups"] == [booking]

    lead = await client.post("/auth/login", json={"work_number": "9101", "password": "demo1234"})
    lead_claims = jwt.decode(lead.json()["access_token"], public_key, algorithms=["EdDSA"], audience="callcenter")
    assert lead_claims["roles"] == ["team_lead"] and booking in lead_claims["groups"]
    assert {"agents.control", "call.transfer.external"} <= set(lead_claims["perms"]) and "ext" not in lead_claims


async def test_agent_1_refused_logins(agent_state):
    client = agent_state.client
    for body, status, code, field in (
        ({"work_number": "8001", "password": "wrong-one"}, 401, "auth.invalid_credentials", None),
        ({"work_number": "nobody", "password": "demo1234"}, 401, "auth.invalid_credentials", None),
        ({"work_number": "admin", "password": "demo1234", "extension": "1009"}, 422, "agent.no_telephony", "extension"),
        ({"password": "demo1234"}, 422, "request.invalid", "work_number"),
        ({"work_number": "8001", "password": "demo1234", "extension": "ext1"}, 422, "request.invalid", "extension"),
        ({"work_number": "8001 OR 1=1", "password": "x"}, 422, "request.invalid", "work_number"),
    ):
        response = await client.post("/auth/login", json=body)
        assert (response.status_code, response.json()["code"], response.json().get("field")) == (status, code, field)
    await agent_state.login("8001", "1001")
    taken = await client.post("/auth/login", json={"work_number": "8002", "password": "demo1234", "extension": "1001"})
    assert taken.status_code == 409 and taken.json()["code"] == "agent.extension_in_use"


async def test_agent_1_repeated_failures_lock_the_account_for_a_while(agent_state):
    client = agent_state.client
    wrong = {"work_number": "8001", "password": "not-the-password"}
    for _ in range(4):
        assert (await client.post("/auth/login", json=wrong)).status_code == 401
    locked = await client.post("/auth/login", json=wrong)
    assert locked.status_code == 429 and locked.json()["code"] == "auth.account_locked"
    assert int(locked.headers["retry-after"]) == 15 * 60
    right = {"work_number": "8001", "password": "demo1234"}
    assert (await client.post("/auth/login", json=right)).status_code == 429  # even the right password
    assert (await client.post("/auth/login", json={"work_number": "8002", "password": "demo1234"})).status_code == 200

    agent_state.clock.advance(15 * 60 - 1)
    assert (await client.post("/auth/login", json=right)).status_code == 429
    agent_state.clock.advance(2)
    assert (await client.post("/auth/login", json=right)).status_code == 200
    assert (await client.post("/auth/login", json=wrong)).status_code == 401  # the count started again


async def test_agent_1_refresh_rotates_and_a_reused_refresh_token_ends_the_session(agent_state, events):
    client, h = agent_state.client, agent_state.auth
    login = (await client.post("/auth/login", json={"work_number": "8001", "password": "demo1234"})).json()
    rotated = await client.post("/auth/refresh", json={"refresh_token": login["refresh_token"]})
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != login["refresh_token"]
    assert rotated.json()["session_id"] == login["session_id"]
    assert (await client.get("/users/me", headers=h(rotated.json()["access_token"]))).status_code == 200

    reused = await client.post("/auth/refresh", json={"refresh_token": login["refresh_token"]})
    assert reused.status_code == 401 and reused.json()["code"] == "auth.refresh_invalid"
    # The theft is answered by ending the session: the rotated pair is void too.
    assert (
        await client.post("/auth/refresh", json={"refresh_token": rotated.json()["refresh_token"]})
    ).status_code == 401
    revoked = await client.get("/users/me", headers=h(rotated.json()["access_token"]))
    assert revoked.status_code == 401 and revoked.json()["code"] == "auth.token_revoked"
    await events.wait_for("auth.tokens_revoked", lambda d: d["session_id"] == login["session_id"])

    assert (await client.post("/auth/refresh", json={"refresh_token": "x" * 43})).status_code == 401
    assert (await client.post("/auth/refresh", json={"refresh_token": "short"})).json()["field"] == "refresh_token"
    expired = (await client.post("/auth/login", json={"work_number": "8002", "password": "demo1234"})).json()
    agent_state.clock.advance(12 * 3600 + 1)
    assert (await client.post("/auth/refresh", json={"refresh_token": expired["refresh_token"]})).status_code == 401


async def test_agent_1_expired_tampered_and_foreign_tokens_are_401(agent_state, tokens):
    client, h = agent_state.client, agent_state.auth
    user_id = agent_state.users["8001"]
    good = await agent_state.login("8001")
    assert (await client.get("/users/me", headers=h(good))).status_code == 200

    expired = tokens.issue(user_id=user_id, work_number="8001", roles=["agent"], now=time.time() - 3600)
    response = await client.get("/users/me", headers=h(expired))
    assert response.status_code == 401 and response.json()["code"] == "auth.token_expired"
    assert response.headers["www-authenticate"] == "Bearer"

    header, payload, signature = good.split(".")
    forged_claims = jwt.decode(good, options={"verify_signature": False}) | {"roles": ["director"]}
    forged_payload = jwt.utils.base64url_encode(jwt.api_jws.json.dumps(forged_claims).encode()).decode()
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    foreign = jwt.encode(forged_claims, generate_keypair()[0], algorithm="EdDSA")
    for bad in (f"{header}.{forged_payload}.{signature}", f"{header}.{payload}.{flipped}", foreign, "not.a.jwt"):
        response = await client.get("/users/me", headers=h(bad))
        assert response.status_code == 401 and response.json()["code"] == "auth.token_invalid"
    assert (await client.get("/users/me")).status_code == 401


async def test_agent_2_logout_ends_the_telephony_login_only(agent_state, events):
    client, h = agent_state.client, agent_state.auth
    token = await agent_state.login("8001", "1001")
    response = await client.post("/auth/logout", headers=h(token))
    assert response.status_code == 200
    assert (response.json()["state"], response.json()["extension"]) == ("logged_out", None)
    event = await events.wait_for("agent.state_changed", lambda d: d["state"] == "logged_out")
    assert event.data["extension"] == "1001" and event.data["previous_state"] == "idle"
    assert (await client.get("/users/me", headers=h(token))).status_code == 200  # the session goes on
    again = await client.post("/auth/logout", headers=h(token))
    assert again.status_code == 200 and again.json()["state"] == "logged_out"
    await agent_state.login("8002", "1001")  # the extension is free


async def test_agent_3_exit_ends_the_session_and_its_token(agent_state, events):
    client, h = agent_state.client, agent_state.auth
    login = (
        await client.post("/auth/login", json={"work_number": "8001", "password": "demo1234", "extension": "1001"})
    ).json()
    other_session = await agent_state.login("8001")
    token = login["access_token"]
    assert (await client.post("/auth/exit", headers=h(token))).status_code == 204
    response = await client.get("/users/me", headers=h(token))
    assert response.status_code == 401 and response.json()["code"] == "auth.token_revoked"
    assert (await client.post("/auth/refresh", json={"refresh_token": login["refresh_token"]})).status_code == 401
    revoked = await events.wait_for("auth.tokens_revoked", lambda d: d["session_id"] == login["session_id"])
    assert revoked.data["user_id"] == agent_state.users["8001"] and revoked.data["reason"] == "exit"
    assert (await agent_state.state(other_session))["state"] == "logged_out"  # exit also logged the phone out

    listed = (await client.get("/auth/revocations")).json()["items"]
    assert [(r["user_id"], r["session_id"]) for r in listed] == [(agent_state.users["8001"], login["session_id"])]


async def test_agent_4_password_change_needs_the_old_password_and_voids_older_tokens(agent_state, events):
    client, h = agent_state.client, agent_state.auth
    token = await agent_state.login("8001", "1001")
    other_device = await agent_state.login("8001")

    wrong = await client.put(
        "/auth/password", json={"old_password": "guess", "new_password": "n3w-secret"}, headers=h(token)
    )
    assert wrong.status_code == 403 and wrong.json()["field"] == "old_password"
    short = await client.put(
        "/auth/password", json={"old_password": "demo1234", "new_password": "short"}, headers=h(token)
    )
    assert short.status_code == 422 and short.json()["field"] == "new_password"
    missing = await client.put("/auth/password", json={"old_password": "demo1234"}, headers=h(token))
    assert missing.status_code == 422 and missing.json()["field"] == "new_password"

    changed = await client.put(
        "/auth/password", json={"old_password": "demo1234", "new_password": "n3w-secret"}, headers=h(token)
    )
    assert changed.status_code == 200
    fresh = changed.json()["access_token"]
    for old in (token, other_device):
        response = await client.get("/users/me", headers=h(old))
        assert response.status_code == 401 and response.json()["code"] == "auth.token_revoked"
    assert (await client.get("/users/me", headers=h(fresh))).status_code == 200
    assert (await agent_state.state(fresh))["state"] == "idle"  # the telephony login goes on
    await events.wait_for(
        "auth.tokens_revoked", lambda d: d["reason"] == "password_changed" and d["session_id"] is None
    )

    old_password = await client.post("/auth/login", json={"work_number": "8001", "password": "demo1234"})
    assert old_password.status_code == 401
    await agent_state.login("8001", password="n3w-secret")


async def test_agent_1_signing_key_generated_in_dev_and_required_in_prod(tmp_path: Path, jwt_keys):
    public_file = tmp_path / "shared" / "jwt-public.pem"
    dev = PlatformSettings(env="dev", bus="memory", var_dir=tmp_path, jwt_public_key_file=public_file)
    database = f"sqlite+aiosqlite:///{tmp_path}/a.db"
    first = create_app(AgentStateSettings(database_url=database, platform=dev))
    private_file = tmp_path / "keys" / "agent-state-jwt-private.pem"
    assert private_file.stat().st_mode & 0o777 == 0o600
    assert public_file.read_text() == first.state.services.auth.keys.public_pem
    issued = first.state.services.auth.issuer.issue(user_id="u", work_number="1")
    assert jwt.decode(issued, public_file.read_text(), algorithms=["EdDSA"], audience="callcenter")["sub"] == "u"
    second = create_app(AgentStateSettings(database_url=database, platform=dev))  # same key again
    assert second.state.services.auth.keys.public_pem == public_file.read_text()

    prod = PlatformSettings(env="prod", bus="memory", amqp_url="amqp://cc:s3cret@mq/", jwt_public_key=jwt_keys[1])
    with pytest.raises(ValueError, match="must be set in prod"):
        create_app(AgentStateSettings(database_url=database, platform=prod))
    with pytest.raises(ValueError, match="does not belong"):
        create_app(AgentStateSettings(database_url=database, platform=prod, jwt_private_key=generate_keypair()[0]))
    assert create_app(AgentStateSettings(database_url=database, platform=prod, jwt_private_key=jwt_keys[0]))
