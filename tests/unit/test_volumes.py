"""The volume plugin's definitions: names, the bucket a volume gets, options, the state file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from edgestore.fuse.volumes import VolumeError, VolumeStore, bucket_for, check_name, check_options
from hypothesis import given
from hypothesis import strategies as st

from edgestore.model.buckets import valid_bucket_name

docker_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{1,80}", fullmatch=True)


@given(docker_names)
def test_every_docker_volume_name_gets_a_valid_bucket_or_a_clear_refusal(name: str) -> None:
    try:
        bucket = bucket_for(name)
    except VolumeError as exc:
        assert exc.status == 400 and "bucket=" in str(exc)
        return
    assert valid_bucket_name(bucket)


def test_bucket_names_from_volume_names() -> None:
    assert bucket_for("photos") == "photos"
    assert bucket_for("My_Vol.1") == "my-vol-1"
    assert bucket_for("ab") == "ab-vol"
    assert bucket_for("a" * 80) == "a" * 63
    assert bucket_for("x__y") == "x-y"


@pytest.mark.parametrize("name", ["", "x", "../up", "a/b", ".dot", "-dash", None, 3])
def test_names_docker_would_refuse_are_refused(name: object) -> None:
    with pytest.raises(VolumeError) as caught:
        check_name(name)
    assert caught.value.status == 400


def test_options_are_strings_of_known_names() -> None:
    assert check_options(None) == {}
    assert check_options({"bucket": "b1b", "ttl": ""}) == {"bucket": "b1b"}  # empty: as if not given
    assert check_options({"libfuse": "2"}) == {"libfuse": "2"}
    for bad in ([], {"ttl": 1}, {"colour": "blue"}, {"libfuse": "fuse3"}):
        with pytest.raises(VolumeError):
            check_options(bad)


def test_the_state_file_is_private_and_read_back(tmp_path: Path) -> None:
    store = VolumeStore(tmp_path / "state")
    store.load()
    volume = store.add("photos", {"bucket": "pics", "secret-key": "s3cr3t"})
    volume.mount_ids.append("c1")
    store.save()
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert "s3cr3t" not in json.dumps(volume.status())
    again = VolumeStore(tmp_path / "state")
    again.load()
    assert again.get("photos") == volume
    again.mountpoint(volume).mkdir(parents=True)
    again.remove(volume)
    assert not (tmp_path / "state" / "photos").exists()
    with pytest.raises(VolumeError) as caught:
        again.get("photos")
    assert caught.value.status == 404
    reloaded = VolumeStore(tmp_path / "state")
    reloaded.load()
    assert reloaded.volumes == {}


def test_a_damaged_state_file_stops_the_plugin_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / ".volumes.json").write_text("{half")
    with pytest.raises(VolumeError, match="unreadable"):
        VolumeStore(tmp_path).load()
