# The emulated AML compute instance: what the emulator's Docker runtime runs
# for each "VM". It mimics the parts of a real compute instance the hub relies
# on (see shared/reference/aml-instance-runtime.md):
#   - user azureuser (uid 1000, passwordless sudo), home /home/azureuser;
#   - sshd, key-only, on 50000 (the port AML reports for public SSH) and 22
#     (the private-IP port), TCP forwarding allowed so `ssh -L` works;
#   - a Python env at AML's path /anaconda/envs/azureml_py310_sdkv2 with
#     jupyterlab and jupyterhub pinned to the hub's version. As on a real
#     instance it is activated only in interactive shells: a non-interactive
#     `ssh host cmd` sees Debian's /usr/bin/python3, so callers must use the
#     env by absolute path.
# Build (context is docker/):
#   docker build -f docker/instance.Dockerfile -t aml-jupyterhub-instance:local docker/
FROM debian:bookworm-slim

ARG JUPYTERHUB_VERSION=6.1.1
ARG JUPYTERLAB_VERSION=4.6.6
ENV AML_ENV=/anaconda/envs/azureml_py310_sdkv2

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      openssh-server sudo tini python3 python3-venv procps less \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 # every container makes its own host keys on first boot
 && rm -f /etc/ssh/ssh_host_*

RUN python3 -m venv "$AML_ENV" \
 && "$AML_ENV/bin/pip" install --no-cache-dir --no-compile \
      "jupyterhub==${JUPYTERHUB_VERSION}" "jupyterlab==${JUPYTERLAB_VERSION}" \
 && find "$AML_ENV" -name __pycache__ -prune -exec rm -rf {} +

RUN useradd --create-home --uid 1000 --shell /bin/bash azureuser \
 # no password at all ("*" rather than the locked "!"), so only keys log in
 && usermod -p '*' azureuser \
 && echo 'azureuser ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/azureuser \
 && chmod 0440 /etc/sudoers.d/azureuser \
 && install -d -m 0700 -o azureuser -g azureuser /home/azureuser/.ssh \
 && printf '\n# as on AML: the conda-style env is active in interactive shells only\nexport PATH="%s/bin:$PATH"\n' "$AML_ENV" \
      >> /home/azureuser/.bashrc

COPY instance/sshd_config /etc/ssh/sshd_config.d/aml-instance.conf
COPY instance/entrypoint.sh /usr/local/bin/aml-instance-entrypoint
# (no COPY --chmod: the legacy builder, which the docker SDK also uses, lacks it)
RUN chmod 0755 /usr/local/bin/aml-instance-entrypoint \
 && chmod 0644 /etc/ssh/sshd_config.d/aml-instance.conf

EXPOSE 50000 22
# tini is PID 1: it reaps what users start (nohup ... &) and forwards docker stop's SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/aml-instance-entrypoint"]
