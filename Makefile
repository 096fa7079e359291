# Tickplane: the two commands of the README are `make run` and `make test`.
# Both install what they need (a virtualenv in .venv, the compiled engine) first.

VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared

.PHONY: install services run test lint typecheck unit bench cluster cluster-down clean

install:
	@scripts/install.sh

## Real servers the tests start privately: PostgreSQL, Redis, Prometheus (Debian
## packages), an Apache Kafka broker (jars from Maven Central, cached in
## ~/.cache/tickplane/kafka) and a Kubernetes control plane (etcd, kube-apiserver,
## kube-controller-manager built from the Go module proxy once, cached in
## ~/.cache/tickplane/controlplane). Idempotent; the tests start and stop the servers.
services:
	@scripts/services/install.sh
	@scripts/kafka/fetch.sh >/dev/null
	@scripts/controlplane/build.sh >/dev/null

## Run Tickplane: for now a replay of a real NASDAQ day (GOOG, LOBSTER) through the book.
run: install
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

## A Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) for a person,
## in the background; prints the `export KUBECONFIG=...` line to use it.
cluster: install
	@scripts/controlplane/build.sh >/dev/null
	@$(BIN)/python tests/controlplane/cluster.py up

cluster-down: install
	@$(BIN)/python tests/controlplane/cluster.py down

clean:
	rm -rf build $(VENV) engine/*.c engine/*.so engine/*.html
