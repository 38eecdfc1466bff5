# bshmd on an NVIDIA GPU. Build: docker build -t bshmd:0.3.0 .   Run: see docker-compose.yml.
# The TensorFlow GPU image brings CUDA, cuDNN and a matching TensorFlow build; bshmd installs
# beside it so that TensorFlow is reused rather than downloaded a second time.
# Without TensorFlow (model.runtime onnxruntime or openvino on an export made by
# `bshmd model export`), the same image on a plain Python base, a tenth of the size:
#   docker build --build-arg BASE_IMAGE=python:3.11-slim-bookworm \
#     --build-arg RUNTIMES="onnxruntime==1.32.0 openvino==2026.4.1" -t bshmd:0.3.0-onnx .
# For CUDA/TensorRT without TensorFlow, base it on an NVIDIA CUDA runtime image and name
# onnxruntime-gpu in RUNTIMES.
ARG BASE_IMAGE=tensorflow/tensorflow:2.17.0-gpu
FROM ${BASE_IMAGE}
# Runtimes installed beside bshmd, as pip requirement specifiers (none: the base image's TensorFlow).
ARG RUNTIMES=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=1 \
    BSHMD_STATE_DIR=/var/lib/bshmd \
    BSHMD_HEALTHCHECK_URL=http://127.0.0.1:9464/healthz

# A fixed uid/gid, so that bind-mounted hot folders can be given to it on the host
# (docker-compose.yml runs as BSHMD_UID:BSHMD_GID, 10001 unless set).
RUN groupadd --system --gid 10001 bshmd \
    && useradd --system --uid 10001 --gid bshmd --home-dir /var/lib/bshmd --no-create-home \
       --shell /usr/sbin/nologin bshmd \
    && mkdir -p /var/lib/bshmd/model-cache /etc/bshmd \
    && chown -R bshmd:bshmd /var/lib/bshmd

WORKDIR /opt/bshmd
COPY pyproject.toml README.md ./
COPY bshmd ./bshmd
# No systemd extra: a container has no NOTIFY_SOCKET; logs go to stderr for `docker logs`.
# No tensorflow extra either: the base image's TensorFlow is the one to use.
# RUNTIMES is a list of requirement specifiers, split into words on purpose.
# hadolint ignore=SC2086
RUN pip install --no-cache-dir . ${RUNTIMES} \
    && bshmd --version

COPY etc/docker/bshmd.yaml /etc/bshmd/bshmd.yaml

USER 10001:10001
# The model and its download cache survive container rebuilds.
VOLUME ["/var/lib/bshmd"]
EXPOSE 9464

# /healthz answers while the daemon's main loop is responsive; the long start period
# covers a first model download.
HEALTHCHECK --interval=30s --timeout=10s --start-period=15m --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['BSHMD_HEALTHCHECK_URL'], timeout=8)"]

# SIGTERM finishes the batch in flight; give it stop_grace_period > shutdown_timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["bshmd", "run"]
CMD ["-c", "/etc/bshmd/bshmd.yaml"]
