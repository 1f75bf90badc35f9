"""The words of the one-line console: pure functions from Snakemake's log-record fields to text, so the
handler (``handler.py``) only keeps state and every line it prints can be tested without Snakemake."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

# how much of a failed job's log the console shows: enough for a traceback's end, little enough that the
# error block stays readable when a training job's log has thousands of lines (the log file keeps it all)
LOG_TAIL_LINES = 40


def duration(seconds: float) -> str:
    """A short human duration: ``0.4 s``, ``12 s``, ``3 min 05 s``, ``2 h 03 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def counter(done: int, total: int) -> str:
    """``[ 37/134  27%]``: the job's number among all jobs of the run, padded so the lines stay aligned.

    The percentage is rounded down, so 100% means every job is done, as in Snakemake's own progress line.
    """
    width = len(str(total))
    percent = 100 * done // total if total else 100
    return f"[{done:>{width}}/{total} {percent:>3}%]"


def job_label(rule: str, wildcards: Mapping[str, object] | None) -> str:
    """``pose video_id=demo003``: the rule and the wildcards that tell its jobs apart."""
    parts = [rule] + [f"{name}={value}" for name, value in (wildcards or {}).items()]
    return " ".join(parts)


def job_line(done: int, total: int, label: str, seconds: float | None) -> str:
    """One finished job: ``[ 37/134  27%] pose video_id=demo003  2.1 s``."""
    line = f"{counter(done, total)} {label}"
    return line if seconds is None else f"{line}  {duration(seconds)}"


def final_line(done: int, total: int, seconds: float, snakemake_log: str | None) -> str:
    """The run's last progress line, in Snakemake's own words, with the run's wall time and its log."""
    line = f"{done} of {total} steps (100%) done in {duration(seconds)}"
    return f"{line}; Snakemake's log: {snakemake_log}" if snakemake_log else line


def failed_run_line(done: int, total: int | None, failed: Sequence[str]) -> str:
    """The last line of a run that had failures: ``130 of 134 steps done, 2 failed: pose, eval_emotion``
    (a rule that failed several times once, with its count)."""
    counts: dict[str, int] = {}
    for rule in failed:
        counts[rule] = counts.get(rule, 0) + 1
    rules = ", ".join(rule if n == 1 else f"{rule} (x{n})" for rule, n in counts.items())
    of = f" of {total}" if total else ""
    return f"{done}{of} steps done, {len(failed)} failed: {rules}"


def exit_status(message: str) -> int | None:
    """The exit status in Snakemake's ``CalledProcessError`` message of a failed shell command, if it is one."""
    import re

    if not message.startswith("RuleException:") or "CalledProcessError" not in message:
        return None
    found = re.search(r"returned non-zero exit status (\d+)\.?\s*$", message.strip())
    return int(found.group(1)) if found else None


def plan_line(stats: Mapping[str, int]) -> str:
    """What a run is about to do, on one line, from the job-stats table (``snakemake -n`` prints the table)."""
    total = stats.get("total", sum(v for k, v in stats.items() if k != "total"))
    rules = len([k for k in stats if k != "total"])
    jobs_word = "job" if total == 1 else "jobs"
    rules_word = "rule" if rules == 1 else "rules"
    return f"{total} {jobs_word} to run ({rules} {rules_word}; `snakemake -n` lists them)"


def log_tail(path: str | Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a job's log between rulers, with a note of what was left out."""
    path = Path(path)
    try:
        content = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return [f"Log {path}: not written"]
    except OSError as err:
        return [f"Log {path}: unreadable ({err.strerror})"]
    if not content:
        return [f"Log {path}: empty"]
    shown = content[-lines:]
    head = f"Log {path}" + (f" (last {len(shown)} of {len(content)} lines):" if len(shown) < len(content) else ":")
    ruler = "=" * min(max(len(head), *(len(line) for line in shown)), 80)
    return [head, ruler, *shown, ruler]


def failed_job_block(record: Mapping[str, object], show_logs: bool, tail: int = LOG_TAIL_LINES,
                     status: int | None = None) -> list[str]:
    """Snakemake's error block of a failed job (rule, jobid, files, command: its params once), each log's tail
    when asked; ``status``: the command's exit status, when known.

    ``record`` holds the fields of a ``job_error`` log record: rule_name, rule_msg, jobid, input, output,
    log, conda_env, shellcmd, aux.
    """
    out = [f"Error in rule {record['rule_name']}:"]
    if record.get("rule_msg"):
        out.append(f"    message: {record['rule_msg']}")
    out.append(f"    jobid: {record['jobid']}")
    for key in ("input", "output"):
        if record.get(key):
            out.append(f"    {key}: {', '.join(record[key])}")
    logs: Sequence[str] = record.get("log") or []
    if logs:
        out.append(f"    log: {', '.join(logs)} (check log file(s) for error details)")
    if record.get("conda_env"):
        out.append(f"    conda-env: {record['conda_env']}")
    if record.get("shellcmd"):
        code = f"status {status}" if status is not None else "non-zero exit code"
        out.append(f"    shell:\n        {record['shellcmd']}\n        (command exited with {code})")
    for key, value in (record.get("aux") or {}).items():
        out.append(f"    {key}: {value}")
    if show_logs:
        for log in logs:
            out.extend(log_tail(log, tail))
    return out


def failed_group_block(record: Mapping[str, object], show_logs: bool, tail: int = LOG_TAIL_LINES) -> list[str]:
    """Snakemake's error block of a failed group job: each member's rule, jobid, output and log.

    Only the group's own logs get their tail shown here: Snakemake follows this record with one ``job_error``
    record per member, and each of those shows the member's log.
    """
    out = [f"Error in group {record.get('groupid')}:"]
    aux_logs: Sequence[str] = record.get("aux_logs") or []
    if aux_logs:
        out.append(f"    log: {', '.join(aux_logs)} (check log file(s) for error details)")
    out.append("    jobs:")
    for info in record.get("job_error_info") or []:
        out.append(f"        rule {info['rule_name']}:")
        out.append(f"            jobid: {info['jobid']}")
        if info.get("output"):
            out.append(f"            output: {', '.join(info['output'])}")
        if info.get("log"):
            out.append(f"            log: {', '.join(info['log'])} (check log file(s) for error details)")
    if show_logs:
        for log in dict.fromkeys(aux_logs):
            out.extend(log_tail(log, tail))
    return out
