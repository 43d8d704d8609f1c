"""NATS least privilege against a real nats-server: anonymous clients refused, each service confined to its
own subjects, and every service still able to do all it does (relay, durable consumers, dispatch's task feed)."""
from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
import yaml
from nats.aio.msg import Msg

from deploy.components import SERVICES, service_settings
from deploy.nats_auth import NatsUsers, permissions, subscriptions
from deploy.natsd import free_port, start_nats
from services.dispatch.stream import TaskFeed
from shared.bus import Bus, StreamLimits
from shared.consumer import Consumer
from shared.events import Envelope, stream_name
from shared.observability import Metrics
from tests.helpers import eventually

OBSERVER = {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
VALUES = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "nats-values.yaml"


@dataclass
class Broker:
    url: str
    users: NatsUsers
    log: Path

    def settings(self, service: str):  # noqa: ANN201 - the service's own settings class
        return service_settings(service, nats_url=self.url, nats_user=service,
                                nats_password=self.users.passwords[service])

    def violations(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if "Violation" in line]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    users = NatsUsers()
    users.add("observer", OBSERVER)
    port = free_port()
    proc = start_nats(tmp_path / "nats", port, log_file=tmp_path / "nats.log", authorization=users.config())
    yield Broker(f"nats://127.0.0.1:{port}", users, tmp_path / "nats.log")
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
async def observer(broker: Broker) -> AsyncIterator[list[str]]:
    """Subjects of every message that reaches the broker's clients (a user allowed everything)."""
    seen: list[str] = []

    async def record(msg: Msg) -> None:
        seen.append(msg.subject)

    nc = await nats.connect(broker.url, user="observer", password=broker.users.passwords["observer"])
    await nc.subscribe(">", cb=record)
    await nc.flush()
    yield seen
    await nc.close()


def test_permissions_follow_the_events_owners_and_the_handlers() -> None:
    for service in SERVICES:
        perms = permissions(service)
        publish = perms["publish"]["allow"]
        events = [s for s in publish if not s.startswith(("$JS.", "_INBOX"))]
        assert events == [f"{service}.>"], "a service publishes its own events only"
        assert perms["subscribe"]["allow"] == [f"_INBOX_{service}.>"]
        durables = {s.split(".")[-1] for s in publish if s.startswith("$JS.API.CONSUMER.MSG.NEXT.")}
        assert durables == {sub.durable for sub in subscriptions(service)}
        consumed = {sub.owner for sub in subscriptions(service)}
        for other in SERVICES:
            if other != service:  # no consumer of another service; only the streams it consumes to create
                assert not [s for s in publish if f".{other}-on-" in s]
                created = f"$JS.API.STREAM.CREATE.{stream_name(other)}" in publish
                assert created == (other in consumed)
        assert not [s for s in publish if ".DELETE." in s or ".PURGE." in s]
        # only its own stream's limits may it update (to the configured ones: shared.bus.StreamLimits)
        assert [s for s in publish if ".UPDATE." in s] == [f"$JS.API.STREAM.UPDATE.{stream_name(service)}"]


def test_cluster_values_carry_the_derived_permissions() -> None:
    """nats-values.yaml holds the same lists the code derives (regenerate: `jiaozhi nats-permissions`)."""
    values = yaml.safe_load(VALUES.read_text())
    users = {u["user"]: u for u in values["config"]["merge"]["authorization"]["users"]}
    assert set(users) == set(SERVICES)
    for service in SERVICES:
        assert users[service]["permissions"] == permissions(service), f"{service}: regenerate nats-values.yaml"
        assert users[service]["password"] == f"<< ${service.upper()}_PASSWORD >>"


async def test_anonymous_and_wrong_passwords_are_refused(broker: Broker) -> None:
    for credentials in ({}, {"user": "dispatch", "password": "wrong"}):
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(broker.url, allow_reconnect=False, connect_timeout=2, **credentials)


async def test_dispatch_cannot_publish_on_tracing_subjects(broker: Broker, observer: list[str]) -> None:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(broker.url, error_cb=on_error, **broker.settings("dispatch").nats_options())
    try:
        await nc.publish("tracing.task.generated.v1", b"{}")
        await nc.publish("$JS.API.STREAM.DELETE.TRACING", b"")
        await nc.publish("dispatch.task.changed.v1", b"{}")
        await nc.flush()
        await eventually(lambda: _true("dispatch.task.changed.v1" in observer), what="dispatch's own event")
        with pytest.raises(nats.errors.TimeoutError):  # the broker drops a subscription to other subjects
            sub = await nc.subscribe("classification.>")
            await sub.next_msg(timeout=0.5)
    finally:
        await nc.close()
    assert "tracing.task.generated.v1" not in observer and "$JS.API.STREAM.DELETE.TRACING" not in observer
    assert any('publish to "tracing.task.generated.v1"' in str(e) for e in errors)
    assert any('subscription to "classification.>"' in str(e) for e in errors)


async def _true(value: bool) -> bool:
    return value


class _Recorder(Consumer):
    """The real consumer loop (create the durable, bind, fetch), acking instead of touching a database."""

    received: list[str]

    async def handle_batch(self, msgs: list[Msg]) -> None:
        for msg in msgs:
            await msg.ack()
            self.received.append(msg.subject)


async def test_each_service_does_all_it_does_with_its_own_credentials(broker: Broker) -> None:
    buses = {s: Bus(broker.url, name=f"test-{s}", options=broker.settings(s).nats_options()) for s in SERVICES}
    tasks: list[asyncio.Task] = []
    try:
        for bus in buses.values():
            await bus.connect(wait=5)
        await asyncio.gather(*(bus.ensure_stream(s, own=True) for s, bus in buses.items()))
        for service, bus in buses.items():  # each may bring its own stream's limits to the configured ones
            bus.streams = StreamLimits(max_age_s=3600)
            await bus.ensure_stream(service, own=True)
        consumers = []
        for service in SERVICES:
            for sub in subscriptions(service):
                consumer = _Recorder(buses[service], None, None, sub, relay=None, metrics=Metrics(service))  # type: ignore[arg-type]
                consumer.received = []
                consumers.append(consumer)
                tasks.append(asyncio.create_task(consumer.run()))
        feed = TaskFeed()
        tasks.append(asyncio.create_task(feed.run(buses["dispatch"])))
        await asyncio.wait_for(feed.ready.wait(), 10)
        with feed.listen() as listener:
            for consumer in consumers:  # each owner publishes (and gets the ack for) what the consumer wants
                owner = buses[consumer.sub.owner]
                assert owner.js is not None
                for subject in consumer.by_subject:
                    await owner.js.publish(subject, _envelope(subject), headers={"Nats-Msg-Id": uuid.uuid4().hex})
            for consumer in consumers:
                await eventually(lambda c=consumer: _true(set(c.received) == set(c.by_subject)),
                                 what=f"{consumer.sub.durable} to receive its subjects")
            seq, envelope = await asyncio.wait_for(listener.get(), 10)
            assert envelope.type.startswith("dispatch.task.")
            assert [s for s, _ in await feed.backlog(seq - 1, 100)][:1] == [seq]  # a resumed stream reads back
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for bus in buses.values():
            await bus.close()
    assert broker.violations() == []


def _envelope(subject: str) -> bytes:
    return Envelope(source="test", type=subject, time=dt.datetime.now(dt.UTC), data={}).model_dump_json().encode()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed server certificate for 127.0.0.1 (openssl, a day long)."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make the test certificate"
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_tls_when_configured(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    """A server with a certificate: a client given the CA connects with its user; a plain client does not."""
    cert, key = certificate
    users = NatsUsers()
    port = free_port()
    proc = start_nats(tmp_path / "nats", port, log_file=tmp_path / "nats.log", authorization=users.config(),
                      tls=(cert, key))
    try:
        url = f"tls://127.0.0.1:{port}"
        settings = service_settings("dispatch", nats_url=url, nats_user="dispatch",
                                    nats_password=users.passwords["dispatch"], nats_tls_ca=cert)
        nc = await nats.connect(url, allow_reconnect=False, **settings.nats_options())
        assert nc.is_connected
        await nc.close()
        with pytest.raises(Exception):  # noqa: B017 - refused one way or another: no TLS, no way in
            await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False, connect_timeout=2,
                               user="dispatch", password=users.passwords["dispatch"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
