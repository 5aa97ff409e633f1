"""One exception tree for everything Graftzoo reports to a user.

Every message says what was wrong, where (file, entry, field, plugin) and
what to do next. The CLI turns any ``GraftError`` into one line and exit
code 1 (see ``graftzoo.cli``).
"""

from __future__ import annotations


class GraftError(Exception):
    """Root of every error Graftzoo raises on purpose."""


class RegistryError(GraftError):
    """A registry file or entry is malformed, or an id is unknown."""


class SourceError(GraftError):
    """A model source could not be resolved, fetched or loaded."""


class ChecksumError(SourceError):
    """A file's sha256 does not match the one it was pinned to."""


class PluginError(GraftError):
    """A plugin failed to load, raised in a hook, or registered a name twice."""


class DataError(GraftError):
    """Input data is missing, unreadable or unsuitable for the task."""


class TrainingError(GraftError):
    """A training, evaluation or export step cannot go on."""
