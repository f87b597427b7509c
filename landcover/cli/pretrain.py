"""``landcover pretrain``: scenes to a network encoder pretrained without labels."""

from __future__ import annotations

import json

import click

from landcover.cli import options
from landcover.cli.progress import bars_for


@click.command(short_help="Pretrain a network's encoder on the scenes, without labels.")
@options.scenes_arg
@click.option("--out", "out", required=True, type=click.Path(path_type=str),
              help="Encoder folder to write (encoder.json and encoder.weights.h5).")
@options.resume_opt("its last finished epoch")
@options.run_options
def pretrain(ctx: click.Context, scenes, out, resume, overwrite, as_json, config_path,
             overrides) -> None:
    """Train the encoder of the network of train.model on every valid pixel series of SCENES, no
    labels: windows drawn across the whole stack, valid observations and bands hidden and
    reconstructed (cloudy ones are neither seen nor a target). Then start 'landcover train' from
    it with --set train.pretrain=OUT. Use the same --config as for prepare and train: the bands,
    features and network must match (train refuses an encoder that does not).

    \b
        $ landcover pretrain data_samples/ --config data_samples/demo.yaml --out demo/encoder
        $ landcover train demo/dataset.zarr --out demo/model --set train.pretrain=demo/encoder
    """
    from landcover.config import load_config
    from landcover.outputs import check_output
    from landcover.pretrain.run import network_spec
    from landcover.pretrain.run import pretrain as run_pretrain
    from landcover.scenes import scene_source
    from landcover.stac import signer_of

    cfg = load_config(config_path, overrides)
    network_spec(cfg)  # a network, before anything is read
    from pathlib import Path

    if not resume:
        check_output(Path(out), overwrite)
    source = scene_source(scenes, cfg.scenes.profile, signer_of(cfg.scenes.stac.signer))
    record = run_pretrain(source, out, cfg, overwrite=overwrite, resume=resume,
                          progress=bars_for(ctx))
    if as_json:
        click.echo(json.dumps({k: v for k, v in record.items() if k != "config"}, indent=2))
    else:
        click.echo(format_summary(record))


def format_summary(record: dict) -> str:
    t, s = record["training"], record["sample"]
    lines = [f"Wrote {record['output']}: the {record['network']['architecture']} encoder, "
             f"{t['epochs_done']} epochs ({t['steps']} steps) in {t['seconds']:.0f} s on "
             f"{s['windows']:,d} windows of {record['input']['window']} px "
             f"({s['valid_observations']:,d} valid observations, {len(record['dates'])} dates)",
             f"Reconstruction loss of the hidden values: {t['final_loss']:.4f} "
             f"(predicting the band mean: {t['mean_predictor_loss']:.4f})"]
    if t.get("stopped"):
        lines.append(f"Stopped early: {t['stopped']}")
    return "\n".join(lines)
