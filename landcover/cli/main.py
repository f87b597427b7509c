"""The ``landcover`` click group: logging from ``-v/-q``, ``--version``, and the error boundary.

Library errors (:class:`landcover.errors.LandcoverError`) become a one-line ``Error: ...`` on stderr
and exit code 1 (runtime) or 2 (usage/config); ``-v`` adds the traceback.
"""

from __future__ import annotations

import errno
import logging
import sys
import traceback

import click

from landcover import __version__
from landcover.errors import LandcoverError


class LandcoverGroup(click.Group):
    """A click group that turns :class:`LandcoverError` into a clean message and exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LandcoverError as exc:
            self._fail(ctx, exc.cli_message(), exc.exit_code)
        except OSError as exc:
            if exc.errno not in DISK_ERRORS:
                raise
            self._fail(ctx, disk_message(exc), 1)

    @staticmethod
    def _fail(ctx: click.Context, message: str, code: int):
        if (ctx.obj or {}).get("verbosity", 0) > 0:
            traceback.print_exc(file=sys.stderr)
        click.echo(f"Error: {message}", err=True)
        ctx.exit(code)


DISK_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG,
               errno.EDQUOT, errno.EIO}
_WHAT_TO_DO = {errno.ENOSPC: "free some space or write elsewhere",
               errno.EDQUOT: "free some space or write elsewhere",
               errno.EROFS: "write to a writable folder",
               errno.EACCES: "write to a folder you may write to",
               errno.EPERM: "write to a folder you may write to",
               errno.ENAMETOOLONG: "choose a shorter output name",
               errno.EIO: "check the disk"}


def disk_message(exc: OSError) -> str:
    """One line for a failed write: the path, what happened, what to do. The command's outputs
    were written under temporary names, which its clean-up has removed."""
    where = exc.filename or "an output"
    return (f"{where}: {exc.strerror or exc}; the run stopped and left no output "
            f"({_WHAT_TO_DO[exc.errno]})")


def setup_logging(verbosity: int) -> None:
    level = max(logging.DEBUG, logging.WARNING - 10 * verbosity)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("landcover")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


@click.group(cls=LandcoverGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.option("-q", "--quiet", count=True, help="Less output: no progress bars, errors only.")
@click.version_option(__version__, prog_name="landcover")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: int) -> None:
    """Landsat image time series to land-cover maps.

    SCENES are Landsat scene folders, EarthExplorer .tar archives, or folders that contain them.
    """
    verbosity = verbose - quiet
    ctx.ensure_object(dict)
    ctx.obj["verbosity"] = verbosity
    setup_logging(verbosity)


def _register() -> None:
    from landcover.cli.change import change
    from landcover.cli.check_samples import check_samples
    from landcover.cli.classify import classify
    from landcover.cli.evaluate import evaluate
    from landcover.cli.info import info
    from landcover.cli.prepare import prepare
    from landcover.cli.pretrain import pretrain
    from landcover.cli.sample import sample
    from landcover.cli.search import search
    from landcover.cli.smooth import smooth
    from landcover.cli.train import train

    cli.add_command(info)
    cli.add_command(search)
    cli.add_command(check_samples)
    cli.add_command(prepare)
    cli.add_command(pretrain)
    cli.add_command(train)
    cli.add_command(classify)
    cli.add_command(evaluate)
    cli.add_command(smooth)
    cli.add_command(sample)
    cli.add_command(change)


_register()


def main(args=None) -> None:
    """Entry point; ``args`` lets tests call the CLI directly."""
    cli.main(args=args, prog_name="landcover")


if __name__ == "__main__":
    main()
