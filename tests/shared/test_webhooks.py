"""Webhook signing (Standard Webhooks), secrets at rest, and the SSRF guard's rules."""
from __future__ import annotations

import pytest

from shared import ssrf
from shared.errors import Invalid
from shared.webhooks import SecretBox, new_secret, signed_headers, verify


def test_signature_verifies_and_refuses_tampering_replay_and_other_secrets() -> None:
    secret, body = new_secret(), b'{"id":"e1"}'
    headers = signed_headers(secret, "e1", body, now=1_700_000_000)
    assert verify(secret, headers, body, now=1_700_000_100)
    assert not verify(secret, headers, body + b" ", now=1_700_000_100)
    assert not verify(new_secret(), headers, body, now=1_700_000_100)
    assert not verify(secret, headers, body, now=1_700_000_000 + 301), "an old timestamp is a replay"
    assert not verify(secret, headers | {"webhook-id": "e2"}, body, now=1_700_000_100)


def test_known_vector() -> None:
    """The Standard Webhooks specification's example (id, timestamp, body, secret → signature)."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    headers = signed_headers(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", body, now=1614265330)
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_secrets_are_sealed_and_need_the_same_key() -> None:
    secret = new_secret()
    sealed = SecretBox("key-one").seal(secret)
    assert secret not in sealed and SecretBox("key-one").open(sealed) == secret
    with pytest.raises(ValueError):
        SecretBox("key-two").open(sealed)


@pytest.mark.parametrize("url", ["http://127.0.0.1/x", "http://10.0.0.1/x", "http://169.254.169.254/x",
                                 "http://[::ffff:127.0.0.1]/x", "http://[fe80::1]/x", "http://100.64.0.1/x",
                                 "http://224.0.0.1/x", "http://0.0.0.0/x"])
async def test_non_public_targets_are_refused(url: str) -> None:
    with pytest.raises(Invalid, match="not allow-listed"):
        await ssrf.check_url(url, require_https=False, allow=[])


async def test_https_required_outside_demo_and_credentials_refused() -> None:
    with pytest.raises(Invalid, match="must use https"):
        await ssrf.check_url("http://8.8.8.8/x", require_https=True, allow=[])
    with pytest.raises(Invalid, match="credentials"):
        await ssrf.check_url("https://user:pw@8.8.8.8/x", require_https=True, allow=[])
    await ssrf.check_url("https://8.8.8.8/x", require_https=True, allow=[])  # public: fine (nothing is sent)


async def test_allow_list_admits_its_networks_only() -> None:
    allow = ssrf.networks(["127.0.0.1/32", "10.20.0.0/16"])
    await ssrf.check_url("http://127.0.0.1:9000/x", require_https=False, allow=allow)
    await ssrf.check_url("http://10.20.3.4/x", require_https=False, allow=allow)
    with pytest.raises(Invalid):
        await ssrf.check_url("http://10.21.0.1/x", require_https=False, allow=allow)


async def test_the_delivery_resolver_drops_names_that_resolve_to_private_addresses() -> None:
    with pytest.raises(OSError):
        await ssrf.GuardedResolver([]).resolve("localhost", 80)
    assert (await ssrf.GuardedResolver(ssrf.networks(["127.0.0.0/8", "::1/128"])).resolve("localhost", 80))
