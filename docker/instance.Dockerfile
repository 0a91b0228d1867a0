# The emulated AML compute instance: what the emulator's Docker runtime runs
# for each "VM". It presents itself as a real compute instance does, and is no
# kinder (see shared/reference/aml-instance-runtime.md):
#   - user azureuser (uid 1000, no password, passwordless sudo), home
#     /home/azureuser;
#   - sshd, key-only, on 50000 (the port AML reports for public SSH) and 22
#     (the private-IP port), TCP forwarding allowed so `ssh -L` works;
#   - an old system Python: /usr/bin/python3 is 3.9 here (Debian bullseye),
#     standing in for Ubuntu 20.04's 3.8 on AML; both are below JupyterHub's
#     floor (3.10), so nothing of the hub runs on it;
#   - AML's Anaconda layout at /anaconda, envs jupyter_env (AML's own Jupyter
#     service), azureml_py310_sdkv2 and azureml_py38, all Python 3.10+; the
#     kernels registered in jupyter_env's prefix; azureml_py38 active in
#     interactive shells only (a non-interactive `ssh host cmd` sees
#     /usr/bin/python3), so callers must name an env's python by absolute path;
#   - NO jupyterhub anywhere (a build check below fails the build otherwise):
#     a spawner must bring its own jupyterhub-singleuser, as on Azure.
# What the runtime adds per container: the workspace file share under
# /mnt/batch/tasks/shared/LS_root/mounts/clusters/<ci>/code (~/cloudfiles/code
# links to it), /mnt as a tmpfs (AML's temp disk, wiped on stop).
#
# Buildable by the legacy builder (the docker SDK's): no COPY --chmod, no heredocs.
# Build (context is docker/):
#   docker build -f docker/instance.Dockerfile -t aml-jupyterhub-instance:local docker/

# AML's envs are Python 3.10 per the docs (image release notes); 3.11 is the
# nearest CPython source Debian serves (bookworm's python3.11), and like 3.10
# it is >= JupyterHub's floor, which is the constraint that matters here.
ARG PYTHON_SOURCE_SUITE=bookworm
ARG PYTHON_SOURCE_PACKAGE=python3.11
ARG PYTHON_MINOR=3.11
ARG JUPYTERLAB_VERSION=4.6.6
ARG IPYKERNEL_VERSION=7.4.0

# ---- builder: CPython from Debian's source package, into /anaconda ----------
# No conda channel is reachable; a CPython with --prefix=/anaconda gives the
# same paths (/anaconda/bin/python3, /anaconda/envs/<env>/bin/python).
FROM debian:bullseye-slim AS python-build

ARG PYTHON_SOURCE_SUITE
ARG PYTHON_SOURCE_PACKAGE
ARG PYTHON_MINOR

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc make libc6-dev binutils pkg-config xz-utils \
      libssl-dev libffi-dev libsqlite3-dev libbz2-dev liblzma-dev zlib1g-dev \
      libreadline-dev libncursesw5-dev uuid-dev

# A deb-src line for the source suite, derived from the image's own apt
# source (same mirror), so no host name is written here.
RUN sed -n "s|^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) bullseye main.*|deb-src \2 ${PYTHON_SOURCE_SUITE} main|p" \
      /etc/apt/sources.list > /etc/apt/sources.list.d/python-source.list \
 && grep -q '^deb-src ' /etc/apt/sources.list.d/python-source.list \
 && apt-get update \
 && install -d -o _apt /usr/src/python \
 && cd /usr/src/python \
 && apt-get source --download-only "${PYTHON_SOURCE_PACKAGE}" \
 && install -d src \
 && orig=$(ls "${PYTHON_SOURCE_PACKAGE}"_*.orig.tar.* | grep -v '\.asc$') \
 && tar -xf "$orig" -C src --strip-components=1

