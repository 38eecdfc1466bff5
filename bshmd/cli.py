"""The ``bshmd`` command line.

Every command imports its implementation inside its body: ``bshmd --help`` must stay
instant, and only commands that load the model pay for importing TensorFlow.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bshmd import __version__
from bshmd.errors import BshmdError

CONFIG_HELP = "Configuration file (default: $BSHMD_CONFIG)."


def _config_option(required: bool = True):  # noqa: ANN202 - click decorator factory
    return click.option(
        "-c",
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=CONFIG_HELP if required else CONFIG_HELP + " Optional.",
    )


def _load(config_file: Path | None):  # noqa: ANN202
    from bshmd.config import config_path_from, load_config

    return load_config(config_path_from(config_file))


class BshmdGroup(click.Group):
    """Turns bshmd's own errors into one clear line and their documented exit status."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        try:
            return super().invoke(ctx)
        except BshmdError as exc:
            for line in str(exc).splitlines() or [type(exc).__name__]:
                click.echo(f"bshmd: error: {line}", err=True)
            sys.exit(exc.exit_status)


@click.group(cls=BshmdGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="bshmd")
def main() -> None:
    """bshmd watches hot folders and turns portrait photos into cut-outs with BSHM.

    \b
    Exit codes: 0 ok · 1 internal error · 2 usage or configuration error ·
    3 model cannot be fetched or loaded · 4 `process` finished with quarantined inputs ·
    5 host not fit to run (e.g. NOTIFY_SOCKET without systemd-python) · 130 forced stop.
    """


@main.command("check-config")
@_config_option()
def check_config(config_file: Path | None) -> None:
    """Validate the configuration and print it with every default filled in."""
    from bshmd.config import dump_effective

    config = _load(config_file)
    click.echo(f"# {config.source}: valid")
    click.echo(dump_effective(config), nl=False)


@main.command()
@_config_option()
def run(config_file: Path | None) -> None:
    """Run the daemon in the foreground until SIGTERM or SIGINT."""
    from bshmd.service.daemon import run_daemon
    from bshmd.service.firstrun import announce_folders

    config = _load(config_file)
    announce_folders(config, click.echo)
    sys.exit(run_daemon(config))


@main.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(file_okay=False, path_type=Path))
@click.option("--quarantine", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Quarantine folder (default: DST/../<DST name>.quarantine).")
@click.option("--model", "model_path", type=click.Path(path_type=Path), default=None,
              help="Local model folder holding tf_graph.pb (overrides the configuration).")
@_config_option(required=False)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
def process(src: Path, dst: Path, quarantine: Path | None, model_path: Path | None,
            config_file: Path | None, progress: bool | None) -> None:
    """Process every image under SRC once, write results under DST, then exit.

    Inputs that are processed stay where they are; inputs that fail are MOVED into the
    quarantine folder with their reason, as the daemon does. Exit status 4 when any was.
    """
    from bshmd.oneshot import run_process

    sys.exit(run_process(src, dst, quarantine=quarantine, model_path=model_path,
                         config_file=config_file, progress=progress))


@main.command()
@_config_option()
@click.option("--user", default=None, help="Judge folder permissions for this account (default: the current one).")
def doctor(config_file: Path | None, user: str | None) -> None:
    """Check this set-up (model, TensorFlow, folders, space, limits, port, clock) and say how to fix it.

    Changes nothing. Exit status 1 when any check fails, 0 otherwise (warnings included).
    """
    from bshmd.config import config_path_from
    from bshmd.doctor import Host, exit_status, render, run_checks

    checks = run_checks(config_path_from(config_file), Host(user=user))
    click.echo(render(checks), nl=False)
    sys.exit(exit_status(checks))


@main.group()
def model() -> None:
    """Get the model ahead of time."""


@model.command("fetch")
@_config_option()
def model_fetch(config_file: Path | None) -> None:
    """Download the model (or verify the local folder) and print where it is."""
    from bshmd.engine.source import resolve_model_dir

    config = _load(config_file)
    click.echo(resolve_model_dir(config.model, fetch=True))


@model.command("export")
@_config_option()
@click.option("--to", "to", type=click.Choice(["onnx", "openvino"]), default="onnx", show_default=True)
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True)
def model_export(config_file: Path | None, to: str, precision: str) -> None:
    """Convert the configured graph for ONNX Runtime or OpenVINO, check it against TensorFlow, print its folder."""
    from bshmd.engine.export import export_command_main

    click.echo(export_command_main(_load(config_file).model, to=to, precision=precision))


@main.group()
def quarantine() -> None:
    """Review quarantined inputs: list, requeue, purge."""


@quarantine.command("list")
@_config_option()
def quarantine_list(config_file: Path | None) -> None:
    """Table of quarantined files with their reasons."""
    from bshmd.quarantine_cli import list_command

    list_command(_load(config_file))


@quarantine.command("requeue")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--all", "all_entries", is_flag=True, help="Every quarantined file (filter with --reason).")
@click.option("--reason", default=None, help="Only entries with this reason code.")
@click.option("--accept", is_flag=True, help="Let them pass the quality gate once.")
@_config_option()
def quarantine_requeue(paths: tuple[Path, ...], all_entries: bool, reason: str | None, accept: bool,
                       config_file: Path | None) -> None:
    """Move quarantined files back into their input folder."""
    from bshmd.quarantine_cli import requeue_command

    if not paths and not all_entries:
        raise click.UsageError("name quarantined files, or pass --all")
    requeue_command(_load(config_file), paths, all_entries=all_entries, reason=reason, accept=accept)


@quarantine.command("purge")
@click.option("--older-than", "older_than_days", type=click.FloatRange(min=0), required=True,
              help="Delete entries quarantined more than DAYS ago.")
@_config_option()
def quarantine_purge(older_than_days: float, config_file: Path | None) -> None:
    """Delete old quarantine entries for good."""
    from bshmd.quarantine_cli import purge_command

    purge_command(_load(config_file), older_than_days)


@main.command()
@_config_option()
def status(config_file: Path | None) -> None:
    """Print a summary from the running daemon."""
    from bshmd.service.status import status_command

    sys.exit(status_command(_load(config_file)))


@main.command()
@_config_option()
@click.option("--host", default=None, help="Bind address (default: http.host).")
@click.option("--port", type=int, default=None, help="Port (default: http.port).")
def review(config_file: Path | None, host: str | None, port: int | None) -> None:
    """Serve the quarantine review page for a stopped daemon."""
    from bshmd.review.server import review_command

    sys.exit(review_command(_load(config_file), host=host, port=port))


def _add_ledger_commands() -> None:
    from bshmd.ledger.commands import ledger

    main.add_command(ledger)


_add_ledger_commands()
