"""The console of a run under the default profile (logger plugin ``mgfm``): exactly one line per finished job,
the final progress line, every warning and error kept (a failed job with its log's tail, a locked directory, a
missing input, an error raised by the Snakefile), the dry run's job table, and the Snakefile's closing lines
last. A throwaway four-job workflow in tmp_path, run through ``python -m snakemake`` like a user's run; the
pure formatting and the handler's bookkeeping of group jobs are checked without Snakemake.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from snakemake_logger_plugin_mgfm import text
from tests.support.workflow import REPO, output, snakemake

PROFILE = REPO / "profiles" / "default"

SNAKEFILE = r'''
from snakemake.logging import logger

if config.get("boom"):
    raise WorkflowError("boom: the Snakefile refused this config")
logger.warning("said at parse time: a workflow warning")

rule all:
    input: expand("out/{s}.txt", s=["a", "b", "c"])
    localrule: True

rule make:
    output: "out/{s}.txt"
    wildcard_constraints: s="[abc]"
    log: "logs/make/{s}.log"
    params: fail=config.get("fail", "")
    shell:
        "for i in $(seq 1 60); do echo line $i; done > {log}; "
        "test '{wildcards.s}' != '{params.fail}' && echo {wildcards.s} > {output}"

rule slow:
    output: "out/slow.txt"
    log: "logs/slow.log"
    shell: "echo started > {log}; while [ ! -e go ]; do sleep 0.2; done; touch {output}"

rule needs_missing:
    input: "absent.txt"
    output: "out/never.txt"
    shell: "touch {output}"

onsuccess:
    logger.info("Done. Open out/report.html")
    logger.info("  Headline Top-1: 42.0")
'''

PROFILE_LINE = "Using workflow specific profile"
JOB_LINE = re.compile(r"^\[\s*(\d+)/(\d+)\s+(\d+)%\] (\S+)(?: (\S+=\S+))?  \d+(\.\d)? s$")


def _run(workdir: Path, *args: str) -> tuple[int, list[str]]:
    """Run the throwaway workflow under the default profile; its exit code and every console line."""
    if not (workdir / "Snakefile").exists():
        (workdir / "Snakefile").write_text(SNAKEFILE)
    proc = snakemake(workdir, "--workflow-profile", str(PROFILE), *args, configfiles=(), cores=1, check=False,
                     timeout=240, snakefile=workdir / "Snakefile")
    return proc.returncode, output(proc).splitlines()


def test_the_plugin_is_found_by_snakemake_where_snakemake_looks():
    """Snakemake lists top-level packages (pkgutil), which an import hook of an editable install hides."""
    code = ("from snakemake_interface_logger_plugins.registry import LoggerPluginRegistry as R; "
            "print(R().is_installed('mgfm'))")
    proc = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "True", ("Snakemake does not find its logger plugin 'mgfm': reinstall this "
                                           f"checkout (pip install -e .)\n{proc.stderr[-2000:]}")


@pytest.mark.pipeline
def test_a_run_prints_one_line_per_job_and_the_closing_lines_last(tmp_path):
    rc, lines = _run(tmp_path)
    assert rc == 0, "\n".join(lines)
    body = [line for line in lines if not line.startswith(PROFILE_LINE)]
    jobs = [JOB_LINE.match(line) for line in body]
    jobs = [m for m in jobs if m]
    assert sorted((m.group(4), m.group(5)) for m in jobs) == [("all", None), ("make", "s=a"), ("make", "s=b"),
                                                             ("make", "s=c")]
    assert [int(m.group(1)) for m in jobs] == [1, 2, 3, 4] and {m.group(2) for m in jobs} == {"4"}
    assert [m.group(4) for m in jobs][-1] == "all" and jobs[-1].group(3) == "100"
    # every line accounted for: a job printing a second line (a rule block, a timestamp, "Finished jobid")
    # would be one line too many
    assert body == ["said at parse time: a workflow warning",
                    "4 jobs to run (2 rules; `snakemake -n` lists them)",
                    *[m.group(0) for m in jobs],
                    body[-3],
                    "Done. Open out/report.html",
                    "  Headline Top-1: 42.0"], "\n".join(lines)
    assert re.fullmatch(r"4 of 4 steps \(100%\) done in \d+\.\d s; Snakemake's log: \.snakemake/log/\S+\.log",
                        body[-3]), body[-3]


@pytest.mark.pipeline
def test_a_failed_job_shows_its_error_block_and_the_end_of_its_log(tmp_path):
    rc, lines = _run(tmp_path, "out/b.txt", "--config", "fail=b")
    out = "\n".join(lines)
    assert rc != 0
    assert "said at parse time: a workflow warning" in lines
    assert re.search(r"^FAILED make s=b after \d+\.\d s$", out, re.M), out
    assert "Error in rule make:" in lines and "    log: logs/make/b.log (check log file(s) for error details)" in lines
    # show-failed-logs: the end of the log, not all of it
    assert "Log logs/make/b.log (last 40 of 60 lines):" in lines
    assert "line 60" in lines and "line 21" in lines and "line 20" not in lines
    # Snakemake's own error lines stay
    assert "Exiting because a job execution failed. Look above for error messages" in lines
    assert "At least one job did not complete successfully." in lines
    assert any(line.startswith("Complete log(s): ") for line in lines)
    assert not any(JOB_LINE.match(line) for line in lines)
    # the command (with every param) once, in the error block, with its exit status; one closing line
    assert sum("test 'b' != 'b'" in line for line in lines) == 1, out
    assert "        (command exited with status 1)" in lines and "CalledProcessError" not in out
    assert lines[-1] == "0 of 1 steps done, 1 failed: make", out


@pytest.mark.pipeline
def test_a_failed_run_ends_with_what_was_done_and_what_failed(tmp_path):
    rc, lines = _run(tmp_path, "--config", "fail=b", "--keep-going")
    out = "\n".join(lines)
    assert rc != 0 and lines[-1] == "2 of 4 steps done, 1 failed: make", out
    assert sum(bool(JOB_LINE.match(line)) for line in lines) == 2, out             # make s=a, make s=c


@pytest.mark.pipeline
def test_workflow_errors_and_a_missing_input_are_printed(tmp_path):
    rc, lines = _run(tmp_path, "--config", "boom=1")
    assert rc != 0 and "boom: the Snakefile refused this config" in "\n".join(lines), "\n".join(lines)
    rc, lines = _run(tmp_path, "out/never.txt")
    out = "\n".join(lines)
    assert rc != 0 and "MissingInputException" in out and "absent.txt" in out, out


@pytest.mark.pipeline
def test_a_locked_directory_is_reported(tmp_path):
    """A second run while the first holds the lock (the first waits for a file the test makes afterwards)."""
    first = threading.Thread(target=_run, args=(tmp_path, "out/slow.txt"), daemon=True)
    first.start()
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "logs" / "slow.log").exists():
            assert first.is_alive() and time.monotonic() < deadline, "the first run never started its job"
            time.sleep(0.1)
        rc, lines = _run(tmp_path, "out/slow.txt")
        assert rc != 0 and any("Directory cannot be locked" in line for line in lines), "\n".join(lines)
    finally:
        (tmp_path / "go").touch()
        first.join(timeout=120)
    assert (tmp_path / "out" / "slow.txt").exists()


@pytest.mark.pipeline
def test_a_dry_run_keeps_snakemakes_job_table_and_rule_blocks(tmp_path):
    rc, lines = _run(tmp_path, "-n", "-p", "--quiet=host")
    out = "\n".join(lines)
    assert rc == 0, out
    assert re.search(r"^Job stats:\njob\s+count\n-+\s+-+\nmake\s+3\nall\s+1\ntotal\s+4$", out, re.M), out
    assert "rule make:" in lines and any(line.startswith("    wildcards: s=") for line in lines)
    assert any(line.startswith("Shell command: for i in $(seq 1 60)") for line in lines)
    assert "This was a dry-run (flag -n). The order of jobs does not reflect the order of execution." in lines
    assert not any(JOB_LINE.match(line) for line in lines)


@pytest.mark.pipeline
def test_logger_mgfm_full_gives_snakemakes_own_console_back(tmp_path):
    rc, lines = _run(tmp_path, "--logger-mgfm-full")
    assert rc == 0, "\n".join(lines)
    finished = [line for line in lines if re.fullmatch(r"Finished jobid: \d+ \(Rule: \w+\)", line)]
    assert len(finished) == 4 and "4 of 4 steps (100%) done" in lines and "Building DAG of jobs..." in lines
    assert not any(JOB_LINE.match(line) for line in lines)
    assert lines[-4:-2] == ["Done. Open out/report.html", "  Headline Top-1: 42.0"]    # then Snakemake's log, time


# ---- without Snakemake ---------------------------------------------------------------------------------------

def test_counter_and_durations():
    assert text.counter(37, 134) == "[ 37/134  27%]"
    assert text.counter(133, 134) == "[133/134  99%]"          # rounded down: 100% only when all are done
    assert text.counter(134, 134) == "[134/134 100%]"
    assert [text.duration(s) for s in (0.04, 9.96, 12.4, 185, 7380)] == \
        ["0.0 s", "10.0 s", "12 s", "3 min 05 s", "2 h 03 min"]
    assert text.job_line(3, 4, text.job_label("pose", {"video": "demo003"}), 2.08) == "[3/4  75%] pose video=demo003  2.1 s"


def test_failed_run_line_and_exit_status():
    assert text.failed_run_line(130, 134, ["pose", "eval_emotion", "pose"]) == \
        "130 of 134 steps done, 3 failed: pose (x2), eval_emotion"
    assert text.failed_run_line(0, None, ["make"]) == "0 steps done, 1 failed: make"
    message = ("RuleException:\nCalledProcessError in file \"/w/Snakefile\", line 7:\nCommand 'set -euo pipefail;  "
               "mgfm x --params '{\"a\": 1}'' returned non-zero exit status 127.")
    assert text.exit_status(message) == 127 and text.exit_status("RuleException:\nValueError in file x") is None


def test_log_tail(tmp_path):
    log = tmp_path / "job.log"
    assert text.log_tail(log) == [f"Log {log}: not written"]
    log.write_text("")
    assert text.log_tail(log) == [f"Log {log}: empty"]
    log.write_text("one\ntwo\nthree\n")
    assert text.log_tail(log, 2)[0] == f"Log {log} (last 2 of 3 lines):" and text.log_tail(log, 2)[2:4] == ["two", "three"]
    assert text.log_tail(log, 5)[0] == f"Log {log}:" and text.log_tail(log, 5)[2:5] == ["one", "two", "three"]


def _record(event, msg=None, level=logging.INFO, created=0.0, **fields) -> logging.LogRecord:
    record = logging.LogRecord("snakemake.logging", level, __file__, 1, msg, (), None)
    record.created = created
    record.event = event
    for key, value in fields.items():
        setattr(record, key, value)
    return record


def _handler(quiet: set | None = None):
    from snakemake_logger_plugin_mgfm import LogHandler

    settings = SimpleNamespace(printshellcmds=False, nocolor=True, quiet=quiet or set(), debug_dag=False,
                               verbose=False, show_failed_logs=True, stdout=False, dryrun=False)
    return LogHandler(settings, None)


def test_group_jobs_get_one_line_each_numbered_in_turn(capsys):
    """A group job finishes several jobs before one progress record: each still gets its line and number."""
    from snakemake_interface_logger_plugins.common import LogEvent

    handler = _handler()
    for jobid, video in ((5, "v1"), (6, "v2")):
        handler.handle(_record(LogEvent.JOB_INFO, jobid=jobid, rule_name="pose", wildcards={"video": video},
                               created=100.0))
    handler.handle(_record(LogEvent.JOB_FINISHED, job_id=5, created=101.5))
    handler.handle(_record(LogEvent.JOB_FINISHED, job_id=6, created=103.0))
    handler.handle(_record(LogEvent.PROGRESS, done=7, total=9, created=103.0))
    handler.handle(_record(None, "Select jobs to execute..."))
    handler.handle(_record(None, "a message of the workflow's own"))
    assert capsys.readouterr().err.splitlines() == ["[6/9  66%] pose video=v1  1.5 s",
                                                    "[7/9  77%] pose video=v2  3.0 s",
                                                    "a message of the workflow's own"]


def test_quiet_progress_and_quiet_all_keep_warnings_and_errors(capsys):
    from snakemake.settings.enums import Quietness
    from snakemake_interface_logger_plugins.common import LogEvent

    for quiet, expected in (({Quietness.PROGRESS}, ["a message of the workflow's own", "careful", "broken"]),
                            ({Quietness.ALL}, ["careful", "broken"])):
        handler = _handler(quiet)
        handler.handle(_record(LogEvent.JOB_INFO, jobid=1, rule_name="pose", wildcards={}, created=1.0))
        handler.handle(_record(LogEvent.JOB_FINISHED, job_id=1, created=2.0))
        handler.handle(_record(LogEvent.PROGRESS, done=1, total=1, created=2.0))
        handler.handle(_record(None, "a message of the workflow's own"))
        handler.handle(_record(None, "careful", level=logging.WARNING))
        handler.handle(_record(LogEvent.ERROR, "broken", level=logging.ERROR))
        assert capsys.readouterr().err.splitlines() == expected, quiet
