"""``landcover train``: a prepared dataset to a model bundle."""

from __future__ import annotations

import inspect
import json

import click

from landcover.cli import options
from landcover.cli.progress import bars_for


@click.command(short_help="Train a model on a prepared dataset; write a model bundle.")
@click.argument("dataset", type=click.Path(path_type=str))
@click.option("--out", "out", required=True, type=click.Path(path_type=str),
              help="Model bundle folder to write.")
@options.resume_opt("its last finished epoch")
@options.run_options
def train(ctx: click.Context, dataset, out, resume, overwrite, as_json, config_path,
          overrides) -> None:
    """Train a network on DATASET, written by 'landcover prepare'.

    Pixels with the ignore label or weight 0 (clouds, no label) are left out of the loss and of
    every score; class weights act through the per-pixel weight. The best epoch by validation mIoU
    is kept. The bundle holds the model, everything classification needs, per-epoch history,
    learning curves and the validation confusion matrix.

    \b
        $ landcover train demo/dataset.zarr --out demo/model --set train.epochs=5
        $ landcover train ds.zarr --out model --set train.model.layers=2 \\
              --set train.loss.kind=ce+dice
    """
    from landcover.config import load_config
    from landcover.train import train as run_train  # TensorFlow is imported after its checks

    cfg = load_config(config_path, overrides)
    summary = run_train(dataset, out, cfg, overwrite=overwrite, resume=resume,
                        progress=bars_for(ctx))
    if as_json:
        from landcover.estimate import without_confusions

        click.echo(json.dumps(without_confusions(summary), indent=2))
    else:
        click.echo(format_summary(summary))


def _architectures_help() -> str:
    """The registered architectures, one paragraph each (click wraps them, keeping the indent)."""
    from landcover.models import architectures

    auto = ("  auto (the default): the network marked below and the pixel classifiers scored on "
            "the same held-out pixels (validation split, or k-fold over spatial groups when it is "
            "small), the best macro F1 kept; report.md lists every candidate (docs/training.md).")
    return "Architectures (--set train.model.architecture=NAME):\n\n" + "\n\n".join(
        [auto] + [f"  {a.name}{' (auto network)' if a.default else ''}: {a.summary}."
                  for a in architectures()])


train.help = inspect.cleandoc(train.help or "") + "\n\n" + _architectures_help()


def format_summary(summary: dict) -> str:
    from landcover.scores import format_table

    head = f"Wrote {summary['output']} ({summary['content_hash'][:19]}...): "
    if summary.get("pixels"):  # a pixel classifier (landcover.pixel): no epochs
        p = summary["pixels"]
        lines = [head + f"{p['trees']} trees on {p['pixels']:,d} training pixels in "
                        f"{summary['seconds']:.0f} s"]
    else:
        lines = [head + f"{summary['epochs_run']} epochs in {summary['seconds']:.0f} s, kept "
                        f"epoch {summary['best_epoch']} ({summary['monitor']} "
                        f"{summary['best']:.3f})"]
    for split, result in summary["metrics"].items():
        lines += ["", f"{split.capitalize()} split (masked pixels excluded):", format_table(result)]
    if summary.get("report"):  # the mode check and the random-forest comparison (report.md)
        lines += ["", summary["report"].split("\n", 2)[2].rstrip()]
    return "\n".join(lines)
