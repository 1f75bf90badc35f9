"""The console handler: Snakemake's log records in, one line per finished job out.

Snakemake announces a job twice before it is done (``job_info`` with its rule and wildcards, ``shellcmd``),
then ``job_finished`` and a ``progress`` record with the counts. This handler remembers the first, prints one
line when the last arrives, and leaves out the run's set-up chatter. Everything at WARNING or above is printed,
as are messages it does not know (the workflow's own ``logger.info`` lines, "Nothing to be done"), so dropping a
line is always a decision made here by name. A dry run (``-n``) and ``--logger-mgfm-full`` get Snakemake's own
console, formatted by Snakemake's own formatter: the job-stats table, and the rule blocks and commands when
``--quiet`` and ``-p`` ask for them.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent

from snakemake_logger_plugin_mgfm import text

# Snakemake's set-up messages (no event of their own): what a user of this workflow never acts on. Also left out
# (see _is_chatter): "Config file ... is extended by additional config", as this workflow always takes the
# repository's config.yaml as the base of --configfile files
CHATTER_PREFIXES = (
    "Assuming unrestricted shared filesystem usage",
    "Building DAG of jobs...",
    "Using shell:",
    "Select jobs to execute...",
)
# said by Snakemake after the onsuccess handler of a run whose jobs are all done: the final progress line
# carries both, so the workflow's closing lines stay the last ones
AFTER_SUCCESS_PREFIXES = ("Complete log(s):", "Elapsed time:")
# Snakemake's last message of a run in which a job failed; the console's own summary line follows it
RUN_FAILED = "At least one job did not complete successfully."

RED, YELLOW = "\033[31m", "\033[33m"
RESET = "\033[0m"


@dataclass
class _Job:
    label: str
    started: float


class OneLineConsole(LogHandlerBase):
    """Snakemake's console with one line per finished job (see the module docstring)."""

    def __post_init__(self) -> None:
        # imported here: the plugin registry imports this package while Snakemake builds its parser
        from snakemake.logging import DefaultFilter, DefaultFormatter

        s = self.common_settings
        self.full = bool(self.settings is not None and getattr(self.settings, "full", False))
        self.stream: TextIO = sys.stdout if s.stdout else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.color = not s.nocolor and os.environ.get("TERM") != "dumb" and bool(isatty and isatty())
        self.snakemake_filter = DefaultFilter(s.quiet, s.debug_dag, s.verbose, s.dryrun, s.printshellcmds)
        self.snakemake_formatter = DefaultFormatter(s.quiet, s.show_failed_logs)
        self.quiet = {str(q).lower() for q in (s.quiet or ())}
        self.started = time.time()
        self.jobs: dict[int, _Job] = {}
        self.finished: list[tuple[int, float | None]] = []   # (jobid, seconds) since the last progress
        self.all_done = False
        self.last_was_job_info = False
        self.done, self.total = 0, None           # steps done so far, steps of the run (from the plan, progress)
        self.failed_rules: list[str] = []         # the rule of each failed job, in order
        self.exit_status: int | None = None       # of the shell command whose job_error record comes next

    # ---- LogHandlerBase: what this handler is -----------------------------------------------------------
    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False

    # ---- records in -------------------------------------------------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        # logging.Handler.handle() holds the handler's lock around this call: records come one at a time
        try:
            if self.full or self.common_settings.dryrun:
                self._snakemake_console(record)
            elif self._wanted(record):
                self._one_line_console(record)
        except Exception:
            self.handleError(record)

    def _snakemake_console(self, record: logging.LogRecord) -> None:
        """Snakemake's own console (filter and formatter), less the banner and the set-up chatter."""
        event = getattr(record, "event", None)
        if not self.full and (event == LogEvent.WORKFLOW_STARTED or self._is_chatter(record)):
            return
        if not self.snakemake_filter.filter(record):
            return
        message = self.snakemake_formatter.format(record)
        if not message or message == "None":
            return
        if event == LogEvent.JOB_INFO and not self.last_was_job_info:
            message = "\n" + message
        self.last_was_job_info = event == LogEvent.JOB_INFO
        self._write(message, record.levelno)

    def _wanted(self, record: logging.LogRecord) -> bool:
        """The user's --quiet, --verbose and --debug-dag, for this console; warnings and errors always pass."""
        if record.levelno >= logging.WARNING:
            return True
        if "all" in self.quiet:
            return False
        quietness = getattr(record, "quietness", None)
        if quietness is not None and str(quietness).lower() in self.quiet:
            return False
        if record.levelno < logging.INFO:
            return self.snakemake_filter.filter(record)
        return True

    def _one_line_console(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        fields = vars(record)
        if event in (LogEvent.WORKFLOW_STARTED, LogEvent.RESOURCES_INFO, LogEvent.JOB_STARTED,
                     LogEvent.GROUP_INFO, LogEvent.RULEGRAPH):
            if event == LogEvent.WORKFLOW_STARTED:
                self.started = record.created
            return
        if event == LogEvent.JOB_INFO:
            self.jobs[fields["jobid"]] = _Job(text.job_label(fields["rule_name"], fields.get("wildcards")),
                                              record.created)
            return
        if event == LogEvent.SHELLCMD:
            command = fields.get("cmd") or fields.get("shellcmd")
            if self.common_settings.printshellcmds and command:
                self._write(command, record.levelno)
            return
        if event == LogEvent.JOB_FINISHED:
            job = self.jobs.get(fields["job_id"])
            self.finished.append((fields["job_id"], record.created - job.started if job else None))
            return
        if event == LogEvent.PROGRESS:
            self._progress(fields["done"], fields["total"], record.created)
            return
        if event == LogEvent.RUN_INFO and fields.get("stats"):
            stats = fields["stats"]
            self.total = stats.get("total", sum(v for k, v in stats.items() if k != "total"))
            self._write(text.plan_line(stats), record.levelno)
            return
        if event == LogEvent.JOB_ERROR:
            self._job_error(fields, record)
            return
        if event == LogEvent.ERROR:
            status = text.exit_status(record.getMessage())
            if status is not None:
                # Snakemake's CalledProcessError repeats the whole command (every --params) just before the
                # job's error block shows it: keep its exit status for that block, print the command once
                self.exit_status = status
                return
        if event == LogEvent.GROUP_ERROR:
            self._write("\n".join(text.failed_group_block(fields, self.common_settings.show_failed_logs)),
                        record.levelno)
            return
        if event is None and record.levelno < logging.WARNING:
            if self._is_chatter(record):
                return
            if self.all_done and record.getMessage().startswith(AFTER_SUCCESS_PREFIXES):
                return
        message = self.snakemake_formatter.format(record)
        if message and message != "None":
            self._write(message, record.levelno)
        if self.failed_rules and record.getMessage().rstrip().endswith(RUN_FAILED):
            # Snakemake's last word on a failed run: one line of what was done and what failed, last
            self._write(text.failed_run_line(self.done, self.total, self.failed_rules), record.levelno)

    # ---- what each kind of record prints ----------------------------------------------------------------
    def _progress(self, done: int, total: int, now: float) -> None:
        self.done, self.total = done, total or self.total
        if "progress" not in self.quiet:
            first = done - len(self.finished) + 1
            for number, (jobid, seconds) in enumerate(self.finished, start=first):
                job = self.jobs.pop(jobid, None)
                self._write(text.job_line(number, total, job.label if job else f"job {jobid}", seconds),
                            logging.INFO)
        self.finished = []
        if total and done >= total:
            self.all_done = True
            if "progress" not in self.quiet:
                self._write(text.final_line(done, total, now - self.started, self._snakemake_log()),
                            logging.INFO)

    def _job_error(self, fields: dict, record: logging.LogRecord) -> None:
        job = self.jobs.pop(fields["jobid"], None)
        label = job.label if job else text.job_label(fields["rule_name"], None)
        after = f" after {text.duration(record.created - job.started)}" if job else ""
        self.failed_rules.append(str(fields["rule_name"]))
        lines = [f"FAILED {label}{after}"]
        lines += text.failed_job_block(fields, self.common_settings.show_failed_logs, status=self.exit_status)
        self.exit_status = None
        if fields.get("indent"):
            lines = ["    " + line for line in lines]
        self._write("\n".join(lines), record.levelno)

    # ---- helpers ----------------------------------------------------------------------------------------
    @staticmethod
    def _is_chatter(record: logging.LogRecord) -> bool:
        if getattr(record, "event", None) is not None or record.levelno != logging.INFO:
            return False
        message = record.getMessage()
        if message.startswith("Config file "):
            return "is extended by additional config specified via the command line" in message
        return message.startswith(CHATTER_PREFIXES)

    @staticmethod
    def _snakemake_log() -> str | None:
        """The run's own log file (``.snakemake/log/...``), relative to the working directory when inside it."""
        for handler in logging.getLogger("snakemake.logging").handlers:
            if isinstance(handler, logging.FileHandler):
                path = handler.baseFilename
                rel = os.path.relpath(path)
                return path if rel.startswith("..") else rel
        return None

    def _write(self, message: str, level: int) -> None:
        if self.color and level >= logging.WARNING:
            message = f"{RED if level >= logging.ERROR else YELLOW}{message}{RESET}"
        self.stream.write(message + "\n")
        self.stream.flush()
