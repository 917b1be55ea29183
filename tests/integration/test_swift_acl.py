"""Swift container ACLs (TempAuth's semantics) on a real cluster, with users of other
accounts made by `edgestore user create` and anonymous callers: public reads with .r:*,
listings only with .rlistings, referrer rules, user and account grants for reading and
writing, 401 for anonymous and 403 for authenticated refusals, ACL syntax checks; and
account ACLs (X-Account-Access-Control)."""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from typing import Iterator

import pytest
import requests
from clusterlib import LocalCluster
from swiftlib import TIMEOUT_S, Swift, create_user, swift_login

swiftclient = pytest.importorskip("swiftclient")
from swiftclient.client import ClientException, Connection  # noqa: E402

TAG = os.getpid()
OWNER_ACCOUNT, OTHER_ACCOUNT = f"aclown{TAG}", f"aclother{TAG}"
_numbers = itertools.count()


@dataclass(frozen=True)
class People:
    ann: Swift   # owns the containers (an ordinary user, not an admin)
    bob: Swift   # OTHER_ACCOUNT:bob
    carol: Swift  # OTHER_ACCOUNT:carol
    anon_url: str  # ann's storage URL, for requests without a token


@pytest.fixture(scope="module")
def people(cluster: LocalCluster) -> People:
    logins = {}
    for account, user in ((OWNER_ACCOUNT, "ann"), (OTHER_ACCOUNT, "bob"), (OTHER_ACCOUNT, "carol")):
        create_user(cluster, account, user, "--swift-key", f"{user}-key")
        logins[user] = swift_login(cluster, f"{account}:{user}", f"{user}-key")
    return People(logins["ann"], logins["bob"], logins["carol"], logins["ann"].url)


def as_user(who: Swift, owner: Swift, method: str, path: str, **kwargs: object) -> requests.Response:
    """A request by `who` into the owner's account."""
    return Swift(owner.url, who.token)(method, path, **kwargs)  # type: ignore[arg-type]


