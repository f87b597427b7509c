"""``python -m landcover.config --yaml | --markdown | --check | --write``: the files written from
the config schema (:mod:`landcover.config.docs`)."""

import argparse
import sys

from landcover.config import docs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m landcover.config", description=__doc__)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--yaml", action="store_true", help="print configs/default.yaml")
    what.add_argument("--markdown", action="store_true", help="print the README's table")
    what.add_argument("--check", action="store_true",
                      help="exit 1 when configs/default.yaml or the README's table differ")
    what.add_argument("--write", action="store_true",
                      help="rewrite configs/default.yaml and the README's table")
    args = parser.parse_args(argv)
    try:
        if args.yaml:
            sys.stdout.write(docs.render_yaml())
        elif args.markdown:
            sys.stdout.write(docs.render_markdown())
        elif args.check:
            found = docs.differences()
            for message in found:
                print(message, file=sys.stderr)
            return 1 if found else 0
        else:
            for path in docs.write():
                print(f"rewrote {path}")
    except (OSError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
