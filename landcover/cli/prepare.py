"""``landcover prepare``: scenes and labels to a Zarr dataset of patches with per-pixel weights."""

from __future__ import annotations

import json

import click

from landcover.cli import options


@click.command(short_help="Cut a training dataset of patches from scenes and labels.")
@options.scenes_arg
@click.option("--labels", "labels", required=True, type=click.Path(path_type=str),
              help="Label raster (GeoTIFF, any grid) or vector file (GeoPackage, Shapefile, "
                   "GeoJSON).")
@click.option("--out", "out", required=True, type=click.Path(path_type=str),
              help="Dataset folder to write (a Zarr store).")
@options.scheduler_opt
@options.overwrite_opt
@options.json_opt
@options.config_opt
@options.set_opt
@click.pass_context
def prepare(ctx: click.Context, scenes, labels, out, scheduler, overwrite, as_json, config_path,
            overrides) -> None:
    """Cut SIZE x SIZE windows with all dates from SCENES, label them from --labels, split them
    into spatially disjoint train/validation/test blocks, normalise with training statistics, and
    write inputs, labels and per-pixel weights (0 where a label is unusable) to --out.

    \b
        $ landcover prepare data_samples/ --labels data_samples/labels.gpkg \\
              --config data_samples/demo.yaml --out demo/dataset.zarr
        $ landcover prepare scenes/ --labels lc.tif --out ds.zarr --scheduler local:4 \\
              --set prepare.patches.stride=15 --set prepare.features.fill=linear
    """
    from landcover.config import load_config
    from landcover.outputs import check_output
    from landcover.prepare import prepare as run_prepare
    from landcover.scheduler import check_scheduler, use_scheduler

    cfg = load_config(config_path, overrides)
    check_scheduler(scheduler)
    from pathlib import Path

    check_output(Path(out), overwrite)
    show = ctx.obj.get("verbosity", 0) >= 0
    with use_scheduler(scheduler):
        summary = run_prepare(scenes, labels, out, cfg, overwrite=overwrite, progress=show)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(format_summary(summary))


def format_summary(summary: dict) -> str:
    splits = summary["patches_per_split"]
    lines = [f"Wrote {summary['output']}: {summary['patches']} patches "
             f"({', '.join(f'{k} {v}' for k, v in splits.items())}), "
             f"{len(summary['dates'])} dates"
             + (f" ({len(summary['dates_dropped'])} dropped)" if summary["dates_dropped"] else ""),
             f"Observations masked (cloud, shadow, fill, saturation): "
             f"{summary['masked_share']:.1%}",
             "Labelled pixels per class:"]
    width = max(len(k) for k in summary["labelled_pixels"])
    for name, count in summary["labelled_pixels"].items():
        lines.append(f"  {name:<{width}}  {count:>10,d}")
    if summary["unknown_codes"]:
        lines.append("Ignored codes not in the class table: " + ", ".join(
            f"{k} ({v} px)" for k, v in summary["unknown_codes"].items()))
    return "\n".join(lines)