# The upstream tarball as is (no Debian patches), no PGO, no LTO, no tests.
RUN cd /usr/src/python/src \
 && ./configure --prefix=/anaconda --with-ensurepip=install --without-static-libpython \
 && make -j"$(nproc)" \
 && make install \
 && /anaconda/bin/python${PYTHON_MINOR} -c 'import ssl, ctypes, sqlite3, bz2, lzma, zlib, readline, uuid, _uuid, venv, ensurepip; print("built", __import__("sys").version, ssl.OPENSSL_VERSION)' \
 && rm -rf /anaconda/lib/python${PYTHON_MINOR}/test /anaconda/lib/python${PYTHON_MINOR}/idlelib/idle_test \
      /anaconda/lib/python${PYTHON_MINOR}/tkinter/test /anaconda/lib/python${PYTHON_MINOR}/lib2to3/tests \
      /anaconda/share/man \
 && find /anaconda -name '*.opt-[12].pyc' -delete \
 && strip --strip-unneeded /anaconda/bin/python${PYTHON_MINOR} \
 && find /anaconda -type f -name '*.so' -exec strip --strip-unneeded {} +

# ---- the instance ------------------------------------------------------------
FROM debian:bullseye-slim

ARG PYTHON_MINOR
ARG JUPYTERLAB_VERSION
ARG IPYKERNEL_VERSION

# python3 is bullseye's (3.9): the old system Python a real instance has.
# The lib* packages are what the /anaconda CPython links against.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      openssh-server sudo tini procps less python3 ca-certificates acl \
      util-linux tar gzip coreutils \
      libssl1.1 libffi7 libsqlite3-0 libbz2-1.0 liblzma5 zlib1g libreadline8 libncursesw6 libuuid1 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 # every container makes its own host keys on first boot
 && rm -f /etc/ssh/ssh_host_*

COPY --from=python-build /anaconda /anaconda

