"""Swift temp URLs on a real cluster, requested with no token by plain HTTP clients:
keys on the account and on a container, GET/HEAD/PUT/DELETE, sha1/sha256 hex and
sha1/sha256/sha512 base64 signatures, prefix URLs, ISO 8601 expiry, IP ranges, the
response header rules, refusals (expired, tampered, wrong method or path) as 401, and
URLs made by the `swift tempurl` command used with urllib."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
import requests
from clusterlib import LocalCluster
from swiftlib import TIMEOUT_S, Swift, swift_login

swiftclient = pytest.importorskip("swiftclient")
from swiftclient.utils import generate_temp_url  # noqa: E402

TAG = os.getpid()
ACCOUNT_KEY = f"account-key-{TAG}"
CONTAINER_KEY = f"container-key-{TAG}"
BODY = b"temporary access to this body\n"


@pytest.fixture(scope="module")
def sw(cluster: LocalCluster) -> Iterator[Swift]:
    """The admin's account, with a temp URL key; the key is removed afterwards."""
    sw = swift_login(cluster, "default:admin", cluster.credentials[1])
    assert sw("POST", "", headers={"X-Account-Meta-Temp-URL-Key": ACCOUNT_KEY}).status_code == 204
    try:
        yield sw
    finally:
        sw("POST", "", headers={"X-Remove-Account-Meta-Temp-URL-Key": "x"})


@pytest.fixture(scope="module")
def container(sw: Swift) -> str:
    """A container holding obj.txt (with private and public metadata) and dir/a, dir/b."""
    name = f"tu{TAG}"
    assert sw("PUT", "/" + name, headers={"X-Container-Meta-Temp-URL-Key-2": CONTAINER_KEY}).status_code == 201
    assert sw("PUT", f"/{name}/obj.txt", data=BODY,
              headers={"X-Object-Meta-Private": "p", "X-Object-Meta-Public-Tag": "t"}).status_code == 201
    for key in ("dir/a", "dir/b"):
        assert sw("PUT", f"/{name}/{key}", data=key.encode()).status_code == 201
    return name


def path_of(sw: Swift, container: str, obj: str) -> str:
    return "/v1/" + sw.url.split("/v1/", 1)[1] + f"/{container}/{obj}"


def host_of(sw: Swift) -> str:
    return sw.url.split("/v1/", 1)[0]


def signed(sw: Swift, container: str, obj: str, method: str = "GET", key: str = ACCOUNT_KEY,
           **options: object) -> str:
    """A full temp URL made by python-swiftclient."""
    return host_of(sw) + generate_temp_url(path_of(sw, container, obj), options.pop("seconds", 300), key, method,
                                           **options)  # type: ignore[arg-type]


def fetch(method: str, url: str, **kwargs: object) -> requests.Response:
    return requests.request(method, url, timeout=TIMEOUT_S, **kwargs)  # type: ignore[arg-type]


def test_get_and_head_in_every_digest_form(sw: Swift, container: str) -> None:
    for digest in ("sha1", "sha256", "sha512"):
        url = signed(sw, container, "obj.txt", digest=digest)
        got = fetch("GET", url)
        assert got.status_code == 200, (digest, got.text)
        assert got.content == BODY
        # A GET signature also serves HEAD.
        head = fetch("HEAD", url)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(BODY)
    # Base64 forms other than the one swiftclient writes: standard alphabet with padding.
    expires = int(time.time()) + 300
    path = path_of(sw, container, "obj.txt")
    for digest in ("sha1", "sha256"):
        mac = hmac.new(ACCOUNT_KEY.encode(), f"GET\n{expires}\n{path}".encode(), digest).digest()
        sig = f"{digest}:{base64.b64encode(mac).decode()}"
        got = fetch("GET", host_of(sw) + path, params={"temp_url_sig": sig, "temp_url_expires": str(expires)})
        assert got.status_code == 200 and got.content == BODY, digest


def test_answer_headers_follow_swifts_rules(sw: Swift, container: str) -> None:
    expires = int(time.time()) + 300
    url = signed(sw, container, "obj.txt", seconds=expires, absolute=True)
    got = fetch("GET", url)
    assert got.headers["Content-Disposition"] == 'attachment; filename="obj.txt"; filename*=UTF-8\'\'obj.txt'
    assert got.headers["Expires"] == time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(expires))
    assert "X-Object-Meta-Private" not in got.headers
    assert got.headers["X-Object-Meta-Public-Tag"] == "t"
    named = fetch("GET", url + "&filename=My%20Report.pdf")
    assert named.headers["Content-Disposition"] == (
        'attachment; filename="My Report.pdf"; filename*=UTF-8\'\'My%20Report.pdf')
    assert fetch("GET", url + "&inline").headers["Content-Disposition"] == "inline"
    assert fetch("GET", url + "&inline&filename=a.txt").headers["Content-Disposition"].startswith(
        'inline; filename="a.txt"')
    # The owner, with a token, still sees everything.
    assert sw("HEAD", f"/{container}/obj.txt").headers["X-Object-Meta-Private"] == "p"


