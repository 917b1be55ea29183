"""The mount's pure parts: byte-range sets, attributes in s3fs-compatible metadata, the
attribute cache's lifetimes, and the mount options."""

from __future__ import annotations

import argparse
import os
import stat
from ctypes.util import find_library
from pathlib import Path

import pytest
from edgestore.fuse import libfuse
from edgestore.fuse.cache import DIR_TTL_FACTOR, MetaCache
from edgestore.fuse.libfuse import LIBFUSE_ENV
from edgestore.fuse.metadata import Attr, Defaults, attr_from_meta, format_time, implicit_dir, parse_time
from edgestore.fuse.options import fuse_kwargs
from edgestore.fuse.ranges import RangeSet
from hypothesis import given
from hypothesis import strategies as st

from edgestore.cli import CliError
from edgestore.cli.mount import add_parser, build_options

ops = st.lists(st.tuples(st.sampled_from(["add", "remove", "clip"]), st.integers(0, 100), st.integers(0, 30)),
               max_size=40)


@given(ops, st.integers(0, 120), st.integers(0, 40))
def test_rangeset_matches_a_set_of_bytes(steps: list[tuple[str, int, int]], start: int, length: int) -> None:
    ranges, model = RangeSet(), set()
    for op, a, n in steps:
        if op == "add":
            ranges.add(a, a + n)
            model |= set(range(a, a + n))
        elif op == "remove":
            ranges.remove(a, a + n)
            model -= set(range(a, a + n))
        else:
            ranges.clip(a)
            model = {x for x in model if x < a}
    assert ranges.total() == len(model)
    spans = list(ranges)
    assert all(e1 < s2 for (_, e1), (s2, _) in zip(spans, spans[1:], strict=False))  # disjoint, merged
    gaps = {x for s, e in ranges.missing(start, start + length) for x in range(s, e)}
    assert gaps == set(range(start, start + length)) - model
    assert ranges.covers(start, start + length) == (not gaps)


def test_times_are_written_as_s3fs_writes_them_and_read_as_others_write_them() -> None:
    assert format_time(1_700_000_000 * 10**9) == "1700000000"
    assert format_time(1_700_000_000_000_000_123) == "1700000000.000000123"
    assert parse_time("1700000000.000000123") == 1_700_000_000_000_000_123
    assert parse_time("1752126318.461") == 1_752_126_318_461_000_000  # rclone's decimal fraction
    assert parse_time("1700000000") == 1_700_000_000 * 10**9
    assert parse_time("yesterday") is None and parse_time("") is None


def test_attributes_from_s3fs_metadata_and_defaults() -> None:
    defaults = Defaults(uid=1000, gid=1000, time_ns=5)
    meta = {"mode": str(stat.S_IFREG | 0o640), "uid": "33", "gid": "34", "mtime": "1600000000"}
    attr = attr_from_meta("a/file", meta, 12, 7 * 10**9, "text/plain", "e", defaults)
    assert (attr.mode, attr.uid, attr.gid, attr.size) == (stat.S_IFREG | 0o640, 33, 34, 12)
    assert attr.mtime_ns == attr.ctime_ns == 1_600_000_000 * 10**9
    bare = attr_from_meta("a/file", {}, 3, 7 * 10**9, "", "", defaults)
    assert (bare.mode, bare.uid, bare.mtime_ns) == (stat.S_IFREG | 0o644, 1000, 7 * 10**9)
    folder = attr_from_meta("a/dir/", {"mode": "0750"}, 0, 0, "application/x-directory", "", defaults)
    assert folder.mode == stat.S_IFDIR | 0o750 and folder.is_dir
    link = attr_from_meta("a/l", {"mode": str(stat.S_IFLNK | 0o777)}, 4, 0, "", "", defaults)
    assert link.is_link


def test_metadata_headers_round_trip() -> None:
    attr = Attr(stat.S_IFREG | 0o600, 12, 13, 0, 1, 2_000_000_000_000_000_001, 3 * 10**18, "image/png")
    headers = attr.meta_headers()
    meta = {k[len("x-amz-meta-"):]: v for k, v in headers.items() if k.startswith("x-amz-meta-")}
    back = attr_from_meta("k", meta, 0, 0, headers["Content-Type"], "", Defaults(0, 0))
    assert (back.mode, back.uid, back.gid, back.mtime_ns, back.ctime_ns) == (
        attr.mode, 12, 13, attr.mtime_ns, attr.ctime_ns)
    assert headers["Content-Type"] == "image/png"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def a_file() -> Attr:
    return Attr(stat.S_IFREG | 0o644, 0, 0, 3, 1, 1, 1)


