"""One typed error tree for the whole project.

Every error a user can cause derives from :class:`LandcoverError`. Messages name the file or config
key at fault and say what is wrong. They do not name command-line flags: an error that the command
line can fix carries ``flag`` (the option the value came from, put before the message) and ``hint``
(what to pass), and the CLI adds them (:meth:`LandcoverError.cli_message`). The CLI turns errors into
a one-line message and an exit code: :class:`UsageError` subclasses exit with 2 (bad flags, bad
config keys), everything else with 1.
"""

from __future__ import annotations


class LandcoverError(Exception):
    """Root of all errors raised by landcover on bad input or failed I/O.

    Args:
        message: what is wrong, naming the file or key.
        flag: the command-line option the faulty value came from (``--labels``), if any.
        hint: what to do on the command line (``pass --overwrite to replace it``); defaults to the
            class's ``hint``.
    """

    exit_code = 1
    hint: str | None = None

    def __init__(self, message: str = "", *, flag: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.flag = flag
        if hint is not None:
            self.hint = hint

    def cli_message(self) -> str:
        """The message as the command line shows it: flag, message, hint, on one line."""
        text = " ".join(str(self).split())
        if self.flag:
            text = f"{self.flag} {text}"
        if self.hint:
            text = f"{text}; {self.hint}"
        return text


class UsageError(LandcoverError):
    """The command line or configuration is wrong (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A config file or ``--set`` override is invalid: unknown key, wrong type or value."""


class SceneError(LandcoverError):
    """A scene (folder, archive or file) cannot be used."""


class SceneNotFoundError(SceneError):
    """No recognisable scene where the user pointed."""


class UnknownSensorError(SceneError):
    """A product ID names a sensor that no profile knows."""


class MissingBandError(SceneError):
    """A band (or mask) file that the profile requires is missing."""


class MetadataError(SceneError):
    """A metadata file (MTL txt/json/xml) cannot be parsed or lacks a required field."""


class RasterReadError(SceneError):
    """A raster cannot be opened or read (truncated or corrupt file)."""


class StacError(SceneError):
    """A STAC document, catalogue or API cannot be used: unreachable, HTTP errors after the
    retries, not STAC, or items of another collection than Landsat Collection 2 Level-2."""


class BandShapeError(SceneError):
    """The rasters of one scene disagree in shape, CRS or transform."""


class ProfileError(UsageError):
    """A sensor profile YAML is missing or invalid."""


class GridMismatchError(LandcoverError):
    """Scenes lie on different grids and alignment is off, or have no common grid."""


class OutputError(LandcoverError):
    """An output cannot be written where it was asked for (no such folder ...)."""


class OutputExistsError(OutputError):
    """An output exists and replacing it was not asked for (``overwrite``)."""

    hint = "pass --overwrite to replace it"


class OutputLockedError(OutputError):
    """Another landcover run is writing the same output."""


class ResumeError(LandcoverError):
    """Resuming was asked for, but there is no interrupted run of this output, or it used other
    inputs or settings (exit code 1, like other errors of the state on disk)."""

    hint = "run without --resume"


class LabelError(LandcoverError):
    """Labels cannot be used: unreadable, empty, no class column, or no overlap with the scenes."""


class ClassTableError(LandcoverError):
    """A class table (codes, names, colours) is invalid or empty."""


class DatasetError(LandcoverError):
    """No usable training data: no window passes the thresholds, all dates cloudy, empty split."""


class SchedulerError(UsageError):
    """``--scheduler`` is not threads, synchronous, local:N or a tcp:// address, or unreachable."""


class ModelError(LandcoverError):
    """A model bundle is missing, corrupt or does not fit the data; or training failed (NaN loss)."""
