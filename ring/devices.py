"""Devices and their failure-domain tiers.

A device is one disk of one node. Its place in the failure-domain tree is the chain of tier
tuples region > zone > node > device, where a node is an IP address inside a zone (as in
Swift: two ports on one host share its power supply and network card, so they are one
failure domain). Placement spreads the replicas of a partition over these tiers.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any

from edgestore.ring.errors import InvalidDevice

__all__ = [
    "Device",
    "NodeTier",
    "RegionTier",
    "DeviceTier",
    "ZoneTier",
    "device_from_dict",
    "normalize_ip",
    "tiers_for_device",
]

RegionTier = tuple[int]
ZoneTier = tuple[int, int]
NodeTier = tuple[int, int, str]
DeviceTier = tuple[int, int, str, int]

# A device name is a directory under the node's mount root: one plain path component.
_DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_TIER_NUMBER = 2**31 - 1


def normalize_ip(ip: str) -> str:
    """Return the canonical text of an IPv4 or IPv6 address, so one host has one node tier."""
    if not isinstance(ip, str):
        raise InvalidDevice("ip", ip, "not a string")
    try:
        return str(ipaddress.ip_address(ip.strip().strip("[]")))
    except ValueError as exc:
        raise InvalidDevice("ip", ip, "not an IPv4 or IPv6 address") from exc


def _check_tier_number(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidDevice(field, value, "not an integer")
    if not 0 <= value <= MAX_TIER_NUMBER:
        raise InvalidDevice(field, value, f"must be between 0 and {MAX_TIER_NUMBER}")
    return value


def _check_weight(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidDevice("weight", value, "not a number")
    weight = float(value)
    if not math.isfinite(weight) or weight < 0:
        raise InvalidDevice("weight", value, "must be a finite number >= 0")
    return weight


@dataclass(frozen=True, slots=True)
class Device:
    """One device in the ring. Immutable: the builder replaces it to change its weight.

    Construction checks every field and canonicalises the IP address, so a `Device` that
    exists is valid.
    """

    id: int
    region: int
    zone: int
    ip: str
    port: int
    device: str
    weight: float

    def __post_init__(self) -> None:
        if isinstance(self.id, bool) or not isinstance(self.id, int) or self.id < 0:
            raise InvalidDevice("id", self.id, "must be an integer >= 0")
        _check_tier_number("region", self.region)
        _check_tier_number("zone", self.zone)
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise InvalidDevice("port", self.port, "not an integer")
        if not 1 <= self.port <= 65535:
            raise InvalidDevice("port", self.port, "must be between 1 and 65535")
        if not isinstance(self.device, str) or not _DEVICE_NAME.fullmatch(self.device):
            raise InvalidDevice(
                "device", self.device,
                "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        object.__setattr__(self, "ip", normalize_ip(self.ip))
        object.__setattr__(self, "weight", _check_weight(self.weight))

    @property
    def address(self) -> str:
        """`ip:port/device`, with IPv6 in brackets: how operators name a device."""
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}/{self.device}"

    @property
    def node(self) -> NodeTier:
        """The node tier (region, zone, ip) this device belongs to."""
        return (self.region, self.zone, self.ip)

    def to_dict(self) -> dict[str, Any]:
        """The device as plain JSON-ready data (the ring file and `ring show` use it)."""
        return {
            "id": self.id,
            "region": self.region,
            "zone": self.zone,
            "ip": self.ip,
            "port": self.port,
            "device": self.device,
            "weight": self.weight,
        }


def device_from_dict(data: Any) -> Device:
    """Build a `Device` from `Device.to_dict()` output, rejecting missing or extra keys."""
    fields = ("id", "region", "zone", "ip", "port", "device", "weight")
    if not isinstance(data, dict) or set(data) != set(fields):
        raise InvalidDevice("record", data, f"must be an object with keys {fields}")
    return Device(**{name: data[name] for name in fields})


def tiers_for_device(dev: Device) -> tuple[RegionTier, ZoneTier, NodeTier, DeviceTier]:
    """The tier tuples of a device from the widest failure domain to the device itself."""
    return (
        (dev.region,),
        (dev.region, dev.zone),
        (dev.region, dev.zone, dev.ip),
        (dev.region, dev.zone, dev.ip, dev.id),
    )
