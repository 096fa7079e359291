# syntax=docker/dockerfile:1
# One image for every Tickplane component (engine, operator, gateway, recorder, terminal,
# strategy runtime): the `tickplane` command picks the part. Two stages: the first
# compiles the Cython engine into a wheel, the second installs it with no compiler.
#
#   docker build -t tickplane/tickplane:dev .
#   docker run --rm tickplane/tickplane:dev tickplane --help

ARG PYTHON=python:3.11-slim-bookworm

FROM ${PYTHON} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependency pins first (a layer that survives source changes).
COPY pyproject.toml setup.py MANIFEST.in README.md ./
RUN python -m pip install --no-cache-dir "setuptools==80.10.2" "Cython==3.2.9" "numpy==2.3.5" build
COPY core core
COPY engine engine
COPY api api
COPY ui ui
COPY operator operator
COPY cli cli
# A wheel with the compiled book, matching and replay modules, and every runtime
# dependency as a wheel beside it.
RUN python -m pip wheel --no-cache-dir --no-build-isolation --wheel-dir /wheels .

FROM ${PYTHON} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index --find-links=/wheels tickplane \
 && rm -rf /wheels \
 && groupadd --gid 10001 tickplane \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin tickplane \
 && mkdir -p /var/lib/tickplane /etc/tickplane \
 && chown 10001:10001 /var/lib/tickplane
# Non-root; the pods also run with a read-only root filesystem (writes go to /tmp and
# the journal volume at /var/lib/tickplane).
USER 10001:10001
WORKDIR /var/lib/tickplane
EXPOSE 5555 5556 9100 8000 8501 9090 8080
ENTRYPOINT []
CMD ["tickplane", "--help"]
