"""``landcover check-samples``: labelled samples whose class their pixels' series contradict."""

from __future__ import annotations

import json

import click

from landcover.cli import options
from landcover.cli.progress import bars_for


@click.command("check-samples",
               short_help="Find mislabelled samples with a self-organising map; write a GeoPackage.")
@options.scenes_arg
@click.option("--labels", "labels", required=True, type=click.Path(path_type=str),
              help="The labels to check: a vector file (polygons or points) or a label raster, "
                   "as given to 'landcover prepare'.")
@click.option("--out", "out", required=True, type=click.Path(path_type=str),
              metavar="SUSPECT.gpkg",
              help="GeoPackage to write (layer 'samples', styled by verdict in QGIS); "
                   "OUT_som.png goes beside it.")
@click.option("--column", default=None, metavar="NAME",
              help="Vector labels: the features sharing a value of this column are one sample "
                   "(a field number). Default: prepare.split.column, else one sample per feature.")
@click.option("--grid", type=int, default=None, metavar="N",
              help="SOM of N x N neurons (default: sqrt(5 sqrt(pixels)), 4 to 30).")
@click.option("--suspect", type=float, default=None, metavar="P",
              help="Suspect below this probability of the sample's own class (when another class "
                   "is more probable) [default: 0.2].")
@click.option("--doubtful", type=float, default=None, metavar="P",
              help="Doubtful below this probability [default: 0.5].")
@click.option("--per-sample", "per_sample", type=int, default=None, metavar="N",
              help="Pixels read per sample at most (a seeded draw) [default: 100].")
@click.option("--seed", type=int, default=None, help="Seed of the SOM and the draws [default: 0].")
@options.scheduler_opt
@options.run_options
def check_samples(ctx: click.Context, scenes, labels, out, column, grid, suspect, doubtful,
                  per_sample, seed, scheduler, overwrite, as_json, config_path,
                  overrides) -> None:
    """Check the labelled samples of --labels against SCENES: a self-organising map of their
    pixels' series (the pixel classifiers' features, gaps filled in time) gives every sample
    the probability of its own class among the other samples' pixels on its neighbourhood of the
    map, a verdict (clean, doubtful, suspect) and the class the neighbourhood suggests.

    Scenes and labels are read as 'landcover prepare' reads them (--config/--set: scenes.*,
    prepare.labels.*, prepare.classes, prepare.features.*). Open --out in QGIS to see the
    samples coloured by verdict; fix or remove the suspect ones, then prepare.

    \b
        $ landcover check-samples data_samples/ --labels data_samples/labels.gpkg \\
              --config data_samples/demo.yaml --out demo/suspect.gpkg
        $ landcover check-samples scenes/ --labels fields.gpkg --column field_id \\
              --out suspect.gpkg --grid 12 --suspect 0.1
    """
    from pathlib import Path

    from landcover.check_outputs import format_check
    from landcover.check_samples import check_samples as run_check
    from landcover.check_samples import settings_from, som_png
    from landcover.config import load_config
    from landcover.errors import UsageError
    from landcover.outputs import check_output
    from landcover.scenes import scene_source
    from landcover.scheduler import check_scheduler, use_scheduler
    from landcover.stac import signer_of

    cfg = load_config(config_path, overrides)
    settings = settings_from(cfg, grid=grid, suspect=suspect, doubtful=doubtful,
                             per_sample=per_sample, seed=seed)
    check_scheduler(scheduler)
    if not out.lower().endswith(".gpkg"):
        raise UsageError(f"{out}: the check is written as a GeoPackage; give a name ending in "
                         ".gpkg", flag="--out")
    for path in (Path(out), som_png(Path(out))):
        check_output(path, overwrite)
    source = scene_source(scenes, cfg.scenes.profile, signer_of(cfg.scenes.stac.signer))
    with use_scheduler(scheduler):
        result = run_check(source, labels, out, cfg, settings=settings, column=column,
                           overwrite=overwrite, progress=bars_for(ctx))
    if as_json:
        click.echo(json.dumps(result.summary, indent=2))
    else:
        click.echo(format_check(result))
