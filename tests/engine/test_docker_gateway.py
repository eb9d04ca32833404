"""The host address of a bridge network, from the engine's inspect answers, first boot included."""

from __future__ import annotations

from typing import Any

from workflows.runtimes.docker_gateway import bridge_gateway_address, interface_ipv4

# `docker network inspect bridge` on a daemon's first boot (moby/moby#26799): no Gateway.
FIRST_BOOT_BRIDGE: dict[str, Any] = {
    "Name": "bridge",
    "IPAM": {"Driver": "default", "Options": None, "Config": [{"Subnet": "10.213.0.0/24"}]},
    "Options": {"com.docker.network.bridge.name": "docker0"},
}
LATER_BOOT_BRIDGE: dict[str, Any] = {
    **FIRST_BOOT_BRIDGE,
    "IPAM": {"Config": [{"Subnet": "10.213.0.0/24", "Gateway": "10.213.0.1"}]},
}


def no_interface(name: str) -> str | None:
    return None


def test_the_gateway_the_engine_reports_comes_first() -> None:
    assert bridge_gateway_address(LATER_BOOT_BRIDGE, lambda name: "10.213.0.7") == "10.213.0.1"


def test_on_a_first_boot_the_bridge_interface_gives_the_address() -> None:
    interfaces = {"docker0": "10.213.0.1"}
    assert bridge_gateway_address(FIRST_BOOT_BRIDGE, interfaces.get) == "10.213.0.1"


def test_without_the_interface_the_first_host_address_of_the_subnet() -> None:
    assert bridge_gateway_address(FIRST_BOOT_BRIDGE, no_interface) == "10.213.0.1"


def test_an_interface_outside_the_subnet_is_not_the_gateway() -> None:
    # Inside shipcord's container the host's docker0 is not there; another one may be.
    assert bridge_gateway_address(FIRST_BOOT_BRIDGE, lambda name: "172.17.0.1") == "10.213.0.1"


def test_ipv6_only_or_empty_networks_have_no_ipv4_gateway() -> None:
    ipv6 = {"IPAM": {"Config": [{"Subnet": "fd00::/64", "Gateway": "fd00::1"}]}}
    assert bridge_gateway_address(ipv6, no_interface) is None
    assert bridge_gateway_address({"IPAM": {"Config": None}}, no_interface) is None
    assert bridge_gateway_address({}, no_interface) is None


def test_an_ipv6_gateway_beside_an_ipv4_subnet_is_skipped() -> None:
    dual = {
        "IPAM": {
            "Config": [{"Subnet": "fd00::/64", "Gateway": "fd00::1"}, {"Subnet": "10.9.0.0/16"}]
        }
    }
    assert bridge_gateway_address(dual, no_interface) == "10.9.0.1"


def test_the_loopback_interface_is_read_from_this_host() -> None:
    assert interface_ipv4("lo") == "127.0.0.1"
    assert interface_ipv4("no-such-if0") is None
