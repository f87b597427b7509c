"""``landcover search``: the items of a STAC API collection -> a table and an ItemCollection JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click

from landcover.cli import options


def _parsed(parse):
    """A click callback that runs a :mod:`landcover.stac.search` parser; its UsageError becomes a
    usage error (exit 2) naming the flag."""

    def callback(ctx, param, value):
        from landcover.errors import UsageError

        if value is None or value == ():
            return None
        try:
            return parse(value)
        except UsageError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None

    return callback


def _url(value):
    from landcover.stac.search import parse_url

    return parse_url(value)


def _bbox(value):
    from landcover.stac.search import parse_bbox

    return parse_bbox(value)


def _datetime(value):
    from landcover.stac.search import parse_datetime

    return parse_datetime(value)


def _query(value):
    from landcover.stac.search import parse_query

    return parse_query(value)


@click.command(short_help="Search a STAC API for scenes; write the items as an ItemCollection.")
@click.option("--stac", "url", required=True, metavar="URL", callback=_parsed(_url),
              help="The STAC API's root URL (its landing page, http or https). A static "
                   "catalog or ItemCollection is no API: give it as SCENES to the other "
                   "commands.")
@click.option("--collection", required=True, metavar="NAME",
              help="The collection to search, e.g. landsat-c2-l2.")
@click.option("--bbox", callback=_parsed(_bbox), metavar="W,S,E,N",
              help="Items that intersect this box, in degrees (EPSG:4326).")
@click.option("--datetime", "interval", callback=_parsed(_datetime), metavar="A/B",
              help="Items acquired in this interval (ISO dates or date-times; an end may be "
                   "'..'), e.g. 2023-04-01/2023-10-31.")
@click.option("--query", multiple=True, callback=_parsed(_query), metavar="EXPR",
              help="A property filter (STAC API query extension), e.g. 'eo:cloud_cover<60'. "
                   "Repeatable; all must hold.")
@click.option("--max-items", type=click.IntRange(min=1), default=None, metavar="N",
              help="At most N items (default: all that match).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=str),
              metavar="FILE", help="ItemCollection JSON to write (e.g. items.json).")
@options.overwrite_opt
@options.json_opt
def search(url, collection, bbox, interval, query, max_items, out, overwrite, as_json) -> None:
    """List the items of a STAC API collection that match the filters, and write them to FILE.

    The table shows each item's ID, date, cloud cover, EPSG code and WRS path/row. FILE is a
    GeoJSON ItemCollection that 'landcover prepare' and 'landcover classify' take as SCENES.

    \b
        $ landcover search --stac https://example.org/stac/v1 --collection landsat-c2-l2 \\
            --bbox 9.5,47.2,10.5,47.8 --datetime 2023-04-01/2023-10-31 \\
            --query 'eo:cloud_cover<60' --out items.json
        $ landcover classify items.json --model model --out map.tif
    """
    from landcover.stac.search import format_rows, item_row, save_items, search_items
    from landcover.outputs import check_output

    check_output(Path(out).absolute(), overwrite)  # before asking the API
    items = search_items(url, collection, bbox=bbox, datetime=interval, query=query,
                         max_items=max_items)
    path = save_items(items, out, overwrite=overwrite)
    rows = [item_row(item) for item in items]
    if as_json:
        click.echo(json.dumps({"stac": url, "collection": collection, "out": str(path),
                               "count": len(rows), "items": rows}, indent=2))
        return
    if rows:
        click.echo(format_rows(rows))
    click.echo(f"{len(rows)} item{'s' if len(rows) != 1 else ''} written to {path}", err=True)
