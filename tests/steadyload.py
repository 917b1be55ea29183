"""A steady PUT/GET load on a cluster while a test changes it underneath: one thread
writes new keys round-robin over some buckets (mostly small objects, every `big_every`-th
a multi-block one: keep it prime to the number of buckets, to spread those) and reads back
an earlier acknowledged key after each write. What was acknowledged is kept per bucket in
an `acked.Model`, for the final check."""

from __future__ import annotations

import os
import random
import threading
import time
from types import TracebackType
from typing import Any

from acked import Model
from conftest import make_s3

BIG_BYTES = 2_300_000   # three blocks of the default 1 MiB


class SteadyLoad:
    def __init__(self, endpoint: str, credentials: tuple[str, str], buckets: list[str], prefix: str,
                 max_s: float = 240.0, big_every: int = 5, pause_s: float = 0.05) -> None:
        self.endpoint, self.credentials = endpoint, credentials
        self.buckets, self.prefix = buckets, prefix
        self.models = {bucket: Model() for bucket in buckets}
        self.max_s, self.big_every, self.pause_s = max_s, big_every, pause_s
        self.write_errors: list[str] = []
        self.read_errors: list[str] = []
        self.wrong_reads: list[str] = []
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load-{prefix}", daemon=True)

    @property
    def acked(self) -> int:
        return sum(len(m.objects) for m in self.models.values())

    def keys(self, bucket: str) -> list[str]:
        return sorted(self.models[bucket].objects)

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def wait_for(self, acked: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.acked < acked and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.1)
        assert self.acked >= acked, f"only {self.acked} writes acknowledged: {self.write_errors[-3:]}"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
        assert not self._thread.is_alive(), "the load thread did not stop"

    def _run(self) -> None:
        s3 = make_s3(self.endpoint, *self.credentials)
        deadline = time.monotonic() + self.max_s
        i = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            bucket = self.buckets[i % len(self.buckets)]
            key = f"{self.prefix}-{i}"
            body = os.urandom(BIG_BYTES if i % self.big_every == 0 else 500 + i % 4000)
            try:
                self.models[bucket].put(s3, bucket, key, body)
            except Exception as exc:  # not acknowledged: it may be lost, never half-visible
                self.write_errors.append(f"PUT {bucket}/{key}: {exc}")
            self._read_one(s3, random.choice(self.buckets))
            i += 1
            self._stop.wait(self.pause_s)

    def _read_one(self, s3: Any, bucket: str) -> None:
        model = self.models[bucket]
        with model.lock:
            acked = [(k, v) for k, v in model.objects.items() if v is not None]
        if not acked:
            return
        key, body = random.choice(acked)
        self.reads += 1
        try:
            got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            self.read_errors.append(f"GET {bucket}/{key}: {exc}")
            return
        if got != body:
            self.wrong_reads.append(f"GET {bucket}/{key}: {len(got)} bytes, not the {len(body)} acknowledged")

    def check(self, s3: Any, strict: bool = True) -> None:
        """No read returned other bytes than acknowledged, and every acknowledged write
        is readable (and listed) now. `strict`: nor did any request of the load fail."""
        assert self.wrong_reads == [], self.wrong_reads[:5]
        if strict:
            assert self.write_errors == [] and self.read_errors == [], (self.write_errors + self.read_errors)[:5]
        for bucket, model in self.models.items():
            model.check(s3, bucket)
