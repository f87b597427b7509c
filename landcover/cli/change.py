"""``landcover change``: from-to transitions between two class maps."""

from __future__ import annotations

import json

import click

from landcover.cli import options


@click.command(short_help="Compare two maps of one grid: transition raster and area matrix.")
@click.argument("map_a", metavar="MAP_A.tif", type=click.Path(path_type=str))
@click.argument("map_b", metavar="MAP_B.tif", type=click.Path(path_type=str))
@click.option("--out", "out", required=True, type=click.Path(path_type=str), metavar="DIR",
              help="Folder to write (transitions.tif with legend and style, transitions.csv, "
                   "transitions.md, transitions_quicklook.png, change.json).")
@options.overwrite_opt
@options.json_opt
def change(map_a, map_b, out, overwrite, as_json) -> None:
    """Compare MAP_A.tif (the earlier map) with MAP_B.tif, two maps of 'landcover classify' on
    the same grid with the same class table: a from-to transition raster with a colour table and
    names, and the transition area matrix in pixels and hectares.

    \b
        $ landcover change map_2023.tif map_2024.tif --out change_2023_2024
    """
    from landcover.change import change as run_change
    from landcover.change import format_markdown
    from landcover.classes import class_table

    result = run_change(map_a, map_b, out, overwrite=overwrite)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(f"Wrote {result['output']}")
        click.echo(format_markdown(result, class_table(result["classes"])).rstrip())
