"""The consistent-hash ring: placement of partitions on devices (OpenStack Swift semantics)."""

from edgestore.ring.builder import RebalanceResult, RingBuilder
from edgestore.ring.devices import Device, tiers_for_device
from edgestore.ring.errors import (
    ChecksumMismatch,
    DeviceRemoved,
    DuplicateDevice,
    InvalidDevice,
    InvalidRingParameter,
    NotRebalanced,
    RebalanceError,
    RingError,
    RingFileCorrupt,
    RingFileError,
    RingValidationError,
    UnknownDevice,
    UnsupportedFormat,
)
from edgestore.ring.io import atomic_write, load_builder, load_ring, save_builder
from edgestore.ring.keys import path_for
from edgestore.ring.placement import Ring
from edgestore.ring.ringdata import RingData

__all__ = [
    "ChecksumMismatch",
    "Device",
    "DeviceRemoved",
    "DuplicateDevice",
    "InvalidDevice",
    "InvalidRingParameter",
    "NotRebalanced",
    "RebalanceError",
    "RebalanceResult",
    "Ring",
    "RingBuilder",
    "RingData",
    "RingError",
    "RingFileCorrupt",
    "RingFileError",
    "RingValidationError",
    "UnknownDevice",
    "UnsupportedFormat",
    "atomic_write",
    "load_builder",
    "load_ring",
    "path_for",
    "save_builder",
    "tiers_for_device",
]
