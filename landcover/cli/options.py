"""Shared click options, defined once.

==================  =====================================  ==========================
option              meaning                                used by
==================  =====================================  ==========================
``--config FILE``   YAML config on top of the defaults     info, prepare, train, classify
``--set KEY=VAL``   override one key, repeatable           info, prepare, train, classify
``--json``          machine-readable output on stdout      every command
``--overwrite``     replace an existing output             prepare, train, classify, evaluate
``--scheduler``     threads, synchronous, local:N, tcp://  prepare, classify
``--resume``        continue an interrupted run of --out   pretrain, train, classify
==================  =====================================  ==========================
"""

from __future__ import annotations

import click

config_opt = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
    help="YAML config file (see configs/default.yaml); overrides the built-in defaults.")

set_opt = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Override one config key, e.g. --set scenes.chunk_size=512. Repeatable; wins over --config.")

json_opt = click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")

overwrite_opt = click.option("--overwrite", is_flag=True,
                             help="Replace an existing output instead of refusing.")

scenes_arg = click.argument("scenes", nargs=-1, required=True, type=click.Path(path_type=str))

scheduler_opt = click.option(
    "--scheduler", default="threads", show_default=True, metavar="SPEC",
    help="Dask scheduler: threads, synchronous, local:N (a LocalCluster of N worker processes) or "
         "tcp://HOST:PORT (an existing cluster that sees the same paths).")


def resume_opt(done: str):
    """``--resume``: continue an interrupted run of the same ``--out`` from ``done`` (what the
    command keeps of a run: its last finished epoch, its finished blocks)."""
    return click.option("--resume", is_flag=True,
                        help=f"Continue an interrupted run of the same --out from {done}.")


def run_options(f):
    """The options of every command that writes an output: ``--overwrite``, ``--json``,
    ``--config``, ``--set`` (in this order in ``--help``), then the click context."""
    for option in (click.pass_context, set_opt, config_opt, json_opt, overwrite_opt):
        f = option(f)
    return f
