"""Keystone-compatible login (identity v3 and v2.0) on a real cluster: the raw protocol
(token, catalog, expiry, Keystone's JSON errors, validation, discovery, routing beside S3),
python-swiftclient and the `swift` command line logging in through it, reseller admins on
other accounts (TempAuth and Keystone logins alike), and what `edgestore user create` prints."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from clusterlib import LocalCluster
from swiftlib import create_user

swiftclient = pytest.importorskip("swiftclient")
pytest.importorskip("keystoneclient")  # swiftclient's v2.0/v3 auth needs it
from swiftclient.client import ClientException, Connection  # noqa: E402

TIMEOUT_S = 30
CLI_TIMEOUT_S = 60
TAG = os.getpid()
DAY_S = 24 * 3600
# swiftclient drives keystoneclient's older API, which warns about itself on every login.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning:keystoneclient"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:debtcollector")]


def v3_auth(user: str | None, password: str, project: str | None = None, *, by_id: bool = False,
            user_domain: dict[str, str] | None = None, project_domain: dict[str, str] | None = None) -> dict[str, Any]:
    """A v3 password auth request as keystoneauth writes it."""
    user_doc: dict[str, Any] = {"password": password, "domain": user_domain or {"name": "Default"}}
    if user is not None:
        user_doc["id" if by_id else "name"] = user
    auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {"user": user_doc}}}
    if project is not None:
        auth["scope"] = {"project": {"id" if by_id else "name": project,
                                     "domain": project_domain or {"name": "Default"}}}
    return {"auth": auth}


def v2_auth(user: str, password: str, tenant: str | None = None) -> dict[str, Any]:
    auth: dict[str, Any] = {"passwordCredentials": {"username": user, "password": password}}
    if tenant is not None:
        auth["tenantName"] = tenant
    return {"auth": auth}


def post(base: str, path: str, doc: Any = None, data: bytes | None = None) -> requests.Response:
    return requests.post(base + path, json=doc, data=data, timeout=TIMEOUT_S)


def v3_login(base: str, doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(token, token document) of a login that must succeed."""
    r = post(base, "/v3/auth/tokens", doc)
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = r.json()["token"]
    return r.headers["X-Subject-Token"], body


def object_store(token_doc: dict[str, Any]) -> dict[str, str]:
    """interface -> URL of the v3 catalog's object store."""
    [service] = [s for s in token_doc["catalog"] if s["type"] == "object-store"]
    assert service["name"] == "swift"
    return {e["interface"]: e["url"] for e in service["endpoints"]}


def assert_keystone_error(r: requests.Response, code: int) -> str:
    assert r.status_code == code, r.text
    assert "X-Subject-Token" not in r.headers
    error = r.json()["error"]
    assert error["code"] == code and error["title"] and error["message"]
    return str(error["message"])


