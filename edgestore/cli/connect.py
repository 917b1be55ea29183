"""How commands find a running cluster: --cluster cluster.json, or --endpoint with keys."""

from __future__ import annotations

import argparse
import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgestore.cli import CliError
from edgestore.sigv4_client import sign_headers

DEFAULT_CLUSTER_FILE = Path("edgestore-data") / "cluster.json"


@dataclass(frozen=True)
class ClusterTarget:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster to talk to")
    group.add_argument("--cluster", type=Path, default=None,
                       help=f"the cluster.json written by `edgestore up` (default ./{DEFAULT_CLUSTER_FILE})")
    group.add_argument("--endpoint", help="a node's URL, instead of --cluster")
    group.add_argument("--admin-access-key", help="an admin user's access key (with --endpoint)")
    group.add_argument("--admin-secret-key", help="an admin user's secret key (with --endpoint)")


def resolve(args: argparse.Namespace) -> ClusterTarget:
    if args.endpoint:
        if not (args.admin_access_key and args.admin_secret_key):
            raise CliError("--endpoint needs --admin-access-key and --admin-secret-key")
        return ClusterTarget(args.endpoint.rstrip("/"), args.admin_access_key, args.admin_secret_key)
    path = args.cluster or DEFAULT_CLUSTER_FILE
    try:
        info = json.loads(Path(path).read_text())
        return ClusterTarget(info["s3_endpoint"].rstrip("/"), info["access_key"], info["secret_key"],
                             info.get("region", "us-east-1"))
    except FileNotFoundError:
        raise CliError(f"{path} not found: start a cluster with `edgestore up`, or pass "
                       "--cluster PATH or --endpoint URL") from None
    except (ValueError, KeyError, OSError) as exc:
        raise CliError(f"{path} is not a usable cluster.json: {exc}") from exc


def admin_request(target: ClusterTarget, method: str, path: str, payload: Any = None,
                  timeout_s: float = 30.0) -> Any:
    """A SigV4-signed JSON request to a node's admin API; returns the decoded answer."""
    body = json.dumps(payload).encode() if payload is not None else b""
    url = target.endpoint + path
    headers = {"Content-Type": "application/json"}
    headers.update(sign_headers(method, url, headers, hashlib.sha256(body).hexdigest(), target.access_key,
                                target.secret_key, region=target.region))
    request = urllib.request.Request(url, data=body or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip()
        raise CliError(f"{method} {url} failed: {exc.code} {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