def test_put_post_and_delete(sw: Swift, container: str) -> None:
    put_url = signed(sw, container, "uploaded.bin", "PUT", digest="sha512")
    put = fetch("PUT", put_url, data=b"uploaded with a temp url", headers={"X-Object-Meta-From": "tempurl"})
    assert put.status_code == 201, put.text
    stored = sw("GET", f"/{container}/uploaded.bin")
    assert stored.content == b"uploaded with a temp url" and stored.headers["X-Object-Meta-From"] == "tempurl"
    # A PUT signature allows HEAD, not GET.
    assert fetch("HEAD", put_url).status_code == 200
    assert fetch("GET", put_url).status_code == 401
    # Nothing that would point at other data.
    manifest = fetch("PUT", put_url, data=b"", headers={"X-Object-Manifest": f"{container}/dir/"})
    assert manifest.status_code == 400
    post = fetch("POST", signed(sw, container, "uploaded.bin", "POST"), headers={"X-Object-Meta-Note": "n"})
    assert post.status_code == 202
    assert sw("HEAD", f"/{container}/uploaded.bin").headers["X-Object-Meta-Note"] == "n"
    assert fetch("DELETE", signed(sw, container, "uploaded.bin", "DELETE")).status_code == 204
    assert sw("HEAD", f"/{container}/uploaded.bin").status_code == 404


def test_container_key_reaches_only_its_container(sw: Swift, container: str) -> None:
    assert fetch("GET", signed(sw, container, "obj.txt", key=CONTAINER_KEY)).content == BODY
    other = f"tuother{TAG}"
    assert sw("PUT", "/" + other).status_code == 201
    assert sw("PUT", f"/{other}/obj.txt", data=b"other").status_code == 201
    assert fetch("GET", signed(sw, other, "obj.txt", key=CONTAINER_KEY)).status_code == 401
    assert fetch("GET", signed(sw, other, "obj.txt")).content == b"other"  # the account key reaches it
    # Copying through a container-scoped URL may not reach outside the container.
    put = fetch("PUT", signed(sw, container, "copied", "PUT", key=CONTAINER_KEY), data=b"",
                headers={"X-Copy-From": f"{other}/obj.txt"})
    assert put.status_code == 401
    assert sw("HEAD", f"/{container}/copied").status_code == 404
    # Callers let in by an ACL do not see the container's keys.
    assert sw("POST", "/" + other, headers={"X-Container-Read": ".r:*,.rlistings",
                                           "X-Container-Meta-Temp-URL-Key": "hidden"}).status_code == 204
    anonymous = fetch("HEAD", sw.url + "/" + other)
    assert anonymous.status_code == 204 and "X-Container-Meta-Temp-Url-Key" not in anonymous.headers
    assert sw("HEAD", "/" + other).headers["X-Container-Meta-Temp-Url-Key"] == "hidden"


def test_prefix_urls(sw: Swift, container: str) -> None:
    url = signed(sw, container, "dir/", prefix=True)
    base, query = url.split("?", 1)
    assert fetch("GET", f"{base}a?{query}").content == b"dir/a"
    assert fetch("GET", f"{base}b?{query}").content == b"dir/b"
    outside = base[: -len("dir/")] + "obj.txt?" + query
    assert fetch("GET", outside).status_code == 401


def test_iso8601_expiry_and_ip_ranges(sw: Swift, container: str) -> None:
    assert fetch("GET", signed(sw, container, "obj.txt", iso8601=True)).content == BODY
    assert fetch("GET", signed(sw, container, "obj.txt", ip_range="127.0.0.0/8")).content == BODY
    assert fetch("GET", signed(sw, container, "obj.txt", ip_range="10.1.2.0/24")).status_code == 401