def seconds_until(stamp: str) -> float:
    return datetime.strptime(stamp.rstrip("Z")[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp() \
        - time.time()


# -- v3 -------------------------------------------------------------------------------------


def test_v3_login_answers_token_and_catalog_for_the_host_asked(cluster: LocalCluster) -> None:
    key = cluster.credentials[1]
    for node in (0, 2):
        base = cluster.url(node).rstrip("/")
        token, doc = v3_login(base, v3_auth("admin", key, "default"))
        assert doc["methods"] == ["password"]
        assert doc["user"]["name"] == "admin" and doc["user"]["domain"]["id"] == "default"
        assert doc["project"]["name"] == "default" and doc["project"]["id"] == "default"
        assert {"admin", "member"} <= {role["name"] for role in doc["roles"]}
        urls = object_store(doc)
        assert urls == {i: base + "/v1/AUTH_default" for i in ("public", "internal", "admin")}
        [store] = [s for s in doc["catalog"] if s["type"] == "object-store"]
        assert {e["region"] for e in store["endpoints"]} == {"RegionOne"}
        assert DAY_S - 120 < seconds_until(doc["expires_at"]) <= DAY_S
        assert -120 < seconds_until(doc["issued_at"]) <= 1
        # The token works on the storage URL, on any node.
        other = cluster.url((node + 1) % cluster.nodes).rstrip("/")
        head = requests.head(other + "/v1/AUTH_default", headers={"X-Auth-Token": token}, timeout=TIMEOUT_S)
        assert head.status_code == 204


def test_v3_user_forms_domains_and_scopes(cluster: LocalCluster) -> None:
    key = cluster.credentials[1]
    base = cluster.endpoint
    forms = {
        "account:user, unscoped": v3_auth("default:admin", key),
        "by id": v3_auth("default:admin", key, "default", by_id=True),
        "domain ids": v3_auth("admin", key, "default", user_domain={"id": "default"},
                              project_domain={"id": "default"}),
        "another domain name": v3_auth("admin", key, "default", user_domain={"name": "Anything"}),
    }
    for what, doc in forms.items():
        token, answer = v3_login(base, doc)
        assert answer["project"]["name"] == "default", what
        assert object_store(answer)["public"] == base + "/v1/AUTH_default", what
    # A plain user name without a project cannot say which account it belongs to.
    assert_keystone_error(post(base, "/v3/auth/tokens", v3_auth("admin", key)), 401)


def test_v3_bad_password_unknown_user_and_foreign_project_are_401(cluster: LocalCluster) -> None:
    base = cluster.endpoint
    key = cluster.credentials[1]
    created = create_user(cluster, f"ksw{TAG}", "wendy", "--swift-key", "wendys-key")
    for doc in (v3_auth("admin", "wrong", "default"), v3_auth("admin", "", "default"),
                v3_auth("nobody", key, "default"), v3_auth("admin", key, "noaccount"),
                v3_auth("wendy", "wendys-key", "default"),        # a project not hers
                v3_auth("wendy", created["secret_key"], f"ksw{TAG}"),  # the S3 secret is not her key
                v3_auth(f"ksw{TAG}:wendy", "wendys-key", "default"),
                v3_auth("admin", "\ud800", "default"),                # a lone surrogate: no match, no 500
                v3_auth("default:admin", key, "default\n"),           # not an account name, even for an admin
                v3_auth("default:admin", key, "../other")):
        r = post(base, "/v3/auth/tokens", doc)
        assert_keystone_error(r, 401)
        assert r.headers["WWW-Authenticate"].startswith("Keystone uri=")
    # Her own project is fine, and her token is refused on another account.
    token, doc = v3_login(base, v3_auth("wendy", "wendys-key", f"ksw{TAG}"))
    assert object_store(doc)["public"].endswith(f"/v1/AUTH_ksw{TAG}")
    assert requests.get(base + "/v1/AUTH_default", headers={"X-Auth-Token": token},
                        timeout=TIMEOUT_S).status_code == 403


@pytest.mark.parametrize("path,body", [
    ("/v3/auth/tokens", b"{not json"),
    ("/v3/auth/tokens", b"\xff\xfe"),
    ("/v3/auth/tokens", b"[]"),
    ("/v3/auth/tokens", b'{"auth": {}}'),
    ("/v3/auth/tokens", b'{"auth": {"identity": {"methods": "password"}}}'),
    ("/v3/auth/tokens", b'{"auth": {"identity": {"methods": ["password"]}}}'),
    ("/v3/auth/tokens", b'{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "a"}}}}}'),
    ("/v3/auth/tokens", b'{"auth": {"identity": {"methods": ["password"], '
                        b'"password": {"user": {"name": 7, "password": "x"}}}}}'),
    ("/v3/auth/tokens", b'{"auth": {"identity": {"methods": ["password"], "password": {"user": '
                        b'{"name": "a", "password": "x"}}}, "scope": {"project": {"domain": {}}}}}'),
    ("/v2.0/tokens", b""),
    ("/v2.0/tokens", b'{"auth": {"tenantName": "default"}}'),
    ("/v2.0/tokens", b'{"auth": {"passwordCredentials": {"username": "a"}}}'),
    ("/v2.0/tokens", b'{"auth": {"passwordCredentials": {"username": "a", "password": null}}}'),
])
def test_malformed_requests_are_400_in_keystone_format(cluster: LocalCluster, path: str, body: bytes) -> None:
    r = requests.post(cluster.endpoint + path, data=body, headers={"Content-Type": "application/json"},
                      timeout=TIMEOUT_S)
    assert_keystone_error(r, 400)


def test_oversized_body_unsupported_method_and_wrong_verb(cluster: LocalCluster) -> None:
    base = cluster.endpoint
    big = json.dumps(v3_auth("admin", "x" * 100_000, "default")).encode()
    assert_keystone_error(post(base, "/v3/auth/tokens", data=big), 413)
    doc = {"auth": {"identity": {"methods": ["totp"], "totp": {}}}}
    assert_keystone_error(post(base, "/v3/auth/tokens", doc), 401)
    assert_keystone_error(requests.put(base + "/v3/auth/tokens", timeout=TIMEOUT_S), 405)
    assert_keystone_error(requests.get(base + "/v2.0/tokens", timeout=TIMEOUT_S), 405)
    assert_keystone_error(requests.get(base + "/v3/projects", timeout=TIMEOUT_S), 404)


def test_token_validation_and_rescoping(cluster: LocalCluster) -> None:
    base = cluster.endpoint
    token, _ = v3_login(base, v3_auth("admin", cluster.credentials[1], "default"))
    r = requests.get(base + "/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token},
                     timeout=TIMEOUT_S)
    assert r.status_code == 200 and r.headers["X-Subject-Token"] == token
    assert r.json()["token"]["user"]["id"] == "default:admin"
    assert DAY_S - 120 < seconds_until(r.json()["token"]["expires_at"]) <= DAY_S
    head = requests.head(base + "/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token},
                         timeout=TIMEOUT_S)
    assert head.status_code == 200 and head.content == b""
    bad = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert_keystone_error(requests.get(base + "/v3/auth/tokens", timeout=TIMEOUT_S,
                                       headers={"X-Auth-Token": token, "X-Subject-Token": bad}), 404)
    assert_keystone_error(requests.get(base + "/v3/auth/tokens", timeout=TIMEOUT_S,
                                       headers={"X-Auth-Token": bad, "X-Subject-Token": token}), 401)
    # The token method re-scopes: the admin to another account's project.
    doc = {"auth": {"identity": {"methods": ["token"], "token": {"id": token}},
                    "scope": {"project": {"name": f"kso{TAG}", "domain": {"id": "default"}}}}}
    rescoped, answer = v3_login(base, doc)
    assert answer["methods"] == ["token"]
    assert object_store(answer)["public"] == base + f"/v1/AUTH_kso{TAG}"
    doc["auth"]["identity"]["token"]["id"] = bad
    assert_keystone_error(post(base, "/v3/auth/tokens", doc), 401)


def test_version_discovery(cluster: LocalCluster) -> None:
    base = cluster.endpoint
    for path, version, media in (("/v3", "v3.", "identity-v3+json"), ("/v3/", "v3.", "identity-v3+json"),
                                 ("/v2.0", "v2.0", "identity-v2.0+json")):
        r = requests.get(base + path, timeout=TIMEOUT_S)
        assert r.status_code == 200, path
        doc = r.json()["version"]
        assert doc["id"].startswith(version) and doc["media-types"][0]["type"].endswith(media)
        assert doc["links"][0]["href"] == base + path.rstrip("/") + "/"
    info = requests.get(base + "/info", timeout=TIMEOUT_S).json()
    assert info["keystone"]["versions"] == ["v3", "v2.0"]


def test_s3_keeps_a_bucket_named_like_keystone_paths(s3: Any) -> None:
    """/v2.0/tokens is also the S3 object "tokens" of bucket "v2.0": S3 credentials decide."""
    s3.create_bucket(Bucket="v2.0")
    s3.put_object(Bucket="v2.0", Key="tokens", Body=b"s3 data")
    assert s3.get_object(Bucket="v2.0", Key="tokens")["Body"].read() == b"s3 data"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="v2.0")["Contents"]] == ["tokens"]


