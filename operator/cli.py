"""`tickplane operator` (run the kopf operator) and `tickplane crds` (generate the CRDs)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from . import crds

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add `operator` and `crds` to the `tickplane` command's subparsers."""
    op = sub.add_parser(
        "operator",
        help="run the Kubernetes operator (TradingEngine, Strategy) against the kubeconfig",
        description="Reconcile TradingEngine and Strategy resources: the engine's "
        "StatefulSet, Service, ConfigMap, PDB and NetworkPolicy; a strategy's Deployment. "
        "Uses the in-cluster service account, else KUBECONFIG / ~/.kube/config.",
    )
    where = op.add_mutually_exclusive_group()
    where.add_argument(
        "--namespace", "-n", action="append", default=[], help="watch this namespace (repeat)"
    )
    where.add_argument(
        "--all-namespaces", "-A", action="store_true", help="watch every namespace (default)"
    )
    op.add_argument("--metrics-port", type=int, default=9090, help="Prometheus /metrics port")
    op.add_argument("--liveness-port", type=int, default=8080, help="the /healthz probe port")
    op.add_argument(
        "--resync-seconds", type=float, default=10.0, help="compare every resource this often"
    )
    op.add_argument(
        "--peering",
        default="tickplane",
        help="ClusterKopfPeering object: one active operator at a time (default tickplane)",
    )
    op.add_argument("--standalone", action="store_true", help="no peering (a single operator)")
    op.add_argument("--priority", type=int, default=0, help="peering priority (higher wins)")
    op.add_argument(
        "--peering-lifetime",
        type=int,
        default=30,
        help="seconds a silent peer counts as alive (a crashed operator's successor waits)",
    )
    op.add_argument(
        "--engine-image", help="default image of engine and strategy pods "
        "(else TICKPLANE_OPERATOR_ENGINE_IMAGE)"
    )  # fmt: skip
    op.add_argument(
        "--cleanup-timeout",
        type=float,
        default=60.0,
        help="seconds to retry cancelling a deleted strategy's orders on an unreachable engine",
    )
    op.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    op.set_defaults(func=_run_operator)

    gen = sub.add_parser(
        "crds",
        help="generate crds/*.yaml from the resource models (or --check for drift)",
    )
    crds.add_arguments(gen)
    gen.set_defaults(func=crds.run)


def _run_operator(args: argparse.Namespace) -> int:
    # kopf and the Kubernetes client are imported here: other subcommands stay light.
    from .runner import OperatorOptions, run

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options = OperatorOptions(
        namespaces=list(args.namespace),
        metrics_port=args.metrics_port,
        liveness_port=args.liveness_port,
        resync_seconds=args.resync_seconds,
        peering=None if args.standalone else args.peering,
        priority=args.priority,
        engine_image=args.engine_image,
        cleanup_timeout=args.cleanup_timeout,
        peering_lifetime=args.peering_lifetime,
    )
    return asyncio.run(run(options))
