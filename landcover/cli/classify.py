"""``landcover classify``: scenes and a model bundle to a classification GeoTIFF."""

from __future__ import annotations

import json

import click

from landcover.cli import options
from landcover.cli.progress import bars_for


@click.command(short_help="Classify whole scenes with a model bundle; write a GeoTIFF map.")
@options.scenes_arg
@click.option("--model", "model", required=True, type=click.Path(path_type=str),
              help="Model bundle folder written by 'landcover train'.")
@click.option("--out", "out", required=True, type=click.Path(path_type=str),
              help="Classification GeoTIFF to write (OUT.qml and OUT_quicklook.png go beside it).")
@click.option("--probabilities", is_flag=True,
              help="Also write OUT_probabilities.tif: one band per class and an uncertainty band.")
@click.option("--smooth", is_flag=True,
              help="Bayesian spatial smoothing of the probabilities before the map (removes "
                   "isolated pixels); same as --set classify.smooth.enabled=true, tuned by "
                   "classify.smooth.*.")
@options.resume_opt("its finished blocks")
@options.scheduler_opt
@options.run_options
def classify(ctx: click.Context, scenes, model, out, probabilities, smooth, resume, scheduler,
             overwrite, as_json, config_path, overrides) -> None:
    """Classify SCENES with the model in --model, in large windows that each keep their inner
    pixels (8 px of context around them, so no seams and about 1.15 predictions per pixel), block
    by block with dask (memory bounded by classify.block_size, chosen from the dates), and
    write a Cloud Optimized GeoTIFF of class codes (nodata 255 where no date has a valid
    observation) with its colour table, class names and a QGIS style.

    Inputs are built exactly as in training from the bundle (bands, normalisation, dates).

    \b
        $ landcover classify data_samples/ --model demo/model --out demo/map.tif
        $ landcover classify scenes/ --model model --out map.tif --probabilities \\
              --scheduler local:4 --set classify.block_size=1024
        $ landcover classify scenes/ --model model --out map.tif --smooth \\
              --set classify.smooth.smoothness=10
    """
    from landcover.classify import classify as run_classify
    from landcover.classify import model_scenes, resolve_config
    from landcover.scheduler import check_scheduler, use_scheduler

    check_scheduler(scheduler)
    if smooth:
        overrides = (*overrides, "classify.smooth.enabled=true")
    meta, cfg = resolve_config(model, config_path, overrides)
    with use_scheduler(scheduler):
        summary = run_classify(model_scenes(scenes, meta, cfg), model, out, cfg, meta=meta, probabilities=probabilities,
                               overwrite=overwrite, resume=resume, progress=bars_for(ctx))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(format_summary(summary))


def format_summary(summary: dict) -> str:
    files = ", ".join(v for k, v in summary["files"].items() if k != "map")
    lines = [f"Wrote {summary['output']} ({files})",
             f"{len(summary['dates'])} dates, {summary['windows']:,d} windows of "
             f"{summary['window']} px (overlap {summary['overlap']}, "
             f"{summary['predictions_per_pixel']:.2f} predictions per pixel; "
             f"{summary['windows_skipped']:,d} without valid observations skipped), "
             f"{summary['blocks']} blocks"
             + (f" ({summary['blocks_resumed']} resumed)" if summary["blocks_resumed"] else "")
             + f", {summary['seconds']:.1f} s",
             f"No data (no valid observation on any date): {summary['nodata_pixels']:,d} px",
             "Classified area:"]
    width = max(len(c["name"]) for c in summary["classes"])
    for c in summary["classes"]:
        share = f"{100 * c['share']:5.1f}%" if c["share"] is not None else "   - "
        ha = f"  {c['hectares']:>12,.1f} ha" if "hectares" in c else ""
        lines.append(f"  {c['code']:>3} {c['name']:<{width}}  {c['pixels']:>11,d} px  {share}{ha}")
    return "\n".join(lines)
