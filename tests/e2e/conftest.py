"""A small running system (processes; the demo district's units, no history) for the resilience tests."""
from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from deploy.components import ROOT
from deploy.natsd import free_port, free_port_block
from deploy.supervisor import System
from tests.e2e.helpers import login


@pytest.fixture(scope="module")
def small_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    system = System.on_ports(tmp_path_factory.mktemp("resilience"), free_port_block(), free_port())
    system.env.update({"JIAOZHI_ENVIRONMENT": "test", "JIAOZHI_LOG_LEVEL": "WARNING", "JIAOZHI_DATABASE_URL": "",
                       "JIAOZHI_RATE_PER_S": "100000", "JIAOZHI_RATE_BURST": "100000",
                       "JIAOZHI_LOGIN_RATE_PER_MIN": "100000"})
    try:
        system.up()
        units = json.loads((ROOT / "deploy" / "demo_district.json").read_text())["units"]
        gateway = system.url("gateway")
        httpx.post(gateway + "/api/v1/units", json=units, headers=login(gateway, "admin"),
                   timeout=60).raise_for_status()
        yield system
    finally:
        system.down()
