"""Per-bucket counters of one device: live objects and their bytes, kept by the writer's
tallies of each change (tallies.py: in memory, folded into the table now and then), so
that a Swift container or account HEAD reads two numbers instead of listing the container.

A bucket's name is the first two segments of an object record's name ("account/bucket").
`changed_ts` is the newest record timestamp applied to the bucket here: of the replicas
asked, the one with the newest change has most likely seen every write (see
Coordinator.bucket_counters). Objects that expire (Swift's X-Delete-At) are also tallied
by their expiry second, so a read at time `now` leaves out those already expired, as
listings do, before the expirer has deleted them.
"""

from __future__ import annotations

__all__ = ["COUNTERS_SCHEMA", "COUNTERS_FILL", "count_triggers"]

# "account/bucket" of an object record's name "account/bucket/key".
_BUCKET = ("substr({n}, 1, instr({n}, '/') + instr(substr({n}, instr({n}, '/') + 1), '/') - 1)")
_ADD = """
    INSERT INTO {table} VALUES ({bucket}, {sign} * (1 - {r}.deleted),
        {sign} * (1 - {r}.deleted) * coalesce(json_extract({r}.value, '$.size'), 0), {r}.ts)
    ON CONFLICT (bucket) DO UPDATE SET objects = objects + excluded.objects, bytes = bytes + excluded.bytes,
        changed_ts = max(changed_ts, excluded.changed_ts);"""


def _add(table: str, row: str, sign: int) -> str:
    return _ADD.format(table=table, bucket=_BUCKET.format(n=f"{row}.name"), sign=sign, r=row)


def count_triggers(table: str, prefix: str) -> str:
    """TEMP triggers that add each change of an object record to `table` (bucket_counters'
    columns): the writer's tallies (tallies.py), folded into bucket_counters now and then."""
    return f"""
CREATE TEMP TRIGGER IF NOT EXISTS {prefix}count_add AFTER INSERT ON main.records WHEN NEW.kind = 'object' BEGIN
    {_add(table, "NEW", 1)}
END;
CREATE TEMP TRIGGER IF NOT EXISTS {prefix}count_change AFTER UPDATE ON main.records WHEN NEW.kind = 'object' BEGIN
    {_add(table, "OLD", -1)}
    {_add(table, "NEW", 1)}
END;
CREATE TEMP TRIGGER IF NOT EXISTS {prefix}count_drop AFTER DELETE ON main.records WHEN OLD.kind = 'object' BEGIN
    {_add(table, "OLD", -1)}
END;
"""


_DELETE_AT = "json_extract({r}.value, '$.delete_at')"
_EXPIRING = """
CREATE TRIGGER IF NOT EXISTS records_expiring_{name} AFTER {event} ON records
WHEN {r}.kind = 'object' AND {r}.deleted = 0 AND {delete_at} IS NOT NULL BEGIN
    INSERT INTO bucket_expiring VALUES ({bucket}, {delete_at}, {sign},
        {sign} * coalesce(json_extract({r}.value, '$.size'), 0))
    ON CONFLICT (bucket, delete_at) DO UPDATE SET objects = objects + excluded.objects,
        bytes = bytes + excluded.bytes;
    DELETE FROM bucket_expiring WHERE bucket = {bucket} AND delete_at = {delete_at} AND objects = 0;
END;"""


def _expiring(name: str, event: str, row: str, sign: int) -> str:
    return _EXPIRING.format(name=name, event=event, r=row, sign=sign, bucket=_BUCKET.format(n=f"{row}.name"),
                            delete_at=_DELETE_AT.format(r=row))


COUNTERS_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS bucket_counters (
    bucket TEXT PRIMARY KEY,      -- "account/bucket"
    objects INTEGER NOT NULL,     -- live (not deleted) object records here
    bytes INTEGER NOT NULL,       -- the sum of their sizes
    changed_ts INTEGER NOT NULL   -- the newest record timestamp applied to the bucket here
);
CREATE TABLE IF NOT EXISTS bucket_expiring (  -- of those live objects, the ones that expire
    bucket TEXT NOT NULL,
    delete_at INTEGER NOT NULL,   -- unix seconds
    objects INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (bucket, delete_at)
);
{_expiring("add", "INSERT", "NEW", 1)}
{_expiring("change_old", "UPDATE", "OLD", -1)}
{_expiring("change_new", "UPDATE", "NEW", 1)}
{_expiring("drop", "DELETE", "OLD", -1)}
"""

# Counters for the rows already there, when a database gains the table (a migration).
COUNTERS_FILL = f"""
DELETE FROM bucket_counters;
INSERT INTO bucket_counters
    SELECT {_BUCKET.format(n="name")} AS b, sum(1 - deleted),
           sum((1 - deleted) * coalesce(json_extract(value, '$.size'), 0)), max(ts)
    FROM records WHERE kind = 'object' GROUP BY b;
DELETE FROM bucket_expiring;
INSERT INTO bucket_expiring
    SELECT {_BUCKET.format(n="name")} AS b, json_extract(value, '$.delete_at') AS d, count(*),
           sum(coalesce(json_extract(value, '$.size'), 0))
    FROM records WHERE kind = 'object' AND deleted = 0 AND d IS NOT NULL GROUP BY b, d;
"""
