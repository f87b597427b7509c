"""The outputs of ``landcover check-samples`` (:mod:`landcover.check_samples`).

* the GeoPackage: layer ``samples`` and, in its ``layer_styles`` table, a style categorised by
  ``verdict`` as QML and SLD. QGIS applies it when the layer is opened: it takes the row whose
  ``f_table_schema`` is empty, whose ``f_table_name`` and ``f_geometry_column`` are the layer's,
  preferring ``useAsDefault`` (read from QGIS' OGR provider, ``QgsOgrUtils::loadStoredStyle``);
* ``OUT_som.png``: the SOM grid coloured by class (matplotlib);
* the lines the command prints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from landcover.check_pixels import COLUMNS, LAYER, SampleCheck

VERDICT_COLORS = {"clean": "#1a9641", "doubtful": "#fdae61", "suspect": "#d7191c",
                  "unchecked": "#bdbdbd"}
GEOMETRY = "geom"  # the layer's geometry column (GDAL's GPKG default, set explicitly)


def write_table(result: SampleCheck, path: Path) -> None:
    """The GeoPackage: layer ``samples`` and its default QGIS style in ``layer_styles``."""
    import pandas as pd
    import pyogrio

    result.table.to_file(path, layer=LAYER, driver="GPKG", GEOMETRY_NAME=GEOMETRY)
    counts = result.summary["verdicts"]
    style = pd.DataFrame({
        "f_table_catalog": [""], "f_table_schema": [""], "f_table_name": [LAYER],
        "f_geometry_column": [GEOMETRY], "styleName": ["verdict"],
        "styleQML": [verdict_qml(counts)], "styleSLD": [verdict_sld()],
        "useAsDefault": [True], "description": ["landcover check-samples: samples by verdict"],
        "owner": [""], "ui": [""],
        "update_time": [pd.Timestamp.now(tz="UTC").floor("ms")]})  # GPKG: ...T..:..:..sssZ
    pyogrio.write_dataframe(style, path, layer="layer_styles", driver="GPKG")


def _rgba(color: str, alpha: int = 255) -> str:
    return ",".join(str(int(color[i:i + 2], 16)) for i in (1, 3, 5)) + f",{alpha}"


def verdict_qml(counts: dict | None = None) -> str:
    """A QGIS style (QML) of the samples layer: polygons filled by ``verdict`` (categorised)."""
    from xml.sax.saxutils import quoteattr

    colors = VERDICT_COLORS
    categories, symbols = [], []
    for i, (verdict, color) in enumerate(colors.items()):
        label = verdict if counts is None else f"{verdict} ({counts.get(verdict, 0)})"
        categories.append(f'      <category render="true" symbol="{i}" type="string" '
                          f'value="{verdict}" label={quoteattr(label)}/>')
        props = {"color": _rgba(color, 150), "outline_color": _rgba(color), "outline_style": "solid",
                 "outline_width": "0.4", "outline_width_unit": "MM", "style": "solid",
                 "joinstyle": "bevel"}
        options = "\n".join(f'            <Option name="{k}" type="QString" value="{v}"/>'
                            for k, v in props.items())
        legacy = "\n".join(f'          <prop k="{k}" v="{v}"/>' for k, v in props.items())
        symbols.append(
            f'      <symbol type="fill" name="{i}" alpha="1" clip_to_extent="1" force_rhr="0">\n'
            f'        <layer class="SimpleFill" enabled="1" locked="0" pass="0">\n'
            f'          <Option type="Map">\n{options}\n          </Option>\n{legacy}\n'
            f'        </layer>\n      </symbol>')
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.22.0" styleCategories="Symbology">\n'
            '  <renderer-v2 type="categorizedSymbol" attr="verdict" forceraster="0" '
            'symbollevels="0" enableorderby="0" referencescale="-1">\n'
            "    <categories>\n" + "\n".join(categories) + "\n    </categories>\n"
            "    <symbols>\n" + "\n".join(symbols) + "\n    </symbols>\n"
            "  </renderer-v2>\n  <layerGeometryType>2</layerGeometryType>\n</qgis>\n")


def verdict_sld() -> str:
    """The same style as OGC SLD 1.1 (for other clients): one rule per verdict."""
    rules = "".join(
        f"<se:Rule><se:Name>{v}</se:Name><ogc:Filter><ogc:PropertyIsEqualTo>"
        f"<ogc:PropertyName>verdict</ogc:PropertyName><ogc:Literal>{v}</ogc:Literal>"
        f"</ogc:PropertyIsEqualTo></ogc:Filter><se:PolygonSymbolizer><se:Fill>"
        f'<se:SvgParameter name="fill">{c}</se:SvgParameter>'
        f'<se:SvgParameter name="fill-opacity">0.6</se:SvgParameter></se:Fill><se:Stroke>'
        f'<se:SvgParameter name="stroke">{c}</se:SvgParameter>'
        f'<se:SvgParameter name="stroke-width">1</se:SvgParameter></se:Stroke>'
        f"</se:PolygonSymbolizer></se:Rule>"
        for v, c in VERDICT_COLORS.items())
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<StyledLayerDescriptor version="1.1.0" xmlns="http://www.opengis.net/sld" '
            'xmlns:ogc="http://www.opengis.net/ogc" xmlns:se="http://www.opengis.net/se">'
            f"<NamedLayer><se:Name>{LAYER}</se:Name><UserStyle><se:Name>verdict</se:Name>"
            f"<se:FeatureTypeStyle>{rules}</se:FeatureTypeStyle></UserStyle></NamedLayer>"
            "</StyledLayerDescriptor>")


def write_som_png(result: SampleCheck, path: Path) -> None:
    """The SOM grid: each neuron filled with the colour of its most frequent class, faded by
    that class's share of its pixels (white: no pixel); a dot per neuron sized by its pixels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    hits = result.hits
    side = hits.shape[0]
    total = hits.sum(axis=2)
    major = hits.argmax(axis=2)
    purity = np.where(total > 0, hits.max(axis=2) / np.maximum(total, 1), 0.0)
    colors = np.array([to_rgb(c) for c in result.classes.colors])
    image = 1.0 - purity[..., None] * (1.0 - colors[major])
    fig, ax = plt.subplots(figsize=(6.8, 5.2))
    ax.imshow(image, interpolation="nearest")
    yy, xx = np.nonzero(total)
    ax.scatter(xx, yy, s=60 * np.sqrt(total[yy, xx] / max(total.max(), 1)), c="k", alpha=0.35,
               linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    v = result.summary["verdicts"]
    ax.set_title(f"SOM {side}x{side} of {int(total.sum())} labelled pixels\n"
                 f"samples: {v['clean']} clean, {v['doubtful']} doubtful, {v['suspect']} suspect",
                 fontsize=10)
    ax.legend(handles=[Patch(color=c, label=f"{n} ({int(hits[..., i].sum())} px)")
                       for i, (n, c) in enumerate(zip(result.classes.names,
                                                      result.classes.colors))],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              title="most frequent class\n(faded: mixed)", title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def format_check(result: SampleCheck, top: int = 10) -> str:
    """What the command prints: the counts per verdict and the most suspect samples."""
    s, table = result.summary, result.table
    v = s["verdicts"]
    lines = [f"Wrote {s.get('output', '')}: {s['samples']} samples ({s['by']}): "
             f"{v['clean']} clean, {v['doubtful']} doubtful, {v['suspect']} suspect"
             + (f", {v['unchecked']} unchecked (no valid observation)" if v["unchecked"] else ""),
             (f"SOM {s['som']['grid'][0]}x{s['som']['grid'][1]} of {s['pixels_checked']} pixels, "
             f"{len(s['dates'])} dates; picture: {s.get('som_png', '')}")]
    worst = table[table["verdict"] == "suspect"].sort_values("probability").head(top)
    if len(worst):
        ident = next((c for c in table.columns if c not in COLUMNS and c != "geometry"),
                     "sample_id")
        lines.append(f"Most suspect ({ident}: labelled -> suggested, probability of the label):")
        for _, r in worst.iterrows():
            lines.append(f"  {r[ident]}: {r['class_name']} -> {r['suggested_class']} "
                         f"({r['probability']:.2f}; {r['suggested_class']} "
                         f"{r['suggested_probability']:.2f}; {r['pixels']} px)")
    return "\n".join(lines)