# -- v2.0 -----------------------------------------------------------------------------------


def test_v2_login_answers_token_tenant_and_catalog(cluster: LocalCluster) -> None:
    base = cluster.url(1).rstrip("/")
    r = post(base, "/v2.0/tokens", v2_auth("admin", cluster.credentials[1], "default"))
    assert r.status_code == 200, r.text
    access = r.json()["access"]
    token = access["token"]["id"]
    assert access["token"]["tenant"]["name"] == "default"
    assert DAY_S - 120 < seconds_until(access["token"]["expires"]) <= DAY_S
    assert access["user"]["name"] == "admin"
    [store] = [s for s in access["serviceCatalog"] if s["type"] == "object-store"]
    [endpoint] = store["endpoints"]
    assert endpoint["publicURL"] == endpoint["internalURL"] == base + "/v1/AUTH_default"
    assert endpoint["region"] == "RegionOne"
    name = f"ks2{TAG}"
    assert requests.put(endpoint["publicURL"] + "/" + name, headers={"X-Auth-Token": token},
                        timeout=TIMEOUT_S).status_code == 201
    # tenantId and the account:user form work too; a wrong key does not.
    doc = {"auth": {"passwordCredentials": {"username": "default:admin", "password": cluster.credentials[1]},
                    "tenantId": "default"}}
    assert post(base, "/v2.0/tokens", doc).status_code == 200
    assert_keystone_error(post(base, "/v2.0/tokens", v2_auth("admin", "wrong", "default")), 401)
    assert_keystone_error(post(base, "/v2.0/tokens", v2_auth("admin", cluster.credentials[1], "elsewhere")), 401)


