"""The tree holds no leftover merge-conflict markers (one slipped into the README once)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^(<{7} |={7}$|>{7} )", re.M)


def test_no_file_holds_a_merge_conflict_marker() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert len(tracked) > 100
    marked = []
    for name in tracked:
        path = ROOT / name
        if path.suffix in {".png", ".jpg", ".ico", ".woff2", ".gz"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        if MARKER.search(text):
            marked.append(name)
    assert marked == []
