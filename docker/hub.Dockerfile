# The hub image: JupyterHub, configurable-http-proxy and the AML spawner.
#
# Build from the repository root (it copies spawner/ and hub/):
#   docker build -f docker/hub.Dockerfile -t aml-jupyterhub .
# or `make image`. Runs as the unprivileged user jupyterhub (uid 1000); its
# working directory /srv/jupyterhub is the data volume: the database, the
# cookie secret and the hub's SSH key live there and survive upgrades.
#
# Three stages, so no pip, npm or build tool ends up in the final image.
# The same image runs the proxy's container (`aml-jupyterhub-proxy`: the
# proxy and the SSH tunnels, see compose.yaml).

# -- Python: a venv with the spawner, JupyterHub and the Azure AD login ---------
FROM debian:bookworm-slim AS python-build

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# Only the hub's distribution: the emulator (spawner/emulator, its own
# package and image) and its test identities never enter this image.
COPY spawner/pyproject.toml spawner/README.md /tmp/spawner/
COPY spawner/aml_jupyterhub /tmp/spawner/aml_jupyterhub
# jupyterhub, oauthenticator and the idle culler come with the spawner
# package; its [postgres] extra adds psycopg2 for HUB_DB_URL=postgresql://...
# (a wheel with its own libpq: nothing to apt-get). pip compiles the .pyc
# files here, which matters: the runtime user cannot write into /opt/venv, so
# without them every hub start would compile the Azure SDK again. pip and
# setuptools are not needed at run time.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir '/tmp/spawner[postgres]'
# JupyterHub's wheels for compute instances, which may have no internet: the
# hub sends them over SSH at a first spawn (aml_jupyterhub.bootstrap). One set
# per CPython the instances' envs may have (AML's are 3.10); every Azure ML VM
# size is x86_64. The hub's own version of JupyterHub, read from the venv.
ARG INSTANCE_PYTHONS="3.10 3.11 3.12 3.13"
RUN /opt/venv/bin/python -m aml_jupyterhub.wheelhouse --dest /opt/aml-jupyterhub/wheelhouse \
      --python ${INSTANCE_PYTHONS} \
 && chmod -R a+rX /opt/aml-jupyterhub \
 && /opt/venv/bin/pip uninstall -q -y pip setuptools

# -- configurable-http-proxy from npm (npm stays in this stage) -----------------
FROM debian:bookworm-slim AS chp-build

ARG CHP_VERSION=4
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nodejs npm ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
RUN npm install --global --prefix /opt/chp --omit=dev --no-audit --no-fund --loglevel=error \
      "configurable-http-proxy@${CHP_VERSION}" \
 && rm -rf /root/.npm

# -- the hub --------------------------------------------------------------------
FROM debian:bookworm-slim

ARG VERSION=0.1.0
ARG SOURCE=https://github.com/aml-jupyterhub/aml-jupyterhub
ARG REVISION=unknown
LABEL org.opencontainers.image.title="aml-jupyterhub" \
      org.opencontainers.image.description="JupyterHub that runs each user's notebook server on their own Azure Machine Learning compute instance" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="BSD-3-Clause"

# python3 for the venv (same interpreter path as in the build stage), nodejs
# for the proxy, the OpenSSH client for the tunnels (aml-jupyterhub-proxy),
# tini as PID 1 (reaps children, forwards docker stop's SIGTERM)
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 nodejs openssh-client tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && useradd --uid 1000 --user-group --no-create-home --home-dir /srv/jupyterhub \
      --shell /usr/sbin/nologin jupyterhub \
 && install -d -m 0750 -o jupyterhub -g jupyterhub /srv/jupyterhub \
 && install -d -m 0700 -o jupyterhub -g jupyterhub /srv/proxy-secrets /run/aml-tunnels

COPY --from=python-build /opt/venv /opt/venv
COPY --from=python-build /opt/aml-jupyterhub/wheelhouse /opt/aml-jupyterhub/wheelhouse
COPY --from=chp-build /opt/chp /opt/chp
RUN ln -s /opt/chp/bin/configurable-http-proxy /usr/local/bin/configurable-http-proxy
COPY hub /etc/jupyterhub

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1

USER jupyterhub
WORKDIR /srv/jupyterhub
VOLUME /srv/jupyterhub
EXPOSE 8000

# The hub's own API port (JupyterHub's default hub_bind_url, 127.0.0.1:8081);
# /hub/health answers without login (over internal TLS in direct mode: aml_jupyterhub.health).
# Docker starts it with the container's whole environment, secrets included,
# as the hub's user: env drops them (settings.SECRET_VARIABLES) before Python starts.
HEALTHCHECK --interval=2s --timeout=5s --start-period=60s --retries=3 \
  CMD ["env", "-u", "AAD_CLIENT_SECRET", "-u", "AZURE_CLIENT_SECRET", "-u", "AML_STATIC_TOKEN", \
       "-u", "HUB_DB_PASSWORD", "python3", "-m", "aml_jupyterhub.health"]

# Takes the secrets out of the environment, hands them to the command on a
# pipe and execs tini (PID 1) with the command: see aml_jupyterhub/launch.py.
ENTRYPOINT ["aml-jupyterhub-launch"]
CMD ["jupyterhub", "-f", "/etc/jupyterhub/jupyterhub_config.py"]
