"""The Kubernetes Events the operator posts: one per status-condition transition.

The operator posts them itself, with the Kubernetes client, in the reconcile that finds the
transition. kopf's `kopf.event` is not used: it queues the Event for a background poster
that exists only in the context of kopf's own handlers (called from the resync loop it
raised `LookupError`, after the status was written, so the transition's Event was lost),
and it drops an Event whose post the apiserver refuses.

Which condition states have had their Event is recorded in the resource's status
(`announcedConditions`: per condition type, `STATUS/REASON`), written with the conditions.
A post that fails leaves its condition unannounced, and the next reconcile posts it again:
a transition's Event arrives at least once, also across operator restarts.
"""

from __future__ import annotations

import datetime
import logging
import socket
from collections.abc import Mapping
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

__all__ = ["ANNOUNCED", "announce", "post", "timestamp"]

log = logging.getLogger("tickplane.operator")

#: The status field recording, per condition type, the STATUS/REASON last announced.
ANNOUNCED = "announcedConditions"
COMPONENT = "tickplane-operator"
# The apiserver refuses longer messages; kopf cut them the same way.
MAX_MESSAGE = 1024


def timestamp() -> str:
    """Now, as Kubernetes writes times (RFC 3339, seconds, UTC)."""
    return _now().strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def post(
    api: client.ApiClient, obj: Mapping[str, Any], type_: str, reason: str, message: str
) -> bool:
    """Post one core/v1 Event about `obj` (a resource as the apiserver returned it); False,
    with a warning logged, when the apiserver cannot be reached or refuses it."""
    meta = obj["metadata"]
    if len(message) > MAX_MESSAGE:
        half = (MAX_MESSAGE - 3) // 2
        message = f"{message[:half]}...{message[-half:]}"
    now = _now()
    body = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name=f"{meta['name']}.", namespace=meta["namespace"]),
        involved_object=client.V1ObjectReference(
            api_version=obj["apiVersion"],
            kind=obj["kind"],
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
        ),
        type=type_,
        reason=reason,
        message=message,
        source=client.V1EventSource(component=COMPONENT),
        reporting_component=COMPONENT,
        reporting_instance=socket.gethostname(),
        first_timestamp=now,
        last_timestamp=now,
        count=1,
    )
    try:
        client.CoreV1Api(api).create_namespaced_event(
            meta["namespace"], body, _preload_content=False
        )
    except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
        log.warning(
            "%s %s/%s: the Event %s %r was not posted: %s",
            obj["kind"], meta["namespace"], meta["name"], reason, message, exc,
        )  # fmt: skip
        return False
    return True


def _state(condition: Mapping[str, Any]) -> str:
    """A condition's STATUS/REASON, as the record holds it."""
    return f"{condition['status']}/{condition.get('reason', '')}"


def _bad_news(kind: str, status: str) -> bool:
    return (kind == "Degraded" and status == "True") or (
        kind in ("Ready", "Pinned") and status == "False"
    )


def announce(
    api: client.ApiClient, obj: Mapping[str, Any], conditions: list[dict[str, Any]]
) -> dict[str, str]:
    """Post an Event for each of `conditions` (about to be written to `obj`'s status) whose
    status or reason its status has not announced yet (a Warning when it is bad news), and
    return what to write to the status's `announcedConditions`.

    A status from before this record (conditions, no record) counts as announced: the
    operator that wrote it posted its Events.
    """
    status = obj.get("status") or {}
    recorded = status.get(ANNOUNCED)
    if recorded is None:
        recorded = {c["type"]: _state(c) for c in status.get("conditions") or []}
    announced = dict(recorded)
    for c in conditions:
        kind, state, message = c["type"], _state(c), c.get("message", "")
        if announced.get(kind) == state:
            continue
        text = f"{kind}={c['status']}: {message}" if message else f"{kind}={c['status']}"
        event_type = "Warning" if _bad_news(kind, c["status"]) else "Normal"
        if post(api, obj, event_type, c.get("reason", ""), text):
            announced[kind] = state
    return announced