# AML's envs. jupyter_env holds AML's own Jupyter service (jupyterlab brings
# jupyter_server); the other two are the user's, each a kernel. azureml_py38
# is Python 3.10+ too despite its name, as AML's release notes say of it.
RUN export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
 && for env in jupyter_env azureml_py310_sdkv2 azureml_py38; do \
      /anaconda/bin/python${PYTHON_MINOR} -m venv "/anaconda/envs/$env" || exit 1; \
    done \
 && /anaconda/envs/jupyter_env/bin/pip install --no-cache-dir --no-compile \
      "jupyterlab==${JUPYTERLAB_VERSION}" \
 && /anaconda/envs/azureml_py310_sdkv2/bin/pip install --no-cache-dir --no-compile \
      "jupyterlab==${JUPYTERLAB_VERSION}" "ipykernel==${IPYKERNEL_VERSION}" \
 && /anaconda/envs/azureml_py38/bin/pip install --no-cache-dir --no-compile \
      "ipykernel==${IPYKERNEL_VERSION}" \
 # The kernels, registered as AML does, in jupyter_env's prefix. That location
 # is not documented: this takes the HARDER assumption that they live there
 # (not in /usr/local/share/jupyter), so a Jupyter server from another env does
 # not see them unless it looks in /anaconda/envs/jupyter_env/share/jupyter.
 # argv[0] is the env's python by absolute path (ipykernel writes sys.executable).
 && /anaconda/envs/azureml_py310_sdkv2/bin/python -m ipykernel install --prefix /anaconda/envs/jupyter_env \
      --name python310-sdkv2 --display-name "Python 3.10 - SDK v2" \
 && /anaconda/envs/azureml_py38/bin/python -m ipykernel install --prefix /anaconda/envs/jupyter_env \
      --name python38-azureml --display-name "Python 3.8 - AzureML" \
 # argv as a Python 3.10 ipykernel writes it: on 3.11 it adds -Xfrozen_modules=off (for the debugger)
 && for spec in python310-sdkv2:azureml_py310_sdkv2 python38-azureml:azureml_py38; do \
      /anaconda/envs/jupyter_env/bin/python -c 'import json, sys; path, py = sys.argv[1:]; spec = json.load(open(path)); spec["argv"] = [py, "-m", "ipykernel_launcher", "-f", "{connection_file}"]; json.dump(spec, open(path, "w"), indent=1)' \
        "/anaconda/envs/jupyter_env/share/jupyter/kernels/${spec%%:*}/kernel.json" "/anaconda/envs/${spec#*:}/bin/python" \
      || exit 1; \
    done \
 # ipykernel's wheel also drops an env-local "python3" spec into each env's
 # prefix: gone, so jupyter_env's two are the only registrations
 && rm -rf /anaconda/envs/*/share/jupyter/kernels/python3 \
 && find /anaconda/envs -name __pycache__ -prune -exec rm -rf {} +

# Build checks: what makes this image an AML instance rather than a kind one.
RUN set -e; export PYTHONDONTWRITEBYTECODE=1; \
    for py in /usr/bin/python3 /anaconda/bin/python3 /anaconda/envs/*/bin/python; do \
      if "$py" -c 'import jupyterhub' 2>/dev/null; then \
        echo "jupyterhub is importable by $py: AML instances do not ship it" >&2; exit 1; \
      fi; \
    done; \
    if ls /anaconda/envs/*/bin/jupyterhub* /usr/local/bin/jupyterhub* >/dev/null 2>&1; then \
      echo "a jupyterhub command is installed: AML instances do not ship it" >&2; exit 1; \
    fi; \
    /usr/bin/python3 -c 'import sys; assert sys.version_info[:2] == (3, 9), sys.version'; \
    for env in jupyter_env azureml_py310_sdkv2 azureml_py38; do \
      /anaconda/envs/$env/bin/python -c 'import sys; assert sys.version_info >= (3, 10), sys.version'; \
    done; \
    /anaconda/envs/azureml_py310_sdkv2/bin/python -c 'import ipykernel, jupyterlab'; \
    /anaconda/envs/azureml_py38/bin/python -c 'import ipykernel'; \
    /anaconda/envs/jupyter_env/bin/python -c 'import jupyterlab, jupyter_server'; \
    ls /anaconda/envs/jupyter_env/share/jupyter/kernels/python310-sdkv2/kernel.json \
       /anaconda/envs/jupyter_env/share/jupyter/kernels/python38-azureml/kernel.json >/dev/null; \
    grep -q '"/anaconda/envs/azureml_py310_sdkv2/bin/python"' /anaconda/envs/jupyter_env/share/jupyter/kernels/python310-sdkv2/kernel.json; \
    grep -q '"/anaconda/envs/azureml_py38/bin/python"' /anaconda/envs/jupyter_env/share/jupyter/kernels/python38-azureml/kernel.json; \
    test ! -e /anaconda/envs/azureml_py310_sdkv2/share/jupyter/kernels/python3; \
    test ! -e /anaconda/envs/azureml_py38/share/jupyter/kernels/python3; \
    test ! -e /usr/local/share/jupyter/kernels; \
    test -z "$(find /anaconda/envs -name __pycache__ -print -quit)"

RUN useradd --create-home --uid 1000 --shell /bin/bash azureuser \
 # no password at all ("*" rather than the locked "!"), so only keys log in
 && usermod -p '*' azureuser \
 && echo 'azureuser ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/azureuser \
 && chmod 0440 /etc/sudoers.d/azureuser \
 && install -d -m 0700 -o azureuser -g azureuser /home/azureuser/.ssh \
 # Debian's bashrc returns early when the shell is not interactive; what is
 # appended after that line only reaches terminals, as AML's conda activation
 && grep -q 'If not running interactively' /home/azureuser/.bashrc \
 && printf '\n%s\n%s\n%s\n%s\n' \
      '# as on AML: terminals open with azureml_py38 active (interactive shells only)' \
      'export PATH="/anaconda/envs/azureml_py38/bin:$PATH"' \
      'export CONDA_DEFAULT_ENV=azureml_py38' \
      'PS1="(azureml_py38) $PS1"' \
      >> /home/azureuser/.bashrc

COPY instance/sshd_config /etc/ssh/sshd_config.d/aml-instance.conf
COPY instance/entrypoint.sh /usr/local/bin/aml-instance-entrypoint
# (no COPY --chmod: the legacy builder, which the docker SDK also uses, lacks it)
RUN chmod 0755 /usr/local/bin/aml-instance-entrypoint \
 && chmod 0644 /etc/ssh/sshd_config.d/aml-instance.conf

EXPOSE 50000 22
# tini is PID 1: it reaps what users start (nohup ... &) and forwards docker stop's SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/aml-instance-entrypoint"]
