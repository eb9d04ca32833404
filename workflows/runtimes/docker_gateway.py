"""The host address of a Docker bridge network, also on a daemon's first boot, when the
engine reports the network's subnet without its gateway (moby/moby#26799)."""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from collections.abc import Callable
from typing import Any

BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
# Linux's ioctl that reads an interface's IPv4 address.
SIOCGIFADDR = 0x8915
INTERFACE_NAME_MAX = 15


def interface_ipv4(name: str) -> str | None:
    """The IPv4 address of a network interface of this host, or None without one."""
    request = struct.pack("256s", name.encode()[:INTERFACE_NAME_MAX])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)
    except OSError:
        return None
    return socket.inet_ntoa(answer[20:24])


def ipv4_subnets(details: dict[str, Any]) -> list[ipaddress.IPv4Network]:
    subnets = []
    for config in (details.get("IPAM") or {}).get("Config") or []:
        try:
            subnet = ipaddress.ip_network(config.get("Subnet") or "", strict=False)
        except ValueError:
            continue
        if isinstance(subnet, ipaddress.IPv4Network):
            subnets.append(subnet)
    return subnets


def bridge_gateway_address(
    details: dict[str, Any], interface_address: Callable[[str], str | None] = interface_ipv4
) -> str | None:
    """The IPv4 address on which the host is reached from a network's containers.

    `details` is the engine's answer to a network inspect. Its `Gateway` when it has one;
    otherwise the address of the bridge interface the network names, when that lies in the
    network's subnet; otherwise the first host address of the subnet, which is what the
    engine gives the bridge.
    """
    configs = (details.get("IPAM") or {}).get("Config") or []
    for config in configs:
        gateway = config.get("Gateway")
        if gateway and ":" not in gateway:
            return str(gateway)
    subnets = ipv4_subnets(details)
    bridge = (details.get("Options") or {}).get(BRIDGE_NAME_OPTION)
    if bridge:
        address = interface_address(bridge)
        if address is not None and any(
            ipaddress.ip_address(address) in subnet for subnet in subnets
        ):
            return address
    for subnet in subnets:
        if subnet.num_addresses > 2:
            return str(next(subnet.hosts()))
    return None