# -- reseller admins ------------------------------------------------------------------------


def v1_login(cluster: LocalCluster, user: str, key: str) -> tuple[str, str]:
    r = requests.get(cluster.endpoint + "/auth/v1.0", headers={"X-Auth-User": user, "X-Auth-Key": key},
                     timeout=TIMEOUT_S)
    assert r.status_code == 200, r.text
    return r.headers["X-Storage-Url"], r.headers["X-Auth-Token"]


def test_reseller_admin_uses_other_accounts_and_normal_users_do_not(cluster: LocalCluster) -> None:
    base = cluster.endpoint
    acct, boss_acct = f"ksn{TAG}", f"ksb{TAG}"
    create_user(cluster, acct, "nora", "--swift-key", "noras-key")
    boss = create_user(cluster, boss_acct, "boss", "--admin", "--swift-key", "boss-key")
    assert boss["admin"] is True
    nora_url = base + f"/v1/AUTH_{acct}"
    admins = {
        "tempauth": v1_login(cluster, f"{boss_acct}:boss", "boss-key")[1],
        "keystone": v3_login(base, v3_auth(f"{boss_acct}:boss", "boss-key", acct))[0],
    }
    for how, token in admins.items():
        auth = {"X-Auth-Token": token}
        container = f"{nora_url}/byboss-{how}{TAG}"
        assert requests.put(container, headers=auth, timeout=TIMEOUT_S).status_code == 201, how
        r = requests.put(container + "/note", data=b"from the admin", headers=auth, timeout=TIMEOUT_S)
        assert r.status_code == 201, how
        r = requests.get(container + "/note", headers=auth, timeout=TIMEOUT_S)
        assert r.status_code == 200 and r.content == b"from the admin", how
    # The containers are Nora's: she lists them and reads the object.
    nora_v1_url, nora_token = v1_login(cluster, f"{acct}:nora", "noras-key")
    assert nora_v1_url == nora_url
    listing = requests.get(nora_url, headers={"X-Auth-Token": nora_token}, params={"format": "json"},
                           timeout=TIMEOUT_S).json()
    assert [c["name"] for c in listing] == [f"byboss-keystone{TAG}", f"byboss-tempauth{TAG}"]
    assert requests.get(f"{nora_url}/byboss-tempauth{TAG}/note", headers={"X-Auth-Token": nora_token},
                        timeout=TIMEOUT_S).content == b"from the admin"
    # Nora, however she logged in, is refused on the boss's and the default account.
    noras = {"tempauth": nora_token, "keystone": v3_login(base, v3_auth("nora", "noras-key", acct))[0]}
    for how, token in noras.items():
        for url in (base + f"/v1/AUTH_{boss_acct}", base + "/v1/AUTH_default"):
            auth = {"X-Auth-Token": token}
            assert requests.get(url, headers=auth, timeout=TIMEOUT_S).status_code == 403, how
            assert requests.put(url + f"/planted{TAG}", headers=auth, timeout=TIMEOUT_S).status_code == 403, how
    assert requests.get(base + "/v1/AUTH_default", headers={"X-Auth-Token": admins["keystone"]},
                        timeout=TIMEOUT_S).status_code in (200, 204)


