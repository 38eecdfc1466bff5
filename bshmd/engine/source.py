"""Where the model comes from: a folder named in the config, or ModelScope's hub and cache.

A daemon must never hang at start-up on a dead network, so every call into ModelScope runs in
a daemon thread that we stop waiting for after ``model.fetch_timeout_seconds`` (bshmd.timed).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bshmd.engine.loader import FIX_HINT, GRAPH_FILE
from bshmd.errors import ModelFetchError, ModelLoadError
from bshmd.timed import CallTimeout, call_with_limit

if TYPE_CHECKING:
    from bshmd.config import ModelConfig

log = logging.getLogger("bshmd.engine")

FETCH_THREAD_NAME = "bshmd-model-fetch"


def resolve_model_dir(model_cfg: ModelConfig, fetch: bool) -> Path:
    """The folder holding ``tf_graph.pb`` for ``model_cfg``.

    ``model.path`` wins when set. Otherwise ModelScope's cache is tried first when ``fetch``
    is false (a daemon starting after ``bshmd model fetch``), then the hub is asked, which
    downloads what is missing.
    """
    if model_cfg.path is not None:
        folder = Path(model_cfg.path)
        if not folder.is_dir():
            raise ModelLoadError(f"model folder {folder} (model.path) does not exist: {FIX_HINT}")
        if not (folder / GRAPH_FILE).is_file():
            raise ModelLoadError(f"model file {folder / GRAPH_FILE} is missing: {FIX_HINT}")
        return folder

    if not fetch:
        try:
            return _from_modelscope(model_cfg, local_files_only=True)
        except ModelFetchError as exc:
            log.info("model %s is not in the cache %s (%s); downloading it",
                     model_cfg.id, model_cfg.cache_dir, exc)
    return _from_modelscope(model_cfg, local_files_only=False)


def cached_model_dir(model_cfg: ModelConfig) -> Path:
    """The model's folder in ModelScope's cache; ModelFetchError when it is not there. Never downloads."""
    return _from_modelscope(model_cfg, local_files_only=True)


def _manual_hint(model_cfg: ModelConfig) -> str:
    return (
        f"To run without network access, place the model by hand: on a machine that can reach "
        f"ModelScope, get {GRAPH_FILE} from https://modelscope.cn/models/{model_cfg.id}/files "
        f"(or run `bshmd model fetch`, or `modelscope download --model {model_cfg.id}`), copy it into a "
        f"folder on this machine, set model.path to that folder in the configuration file, and start again"
    )


def _check_reachable(limit: float) -> None:
    """Fail at once, not after modelscope's retries, when its hub cannot even be connected to.

    The hub is where modelscope's own settings point (``MODELSCOPE_DOMAIN``). Behind a proxy
    only modelscope's own attempt can tell, so nothing is checked then.
    """
    from modelscope.hub.utils.utils import resolve_endpoint

    endpoint = urlsplit(resolve_endpoint())
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    if endpoint.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(endpoint.hostname or ""):
        return
    try:
        socket.create_connection((endpoint.hostname or "", port), timeout=min(5.0, limit)).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ModelFetchError(f"ModelScope at {endpoint.hostname}:{port} cannot be reached ({reason})") from exc


def _from_modelscope(model_cfg: ModelConfig, *, local_files_only: bool) -> Path:
    limit = model_cfg.fetch_timeout_seconds
    # ModelScope reads its HTTP timeouts from the environment when first imported; keep a
    # single connection attempt inside our own limit (an operator's explicit values win).
    os.environ.setdefault("MODELSCOPE_API_CONNECT_TIMEOUT", str(max(1, math.ceil(limit / 3))))
    os.environ.setdefault("MODELSCOPE_API_TIMEOUT", str(max(1, math.ceil(limit))))
    # Its own cache and a session file go under ~ unless told otherwise: keep them with the model.
    os.environ.setdefault("MODELSCOPE_CACHE", str(model_cfg.cache_dir))
    os.environ.setdefault("MODELSCOPE_CREDENTIALS_PATH", str(model_cfg.cache_dir / ".modelscope"))
    try:
        from modelscope.hub.snapshot_download import snapshot_download
    except ImportError as exc:
        raise ModelFetchError(f"modelscope cannot be imported ({exc}). {_manual_hint(model_cfg)}.") from exc

    what = "looking up" if local_files_only else "fetching"
    if not local_files_only:
        try:
            _check_reachable(limit)
        except ModelFetchError as exc:
            try:
                folder = _from_modelscope(model_cfg, local_files_only=True)
            except ModelFetchError:
                raise ModelFetchError(
                    f"model {model_cfg.id} cannot be fetched: {exc}. {_manual_hint(model_cfg)}.") from exc
            log.warning("%s; using the copy already in the cache", exc)
            return folder
    log.info("%s model %s (revision %s) in %s", what, model_cfg.id, model_cfg.revision or "default",
             model_cfg.cache_dir)

    def download() -> str:
        return snapshot_download(
            model_cfg.id,
            revision=model_cfg.revision,
            cache_dir=str(model_cfg.cache_dir),
            local_files_only=local_files_only,
        )

    try:
        # A thread cannot be cancelled: a download that overruns is abandoned (it ends when its
        # network call gives up, or with the process) rather than blocking start-up.
        folder = Path(call_with_limit(download, limit, name=FETCH_THREAD_NAME))
    except CallTimeout as exc:
        raise ModelFetchError(
            f"{what} model {model_cfg.id} did not finish within {limit:g} s "
            f"(model.fetch_timeout_seconds). {_manual_hint(model_cfg)}."
        ) from exc
    except Exception as exc:  # modelscope raises its own, requests' and OS errors
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        source = f"cache {model_cfg.cache_dir}" if local_files_only else "ModelScope"
        raise ModelFetchError(
            f"model {model_cfg.id} could not be had from {source} ({type(exc).__name__}: {detail}). "
            f"{_manual_hint(model_cfg)}."
        ) from exc
    if not (folder / GRAPH_FILE).is_file():
        raise ModelFetchError(
            f"ModelScope returned {folder} for {model_cfg.id}, but it holds no {GRAPH_FILE}. "
            f"{_manual_hint(model_cfg)}."
        )
    log.info("model %s is at %s", model_cfg.id, folder)
    return folder
