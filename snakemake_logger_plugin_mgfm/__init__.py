"""mgfm's Snakemake console: one line per finished job, the progress, and every warning and error.

A Snakemake logger plugin (``--logger mgfm``; profiles/default/config.yaml turns it on). Snakemake
finds it by this package's name, ``snakemake_logger_plugin_<name>``, among the importable top-level packages,
which is why it sits beside ``mgfm`` rather than inside it. ``--logger-mgfm-full`` prints Snakemake's own
console instead, with the rest of the profile kept.
"""

from dataclasses import dataclass, field

from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

from snakemake_logger_plugin_mgfm.handler import OneLineConsole


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    # no ``from __future__ import annotations`` here: Snakemake turns each field into a command-line option
    # and reads its type from the annotation, which must be the class itself
    full: bool = field(
        default=False,
        metadata={"help": "Print Snakemake's own console (the rule block of every job, timestamps, "
                          "'Finished job' lines) instead of one line per job."},
    )


LogHandler = OneLineConsole

__all__ = ["LogHandler", "LogHandlerSettings"]
