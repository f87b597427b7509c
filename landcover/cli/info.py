"""``landcover info``: what is in the scenes, and the stack they make."""

from __future__ import annotations

import json

import click

from landcover.cli import options
from landcover.cli.progress import bars_for


@click.command(short_help="Describe scenes and the stack they make.")
@options.scenes_arg
@options.json_opt
@options.config_opt
@options.set_opt
@click.pass_context
def info(ctx: click.Context, scenes, as_json, config_path, overrides) -> None:
    """One line per scene (product ID, sensor, date, grid, valid/cloud/shadow/fill shares from QA),
    then the stack as a whole.

    \b
        $ landcover info data_samples/
        $ landcover info scenes/ --json | jq '.stack'
    """
    from landcover.config import load_config
    from landcover.scenes import as_scenes, scene_source
    from landcover.stac import signer_of
    from landcover.summary import format_text, summarize

    cfg = load_config(config_path, overrides)
    found = as_scenes(scene_source(scenes, cfg.scenes.profile, signer_of(cfg.scenes.stac.signer)))
    report = summarize(found, cfg.scenes, progress=bars_for(ctx) if len(found) > 1 else None)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(format_text(report))
