# coin-sync: one sync pass per container run, exit code included.
#   Kubernetes CronJob / `docker run --rm coin-sync`   -> CMD ["run"], one pass
#   docker compose                                     -> command ["loop"]
#   docker run coin-sync check | symbols | loop        -> the other subcommands
#
# Stages: builder (the venv) -> demo (fake backend for `docker compose --profile demo`)
# -> runtime. runtime is the LAST stage on purpose: a plain `docker build .` gives it.
#
# The same minor version that CI tests and mypy targets (3.11), so what ships is what
# was tested; the Debian release is named so a rebuild cannot switch it silently.

# --- builder: /opt/venv from the pinned requirements, then the package itself --------
FROM python:3.11-slim-trixie AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# No pip inside the venv: the base image's pip installs into it (--python), so the
# runtime image carries no installer it never uses.
RUN python -m venv --without-pip /opt/venv

WORKDIR /src
# Dependencies first: this layer is reused until requirements.txt changes.
COPY requirements.txt ./
RUN pip --python /opt/venv/bin/python install --no-cache-dir -r requirements.txt

COPY pyproject.toml README.md ./
COPY coin_sync/ ./coin_sync/
# With a read-only root and PYTHONDONTWRITEBYTECODE, Python can never refresh a stale
# .pyc at run time; unchecked-hash .pyc files are used whatever mtimes the COPY into the
# runtime stage leaves, so no pass ever recompiles requests & co. in memory.
RUN pip --python /opt/venv/bin/python install --no-cache-dir --no-deps . \
    && /opt/venv/bin/python -m compileall -q -f --invalidation-mode unchecked-hash /opt/venv/lib

# --- demo: the contract's test double, only for `docker compose --profile demo` -----
# Standard library only, so it needs nothing from the builder; .dockerignore lets
# exactly this one file of tests/ into the build context.
FROM python:3.11-slim-trixie AS demo

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY tests/fake_backend.py /opt/demo/fake_backend.py
USER 10001:10001
EXPOSE 8888
ENTRYPOINT ["python", "/opt/demo/fake_backend.py"]
CMD ["--host", "0.0.0.0", "--port", "8888", "--symbols", "5"]

# --- runtime -------------------------------------------------------------------------
FROM python:3.11-slim-trixie AS runtime

# PYTHONSAFEPATH: `python -m` would otherwise put the working directory first on
# sys.path, where any coin_sync/ or requests.py lying there would shadow the venv.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONSAFEPATH=1 \
    LOG_DIR=/logs

# A fixed numeric UID/GID lets Kubernetes check runAsNonRoot without a runAsUser
# override; the passwd entry only gives `ps`/`id` a name. /logs is the one directory
# the program writes besides /tmp; everything else can be a read-only root.
# The base image's own pip, setuptools and wheel go too: the program never installs
# anything, and scanners flag what ships unused.
RUN python -m pip uninstall --no-cache-dir -y pip setuptools wheel \
    && rm -rf /usr/local/bin/pip* /root/.cache \
    && groupadd --system --gid 10001 coinsync \
    && useradd --system --no-log-init --uid 10001 --gid 10001 \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin coinsync \
    && install -d -o 10001 -g 10001 -m 0755 /logs

# Root-owned and so read-only for the user that runs it.
COPY --from=builder /opt/venv /opt/venv

# Last, so a new revision only changes this metadata layer.
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="coin-sync" \
      org.opencontainers.image.description="Una pasada de sincronización de velas de 1 minuto contra el backend de datos de mercado; sale con un código de estado (0, 1, 2, 3, 4, 130, 143)." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-trixie"

USER 10001:10001
# Exec form: Python is PID 1 and receives SIGTERM itself (no shell in between).
ENTRYPOINT ["python", "-m", "coin_sync"]
CMD ["run"]
