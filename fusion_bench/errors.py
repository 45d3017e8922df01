"""Exceptions a user can cause. The CLI prints them as one line and exits non-zero."""


class FusionBenchError(Exception):
    """A problem with the user's input (config, data, plugin); the message says what to do."""


class PluginError(FusionBenchError):
    """A plugin failed to load or register, or two plugins claim one name."""


class ConfigError(FusionBenchError):
    """An unknown config key, a value of the wrong type, or an impossible setting."""


class DataError(FusionBenchError):
    """Malformed or inconsistent data; the message names the file/video, line or field."""


class Note(UserWarning):
    """Something the user should know that is no error (an ignored metadata key): a warning the
    CLI prints as one line, ``note: ...``."""
