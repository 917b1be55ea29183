"""Per-bucket counters of one device: live objects and their bytes, kept by triggers on
the records table in the transaction of each change, so that a Swift container or account
HEAD reads two numbers instead of listing the container.

A bucket's name is the first two segments of an object record's name ("account/bucket").
`changed_ts` is the newest record timestamp applied to the bucket here: of the replicas
asked, the one with the newest change has most likely seen every write (see
Coordinator.bucket_stats). Expired objects still count until the expirer deletes them,
as in Swift.
"""

from __future__ import annotations

__all__ = ["COUNTERS_SCHEMA", "COUNTERS_FILL"]

# "account/bucket" of an object record's name "account/bucket/key".
_BUCKET = ("substr({n}, 1, instr({n}, '/') + instr(substr({n}, instr({n}, '/') + 1), '/') - 1)")
_ADD = """
    INSERT INTO bucket_counters VALUES ({bucket}, {sign} * (1 - {r}.deleted),
        {sign} * (1 - {r}.deleted) * coalesce(json_extract({r}.value, '$.size'), 0), {r}.ts)
    ON CONFLICT (bucket) DO UPDATE SET objects = objects + excluded.objects, bytes = bytes + excluded.bytes,
        changed_ts = max(changed_ts, excluded.changed_ts);"""


def _add(row: str, sign: int) -> str:
    return _ADD.format(bucket=_BUCKET.format(n=f"{row}.name"), sign=sign, r=row)


COUNTERS_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS bucket_counters (
    bucket TEXT PRIMARY KEY,      -- "account/bucket"
    objects INTEGER NOT NULL,     -- live (not deleted) object records here
    bytes INTEGER NOT NULL,       -- the sum of their sizes
    changed_ts INTEGER NOT NULL   -- the newest record timestamp applied to the bucket here
);
CREATE TRIGGER IF NOT EXISTS records_count_add AFTER INSERT ON records WHEN NEW.kind = 'object' BEGIN
    {_add("NEW", 1)}
END;
CREATE TRIGGER IF NOT EXISTS records_count_change AFTER UPDATE ON records WHEN NEW.kind = 'object' BEGIN
    {_add("OLD", -1)}
    {_add("NEW", 1)}
END;
CREATE TRIGGER IF NOT EXISTS records_count_drop AFTER DELETE ON records WHEN OLD.kind = 'object' BEGIN
    {_add("OLD", -1)}
END;
"""

# Counters for the rows already there, when a database gains the table (a migration).
COUNTERS_FILL = f"""
DELETE FROM bucket_counters;
INSERT INTO bucket_counters
    SELECT {_BUCKET.format(n="name")} AS b, sum(1 - deleted),
           sum((1 - deleted) * coalesce(json_extract(value, '$.size'), 0)), max(ts)
    FROM records WHERE kind = 'object' GROUP BY b;
"""
