"""``landcover evaluate``: a class map against reference labels, to an accuracy report folder."""

from __future__ import annotations

import json

import click

from landcover.cli import options


@click.command(short_help="Compare a class map with reference labels; write an accuracy report.")
@click.argument("map_path", metavar="MAP", type=click.Path(path_type=str))
@click.option("--reference", required=True, type=click.Path(path_type=str), metavar="REF",
              help="Reference labels: a raster of class codes (any grid; nearest resampling) or a "
                   "vector file of points or polygons with a class column.")
@click.option("--out", "out", required=True, type=click.Path(path_type=str), metavar="DIR",
              help="Report folder to write (its parent folder must exist).")
@click.option("--column", default=None, metavar="NAME",
              help="Class column of a vector reference (default: the first of class_code, code, "
                   "class, ... found).")
@click.option("--layer", default=None, metavar="NAME",
              help="Layer of a vector reference with several layers (GeoPackage).")
@click.option("--classes", "classes", type=click.Path(path_type=str), default=None,
              metavar="YAML",
              help="Class table (code, name, color); needed when the map has no LANDCOVER_CLASSES "
                   "tag, and used instead of the tag when given.")
@options.overwrite_opt
@options.json_opt
def evaluate(map_path, reference, out, column, layer, classes, overwrite, as_json) -> None:
    """Compare MAP, a class map written by 'landcover classify', with reference labels.

    The reference is read on the map grid. Pixels where the map has no data or a code outside
    the class table, and reference codes outside the class table, are left out and counted.
    Figures: overall accuracy, kappa, user's accuracy (precision), producer's accuracy (recall),
    F1 and IoU per class from the pixel counts; and the area-adjusted accuracies and class areas
    with 95% confidence intervals of Olofsson et al. (2014), the map classes as strata.

    DIR receives evaluation.json, accuracy.csv, accuracy.md (tables for a report) and
    confusion_matrix.png.

    \b
        $ landcover evaluate map.tif --reference samples.gpkg --out accuracy
        $ landcover evaluate map.tif --reference lc_ref.tif --out acc --classes classes.yaml
    """
    from landcover.evaluate import evaluate as run_evaluate, format_report

    result = run_evaluate(map_path, reference, out, classes=classes, column=column, layer=layer,
                          overwrite=overwrite)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(format_report(result))
