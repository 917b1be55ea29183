"""Background work of a node: each job runs once on demand, or periodically, throttled."""
