"""``landcover sample``: a stratified sample for accuracy assessment, or uncertain pixels."""

from __future__ import annotations

import json

import click

from landcover.cli import options


def _ua_pairs(ctx, param, values):
    out = {}
    for text in values:
        code, _, ua = text.partition("=")
        try:
            out[int(code)] = float(ua)
        except ValueError:
            raise click.BadParameter(f"{text!r}: expected CODE=UA, e.g. 7=0.6") from None
    return out


@click.command(short_help="Draw reference points from a map (stratified or most uncertain).")
@click.argument("map_path", metavar="MAP.tif", type=click.Path(path_type=str))
@click.option("--out", "out", required=True, type=click.Path(path_type=str), metavar="SAMPLE.gpkg",
              help="GeoPackage of points to write (layer 'sample', an empty 'reference' column).")
@click.option("--design", type=click.Choice(["stratified", "uncertainty"]), default="stratified",
              show_default=True, help="stratified: random per map class, for accuracy and area "
                                      "(Olofsson et al. 2014); uncertainty: most uncertain pixels.")
@click.option("--probabilities", type=click.Path(path_type=str), default=None, metavar="P.tif",
              help="Probability file of the map (default: MAP_probabilities.tif when it exists); "
                   "needed by --design uncertainty.")
@click.option("--target-se", type=float, default=0.01, show_default=True,
              help="stratified: target standard error of the overall accuracy.")
@click.option("--expected-ua", type=float, default=0.8, show_default=True,
              help="stratified: expected user's accuracy of every class.")
@click.option("--expected-ua-class", "expected_ua_class", multiple=True, metavar="CODE=UA",
              callback=_ua_pairs, help="stratified: expected user's accuracy of one class, e.g. "
                                       "7=0.6. Repeatable.")
@click.option("--allocation", type=click.Choice(["rare-min", "proportional"]), default="rare-min",
              show_default=True, help="stratified: rare classes get --min-per-class, the rest in "
                                      "proportion to area; or all in proportion to area.")
@click.option("--min-per-class", type=int, default=50, show_default=True,
              help="stratified, rare-min: points of each rare class.")
@click.option("--rare-share", type=float, default=0.1, show_default=True,
              help="stratified, rare-min: classes mapped on less than this share are rare.")
@click.option("--count", type=int, default=100, show_default=True,
              help="uncertainty: points to draw.")
@click.option("--spacing", type=int, default=10, show_default=True,
              help="uncertainty: minimum distance between points in pixels.")
@click.option("--measure", type=click.Choice(["entropy", "margin", "least_confidence"]),
              default="entropy", show_default=True, help="uncertainty: the measure.")
@click.option("--seed", type=int, default=0, show_default=True, help="stratified: random seed.")
@options.overwrite_opt
@options.json_opt
def sample(map_path, out, design, probabilities, target_se, expected_ua, expected_ua_class,
           allocation, min_per_class, rare_share, count, spacing, measure, seed, overwrite,
           as_json) -> None:
    """Draw points from MAP.tif, written by 'landcover classify', to be labelled: fill their
    'reference' column (class codes) in QGIS, then run 'landcover evaluate MAP.tif --reference
    SAMPLE.gpkg'.

    \b
        $ landcover sample demo/map.tif --out demo/sample.gpkg --target-se 0.01 \\
              --expected-ua 0.85 --expected-ua-class 7=0.6
        $ landcover sample demo/map.tif --out demo/to_label.gpkg --design uncertainty \\
              --count 50 --spacing 15 --measure margin
    """
    from landcover.sample import format_design, sample as run_sample

    result = run_sample(map_path, out, design=design, probabilities=probabilities,
                        target_se=target_se, expected_ua=expected_ua_class,
                        default_ua=expected_ua, allocation=allocation,
                        min_per_class=min_per_class, rare_share=rare_share, count=count,
                        spacing=spacing, measure=measure, seed=seed, overwrite=overwrite)
    click.echo(json.dumps(result, indent=2) if as_json else format_design(result))
