"""``bshmd process SRC DST``: run the daemon's pipeline once over a folder tree, then exit.

Same decoding, batching, quality gate, outputs and quarantine as the daemon, with no claims
(nothing else competes for the files) and ``on_success: keep``: the inputs stay where they
are. Quarantined inputs are *moved* into the quarantine folder, exactly as the daemon does,
so that a second run over SRC retries only what was fixed and requeued. The tree is taken to
be complete: a file that reads as cut short is quarantined at once (no truncated grace).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bshmd.config import Config, FolderConfig, load_config, parse_config
from bshmd.errors import EXIT_FAILURE, EXIT_OK, EXIT_QUARANTINED, ConfigError
from bshmd.ledger.keys import FileKey
from bshmd.ledger.outcome import PROCESSED, QUARANTINED, RECOVERED, RELEASED, Outcome
from bshmd.pipeline.job import Job


def default_quarantine(dst: Path) -> Path:
    return dst.parent / (dst.name + ".quarantine")


def build_config(src: Path, dst: Path, *, quarantine: Path | None, model_path: Path | None,
                 config_file: Path | None) -> Config:
    """The configuration of a one-shot run: one folder pair SRC → DST, files kept on success."""
    src, dst = Path(os.path.abspath(src)), Path(os.path.abspath(dst))
    quarantine = Path(os.path.abspath(quarantine)) if quarantine else default_quarantine(dst)
    folder = {"input": str(src), "output": str(dst), "quarantine": str(quarantine)}
    if config_file is not None:
        # The file's own ``folders`` (if any) are replaced by SRC → DST, so a one-shot
        # configuration may leave them out; everything else applies as in the daemon.
        data = _read_mapping(Path(config_file))
        data.pop("folders", None)
        base_dir = Path(config_file).resolve().parent
    else:
        if model_path is None:
            raise ConfigError("no model: pass --model DIR (a folder holding tf_graph.pb) or -c FILE")
        data = {}
        base_dir = Path.cwd()
    data["folders"] = [folder]
    data["on_success"] = "keep"
    data["truncated_grace_seconds"] = 0
    if model_path is not None:
        data.setdefault("model", {})["path"] = str(Path(os.path.abspath(model_path)))
    return parse_config(data, base_dir=base_dir, source=config_file)


def _read_mapping(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        load_config(path)  # raises the daemon's precise ConfigError for this file
        raise
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def find_inputs(folder: FolderConfig, config: Config) -> Iterator[Path]:
    """Every candidate image below the input folder, by the daemon's own rules, in sorted order."""
    from bshmd.fs.walk import walk
    from bshmd.ingest.filters import PathFilter, excluded_dirs_for

    path_filter = PathFilter(folder.input, config.extensions, excluded_dirs_for([folder]), folder.ignore,
                             config.raw_pairs_for(folder))
    for path, _st in walk(folder.input, path_filter):
        if path_filter.paired_with(path) is None:
            yield path


def run_process(src: Path, dst: Path, *, quarantine: Path | None, model_path: Path | None,
                config_file: Path | None, progress: bool | None) -> int:
    from rich.console import Console
    from rich.logging import RichHandler

    from bshmd.engine import MattingEngine
    from bshmd.pipeline.pipeline import Pipeline

    config = build_config(src, dst, quarantine=quarantine, model_path=model_path, config_file=config_file)
    folder = config.folders[0]
    for path in (folder.output, folder.quarantine):
        path.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    inputs = list(find_inputs(folder, config))
    if progress is None:
        progress = sys.stderr.isatty()

    # Quarantine warnings go through rich, so they print above the progress bar, not through it.
    handler = RichHandler(console=console, show_time=False, show_path=False, level=logging.WARNING)
    logger = logging.getLogger("bshmd")
    logger.addHandler(handler)
    if config.logging.level == "DEBUG":
        logger.setLevel(logging.DEBUG)  # also lets TensorFlow log its start-up (bshmd/engine/tf.py)
    try:
        engine = MattingEngine.from_config(config.model, fetch=config.model.path is None)
        try:
            return _run(config, folder, engine, inputs, progress, console, Pipeline)
        finally:
            engine.close()
    finally:
        logger.removeHandler(handler)


def _run(config: Config, folder: FolderConfig, engine: Any, inputs: list[Path], progress: bool,
         console: Any, pipeline_class: Any) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    outcomes: Counter[tuple[str, str | None]] = Counter()  # (kind, reason) → files
    lock = threading.Lock()
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=console, disable=not progress, transient=False)
    task = bar.add_task("processing", total=len(inputs))

    def on_done(job: Job, outcome: Outcome) -> None:
        with lock:
            outcomes[outcome.kind, outcome.reason] += 1
        bar.advance(task)

    pipeline = pipeline_class(config, engine, instance_id=config.effective_instance_id, on_done=on_done)
    started = time.monotonic()
    with bar:
        pipeline.start()
        try:
            for path in inputs:
                try:
                    key = FileKey.of(folder.input, path)
                except OSError as exc:  # vanished between the walk and now
                    console.print(f"skipped {path}: {exc.strerror or exc}")
                    continue
                pipeline.submit(Job(folder=folder, path=path, key=key, claim=None))
            pipeline.wait_idle(timeout=None)
        finally:
            pipeline.stop(timeout=config.shutdown_timeout)
    elapsed = max(time.monotonic() - started, 1e-9)
    return _summarise(outcomes, elapsed, folder)


def _summarise(outcomes: Counter[tuple[str, str | None]], elapsed: float, folder: FolderConfig) -> int:
    processed = sum(n for (kind, _), n in outcomes.items() if kind in (PROCESSED, RECOVERED))
    quarantined = {str(reason): n for (kind, reason), n in outcomes.items() if kind == QUARANTINED}
    released = {str(reason): n for (kind, reason), n in outcomes.items() if kind == RELEASED}
    total = sum(outcomes.values())
    print(f"processed {processed} of {total} images in {elapsed:.1f}s ({total / elapsed:.2f} images/s)")
    print(f"results: {folder.output}")
    if quarantined:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(quarantined.items()))
        print(f"quarantined {sum(quarantined.values())} ({reasons}) into {folder.quarantine}")
    if released:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(released.items()))
        print(f"not processed {sum(released.values())} ({reasons}); run again to retry them")
        return EXIT_FAILURE
    return EXIT_QUARANTINED if quarantined else EXIT_OK
