"""Only the gateway holds a private key: not in a service's settings, not in a launched service's environment,
not in a service's Kubernetes volumes; the launcher's key pair lives in the data dir and survives a restart."""
from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploy.cli import cli
from deploy.components import COMPONENTS, SERVICES, service_settings
from deploy.supervisor import System
from deploy.token_keys import PRIVATE_VAR, PUBLIC_VAR, TokenKeys
from shared.auth import Identity, SigningKey, issue_internal_token, verify_internal_token
from tests.deploy.render import render


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_configuration_holds_no_private_key(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PRIVATE_VAR, SigningKey.generate("leak").private_jwk())  # even if it is in the environment
    settings = service_settings(service)
    token_fields = {name for name in type(settings).model_fields if name.startswith("jwt_") or "private" in name}
    assert token_fields == {"jwt_public_keys", "jwt_issuer", "jwt_audience", "jwt_internal_audience"}
    assert '"d"' not in settings.model_dump_json() and "leak" not in settings.model_dump_json()
    with pytest.raises(RuntimeError, match="only the gateway"):
        issue_internal_token(settings, Identity(username="x", role="admin"))


def test_the_launcher_gives_the_private_key_to_the_gateway_only(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PRIVATE_VAR, SigningKey.generate("from-the-shell").private_jwk())
    system = System(data_dir=tmp_path)
    for name in COMPONENTS:
        env = system.env_for(name)
        assert (PRIVATE_VAR in env) == (name == "gateway"), name
        assert '"d"' not in env[PUBLIC_VAR]
    key = SigningKey.from_jwk(system.env_for("gateway")[PRIVATE_VAR])
    assert key.kid != "from-the-shell"
    settings = service_settings("dispatch", jwt_public_keys=system.env_for("dispatch")[PUBLIC_VAR])
    token = issue_internal_token(settings, Identity(username="x", role="admin"), key=key)
    assert verify_internal_token(settings, token).username == "x"


def test_the_data_dir_keeps_its_key_pair(tmp_path: Path) -> None:
    first = TokenKeys.for_data_dir(tmp_path)
    assert stat.S_IMODE((tmp_path / "keys" / "gateway.jwk").stat().st_mode) == 0o600
    assert TokenKeys.for_data_dir(tmp_path).signing.kid == first.signing.kid
    assert TokenKeys.for_data_dir(tmp_path / "other").signing.kid != first.signing.kid


def test_token_keys_command_makes_a_pair_and_keeps_the_old_public_key(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["token-keys", "--out", str(tmp_path / "a"), "--kid", "k1"]).exit_code == 0
    result = runner.invoke(cli, ["token-keys", "--out", str(tmp_path / "b"), "--kid", "k2", "--keep",
                                 str(tmp_path / "a" / PUBLIC_VAR)])
    assert result.exit_code == 0, result.output
    assert SigningKey.from_jwk((tmp_path / "b" / PRIVATE_VAR).read_text()).kid == "k2"
    public = json.loads((tmp_path / "b" / PUBLIC_VAR).read_text())["keys"]
    assert [k["kid"] for k in public] == ["k2", "k1"] and all("d" not in k for k in public)


def _secret_names(component: str) -> set[str]:
    deployment = next(d for d in render() if d["kind"] == "Deployment" and d["metadata"]["name"] == component)
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    return {source["secret"]["name"] for v in volumes for source in v.get("projected", {}).get("sources", [])
            if "secret" in source}


@pytest.mark.parametrize("component", COMPONENTS)
def test_kubernetes_gives_the_private_key_to_the_gateway_only(component: str) -> None:
    names = _secret_names(component)
    assert "jiaozhi-token-keys" in names
    assert ("jiaozhi-gateway-key" in names) == (component == "gateway")
