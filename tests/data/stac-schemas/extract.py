"""Extract the STAC extension JSON schemas that the map items use from the recorded HTTP answers
(VCR cassettes) in the PyPI source distributions of the pystac extension packages.

    pip download --no-deps --no-binary :all: -d sdist pystac-ext-classification==2.0.1 \
        pystac-ext-file==2.1.1 pystac-ext-projection==2.0.1 pystac-ext-raster==1.1.1
    python tests/data/stac-schemas/extract.py sdist/*.tar.gz

Writes ``<extension>/v<version>/schema.json`` beside this script, byte for byte the body of the
recorded ``200`` answer to ``https://stac-extensions.github.io/<extension>/v<version>/schema.json``
(see SOURCE.md). Nothing is written by hand.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tarfile
from pathlib import Path

import yaml

HERE = Path(__file__).parent
WANTED = ("https://stac-extensions.github.io/classification/v2.0.0/schema.json",
          "https://stac-extensions.github.io/file/v2.1.0/schema.json",
          "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
          "https://stac-extensions.github.io/raster/v1.1.0/schema.json")


def recorded(archives: list[str]) -> dict[str, tuple[str, str]]:
    """``{uri: (body, where)}`` of the 200 answers to the wanted URIs in the archives' cassettes."""
    found: dict[str, tuple[str, str]] = {}
    for archive in archives:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if "/cassettes/" not in member.name or not member.name.endswith(".yaml"):
                    continue
                data = yaml.safe_load(tar.extractfile(member).read())
                for step in (data or {}).get("interactions", []):
                    uri = step["request"]["uri"]
                    if uri in WANTED and uri not in found and \
                            step["response"]["status"]["code"] == 200:
                        found[uri] = (step["response"]["body"]["string"],
                                      f"{Path(archive).name}:{member.name}")
    return found


def main(archives: list[str]) -> None:
    found = recorded(archives)
    missing = [u for u in WANTED if u not in found]
    if missing:
        sys.exit(f"not recorded in these archives: {', '.join(missing)}")
    for uri in WANTED:
        body, where = found[uri]
        schema = json.loads(body)
        assert schema["$id"].rstrip("#") == uri, (schema["$id"], uri)
        ext, version = re.match(r".*/([a-z-]+)/(v[0-9.]+)/schema\.json$", uri).groups()
        out = HERE / ext / version / "schema.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(body, encoding="utf-8")
        print(f"{uri}\n  from {where}\n  sha256 {hashlib.sha256(body.encode()).hexdigest()}")


if __name__ == "__main__":
    main(sys.argv[1:])
