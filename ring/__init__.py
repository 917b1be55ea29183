"""The consistent-hash ring: placement of partitions on devices (OpenStack Swift semantics)."""
