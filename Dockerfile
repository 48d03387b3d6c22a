# The deltagate image: a small, non-root image that runs with a read-only root filesystem.
#
#   docker build -t deltagate:0.1.0 .        (or podman / buildah / kaniko, same file)
#
# The Kubernetes manifests (k8s/) run it as `deltagate serve --config /etc/deltagate/gateway.toml`
# with that folder mounted from ConfigMaps and Secrets, as user 10001, writing only to /tmp (an
# emptyDir). Set the image the cluster pulls with kustomize's `images:` (k8s/base/kustomization.yaml).

# --- build: install the project and its dependencies into a virtual environment ---------------
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY schema ./schema
COPY resolvers ./resolvers
COPY policies ./policies

# Every dependency ships manylinux wheels (asyncpg, uvloop, httptools, orjson, cryptography),
# so no compiler is needed. Not editable: the image holds the code, not the source tree.
RUN python -m venv /opt/deltagate \
 && /opt/deltagate/bin/pip install . \
 && /opt/deltagate/bin/python -m compileall -q /opt/deltagate

# --- run: the virtual environment on the same slim base, nothing else ---------------------------
FROM python:3.11-slim-bookworm

COPY --from=build /opt/deltagate /opt/deltagate

# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only; the bytecode was compiled above.
# TMPDIR: `serve --workers N` makes its Prometheus multiprocess folder there (an emptyDir).
ENV PATH=/opt/deltagate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp

# The configuration folder the manifests mount into; empty in the image.
RUN mkdir -p /etc/deltagate

# A numeric user and group, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000

ENTRYPOINT ["deltagate"]
CMD ["serve", "--config", "/etc/deltagate/gateway.toml"]
