"""Accounts in the gateway's database (SQLite and PostgreSQL): the CLI creates them, the token endpoint logs them
in (password, client credentials, refresh), disabled ones are refused, demo accounts exist only in the demo."""
from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from deploy.cli import cli
from deploy.natsd import free_port
from gateway.app import create_app
from gateway.config import GatewaySettings
from shared.auth import SigningKey
from tests.helpers import assert_problem, serving

PRIVATE_KEY = SigningKey.generate("accounts").private_jwk()  # a production gateway's own key


def _settings(database_url: str, **overrides: object) -> GatewaySettings:
    dead = f"http://127.0.0.1:{free_port()}"
    values = {"environment": "production", "jwt_private_key": PRIVATE_KEY, "identity_hash_key": "k" * 40,
              "database_url": database_url, "log_level": "WARNING", "classification_url": dead,
              "tracing_url": dead, "dispatch_url": dead, "assessment_url": dead}
    return GatewaySettings(**(values | overrides))  # type: ignore[arg-type]


def _cli(database_url: str, *args: str, stdin: str | None = None) -> str:
    env = {"JIAOZHI_DATABASE_URL": database_url, "JIAOZHI_ENVIRONMENT": "production",
           "JIAOZHI_JWT_PRIVATE_KEY": PRIVATE_KEY,
           "JIAOZHI_IDENTITY_HASH_KEY": "k" * 40}
    result = CliRunner().invoke(cli, ["accounts", *args], env=env, input=stdin)
    assert result.exit_code == 0, result.output
    return result.stdout


async def test_cli_users_and_clients_log_in_and_disabled_ones_do_not(database_url: str) -> None:
    await asyncio.to_thread(_cli, database_url, "add-user", "li.wei", "--role", "station", "--unit", "ps-yiqiao",
                            "--password", "s3cret-pw")
    await asyncio.to_thread(_cli, database_url, "add-user", "chen", "--role", "command", stdin="another-pw\n")
    listed = await asyncio.to_thread(_cli, database_url, "list")
    assert "li.wei" in listed and "chen" in listed and "argon2" not in listed
    client_secret = (await asyncio.to_thread(_cli, database_url, "add-client", "traffic-platform")).strip()
    assert len(client_secret) >= 32

    async with serving(create_app(_settings(database_url))) as gw:
        station = await gw.post("/api/v1/auth/token", data={"grant_type": "password", "username": "li.wei",
                                                             "password": "s3cret-pw"})
        assert station.status_code == 200, station.text
        me = await gw.get("/api/v1/me", headers={"authorization": f"Bearer {station.json()['access_token']}"})
        assert me.json() == {"username": "li.wei", "role": "station", "unit_id": "ps-yiqiao"}

        platform = await gw.post("/api/v1/auth/token", data={"grant_type": "client_credentials",
                                                              "client_id": "traffic-platform",
                                                              "client_secret": client_secret})
        assert platform.status_code == 200, platform.text
        assert "refresh_token" not in platform.json()
        # an officer is not a client
        assert_problem(await gw.post("/api/v1/auth/token", data={"grant_type": "client_credentials",
                                                                 "client_id": "chen", "client_secret": "another-pw"}),
                       401)
        # no demo accounts outside the demo
        assert_problem(await gw.post("/api/v1/auth/token", data={"grant_type": "password", "username": "admin",
                                                                 "password": "demo"}), 401)

        refresh = station.json()["refresh_token"]
        renewed = await gw.post("/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh})
        assert renewed.status_code == 200, renewed.text
        assert renewed.json()["access_token"] != station.json()["access_token"]

        await asyncio.to_thread(_cli, database_url, "disable", "li.wei")
        assert_problem(await gw.post("/api/v1/auth/token", data={"grant_type": "password", "username": "li.wei",
                                                                 "password": "s3cret-pw"}), 401)
        assert_problem(await gw.post("/api/v1/auth/token", data={"grant_type": "refresh_token",
                                                                 "refresh_token": refresh}), 401)


async def test_an_access_token_is_no_refresh_token(tmp_path: object) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/gw.db"
    await asyncio.to_thread(_cli, url, "add-user", "wang", "--role", "admin", "--password", "pw-12345678")
    async with serving(create_app(_settings(url))) as gw:
        token = (await gw.post("/api/v1/auth/token", data={"grant_type": "password", "username": "wang",
                                                          "password": "pw-12345678"})).json()
        refused = await gw.post("/api/v1/auth/token", data={"grant_type": "refresh_token",
                                                            "refresh_token": token["access_token"]})
        assert_problem(refused, 401)
        as_access = await gw.get("/api/v1/me", headers={"authorization": f"Bearer {token['refresh_token']}"})
        assert_problem(as_access, 401)


@pytest.mark.parametrize(("args", "message"), [
    (["add-user", "x", "--role", "station", "--password", "long-enough"], "needs the unit"),
    (["add-user", "x", "--role", "wizard", "--password", "long-enough"], "role must be"),
    (["add-user", "x", "--role", "admin", "--password", "short"], "at least"),
])
def test_cli_refuses_bad_accounts(tmp_path: object, args: list[str], message: str) -> None:
    env = {"JIAOZHI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/gw.db", "JIAOZHI_ENVIRONMENT": "test"}
    result = CliRunner().invoke(cli, ["accounts", *args], env=env)
    assert result.exit_code == 1
    assert message in result.output


def test_cli_refuses_a_duplicate_without_replace(tmp_path: object) -> None:
    env = {"JIAOZHI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/gw.db", "JIAOZHI_ENVIRONMENT": "test"}
    args = ["accounts", "add-user", "dup", "--role", "admin", "--password", "long-enough"]
    assert CliRunner().invoke(cli, args, env=env).exit_code == 0
    assert CliRunner().invoke(cli, args, env=env).exit_code == 1
    assert CliRunner().invoke(cli, [*args, "--replace"], env=env).exit_code == 0


@pytest.mark.parametrize("environment", ["development", "production"])
def test_outside_the_demo_the_gateway_needs_its_own_key_and_a_real_identity_key(
        environment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JIAOZHI_JWT_PRIVATE_KEY", raising=False)
    with pytest.raises(ValidationError, match="JIAOZHI_JWT_PRIVATE_KEY"):
        GatewaySettings(environment=environment, identity_hash_key="k" * 40)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="JIAOZHI_IDENTITY_HASH_KEY"):
        GatewaySettings(environment=environment, jwt_private_key=PRIVATE_KEY)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not an Ed25519 private JWK"):
        GatewaySettings(environment=environment, jwt_private_key='{"kty": "oct", "k": "c2VjcmV0"}',  # type: ignore[arg-type]
                        identity_hash_key="k" * 40)


def test_demo_accounts_only_in_the_demo() -> None:
    assert GatewaySettings(environment="demo").demo_accounts_enabled  # type: ignore[arg-type]
    assert not GatewaySettings(environment="production", jwt_private_key=PRIVATE_KEY,  # type: ignore[arg-type]
                               identity_hash_key="k" * 40).demo_accounts_enabled
