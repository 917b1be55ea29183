"""`edgestore mount BUCKET MOUNTPOINT` and `edgestore umount MOUNTPOINT`, and the
`mount.edgestore` helper that mount(8) runs for an /etc/fstab line of type `edgestore`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from edgestore.cli import CliError
from edgestore.cli.connect import DEFAULT_CLUSTER_FILE, ClusterTarget, admin_request

STATUS_TIMEOUT_S = 5.0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("mount", help="mount a bucket as a directory (FUSE); runs as a daemon unless --foreground")
    p.add_argument("bucket")
    p.add_argument("mountpoint", type=Path)
    p.add_argument("--endpoint", help="an S3 endpoint URL (default: the cluster's, from --cluster)")
    p.add_argument("--access-key", help="S3 access key (or AWS_ACCESS_KEY_ID)")
    p.add_argument("--secret-key", help="S3 secret key (or AWS_SECRET_ACCESS_KEY)")
    p.add_argument("--region", default=None)
    p.add_argument("--ca-file", help="CA certificate(s) for an https endpoint")
    p.add_argument("--cluster", type=Path, default=None,
                   help=f"the cluster.json of `edgestore up` (default ./{DEFAULT_CLUSTER_FILE}): endpoint and keys")
    p.add_argument("--cache-dir", type=Path, help="where changed files are kept until uploaded "
                   "(default /var/cache/edgestore, or ~/.cache/edgestore)")
    p.add_argument("--cache-size", default=None, help="most bytes kept there, e.g. 512M, 2G (default 1G)")
    p.add_argument("--ttl", type=float, default=None, help="seconds attributes and listings are cached (default 1)")
    p.add_argument("--dir-ttl", type=float, default=None,
                   help="seconds directories' attributes are cached (default 30 times --ttl): longer means "
                        "fewer requests on path walks, and another mount's change to a directory seen that late")
    p.add_argument("--log-file", type=Path, help="log here (default: syslog; stderr with --foreground)")
    p.add_argument("--foreground", "-f", action="store_true", help="stay in the foreground until unmounted")
    p.add_argument("--debug", action="store_true", help="log every FUSE call")
    p.add_argument("--libfuse", choices=("auto", "3", "2"), default=None,
                   help="the libfuse to use: auto (default: 3 if installed, else 2), 3 or 2; also -o libfuse=N "
                        "or EDGESTORE_LIBFUSE=N. libfuse 3 hands the mount writes of up to 1 MiB, 2 of 128 KiB")
    p.add_argument("-o", dest="options", action="append", default=[], metavar="OPT[,OPT...]",
                   help="FUSE options (allow_other, ro, ...) or any of the above as name=value")
    p.set_defaults(func=run_mount)
    u = sub.add_parser("umount", help="unmount a mounted bucket (lazily if it is busy or its process died)")
    u.add_argument("mountpoint", type=Path)
    u.set_defaults(func=run_umount)


def _cluster_file(path: Path | None, required: bool) -> dict[str, Any] | None:
    target = path or DEFAULT_CLUSTER_FILE
    try:
        info: dict[str, Any] = json.loads(Path(target).read_text())
        return info
    except FileNotFoundError:
        if required or path is not None:
            raise CliError(f"{target} not found: pass --endpoint with keys, or --cluster PATH") from None
        return None
    except (ValueError, OSError) as exc:
        raise CliError(f"{target} is not a usable cluster.json: {exc}") from None


def build_options(args: argparse.Namespace) -> Any:
    from edgestore.fuse import libfuse
    from edgestore.fuse.options import MountError, MountOptions, parse_size, split_options

    ours, fuse_options = split_options(args.options)

    def pick(name: str) -> Any:
        given = getattr(args, name, None)  # (`--ttl 0` is given: 0 is not "unset")
        return given if given is not None else ours.get(name)

    cluster_path = pick("cluster")
    endpoint = pick("endpoint")
    info = _cluster_file(Path(cluster_path) if cluster_path else None, required=not endpoint)
    info = info or {}
    endpoint = endpoint or info.get("s3_endpoint")
    access = pick("access_key") or os.environ.get("AWS_ACCESS_KEY_ID") or info.get("access_key")
    secret = pick("secret_key") or os.environ.get("AWS_SECRET_ACCESS_KEY") or info.get("secret_key")
    if not (endpoint and access and secret):
        raise CliError("need an endpoint and keys: --cluster cluster.json, or --endpoint, --access-key, --secret-key")
    region = pick("region") or info.get("region", "us-east-1")
    try:
        opts = MountOptions(args.bucket, args.mountpoint.resolve(), endpoint.rstrip("/"), access, secret, region,
                            ca_file=pick("ca_file"), foreground=args.foreground, debug=args.debug,
                            fuse_options=fuse_options)
        if pick("cache_dir"):
            opts.cache_dir = Path(pick("cache_dir")).expanduser()
        if pick("cache_size"):
            opts.cache_size = parse_size(str(pick("cache_size")))
        if pick("ttl") is not None:
            opts.ttl_s = float(pick("ttl"))
        if pick("dir_ttl") is not None:
            opts.dir_ttl_s = float(pick("dir_ttl"))
        if pick("log_file"):
            opts.log_file = Path(pick("log_file"))
        if ours.get("part_size"):
            opts.part_size = parse_size(ours["part_size"])
        if ours.get("readahead"):
            opts.readahead = parse_size(ours["readahead"])
        if ours.get("kernel_readahead"):
            opts.kernel_readahead = parse_size(ours["kernel_readahead"])
        # Before edgestore.fuse.mount is imported: that loads the library.
        opts.libfuse = libfuse.check_choice(pick("libfuse") or os.environ.get(libfuse.LIBFUSE_ENV))
        libfuse.select(opts.libfuse)
    except (MountError, ValueError, libfuse.LibfuseError) as exc:
        raise CliError(str(exc)) from None
    # statfs asks edgestore for its capacity: that needs an admin user, which a cluster.json has.
    target = ClusterTarget(opts.endpoint, access, secret, region)
    opts.cluster_status = lambda: admin_request(target, "GET", "/_admin/status", timeout_s=STATUS_TIMEOUT_S)
    return opts


def run_mount(args: argparse.Namespace) -> int:
    opts = build_options(args)  # first: it chooses the libfuse that importing the mount loads
    from edgestore.fuse.mount import MountError, mount

    try:
        return int(mount(opts))
    except MountError as exc:
        raise CliError(str(exc)) from None


def run_umount(args: argparse.Namespace) -> int:
    from edgestore.fuse.mount import MountError, unmount

    try:
        unmount(args.mountpoint.resolve())
    except MountError as exc:
        raise CliError(str(exc)) from None
    return 0


def helper_main(argv: list[str] | None = None) -> int:
    """mount(8)'s interface: ``mount.edgestore BUCKET DIR [-sfnv] [-o OPTS]`` (options as in fstab)."""
    from edgestore.cli.main import main

    parser = argparse.ArgumentParser(prog="mount.edgestore")
    parser.add_argument("bucket")
    parser.add_argument("mountpoint")
    parser.add_argument("-o", dest="options", action="append", default=[])
    for flag in ("-s", "-f", "-n", "-v"):  # sloppy, fake, no mtab, verbose: nothing to do for us
        parser.add_argument(flag, action="store_true")
    parser.add_argument("-t", dest="type")
    args = parser.parse_args(argv)
    command = ["mount", args.bucket, args.mountpoint]
    for opts in args.options:
        command += ["-o", opts]
    if args.f:
        return 0
    return main(command)


if __name__ == "__main__":
    sys.exit(helper_main())
