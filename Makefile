# Tickplane: the two commands of the README are `make run` and `make test`.
# Both install what they need (a virtualenv in .venv, the compiled engine) first.

VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared

.PHONY: install services run demo test lint typecheck unit bench cluster cluster-down clean
.PHONY: operator crds kind-up kind-down e2e-kind

install:
	@scripts/install.sh

## Real servers the tests start privately: PostgreSQL, Redis, Prometheus (Debian
## packages), an Apache Kafka broker (jars from Maven Central, cached in
## ~/.cache/tickplane/kafka) and a Kubernetes control plane (etcd, kube-apiserver,
## kube-controller-manager built from the Go module proxy once, cached in
## ~/.cache/tickplane/controlplane). Idempotent; the tests start and stop the servers.
## Also Debian's chromium, the browser the terminal's tests drive with Playwright.
services:
	@scripts/services/install.sh
	@scripts/browser/install.sh
	@scripts/kafka/fetch.sh >/dev/null
	@scripts/controlplane/build.sh >/dev/null
	@scripts/helm/build.sh >/dev/null

## Run Tickplane on this machine: engine (live synthetic market), gateway and terminal,
## embedded defaults, no services. Flags after ARGS=..., e.g. make run ARGS="--no-ui".
run: install
	@$(BIN)/tickplane up $(ARGS)

## A real NASDAQ day (GOOG, LOBSTER) replayed through the compiled book, with progress.
demo: install
	@$(BIN)/tickplane replay lobster --demo

## The full test command (CI calls exactly this through .ci/run).
test: install lint typecheck unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	VENV=$(VENV) scripts/typecheck.sh

unit: install services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Benchmarks (not part of the test run): one JSON object on stdout.
bench: install
	@TICKPLANE_EXTRAS=dev,bench scripts/install.sh
	$(BIN)/tickplane bench book --json
	$(BIN)/tickplane bench wire --json
	$(BIN)/tickplane bench backtest --json
	$(BIN)/tickplane bench gateway --json

## A Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) for a person,
## in the background; prints the `export KUBECONFIG=...` line to use it.
cluster: install
	@scripts/controlplane/build.sh >/dev/null
	@$(BIN)/python -m tests.controlplane.cluster up

cluster-down: install
	@$(BIN)/python -m tests.controlplane.cluster down

clean:
	rm -rf build $(VENV) engine/*.c engine/*.so engine/*.html

## The operator against the current kubeconfig (e.g. `make cluster`'s): applies the CRDs
## and kopf's peering object first, then runs `tickplane operator` in the foreground.
KUBECTL ?= $(shell command -v kubectl || echo $$(scripts/controlplane/build.sh --print-bin)/kubectl)
operator: install
	$(KUBECTL) apply --server-side -f crds/ -f manifests/peering.yaml
	$(BIN)/tickplane operator --log-level=INFO

## Regenerate crds/ (and the chart's copy) from operator/resources.py.
crds: install
	$(BIN)/tickplane crds

## A kind cluster with a static-CPU-manager worker (manifests/kind/cluster.yaml), the image
## built and loaded into it, and the chart installed with bundled PostgreSQL/Redis/Kafka.
## Needs Docker; kind and helm are built from the Go module proxy (scripts/kind, scripts/helm).
KIND_CLUSTER ?= tickplane
IMAGE_REPO ?= tickplane/tickplane
IMAGE_TAG ?= dev
kind-up:
	@command -v docker >/dev/null || { echo "make kind-up needs Docker" >&2; exit 1; }
	@KIND=$$(scripts/kind/build.sh)/kind; \
	  $$KIND get clusters | grep -qx $(KIND_CLUSTER) || \
	    $$KIND create cluster --name $(KIND_CLUSTER) --config manifests/kind/cluster.yaml --wait 120s; \
	  docker build -t $(IMAGE_REPO):$(IMAGE_TAG) . && \
	  $$KIND load docker-image $(IMAGE_REPO):$(IMAGE_TAG) --name $(KIND_CLUSTER)
	@HELM=$$(scripts/helm/build.sh)/helm; \
	  $$HELM upgrade --install tickplane charts/tickplane --kube-context kind-$(KIND_CLUSTER) \
	    --namespace tickplane --create-namespace --wait --timeout 10m \
	    --set image.repository=$(IMAGE_REPO) --set image.tag=$(IMAGE_TAG) \
	    --set postgresql.bundled=true --set redis.bundled=true --set kafka.bundled=true

kind-down:
	@KIND=$$(scripts/kind/build.sh)/kind; $$KIND delete cluster --name $(KIND_CLUSTER)

## End-to-end tests on the kind cluster (tests/operator/e2e_kind): a real kubelet, pinned
## engine cores, a roll that keeps the journal. Not part of `make test` (no Docker there).
e2e-kind: install kind-up
	$(KUBECTL) config use-context kind-$(KIND_CLUSTER)
	PATH="$(dir $(KUBECTL)):$$PATH" TICKPLANE_E2E_KIND=1 \
	  $(BIN)/python -m pytest tests/operator/e2e_kind -v $(PYTEST_ARGS)