# -- edgestore user create ------------------------------------------------------------------


def test_user_create_prints_swift_and_keystone_credentials(cluster: LocalCluster) -> None:
    script = shutil.which("edgestore", path=str(Path(sys.executable).parent))
    argv = [script] if script else [sys.executable, "-m", "edgestore"]
    acct = f"ksp{TAG}"
    result = subprocess.run([*argv, "user", "create", acct, "pia", "--access-key", f"PIA{TAG}",
                             "--secret-key", "pias-s3-secret", "--swift-key", "pias-swift-key", "--admin",
                             "--cluster", str(cluster.data / "cluster.json")],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in result.stdout.strip().splitlines())}
    assert fields["access key"] == f"PIA{TAG}" and fields["secret key"] == "pias-s3-secret"
    assert fields["swift user"] == f"{acct}:pia" and fields["swift key"] == "pias-swift-key"
    assert fields["admin"].startswith("yes")
    assert fields["auth url"] == cluster.endpoint + "/auth/v1.0"
    keystone_url = fields["keystone"].split()[0]
    assert keystone_url == cluster.endpoint + "/v3"
    # The printed values log in, both ways.
    r = requests.get(fields["auth url"], timeout=TIMEOUT_S,
                     headers={"X-Auth-User": fields["swift user"], "X-Auth-Key": fields["swift key"]})
    assert r.status_code == 200 and r.headers["X-Storage-Url"].endswith(f"/AUTH_{acct}")
    r = requests.post(keystone_url + "/auth/tokens", json=v3_auth("pia", fields["swift key"], acct),
                      timeout=TIMEOUT_S)
    assert r.status_code == 201, r.text


# -- python-swiftclient ---------------------------------------------------------------------


@pytest.mark.parametrize("version", ["3", "2.0"])
def test_swiftclient_connection_logs_in_through_keystone(cluster: LocalCluster, version: str) -> None:
    if version == "3":
        conn = Connection(authurl=cluster.endpoint + "/v3", user="admin", key=cluster.credentials[1],
                          auth_version="3", retries=1, timeout=30,
                          os_options={"user_domain_name": "Default", "project_name": "default",
                                      "project_domain_name": "Default"})
    else:
        conn = Connection(authurl=cluster.endpoint + "/v2.0", user="admin", key=cluster.credentials[1],
                          auth_version="2.0", tenant_name="default", retries=1, timeout=30)
    url, _ = conn.get_auth()
    assert url == cluster.endpoint + "/v1/AUTH_default"
    name = f"ksc{TAG}-{version.replace('.', '-')}"
    conn.put_container(name)
    body = os.urandom(300_000)
    etag = conn.put_object(name, "dir/obj.bin", body, headers={"X-Object-Meta-Via": "keystone"})
    assert etag == hashlib.md5(body).hexdigest()
    headers, got = conn.get_object(name, "dir/obj.bin")
    assert got == body and headers["x-object-meta-via"] == "keystone"
    assert [o["name"] for o in conn.get_container(name)[1]] == ["dir/obj.bin"]
    conn.delete_object(name, "dir/obj.bin")
    conn.delete_container(name)
    bad = Connection(authurl=cluster.endpoint + "/v3", user="admin", key="wrong", auth_version="3", retries=0,
                     timeout=30, os_options={"project_name": "default", "user_domain_name": "Default",
                                             "project_domain_name": "Default"})
    with pytest.raises(ClientException):
        bad.get_auth()


