"""`edgestore user create ACCOUNT USER`: issue credentials on a running cluster."""

from __future__ import annotations

import argparse
import json

from edgestore.cli.connect import add_cluster_options, admin_request, resolve


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("user", help="manage users and their keys")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a user (and its account) and print its keys")
    create.add_argument("account")
    create.add_argument("user")
    create.add_argument("--admin", action="store_true", help="may manage users and see every account")
    create.add_argument("--access-key", help="the new user's access key (default: generated)")
    create.add_argument("--secret-key", help="the new user's secret key (default: generated)")
    create.add_argument("--swift-key", help="the new user's Swift key (default: the secret key)")
    create.add_argument("--json", action="store_true", help="print the result as JSON")
    add_cluster_options(create)
    create.set_defaults(func=create_user)


def create_user(args: argparse.Namespace) -> int:
    spec = {"account": args.account, "user": args.user, "admin": args.admin}
    if args.access_key:
        spec["access_key"] = args.access_key
    if args.secret_key:
        spec["secret_key"] = args.secret_key
    if args.swift_key:
        spec["swift_key"] = args.swift_key
    target = resolve(args)
    created = admin_request(target, "POST", "/_admin/users", spec)
    if "swift_key" in created:  # a node from before the Swift API answers without it
        # Where Swift clients log in: TempAuth v1, or Keystone v3 (user, project = account).
        created["swift_auth_url"] = target.endpoint + "/auth/v1.0"
        created["keystone_auth_url"] = target.endpoint + "/v3"
    if args.json:
        print(json.dumps(created, indent=2))
    else:
        print(f"account:    {created['account']}\nuser:       {created['user']}\n"
              f"access key: {created['access_key']}\nsecret key: {created['secret_key']}")
        if created.get("admin"):
            print("admin:      yes (a reseller admin: may use every account)")
        if "swift_key" in created:
            print(f"swift user: {created['swift_user']}\nswift key:  {created['swift_key']}\n"
                  f"auth url:   {created['swift_auth_url']}\n"
                  f"keystone:   {created['keystone_auth_url']} (user {created['user']}, "
                  f"project {created['account']})")
    return 0