def anonymous(people: People, method: str, path: str, **kwargs: object) -> requests.Response:
    return requests.request(method, people.anon_url + path, timeout=TIMEOUT_S, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def container(people: People, request: pytest.FixtureRequest) -> Iterator[str]:
    """A container of ann's holding one object, "obj"."""
    name = f"acl{TAG}-{next(_numbers)}-{request.node.name[:40]}".lower().replace("_", "-")
    assert people.ann("PUT", "/" + name).status_code == 201
    assert people.ann("PUT", f"/{name}/obj", data=b"secret data").status_code == 201
    yield name


def test_without_acl_anonymous_is_401_and_other_users_403(people: People, container: str) -> None:
    for method in ("GET", "HEAD"):
        assert anonymous(people, method, f"/{container}/obj").status_code == 401
        assert anonymous(people, method, f"/{container}").status_code == 401
        assert as_user(people.bob, people.ann, method, f"/{container}/obj").status_code == 403
        assert as_user(people.bob, people.ann, method, f"/{container}").status_code == 403
    assert anonymous(people, "PUT", f"/{container}/new", data=b"x").status_code == 401
    assert as_user(people.bob, people.ann, "PUT", f"/{container}/new", data=b"x").status_code == 403
    assert people.ann("HEAD", f"/{container}/new").status_code == 404
    # Anonymous on a container that does not exist: 401, telling nothing.
    assert anonymous(people, "GET", f"/nothere{TAG}/obj").status_code == 401


def test_public_read_lets_anyone_read_objects_but_not_list(people: People, container: str) -> None:
    assert people.ann("POST", f"/{container}", headers={"X-Container-Read": ".r:*"}).status_code == 204
    got = anonymous(people, "GET", f"/{container}/obj")
    assert got.status_code == 200 and got.content == b"secret data"
    assert anonymous(people, "HEAD", f"/{container}/obj").status_code == 200
    assert as_user(people.bob, people.ann, "GET", f"/{container}/obj").status_code == 200
    # No listing without .rlistings — not even for an authenticated user.
    assert anonymous(people, "GET", f"/{container}").status_code == 401
    assert as_user(people.bob, people.ann, "GET", f"/{container}").status_code == 403
    # Reading is not writing.
    assert anonymous(people, "PUT", f"/{container}/obj", data=b"overwritten").status_code == 401
    assert anonymous(people, "DELETE", f"/{container}/obj").status_code == 401
    assert anonymous(people, "POST", f"/{container}", headers={"X-Container-Read": ""}).status_code == 401
    assert people.ann("GET", f"/{container}/obj").content == b"secret data"
    # The account itself stays private.
    assert anonymous(people, "GET", "").status_code == 401
    assert as_user(people.bob, people.ann, "HEAD", "").status_code == 403


def test_rlistings_allows_listing(people: People, container: str) -> None:
    acl = {"X-Container-Read": ".r:*,.rlistings"}
    assert people.ann("POST", f"/{container}", headers=acl).status_code == 204
    listing = anonymous(people, "GET", f"/{container}", params={"format": "json"})
    assert listing.status_code == 200
    assert [o["name"] for o in listing.json()] == ["obj"]
    head = anonymous(people, "HEAD", f"/{container}")
    assert head.status_code == 204 and head.headers["X-Container-Object-Count"] == "1"
    # The ACL itself is the owner's business.
    assert "X-Container-Read" not in head.headers
    assert people.ann("HEAD", f"/{container}").headers["X-Container-Read"] == ".r:*,.rlistings"


def test_referrer_rules(people: People, container: str) -> None:
    acl = {"X-Container-Read": ".r:.example.com, .r:-bad.example.com"}
    assert people.ann("POST", f"/{container}", headers=acl).status_code == 204
    assert people.ann("HEAD", f"/{container}").headers["X-Container-Read"] == ".r:.example.com,.r:-bad.example.com"
    cases = {"https://www.example.com/page": 200, "http://example.org/": 401,
             "https://bad.example.com/": 401, None: 401}
    for referer, expected in cases.items():
        headers = {"Referer": referer} if referer else {}
        assert anonymous(people, "GET", f"/{container}/obj", headers=headers).status_code == expected, referer


def test_user_and_account_read_grants(people: People, container: str) -> None:
    assert people.ann("POST", f"/{container}",
                      headers={"X-Container-Read": f"{OTHER_ACCOUNT}:bob"}).status_code == 204
    assert as_user(people.bob, people.ann, "GET", f"/{container}/obj").content == b"secret data"
    # A user grant also lets the user list the container.
    listing = as_user(people.bob, people.ann, "GET", f"/{container}")
    assert listing.status_code == 200 and listing.text == "obj\n"
    assert as_user(people.carol, people.ann, "GET", f"/{container}/obj").status_code == 403
    assert anonymous(people, "GET", f"/{container}/obj").status_code == 401
    assert as_user(people.bob, people.ann, "PUT", f"/{container}/obj", data=b"x").status_code == 403
    # Naming the account grants every user of it.
    assert people.ann("POST", f"/{container}", headers={"X-Container-Read": OTHER_ACCOUNT}).status_code == 204
    assert as_user(people.carol, people.ann, "GET", f"/{container}/obj").status_code == 200


def test_write_grant_allows_object_writes_only(people: People, container: str) -> None:
    assert people.ann("POST", f"/{container}",
                      headers={"X-Container-Write": f"{OTHER_ACCOUNT}:bob"}).status_code == 204
    path = f"/{container}/from-bob"
    assert as_user(people.bob, people.ann, "PUT", path, data=b"bob wrote this").status_code == 201
    assert people.ann("GET", path).content == b"bob wrote this"
    assert as_user(people.bob, people.ann, "POST", path, headers={"X-Object-Meta-By": "bob"}).status_code == 202
    assert people.ann("HEAD", path).headers["X-Object-Meta-By"] == "bob"
    # Writing is not reading.
    assert as_user(people.bob, people.ann, "GET", path).status_code == 403
    assert as_user(people.carol, people.ann, "PUT", path, data=b"carol").status_code == 403
    # The container itself stays the owner's.
    assert as_user(people.bob, people.ann, "POST", f"/{container}",
                   headers={"X-Container-Write": f"{OTHER_ACCOUNT}"}).status_code == 403
    assert as_user(people.bob, people.ann, "PUT", f"/{container}").status_code == 403
    assert as_user(people.bob, people.ann, "DELETE", f"/{container}").status_code == 403
    assert as_user(people.bob, people.ann, "DELETE", path).status_code == 204
    assert people.ann("HEAD", path).status_code == 404


def test_copy_needs_read_on_the_source_and_write_on_the_destination(people: People, container: str) -> None:
    source = f"acl{TAG}-copy-source"
    assert people.ann("PUT", "/" + source).status_code == 201
    assert people.ann("PUT", f"/{source}/private", data=b"private bytes").status_code == 201
    assert people.ann("POST", f"/{container}",
                      headers={"X-Container-Write": f"{OTHER_ACCOUNT}:bob"}).status_code == 204
    copy_from = {"X-Copy-From": f"{source}/private"}
    r = as_user(people.bob, people.ann, "PUT", f"/{container}/stolen", headers=copy_from, data=b"")
    assert r.status_code == 403
    r = as_user(people.bob, people.ann, "COPY", f"/{source}/private", headers={"Destination": f"{container}/stolen"})
    assert r.status_code == 403
    assert people.ann("HEAD", f"/{container}/stolen").status_code == 404
    assert people.ann("POST", f"/{source}", headers={"X-Container-Read": f"{OTHER_ACCOUNT}:bob"}).status_code == 204
    r = as_user(people.bob, people.ann, "PUT", f"/{container}/shared", headers=copy_from, data=b"")
    assert r.status_code == 201
    assert people.ann("GET", f"/{container}/shared").content == b"private bytes"
    # Read on the source alone does not allow writing into it.
    r = as_user(people.bob, people.ann, "COPY", f"/{source}/private", headers={"Destination": f"{source}/again"})
    assert r.status_code == 403


def test_swiftclient_with_a_grant_on_another_account(people: People, container: str) -> None:
    assert people.ann("POST", f"/{container}",
                      headers={"X-Container-Read": f"{OTHER_ACCOUNT}:bob",
                               "X-Container-Write": f"{OTHER_ACCOUNT}:bob"}).status_code == 204
    bob = Connection(preauthurl=people.ann.url, preauthtoken=people.bob.token, retries=0, timeout=30)
    bob.put_object(container, "by-client", b"hello from bob")
    headers, body = bob.get_object(container, "by-client")
    assert body == b"hello from bob"
    _, listing = bob.get_container(container)
    assert sorted(o["name"] for o in listing) == ["by-client", "obj"]
    with pytest.raises(ClientException) as exc:
        bob.head_account()
    assert exc.value.http_status == 403


@pytest.mark.parametrize("header,value", [
    ("X-Container-Read", ".r:"), ("X-Container-Read", ".r:-"), ("X-Container-Read", ".x:foo"),
    ("X-Container-Read", ".r:."), ("X-Container-Write", ".r:*"), ("X-Container-Write", ".referrer:example.com"),
])
def test_malformed_acl_is_400_and_changes_nothing(people: People, container: str, header: str, value: str) -> None:
    for method in ("POST", "PUT"):
        r = people.ann(method, f"/{container}", headers={header: value, "X-Container-Meta-Set": "no"})
        assert r.status_code == 400, (method, r.text)
        assert r.text and "Traceback" not in r.text
    head = people.ann("HEAD", f"/{container}")
    assert header not in head.headers and "X-Container-Meta-Set" not in head.headers


def test_acls_are_stored_cleaned(people: People, container: str) -> None:
    messy = {"X-Container-Read": ".referrer : * , .rlistings,, bob ,.ref:*.example.com",
             "X-Container-Write": f"{OTHER_ACCOUNT}:bob , {OTHER_ACCOUNT}"}
    assert people.ann("POST", f"/{container}", headers=messy).status_code == 204
    head = people.ann("HEAD", f"/{container}")
    assert head.headers["X-Container-Read"] == ".r:*,.rlistings,bob,.r:.example.com"
    assert head.headers["X-Container-Write"] == f"{OTHER_ACCOUNT}:bob,{OTHER_ACCOUNT}"


def test_an_account_acl_grants_other_accounts_users_read_only_read_write_or_admin(cluster: LocalCluster,
                                                                                     people: People) -> None:
    """X-Account-Access-Control (TempAuth's account ACLs): each level, and who sees it."""
    owner = people.ann
    readers, writers, admins = (f"{OTHER_ACCOUNT}:{u}" for u in ("rita", "wes", "ada"))
    for user in ("rita", "wes", "ada"):
        create_user(cluster, OTHER_ACCOUNT, user, "--swift-key", f"{user}-key")
    rita, wes, ada = (Swift(owner.url, swift_login(cluster, f"{OTHER_ACCOUNT}:{u}", f"{u}-key").token)
                      for u in ("rita", "wes", "ada"))
    container = f"acct-acl-{TAG}"
    assert owner("PUT", f"/{container}").status_code in (201, 202)
    assert owner("PUT", f"/{container}/doc", data=b"doc").status_code == 201
    assert rita("GET", f"/{container}/doc").status_code == 403
    acl = json.dumps({"read-only": [readers], "read-write": [writers], "admin": [admins]})
    assert owner("POST", headers={"X-Account-Access-Control": acl}).status_code == 204
    assert json.loads(owner("HEAD").headers["X-Account-Access-Control"]) == json.loads(acl)
    assert owner("POST", headers={"X-Account-Access-Control": "{not json"}).status_code == 400
    assert owner("POST", headers={"X-Account-Access-Control": '{"superuser": ["x"]}'}).status_code == 400

    # read-only: list and read, nothing more; the ACL itself stays hidden
    head = rita("HEAD")
    assert head.status_code == 204 and "X-Account-Access-Control" not in head.headers
    assert container in rita("GET").text.split()
    assert rita("GET", f"/{container}/doc").content == b"doc"
    assert rita("PUT", f"/{container}/rita", data=b"x").status_code == 403
    assert rita("POST", headers={"X-Account-Meta-X": "y"}).status_code == 403
    # read-write: objects and containers, not the account, nor a container's ACLs
    assert wes("PUT", f"/{container}/wes", data=b"w").status_code == 201
    assert wes("PUT", f"/{container}-wes").status_code == 201
    assert wes("POST", f"/{container}", headers={"X-Container-Read": ".r:*"}).status_code == 204
    assert "X-Container-Read" not in owner("HEAD", f"/{container}").headers  # dropped, as Swift does
    assert wes("POST", headers={"X-Account-Access-Control": "{}"}).status_code == 403
    assert wes("DELETE", f"/{container}-wes").status_code == 204
    # admin: everything, the ACL included
    assert "X-Account-Access-Control" in ada("HEAD").headers
    assert ada("POST", headers={"X-Account-Access-Control": json.dumps({"admin": [admins]})}).status_code == 204
    assert wes("PUT", f"/{container}/again", data=b"w").status_code == 403  # no longer granted
    assert owner("POST", headers={"X-Account-Access-Control": ""}).status_code == 204
    assert ada("GET", f"/{container}/doc").status_code == 403