# -- the swift command line -----------------------------------------------------------------


def swift_v3(cluster: LocalCluster, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The `swift` command with Keystone v3 credentials from OS_* variables only."""
    script = shutil.which("swift", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the swift command line is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    env.update({"OS_AUTH_URL": cluster.endpoint + "/v3", "OS_AUTH_VERSION": "3", "OS_USERNAME": "admin",
                "OS_PASSWORD": cluster.credentials[1], "OS_PROJECT_NAME": "default",
                "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default"})
    return subprocess.run([script, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL)


def test_swift_command_line_with_keystone_v3(cluster: LocalCluster, tmp_path: Path) -> None:
    def ok(*args: str, cwd: Path | None = None) -> str:
        result = swift_v3(cluster, *args, cwd=cwd)
        assert result.returncode == 0, f"swift {' '.join(args)}: {result.stderr}"
        return result.stdout

    name = f"ksv3cli{TAG}"
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "one.txt").write_bytes(b"first file\n")
    (src / "sub" / "two.bin").write_bytes(os.urandom(70_000))
    ok("upload", name, "one.txt", "sub/two.bin", cwd=src)
    assert ok("list", name).split() == ["one.txt", "sub/two.bin"]
    assert "Account: AUTH_default" in ok("stat")
    assert "Objects: 2" in ok("stat", name)
    ok("post", "-m", "Color:red", name, "one.txt")
    assert "Meta Color: red" in ok("stat", name, "one.txt")
    ok("copy", name, "one.txt", "--destination", f"/{name}/three.txt")
    assert ok("list", name).split() == ["one.txt", "sub/two.bin", "three.txt"]
    dest = tmp_path / "dest"
    dest.mkdir()
    ok("download", name, cwd=dest)
    assert (dest / "one.txt").read_bytes() == (dest / "three.txt").read_bytes() == b"first file\n"
    assert (dest / "sub" / "two.bin").read_bytes() == (src / "sub" / "two.bin").read_bytes()
    ok("delete", name)
    assert name not in ok("list").split()
    # The same command line options, given as arguments, and a wrong password failing.
    script_args = ["--auth-version", "3", "--os-auth-url", cluster.endpoint + "/v3", "--os-username", "admin",
                   "--os-project-name", "default", "--os-user-domain-name", "Default",
                   "--os-project-domain-name", "Default"]
    assert swift_v3(cluster, *script_args, "--os-password", cluster.credentials[1], "stat").returncode == 0
    failed = swift_v3(cluster, *script_args, "--os-password", "wrong", "stat")
    assert failed.returncode != 0 and "Unauthorized" in failed.stderr + failed.stdout


# -- configuration (last: it restarts a node) -----------------------------------------------


def test_catalog_region_is_the_nodes_swift_region(cluster: LocalCluster) -> None:
    """[swift] region names the catalog's region (clients such as Nextcloud match it exactly)."""
    node = cluster.nodes - 1
    config = Path(cluster.node(node)["config"])
    config.write_text(config.read_text() + '\n[swift]\nregion = "farm-north"\n')
    cluster.kill(node, signal.SIGTERM)
    cluster.restart(node)
    base = cluster.url(node).rstrip("/")
    _, doc = v3_login(base, v3_auth("admin", cluster.credentials[1], "default"))
    [store] = [s for s in doc["catalog"] if s["type"] == "object-store"]
    assert {e["region"] for e in store["endpoints"]} == {"farm-north"}
    r = post(base, "/v2.0/tokens", v2_auth("admin", cluster.credentials[1], "default"))
    assert {e["region"] for s in r.json()["access"]["serviceCatalog"] for e in s["endpoints"]} == {"farm-north"}
    # Another node keeps the default.
    _, doc = v3_login(cluster.url(0).rstrip("/"), v3_auth("admin", cluster.credentials[1], "default"))
    assert {e["region"] for s in doc["catalog"] for e in s["endpoints"]} == {"RegionOne"}
