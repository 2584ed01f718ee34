"""Which addresses an outbound delivery may reach (the table behind WAFLEET_WEBHOOK_ALLOW_PRIVATE)."""

from __future__ import annotations

import pytest

from wafleet.actors.outbound_url import UrlRefused, address_allowed, check, parse


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::",
    ],
)
def test_private_loopback_link_local_and_special_addresses_are_refused(address: str) -> None:
    assert not address_allowed(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(address)


def test_every_resolved_address_must_be_allowed() -> None:
    with pytest.raises(UrlRefused, match="private, loopback or link-local"):
        check("https://localhost/hook", allow_private=False)
    target = check("http://localhost:8080/hook?x=1", allow_private=True)
    assert target.path == "/hook?x=1" and target.host_header == "localhost:8080"
    assert set(target.addresses) <= {"127.0.0.1", "::1"}


@pytest.mark.parametrize(
    "url",
    ["http://example.com/", "https://u:p@example.com/", "https://example.com/#x", "https:///x", "x" * 3000],
)
def test_malformed_or_plain_http_urls_are_refused(url: str) -> None:
    with pytest.raises(UrlRefused):
        parse(url, allow_private=False)
