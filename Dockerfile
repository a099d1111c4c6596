# syntax=docker/dockerfile:1
#
# One image per component, picked by a build argument; each holds only its own dependency set:
#   docker build --build-arg COMPONENT=risk --build-arg VERSION=1.4.0 -t crm-risk:1.4.0 .
# COMPONENT is one of profile, segment, campaign, feedback, risk, gateway (the files under
# deploy/docker/requirements/, minus codegen). The image's default command serves the component
# (`python -m crm_<component>`); the manifests write the whole process line anyway
# (`python -m crm_risk serve`, `... migrate`). Build and deploy: docs/operations.md.
#
# Pin the base by digest in a bank's build (PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...);
# every stage must use the same image, because the environment built in one runs on the last
# one's interpreter.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- the contracts: generated once, with the code generator's own pinned set ---------------------
FROM ${PYTHON_IMAGE} AS codegen
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_NO_INPUT=1
WORKDIR /src
# Hashed lines of requirements.lock only, wheels only (no compiler anywhere), --no-deps so nothing
# unpinned slips in; the environment has no pip of its own, the base image's pip installs into it.
COPY deploy/docker/requirements/codegen.txt deploy/docker/requirements/
RUN python -m venv --without-pip /opt/codegen \
 && python -m pip --python /opt/codegen/bin/python install --require-hashes --no-deps --only-binary=:all: \
      -r deploy/docker/requirements/codegen.txt
COPY protos/ protos/
COPY tools/gen_protos.py tools/
RUN mkdir -p libs/crmkit/src && /opt/codegen/bin/python tools/gen_protos.py

# -- the component's environment: its closure from the lock, then its sources ------------------
FROM ${PYTHON_IMAGE} AS build
ARG COMPONENT
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_NO_INPUT=1
WORKDIR /src
COPY deploy/docker/requirements/ deploy/docker/requirements/
# An unknown or missing COMPONENT fails here, before anything is installed.
RUN test -n "${COMPONENT}" && test "${COMPONENT}" != codegen \
 && test -f "deploy/docker/requirements/${COMPONENT}.txt" \
 && python -m venv --without-pip /opt/crm \
 && python -m pip --python /opt/crm/bin/python install --require-hashes --no-deps --only-binary=:all: \
      -r "deploy/docker/requirements/${COMPONENT}.txt"
COPY libs/crmkit/ libs/crmkit/
COPY services/ services/
COPY gateway/ gateway/
COPY deploy/docker/install_components.py deploy/docker/
COPY --from=codegen /src/libs/crmkit/src/crm/ libs/crmkit/src/crm/
# The kit and the one component go in, with a launcher for the default command; everything is
# compiled to bytecode now so that no process compiles at start (or tries to write __pycache__
# on the read-only root filesystem). unchecked-hash: the files never change inside the image.
RUN /opt/crm/bin/python deploy/docker/install_components.py /src /app "${COMPONENT}" \
 && /opt/crm/bin/python -m compileall -q -f -j 0 --invalidation-mode unchecked-hash /app /opt/crm/lib

# -- what runs: the interpreter, the environment, the sources; no pip, no compiler -------------
FROM ${PYTHON_IMAGE} AS runtime
ARG COMPONENT
ARG VERSION=0.0.0-dev
# The base image ships the standard library without bytecode, and pip, setuptools and wheel,
# which no process uses: compile the one, remove the others. Then an unprivileged user with a
# fixed numeric id (Kubernetes' runAsNonRoot checks the number, and the manifests name it).
RUN python -m pip uninstall --yes --disable-pip-version-check pip setuptools wheel \
 && python -m compileall -q -j 0 -x '/(test|tests|idle_test)/' /usr/local/lib/python3.11 \
 && groupadd --system --gid 10001 crm \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin crm

COPY --from=build /opt/crm /opt/crm
COPY --from=build /app /app

# PYTHONDONTWRITEBYTECODE stays unset: the bytecode compiled above is what makes the start fast.
ENV PATH=/opt/crm/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    CRM_COMPONENT=${COMPONENT} \
    CRM_VERSION=${VERSION}
WORKDIR /app
USER 10001:10001
# gRPC services listen on 50051-50055 (profile, segment, campaign, feedback, risk), the gateway
# on 8080; the kubelet's gRPC probes ask the standard health service on the same port.
EXPOSE 8080 50051 50052 50053 50054 50055
LABEL org.opencontainers.image.title="crm-${COMPONENT}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.description="CRM platform for banks: the ${COMPONENT} component"

# Each process handles SIGTERM itself (NOT_SERVING, drain, close), so it runs as PID 1 directly.
CMD ["python", "/app/serve.py"]
