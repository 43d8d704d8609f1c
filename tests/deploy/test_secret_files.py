"""Secrets as mounted files: a variable may be a file of the same name in JIAOZHI_SECRETS_DIR (Kubernetes)."""
from __future__ import annotations

from pathlib import Path

import pytest

from deploy.components import service_settings
from shared.auth import SigningKey, public_keyset


def test_settings_read_secret_files_and_a_variable_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    public = public_keyset(SigningKey.generate("from-a-file"))
    (tmp_path / "JIAOZHI_JWT_PUBLIC_KEYS").write_text(public + "\n")
    (tmp_path / "JIAOZHI_NATS_PASSWORD").write_text("nats-from-a-file")
    (tmp_path / "JIAOZHI_IDENTITY_HASH_KEY").write_text("key-from-a-file")
    monkeypatch.setenv("JIAOZHI_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("JIAOZHI_IDENTITY_HASH_KEY", "key-from-the-environment")
    monkeypatch.delenv("JIAOZHI_JWT_PUBLIC_KEYS", raising=False)
    monkeypatch.delenv("JIAOZHI_NATS_PASSWORD", raising=False)
    settings = service_settings("dispatch", nats_user="dispatch")
    assert settings.jwt_public_keys.strip() == public
    assert settings.identity_hash_key.get_secret_value() == "key-from-the-environment"
    assert settings.nats_options()["password"] == "nats-from-a-file"
    assert settings.nats_options()["inbox_prefix"] == "_INBOX_dispatch"


def test_without_the_folder_nothing_is_read_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JIAOZHI_SECRETS_DIR", raising=False)
    monkeypatch.delenv("JIAOZHI_NATS_USER", raising=False)
    assert "user" not in service_settings("dispatch").nats_options()
