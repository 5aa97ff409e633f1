"""One exception tree for everything Graftzoo reports to a user.

Every message says what was wrong, where (file, entry, field, plugin) and
what to do next. The CLI turns any ``GraftError`` into one line and exit
code 1 (see ``graftzoo.cli``); any other exception reaching it is a bug
(``tests/core/test_cli_errors.py`` feeds every command bad input to check).

One class per kind of failure, whichever module or plugin notices it:

=================  ===========================================================
``RegistryError``  a registry file or entry is malformed, or an id is unknown
``SourceError``    weights cannot be resolved, downloaded or read
``ChecksumError``  a file's sha256 differs from its pin (a ``SourceError``)
``PluginError``    a plugin failed to load, raised in a hook, registered a name
                   twice, or broke its contract (an adapter that cannot build
                   its entry, a wrong ``feature_dim``, no groups, a head that
                   raises on construction)
``OptionError``    an option does not fit: an unknown or out-of-range adapter,
                   head or policy option, an option the chosen policy ignores,
                   an ``--image-size`` a fixed-size model cannot take
``DataError``      input data is missing, unreadable, of another modality, or
                   unsuitable for the task
``TrainingError``  a run cannot go on: a run directory that exists, is
                   damaged or is being written by another process, an
                   interrupted run, an export that fails
``StorageError``   a write failed for want of room or permission (ENOSPC,
                   EDQUOT, EROFS, EACCES): names the file and what to free or
                   where to point ``GRAFTZOO_HOME``
=================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class GraftError(Exception):
    """Root of every error Graftzoo raises on purpose."""


class RegistryError(GraftError):
    """A registry file or entry is malformed, or an id is unknown."""


class SourceError(GraftError):
    """A model source could not be resolved, fetched or loaded."""


class ChecksumError(SourceError):
    """A file's sha256 does not match the one it was pinned to."""


class PluginError(GraftError):
    """A plugin failed to load, raised in a hook, registered a name twice or broke its contract."""


class OptionError(GraftError):
    """An adapter, head, policy or command-line option does not fit the model or the policy."""


class DataError(GraftError):
    """Input data is missing, unreadable or unsuitable for the task."""


class TrainingError(GraftError):
    """A training, evaluation or export step cannot go on."""


class StorageError(GraftError):
    """A write failed for want of room or permission (full disk, read-only or unwritable directory)."""


@contextmanager
def naming(where: object) -> Iterator[None]:
    """Put ``where`` (the file or directory being read) in front of a ``GraftError`` raised inside, unless the
    message already names it: an error found deep in what a file describes still says which file it was."""
    try:
        yield
    except GraftError as exc:
        if str(where) in str(exc):
            raise
        raise type(exc)(f"{where}: {exc}") from exc
