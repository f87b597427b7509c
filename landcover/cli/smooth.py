"""``landcover smooth``: Bayesian smoothing of a probability GeoTIFF into a map."""

from __future__ import annotations

import json

import click

from landcover.cli import options
from landcover.cli.progress import bars_for


@click.command(short_help="Smooth a probability GeoTIFF (Bayesian); write a map and "
                          "probabilities.")
@click.argument("probabilities", metavar="PROBABILITIES.tif", type=click.Path(path_type=str))
@click.option("--out", "out", required=True, type=click.Path(path_type=str), metavar="MAP.tif",
              help="Map GeoTIFF to write (MAP.tif.aux.xml, MAP.qml, MAP_probabilities.tif and "
                   "MAP_quicklook.png go beside it).")
@options.scheduler_opt
@options.run_options
def smooth(ctx: click.Context, probabilities, out, scheduler, overwrite, as_json, config_path,
           overrides) -> None:
    """Smooth PROBABILITIES.tif, written by 'landcover classify --probabilities', with the
    Bayesian smoother of sits (Camara et al.), and write the smoothed map, its probabilities and
    uncertainty.

    Each class logit is pulled towards the mean of the neighbours most like that class
    (classify.smooth.neigh_fraction of a classify.smooth.window square), the more when they agree
    and the larger classify.smooth.smoothness: isolated pixels go, field edges stay. Block by
    block with a halo (classify.block_size): bounded memory, no seams.

    \b
        $ landcover smooth demo/map_probabilities.tif --out demo/map_smooth.tif
        $ landcover smooth p.tif --out m.tif --set classify.smooth.window=7 \\
              --set classify.smooth.smoothness_by_class="{7: 5}"
    """
    from landcover.config import load_config
    from landcover.scheduler import check_scheduler, use_scheduler
    from landcover.smooth import smooth as run_smooth

    check_scheduler(scheduler)
    cfg = load_config(config_path, overrides)
    with use_scheduler(scheduler):
        summary = run_smooth(probabilities, out, cfg, overwrite=overwrite, progress=bars_for(ctx))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        step = summary["post"][0]
        files = ", ".join(v for k, v in summary["files"].items() if k != "map")
        lines = [f"Wrote {summary['output']} ({files})",
                 f"Bayesian smoothing: window {step['window']} px, neigh_fraction "
                 f"{step['neigh_fraction']}, smoothness {step['smoothness']}; "
                 f"{summary['blocks']} blocks, {summary['seconds']:.1f} s", "Classified area:"]
        width = max(len(c["name"]) for c in summary["classes"])
        for c in summary["classes"]:
            share = f"{100 * c['share']:5.1f}%" if c["share"] is not None else "   - "
            lines.append(f"  {c['code']:>3} {c['name']:<{width}}  {c['pixels']:>11,d} px  {share}")
        click.echo("\n".join(lines))
