"""``landcover prepare``: scenes and labels to a Zarr dataset of patches with per-pixel weights."""

from __future__ import annotations

import json

import click

from landcover.cli import options
from landcover.cli.progress import bars_for


@click.command(short_help="Cut a training dataset of patches from scenes and labels.")
@options.scenes_arg
@click.option("--labels", "labels", required=True, type=click.Path(path_type=str),
              help="Label raster (GeoTIFF, any grid) or vector file (GeoPackage, Shapefile, "
                   "GeoJSON).")
@click.option("--out", "out", required=True, type=click.Path(path_type=str),
              help="Dataset folder to write (a Zarr store).")
@options.scheduler_opt
@options.run_options
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
    from pathlib import Path

    from landcover.config import load_config
    from landcover.outputs import check_output
    from landcover.prepare import prepare as run_prepare
    from landcover.scenes import scene_source
    from landcover.stac import signer_of
    from landcover.scheduler import check_scheduler, use_scheduler

    cfg = load_config(config_path, overrides)
    check_scheduler(scheduler)
    check_output(Path(out), overwrite)
    # opened by prepare, after its checks
    source = scene_source(scenes, cfg.scenes.profile, signer_of(cfg.scenes.stac.signer))
    with use_scheduler(scheduler):
        summary = run_prepare(source, labels, out, cfg, overwrite=overwrite,
                              progress=bars_for(ctx, steps=7))  # its 7 dask stages
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
             f"Unique labelled pixels per class and split ({summary['split']['by']}: "
             + ", ".join(f"{k} {v}" for k, v in summary["split"]["groups"].items())
             + " groups):"]
    per_split = summary["labelled_pixels_per_split"]
    kept = summary["labels_kept"]
    width = max(len(k) for k in summary["labelled_pixels"] | {"class": 0})
    lines.append(f"  {'class':<{width}}  {'train':>9} {'validation':>10} {'test':>9}  "
                 f"{'kept of labels':>16}")
    for name in summary["labelled_pixels"]:
        c = kept["per_class"][name]
        share = f"{c['share']:.1%}" if c["share"] is not None else "-"
        lines.append(f"  {name:<{width}}  {per_split['train'][name]:>9,d} "
                     f"{per_split['validation'][name]:>10,d} {per_split['test'][name]:>9,d}  "
                     f"{share:>7} of {c['in_labels']:>7,d}")
    if kept["share"] is not None:
        lines.append(f"Labelled pixels kept: {kept['kept']:,d} of {kept['in_labels']:,d} "
                     f"({kept['share']:.1%})")
    if summary["unknown_codes"]:
        lines.append("Ignored codes not in the class table: " + ", ".join(
            f"{k} ({v} px)" for k, v in summary["unknown_codes"].items()))
    return "\n".join(lines)
