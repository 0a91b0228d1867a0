# The emulator image: the local stand-in for Azure (AML control plane and
# Azure AD), served over HTTPS by gunicorn.
#
# Build from the repository root:
#   docker build -f docker/emulator.Dockerfile -t aml-jupyterhub-emulator .
# Its flags come from AML_EMULATOR_ARGS (see `aml-emulator --help`). It runs
# as root: with --runtime docker it drives the Docker socket mounted into it.
# Its state (instances, certificates, signing keys) lives in /srv/emulator.

FROM debian:bookworm-slim AS python-build

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# Only the emulator's distribution (it does not import the hub's): gunicorn,
# the docker SDK, and JupyterLab (the process runtime's instances serve it).
COPY spawner/emulator /tmp/emulator
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir /tmp/emulator \
 && /opt/venv/bin/pip uninstall -q -y pip setuptools

FROM debian:bookworm-slim

ARG VERSION=0.1.0
ARG SOURCE=https://github.com/aml-jupyterhub/aml-jupyterhub
ARG REVISION=unknown
LABEL org.opencontainers.image.title="aml-jupyterhub-emulator" \
      org.opencontainers.image.description="Local emulator of the Azure Machine Learning control plane and of Azure AD, for aml-jupyterhub's local mode and tests" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="BSD-3-Clause"

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && install -d -m 0700 /srv/emulator

COPY --from=python-build /opt/venv /opt/venv
# The instance image's build context: with --runtime docker the emulator
# builds aml-jupyterhub-instance:local from here when the image is missing.
COPY docker/instance.Dockerfile /opt/instance-image/instance.Dockerfile
COPY docker/instance /opt/instance-image/instance

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AML_EMULATOR_ARGS="--host 0.0.0.0 --port 8443 --state-dir /srv/emulator"

WORKDIR /srv/emulator
VOLUME /srv/emulator
EXPOSE 8443

# The HEALTHCHECK assumes port 8443 and state dir /srv/emulator (keep them in
# AML_EMULATOR_ARGS); the server certificate always names 127.0.0.1.
HEALTHCHECK --interval=2s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import ssl, urllib.request; urllib.request.urlopen('https://127.0.0.1:8443/_emulator/health', timeout=4, context=ssl.create_default_context(cafile='/srv/emulator/ca.pem'))"]

ENTRYPOINT ["tini", "--"]
CMD ["gunicorn", "-c", "python:aml_emulator.gunicorn_conf", "aml_emulator.app:gunicorn_app()"]