def test_directories_attributes_live_dir_ttl_and_files_ttl() -> None:
    clock = Clock()
    cache = MetaCache(1.0, clock, dir_ttl_s=10.0)
    cache.put_attr("/d", implicit_dir(Defaults(0, 0)))
    cache.put_attr("/d/f", a_file())
    clock.now = 5.0
    assert cache.attr("/d")[0] and not cache.attr("/d/f")[0]
    clock.now = 10.5
    assert not cache.attr("/d")[0]
    assert MetaCache(2.0).dir_ttl_s == 2.0 * DIR_TTL_FACTOR  # the default
    zero = MetaCache(1.0, clock, dir_ttl_s=0)
    zero.put_attr("/d", None)  # "no such name", until a mkdir made it
    zero.put_attr("/d", implicit_dir(Defaults(0, 0)))
    assert not zero.attr("/d")[0]


def test_a_listing_made_for_a_lookup_does_not_deny_names() -> None:
    """Names another mount created since are then looked up, not answered "no such file"."""
    clock = Clock()
    cache = MetaCache(1.0, clock)
    cache.put_listing("/d", {"a": False}, denies=False)
    assert cache.listing("/d") == {"a": False} and not cache.denies("/d", "b")
    cache.put_listing("/d", {"a": False})  # a readdir's listing
    assert cache.denies("/d", "b") and not cache.denies("/d", "a")
    clock.now = 2.0
    assert not cache.denies("/d", "b")  # expired


@pytest.fixture(autouse=True)
def libfuse_env_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """build_options() sets EDGESTORE_LIBFUSE for the mount it prepares: put back afterwards,
    so that the mounts of later tests are not given a choice made here."""
    monkeypatch.setenv(LIBFUSE_ENV, os.environ.get(LIBFUSE_ENV, "auto"))


def options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["mount", "bkt", "/mnt", "--endpoint", "http://127.0.0.1:1", "--access-key", "k",
                              "--secret-key", "s", *argv])


def test_dir_ttl_option_from_the_command_line_and_o() -> None:
    assert build_options(options()).dir_ttl_s is None
    assert build_options(options("--dir-ttl", "7.5")).dir_ttl_s == 7.5
    assert build_options(options("-o", "allow_other,dir_ttl=0")).dir_ttl_s == 0.0
    opts = build_options(options("--ttl", "0", "-o", "ttl=5"))
    assert opts.ttl_s == 0.0  # an explicit 0 on the command line is not "unset"
    assert opts.mountpoint == Path("/mnt")


def test_libfuse_2_is_asked_for_writes_larger_than_a_page() -> None:
    opts = build_options(options())
    assert fuse_kwargs(opts, 2)["big_writes"] is True  # else the kernel sends a write per 4 KiB page
    assert "big_writes" not in fuse_kwargs(opts, 3)  # libfuse 3 always has them and rejects the option


def test_options_only_one_libfuse_knows_are_left_out_with_the_other() -> None:
    """An fstab line written for libfuse 2 (nonempty, big_writes) still mounts with 3, and
    the other way round: the other library refuses to mount with an option it does not know."""
    opts = build_options(options("-o", "nonempty,big_writes,clone_fd,ro,max_read=65536"))
    two, three = fuse_kwargs(opts, 2), fuse_kwargs(opts, 3)
    assert two["nonempty"] is True and "clone_fd" not in two
    assert "nonempty" not in three and "big_writes" not in three and three["clone_fd"] is True
    assert two["ro"] is three["ro"] is True and two["max_read"] == three["max_read"] == "65536"


def test_the_libfuse_is_chosen_by_option_o_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for argv, env, chosen in (((), "auto", "auto"), (("--libfuse", "3"), "auto", "3"), (("-o", "libfuse=3"), "2", "3"),
                              ((), "3", "3"), (("--libfuse", "auto"), "3", "auto"), (("--libfuse", "2"), "3", "2")):
        monkeypatch.setenv(LIBFUSE_ENV, env)
        if chosen != "auto" and find_library({"3": "fuse3", "2": "fuse"}[chosen]) is None:
            continue
        assert build_options(options(*argv)).libfuse == chosen
        assert os.environ[LIBFUSE_ENV] == chosen  # what the daemon and the library loader see
    with pytest.raises(CliError, match="libfuse must be one of"):
        build_options(options("-o", "libfuse=4"))
    with pytest.raises(libfuse.LibfuseError):
        libfuse.check_choice("fuse3")


@pytest.mark.skipif(find_library("fuse3") is None or find_library("fuse") is None, reason="needs libfuse 2 and 3")
def test_auto_prefers_libfuse_3_where_mfusepy_would_load_libfuse_2() -> None:
    assert libfuse.library_path("auto") == libfuse.library_path("3") == find_library("fuse3")
    assert libfuse.library_path("2") == find_library("fuse")