def test_refusals_are_401(sw: Swift, container: str) -> None:
    good = signed(sw, container, "obj.txt")
    base, query = good.split("?", 1)
    params = dict(p.split("=", 1) for p in query.split("&"))
    sig, expires = params["temp_url_sig"], params["temp_url_expires"]
    tampered = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    bad = {
        "expired": signed(sw, container, "obj.txt", seconds=int(time.time()) - 1, absolute=True),
        "tampered": f"{base}?temp_url_sig={tampered}&temp_url_expires={expires}",
        "later expiry": f"{base}?temp_url_sig={sig}&temp_url_expires={int(expires) + 1}",
        "other object": good.replace("/obj.txt?", "/dir/a?"),
        "no signature": f"{base}?temp_url_expires={expires}",
        "no expiry": f"{base}?temp_url_sig={sig}",
        "unreadable expiry": f"{base}?temp_url_sig={sig}&temp_url_expires=soon",
        "unknown digest": f"{base}?temp_url_sig=md5:{base64.b64encode(b'x' * 16).decode()}&temp_url_expires={expires}",
        "bad base64": f"{base}?temp_url_sig=sha512:!!!!&temp_url_expires={expires}",
        "odd hex length": f"{base}?temp_url_sig={sig[:-2]}&temp_url_expires={expires}",
        "wrong key": signed(sw, container, "obj.txt", key="not-the-key"),
        "container path": f"{base.rsplit('/', 1)[0]}?temp_url_sig={sig}&temp_url_expires={expires}",
    }
    for what, url in bad.items():
        got = fetch("GET", url)
        assert got.status_code == 401, what
        assert "Traceback" not in got.text
    # A GET signature does not allow writing.
    assert fetch("PUT", good, data=b"overwrite").status_code == 401
    assert fetch("DELETE", good).status_code == 401
    assert sw("GET", f"/{container}/obj.txt").content == BODY
    # Without the key, its URLs stop working.
    assert sw("POST", "", headers={"X-Remove-Account-Meta-Temp-URL-Key": "x"}).status_code == 204
    try:
        assert fetch("GET", good).status_code == 401
    finally:
        assert sw("POST", "", headers={"X-Account-Meta-Temp-URL-Key": ACCOUNT_KEY}).status_code == 204
    assert fetch("GET", good).content == BODY


def swift_tempurl(*args: str) -> str:
    script = shutil.which("swift", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the swift command line is not installed")
    result = subprocess.run([script, "tempurl", *args], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_swift_tempurl_command_makes_urls_urllib_can_use(sw: Swift, container: str) -> None:
    object_url = sw.url + f"/{container}/obj.txt"
    for extra in ([], ["--digest", "sha1"], ["--digest", "sha512"], ["--iso8601"]):
        url = swift_tempurl(*extra, "GET", "120", object_url, ACCOUNT_KEY)
        assert url.startswith(object_url + "?temp_url_sig=")
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            assert answer.status == 200 and answer.read() == BODY, extra
    put_url = swift_tempurl("PUT", "2m", sw.url + f"/{container}/from-cli", CONTAINER_KEY)
    request = urllib.request.Request(put_url, data=b"from the swift command", method="PUT")
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
        assert answer.status == 201
    assert sw("GET", f"/{container}/from-cli").content == b"from the swift command"
    prefix_url = swift_tempurl("--prefix-based", "GET", "60", sw.url + f"/{container}/dir/", ACCOUNT_KEY)
    base, query = prefix_url.split("?", 1)
    with urllib.request.urlopen(f"{base}b?{query}", timeout=TIMEOUT_S) as answer:
        assert answer.read() == b"dir/b"
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(swift_tempurl("GET", "60", object_url, "wrong-key"), timeout=TIMEOUT_S)
    assert exc.value.code == 401


def test_info_reports_tempurl(cluster: LocalCluster) -> None:
    info = fetch("GET", cluster.endpoint + "/info").json()
    assert info["tempurl"]["methods"] == ["GET", "HEAD", "PUT", "POST", "DELETE"]
    assert info["tempurl"]["allowed_digests"] == ["sha1", "sha256", "sha512"]
    assert "container_quotas" in info


def test_hex_signature_is_checked_against_the_digest_its_length_names(sw: Swift, container: str) -> None:
    """A sha256 MAC truncated to sha1's length must not pass (no digest guessing)."""
    expires = int(time.time()) + 300
    path = path_of(sw, container, "obj.txt")
    mac = hmac.new(ACCOUNT_KEY.encode(), f"GET\n{expires}\n{path}".encode(), hashlib.sha256).hexdigest()
    got = fetch("GET", host_of(sw) + path, params={"temp_url_sig": mac[:40], "temp_url_expires": str(expires)})
    assert got.status_code == 401
