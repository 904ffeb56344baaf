"""`serve --role worker|gateway` and `cluster status`: the command line of the cluster roles (docs/cluster.md).

Only parsing and printing; the roles are assembled in platform_core/cluster/roles.py, imported here only
when a cluster role or command is asked for (the default `serve` never loads it, nor `nats`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from platform_core.cli.progress import print_progress, stop_on_signals
from platform_core.config import PlatformConfig
from platform_core.errors import StudioError


def add_role_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--role",
        choices=["all", "worker", "gateway", "front"],
        default="all",
        help="all: one process, no broker (default); worker: calls and engines, tools over the broker; "
        "gateway: the agents' endpoint only, no engines; front: the callers' page and /call, each call "
        "placed on the media worker with the most free capacity, no engines",
    )
    parser.add_argument(
        "--broker", help="NATS URL for worker, gateway and front (default: $CONVERSIMPLE_BROKER_URL, else local)"
    )
    parser.add_argument("--node-id", help="this process's id in the cluster (default: the role and a random suffix)")


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="cluster_command", required=True)
    status = sub.add_parser("status", help="list the cluster's nodes and workers, their load and conversations")
    status.add_argument("--broker", help="NATS URL (default: $CONVERSIMPLE_BROKER_URL, else local)")
    status.add_argument("--json", action="store_true", help="print the entries as JSON")


async def serve_role(args: argparse.Namespace, config: PlatformConfig) -> int:
    from platform_core.cluster.front import FrontDoor
    from platform_core.cluster.roles import GatewayNode, MediaWorker, broker_url

    kinds: dict[str, type[GatewayNode | MediaWorker | FrontDoor]] = {
        "gateway": GatewayNode,
        "worker": MediaWorker,
        "front": FrontDoor,
    }
    node = kinds[args.role](config, broker_url(args.broker), node_id=args.node_id)
    node.bus.subscribe(print_progress)
    stop = stop_on_signals()
    try:
        await node.start()
        name = "front door" if isinstance(node, FrontDoor) else node.role
        print(f"{name} {node.node_id} on the broker {node.broker.url}", flush=True)
        who = "agents" if isinstance(node, GatewayNode) else "callers"
        print(f"API key: {config.server.api_key}  ({who} need it)", flush=True)
        if isinstance(node, GatewayNode):
            print(f"agents connect to {node.gateway_url}", flush=True)
        if node.exposure_warning:
            print(f"warning: {node.exposure_warning}", file=sys.stderr, flush=True)
        print(f"listening on {node.url}", flush=True)
        await stop.wait()
        return 0
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        await node.stop()


def cluster_main(args: argparse.Namespace) -> int:
    return asyncio.run(_status(args))


async def _status(args: argparse.Namespace) -> int:
    from platform_core.cluster.broker import connect_broker
    from platform_core.cluster.presence import describe, open_bucket, read_members
    from platform_core.cluster.roles import broker_url
    from platform_core.cluster.subjects import Subjects

    url = broker_url(args.broker)
    try:
        nc = await connect_broker(url, name="cluster status")
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        rows = describe(await read_members(await open_bucket(nc, Subjects())))
    finally:
        await nc.close()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_status(url, rows))
    return 0


def format_status(url: str, rows: list[dict[str, Any]]) -> str:
    lines = [f"cluster on {url}: {len(rows)} process(es)"]
    lines.append(f"{'id':<20} {'role':<8} {'load':>7} {'agents':>6} {'seen':>6}  url")
    for r in rows:
        load = f"{r['active']}/{r['capacity']}" if r["capacity"] is not None else str(r["active"])
        agents = str(r["agents"]) if r["role"] == "gateway" else "-"
        lines.append(f"{r['id']:<20} {r['role']:<8} {load:>7} {agents:>6} {r['age_s']:>5}s  {r['url']}")
        lines += [f"    conversation {c}" for c in r["conversations"]]
    return "\n".join(lines)
