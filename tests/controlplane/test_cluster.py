"""The control plane is a real one: CRDs with CEL validation and the status subresource,
RBAC, apiserver-computed fields, built-in controllers, and an apiserver that can restart.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .api import as_dict, eventually
from .cluster import ControlPlane

T = TypeVar("T")

GROUP = "tests.tickplane.io"
VERSION = "v1"
PLURAL = "widgets"
CEL_MESSAGE = "minReplicas must not exceed maxReplicas"


def error_of(exc: ApiException) -> dict[str, Any]:
    """The `Status` object the apiserver sent with an error."""
    assert exc.body is not None
    return as_dict(json.loads(exc.body))


def widget_crd() -> dict[str, Any]:
    """A namespaced CRD with a CEL rule on its spec and the status subresource."""
    spec_schema = {
        "type": "object",
        "required": ["minReplicas", "maxReplicas"],
        "properties": {
            "minReplicas": {"type": "integer", "minimum": 0},
            "maxReplicas": {"type": "integer", "minimum": 0},
        },
        "x-kubernetes-validations": [
            {"rule": "self.minReplicas <= self.maxReplicas", "message": CEL_MESSAGE}
        ],
    }
    status_schema = {
        "type": "object",
        "properties": {"phase": {"type": "string"}, "observedGeneration": {"type": "integer"}},
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    # Custom columns replace the default Age, so it is listed again.
                    "additionalPrinterColumns": [
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {
                            "name": "Age",
                            "type": "date",
                            "jsonPath": ".metadata.creationTimestamp",
                        },
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": spec_schema, "status": status_schema},
                        }
                    },
                }
            ],
        },
    }


def widget(name: str, min_replicas: int, max_replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"minReplicas": min_replicas, "maxReplicas": max_replicas},
    }


@pytest.fixture(scope="module")
def widgets(api_client: client.ApiClient) -> Iterator[client.CustomObjectsApi]:
    """The Widget CRD, applied and Established; the custom-objects API to use it."""
    ext = client.ApiextensionsV1Api(api_client)
    crd = client.V1CustomResourceDefinition.from_dict(widget_crd())
    assert crd is not None
    ext.create_custom_resource_definition(crd)

    def established() -> bool | None:
        crd = ext.read_custom_resource_definition(f"{PLURAL}.{GROUP}")
        conditions = (crd.status.conditions if crd.status else None) or []
        ok = any(c.type == "Established" and c.status == "True" for c in conditions)
        return True if ok else None

    eventually(established, what="the CRD to be Established")
    try:
        yield client.CustomObjectsApi(api_client)
    finally:
        ext.delete_custom_resource_definition(f"{PLURAL}.{GROUP}")


def test_valid_object_is_accepted(widgets: client.CustomObjectsApi, namespace: str) -> None:
    created = as_dict(
        widgets.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, widget("good", 1, 3)
        )
    )
    assert created["spec"] == {"minReplicas": 1, "maxReplicas": 3}
    assert created["metadata"]["generation"] == 1


def test_cel_rule_rejects_invalid_object(widgets: client.CustomObjectsApi, namespace: str) -> None:
    with pytest.raises(ApiException) as caught:
        widgets.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, widget("bad", 5, 2)
        )
    assert caught.value.status == 422
    body = error_of(caught.value)
    assert body["reason"] == "Invalid"
    assert CEL_MESSAGE in body["message"]
    causes = body["details"]["causes"]
    assert any(c["field"] == "spec" and CEL_MESSAGE in c["message"] for c in causes)


def test_openapi_schema_rejects_wrong_type(
    widgets: client.CustomObjectsApi, namespace: str
) -> None:
    bad = widget("typed", 1, 2)
    bad["spec"]["maxReplicas"] = "two"
    with pytest.raises(ApiException) as caught:
        widgets.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, bad)
    assert caught.value.status == 422
    assert "spec.maxReplicas" in error_of(caught.value)["message"]


def test_status_subresource(widgets: client.CustomObjectsApi, namespace: str) -> None:
    widgets.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("w", 0, 2))
    # Through the status subresource: status changes, spec and generation do not.
    patched = as_dict(
        widgets.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            "w",
            {"status": {"phase": "Ready", "observedGeneration": 1}},
        )
    )
    assert patched["status"] == {"phase": "Ready", "observedGeneration": 1}
    assert patched["metadata"]["generation"] == 1
    # Through the main resource: the spec changes (new generation), status is ignored.
    patched = as_dict(
        widgets.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            "w",
            {"spec": {"maxReplicas": 4}, "status": {"phase": "Hacked"}},
        )
    )
    assert patched["spec"]["maxReplicas"] == 4
    assert patched["metadata"]["generation"] == 2
    assert patched["status"]["phase"] == "Ready"
    # The CEL rule holds on updates too.
    with pytest.raises(ApiException) as caught:
        widgets.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "w", {"spec": {"minReplicas": 9}}
        )
    assert caught.value.status == 422
    assert CEL_MESSAGE in error_of(caught.value)["message"]


def test_kubectl_get_shows_printer_columns(
    widgets: client.CustomObjectsApi, control_plane: ControlPlane, namespace: str
) -> None:
    widgets.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, widget("tbl", 0, 1))
    widgets.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "tbl", {"status": {"phase": "Ready"}}
    )
    out = control_plane.kubectl("get", "widgets", "-n", namespace).stdout.splitlines()
    assert out[0].split() == ["NAME", "PHASE", "AGE"]
    assert out[1].split()[:2] == ["tbl", "Ready"]
    # And the CEL message reaches kubectl's user too.
    bad = json.dumps(widget("bad", 3, 1))
    done = control_plane.kubectl("apply", "-n", namespace, "-f", "-", check=False, input=bad)
    assert done.returncode != 0
    assert CEL_MESSAGE in done.stderr


def test_apiserver_computes_pod_qos_class(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    eventually(
        lambda: core.read_namespaced_service_account("default", namespace),
        what="the default service account (created by the controller manager)",
    )
    resources = client.V1ResourceRequirements(
        requests={"cpu": "2", "memory": "256Mi"}, limits={"cpu": "2", "memory": "256Mi"}
    )
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="engine"),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="engine", image="busybox", resources=resources)]
        ),
    )
    created = core.create_namespaced_pod(namespace, pod)
    assert created.status is not None
    assert created.status.qos_class == "Guaranteed"


def test_controller_manager_runs_controllers(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    eventually(
        lambda: core.read_namespaced_config_map("kube-root-ca.crt", namespace),
        what="the root CA ConfigMap",
    )
    eventually(
        lambda: core.read_namespaced_service_account("default", namespace),
        what="the default service account",
    )
    labels = {"app": "demo"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="demo"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
            ),
        ),
    )
    apps.create_namespaced_deployment(namespace, deployment)

    def two_pods() -> list[client.V1Pod] | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=demo").items
        return pods if len(pods) == 2 else None

    pods = eventually(two_pods, what="the deployment's two pods")
    owners = {ref.kind for p in pods if p.metadata for ref in p.metadata.owner_references or []}
    assert owners == {"ReplicaSet"}
    # Garbage collection: deleting the deployment takes its replica set and pods along.
    apps.delete_namespaced_deployment(
        "demo", namespace, propagation_policy="Foreground", grace_period_seconds=0
    )

    def gone() -> bool | None:
        left = core.list_namespaced_pod(namespace, label_selector="app=demo").items
        return True if not left else None

    eventually(gone, what="the garbage collector to delete the pods")


def test_rbac_is_enforced(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    request = core.create_namespaced_service_account_token(
        "nobody",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    )
    assert request.status is not None
    token = request.status.token
    config = client.Configuration()
    config.host = api_client.configuration.host
    config.ssl_ca_cert = api_client.configuration.ssl_ca_cert
    config.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(config) as as_nobody:
        with pytest.raises(ApiException) as caught:
            client.CoreV1Api(as_nobody).list_namespaced_pod(namespace)
        assert caught.value.status == 403
        rbac = client.RbacAuthorizationV1Api(api_client)
        rbac.create_namespaced_role(
            namespace,
            client.V1Role(
                metadata=client.V1ObjectMeta(name="pod-reader"),
                rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])],
            ),
        )
        rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="nobody-reads-pods"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name="pod-reader"
                ),
                subjects=[
                    client.RbacV1Subject(kind="ServiceAccount", name="nobody", namespace=namespace)
                ],
            ),
        )
        listed = eventually(
            lambda: client.CoreV1Api(as_nobody).list_namespaced_pod(namespace),
            what="the role binding to take effect",
        )
        assert listed.items == []


def test_apiserver_restarts_with_its_data(
    control_plane: ControlPlane, api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    name = f"cm-{uuid.uuid4().hex[:6]}"
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"k": "v"})
    )
    url = control_plane.url
    control_plane.stop_apiserver()
    assert not control_plane.apiserver_running
    with pytest.raises(Exception):  # noqa: B017 - connection refused, as urllib3 wraps it
        core.read_namespaced_config_map(name, namespace, _request_timeout=2)
    control_plane.start_apiserver()
    assert control_plane.url == url
    assert core.read_namespaced_config_map(name, namespace).data == {"k": "v"}
