"""Typed errors of the ring package.

The tree, so callers can catch as narrowly as they need (the CLI catches `RingError`
and prints one line; a node catches `RingFileError` and keeps serving its old ring)::

    RingError
    ├── InvalidDevice        (also a ValueError)  a device field is malformed
    │   └── DuplicateDevice                       ip:port/device is already in the ring
    ├── UnknownDevice        (also a LookupError) no such device id
    │   └── DeviceRemoved                         the device is waiting to be drained
    ├── InvalidRingParameter (also a ValueError)  part power, replicas, min_part_hours
    ├── RebalanceError                            no placement is possible
    ├── NotRebalanced                             the builder has never been rebalanced
    ├── RingValidationError                       an invariant of the assignment is broken
    └── RingFileError                             a ring file cannot be used
        ├── RingFileCorrupt                       truncated, not gzip/JSON, malformed fields
        │   └── ChecksumMismatch                  the payload does not match its checksum
        └── UnsupportedFormat                     a format number this code cannot read
"""

from __future__ import annotations

__all__ = [
    "ChecksumMismatch",
    "DeviceRemoved",
    "DuplicateDevice",
    "InvalidDevice",
    "InvalidRingParameter",
    "NotRebalanced",
    "RebalanceError",
    "RingError",
    "RingFileCorrupt",
    "RingFileError",
    "RingValidationError",
    "UnknownDevice",
    "UnsupportedFormat",
]


class RingError(Exception):
    """Base of every error the ring package raises on purpose."""


class InvalidDevice(RingError, ValueError):
    """A device field (region, zone, ip, port, name, weight) is out of range or malformed."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"invalid device {field} {value!r}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason


class DuplicateDevice(InvalidDevice):
    """Another device already has this ip, port and device name."""

    def __init__(self, address: str, existing_id: int) -> None:
        RingError.__init__(self, f"device {address} already exists as id {existing_id}")
        self.field = "address"
        self.value = address
        self.reason = "duplicate"
        self.existing_id = existing_id


class UnknownDevice(RingError, LookupError):
    """No device has this id (it was never added, or it has been removed and drained)."""

    def __init__(self, dev_id: int, detail: str = "no such device") -> None:
        super().__init__(f"device {dev_id}: {detail}")
        self.dev_id = dev_id

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError
        return str(self.args[0])


class DeviceRemoved(UnknownDevice):
    """The device is removed and only waits for the next rebalance to drain it."""

    def __init__(self, dev_id: int) -> None:
        super().__init__(dev_id, "is removed (it is drained at the next rebalance)")


class InvalidRingParameter(RingError, ValueError):
    """A ring-wide parameter (part power, replicas, min_part_hours) is out of range."""

    def __init__(self, name: str, value: object, reason: str) -> None:
        super().__init__(f"invalid {name} {value!r}: {reason}")
        self.name = name
        self.value = value


class RebalanceError(RingError):
    """No assignment can be made, e.g. no device has a weight above zero."""


class NotRebalanced(RingError):
    """The builder has no assignment yet: run a rebalance before asking for placement."""


class RingValidationError(RingError):
    """An invariant of the builder or its assignment is broken.

    `part` and `replica` locate the first offending slot when the fault is in one.
    """

    def __init__(self, message: str, part: int | None = None, replica: int | None = None) -> None:
        super().__init__(message)
        self.part = part
        self.replica = replica


class RingFileError(RingError):
    """A ring file cannot be used; `path` names it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class RingFileCorrupt(RingFileError):
    """The file is truncated, not gzip or JSON, or its fields are malformed."""


class ChecksumMismatch(RingFileCorrupt):
    """The payload does not hash to the checksum stored beside it."""

    def __init__(self, path: str, expected: str, got: str) -> None:
        super().__init__(path, f"checksum mismatch (stored {expected}, computed {got})")
        self.expected = expected
        self.got = got


class UnsupportedFormat(RingFileError):
    """The file's format number is not one this code can read."""

    def __init__(self, path: str, found: object, supported: tuple[int, ...]) -> None:
        super().__init__(path, f"unsupported ring file format {found!r} (supported: {supported})")
        self.found = found
        self.supported = supported
