"""`deploy.backup` on SQLite files without a running system: what it copies, what restore refuses, the re-send mark."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from deploy.backup import BackupError, backup, restore
from deploy.components import COMPONENTS


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("JIAOZHI_DATABASE_URL", *(f"JIAOZHI_{c.upper()}_DATABASE_URL" for c in COMPONENTS)):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "var"
    folder.mkdir()
    monkeypatch.setenv("JIAOZHI_DATA_DIR", str(folder))
    for name in COMPONENTS:
        with sqlite3.connect(folder / f"{name}.db") as db:
            table = "account" if name == "gateway" else "outbox"
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"CREATE TABLE {table} (id INTEGER, sent_at TEXT)")
            db.execute(f"INSERT INTO {table} VALUES (1, '2026-01-01'), (2, NULL)")
            if name == "dispatch":  # evidence photos are rows (bytes) in dispatch's database: copied with it
                db.execute("CREATE TABLE task_photo (id TEXT, data BLOB, thumbnail BLOB)")
                db.execute("INSERT INTO task_photo VALUES ('ph-1', ?, ?)", (PHOTO, PHOTO[:64]))
    return folder


PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 64


def test_backup_then_restore_into_a_fresh_data_dir_marks_outboxes_unsent(data_dir: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = backup(tmp_path / "backup")
    assert set(manifest["components"]) == set(COMPONENTS)
    with pytest.raises(BackupError, match="not empty"):
        backup(tmp_path / "backup")
    with pytest.raises(BackupError, match="exists"):  # the live data directory is not fresh
        restore(tmp_path / "backup")

    fresh = tmp_path / "fresh"
    (fresh / "nats" / "jetstream").mkdir(parents=True)
    monkeypatch.setenv("JIAOZHI_DATA_DIR", str(fresh))
    with pytest.raises(BackupError, match="JetStream store"):
        restore(tmp_path / "backup")
    assert not (fresh / "dispatch.db").exists(), "a refused restore changed something"

    (fresh / "nats" / "jetstream").rmdir()
    (fresh / "nats").rmdir()
    timings = restore(tmp_path / "backup")
    assert any("dispatch (1 outbox rows to re-send)" in step for step in timings)
    with sqlite3.connect(fresh / "dispatch.db") as db:
        assert db.execute("SELECT count(*), count(sent_at) FROM outbox").fetchone() == (2, 0)
        assert db.execute("SELECT data, thumbnail FROM task_photo").fetchall() == [(PHOTO, PHOTO[:64])]
    with sqlite3.connect(fresh / "gateway.db") as db:
        assert db.execute("SELECT count(*) FROM account").fetchone() == (2,)

    restore(tmp_path / "backup", replace=True)  # over a restored directory: the old files are moved aside
    assert list(fresh.glob("dispatch.db.before-restore-*"))


def test_restore_refuses_a_folder_that_is_not_a_backup(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="manifest.json"):
        restore(tmp_path)
