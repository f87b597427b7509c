"""``configs/default.yaml`` and the README's configuration table, written from the schema.

``python -m landcover.config --write`` rewrites both (the README only between its
``config-table`` markers); ``--check`` exits 1 naming a file that differs; ``--yaml`` and
``--markdown`` print them. ``tests/test_config.py`` fails when the committed files drift.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tempfile
import types
import typing
from pathlib import Path

import yaml

from landcover.config.schema import Config, choices_of, default_of, help_of, walk

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_YAML = Path("configs") / "default.yaml"
README = Path("README.md")
START = "<!-- config-table:start -->"
END = "<!-- config-table:end -->"
COMMENT_COLUMN = 30

YAML_HEADER = """\
# landcover default configuration. Every key is shown with its default.
# Written from landcover/config/schema.py by `python -m landcover.config --write`: edit the
# fields there, not this file (a test fails when the two differ).
# Use:  landcover <command> --config my.yaml --set scenes.chunk_size=512
# Precedence: built-in defaults < --config FILE < --set KEY=VALUE. Unknown keys are an error.
# The resolved configuration is saved next to each output.
"""


def _scalar(value) -> str:
    """``value`` as YAML in flow style, on one line."""
    return yaml.safe_dump([value], default_flow_style=True, width=10**6).strip()[1:-1]


def render_yaml() -> str:
    """``configs/default.yaml``: every key with its default, its help as the comment."""
    lines = [YAML_HEADER.rstrip("\n")]
    for key, f, hint in walk(Config):
        depth = key.count(".")
        indent = "  " * depth
        if depth == 0:
            lines.append("")
        default = None if dataclasses.is_dataclass(hint) else default_of(f)
        items = isinstance(default, tuple) and default
        text = f"{indent}{f.name}:" if dataclasses.is_dataclass(hint) or items else \
            f"{indent}{f.name}: {_scalar(default)}"
        gap = " " * (COMMENT_COLUMN - len(text)) if len(text) < COMMENT_COLUMN else "  "
        lines.append(f"{text}{gap}# {help_of(f)}")
        if items:
            lines += [f"{indent}- {_scalar(v)}" for v in default]
    return "\n".join(lines) + "\n"


def _type_name(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return f"null or {_type_name(inner[0])}"
    if origin is tuple:
        return f"list of {_type_name(args[0])}s"
    if origin is dict:
        return f"mapping {_type_name(args[0])}: {_type_name(args[1])}"
    return {bool: "true or false", int: "integer", float: "number", str: "string"}[hint]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown() -> str:
    """The README's table: key, default, allowed values, meaning (a row per section too)."""
    rows = ["| Key | Default | Allowed | Meaning |", "|---|---|---|---|"]
    for key, f, hint in walk(Config):
        if dataclasses.is_dataclass(hint):
            rows.append(f"| **`{key}`** | | | {_cell(help_of(f))} |")
            continue
        default = default_of(f)
        shown = yaml.safe_dump(list(default), default_flow_style=True, width=10**6).strip() \
            if isinstance(default, tuple) else _scalar(default)
        choices = choices_of(f)
        allowed = f"one of {', '.join(choices)}" if choices else _type_name(hint)
        if f.metadata.get("check") is not None:
            allowed += f", {f.metadata['check'].brief}"
        rows.append(f"| `{key}` | `{_cell(shown)}` | {_cell(allowed)} | {_cell(help_of(f))} |")
    return "\n".join(rows) + "\n"


def readme_block() -> str:
    """The README's text from the start marker to the end marker, both included."""
    return (f"{START}\n<details><summary>Every setting: its default, the values allowed and what "
            "it does (written from landcover/config/schema.py by <code>python -m "
            "landcover.config --write</code>)</summary>\n\n"
            f"{render_markdown()}\n</details>\n{END}")


def _split_readme(text: str, path: Path) -> tuple[str, str, str]:
    """``(before, block, after)`` around the config-table markers of ``text``."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{path}: no {START} ... {END} block; put the two markers where the "
                         "configuration table goes")
    end += len(END)
    return text[:start], text[start:end], text[end:]


def differences(root: Path = ROOT) -> list[str]:
    """One message per generated file under ``root`` that differs from the schema (a short diff
    and the command that rewrites it); empty when both match."""
    found = []
    pairs = [(DEFAULT_YAML, (root / DEFAULT_YAML).read_text(encoding="utf-8"), render_yaml()),
             (README, _split_readme((root / README).read_text(encoding="utf-8"), README)[1],
              readme_block())]
    for name, have, want in pairs:
        if have != want:
            diff = list(difflib.unified_diff(have.splitlines(), want.splitlines(),
                                             f"{name} (the file)", f"{name} (from the schema)",
                                             n=0, lineterm=""))
            shown = "\n".join(diff[:24] + ([f"... {len(diff) - 24} more lines"]
                                           if len(diff) > 24 else []))
            found.append(f"{name} differs from the config fields in landcover/config/schema.py; "
                         f"rewrite it with: python -m landcover.config --write\n{shown}")
    return found


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(root: Path = ROOT) -> list[Path]:
    """Rewrite ``configs/default.yaml`` and the README's table under ``root``; the files that
    changed."""
    changed = []
    yaml_path, readme_path = root / DEFAULT_YAML, root / README
    if yaml_path.read_text(encoding="utf-8") != render_yaml():
        _replace(yaml_path, render_yaml())
        changed.append(yaml_path)
    text = readme_path.read_text(encoding="utf-8")
    before, block, after = _split_readme(text, README)
    if block != readme_block():
        _replace(readme_path, before + readme_block() + after)
        changed.append(readme_path)
    return changed
