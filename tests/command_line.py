"""`python -m bot ADMIN-COMMAND` run in the test process, as the subprocess would run it.

Starting `python -m bot` costs most of a second of CPU (the interpreter, then every import),
which the admin commands' tests paid a hundred times over. Their behaviour lives in
`bot.cli.main`, so most of them call it here, the way `python -m bot` does, and look at the
same things: the exit status, stdout and stderr. What a process gives that a call does
not is recreated for the call and put back after it:

- the environment is exactly the one given (not the test process's), and the current
  folder is the one given;
- stdout and stderr are captured; a log record that no handler of the bot's takes reaches
  stderr as it would through Python's last-resort handler (WARNING and up, the message
  alone);
- `sys.exit("text")` prints the text on stderr with status 1, `sys.exit(n)` is status n,
  and an uncaught exception prints its traceback with status 1, as the interpreter does;
- loggers the command disables are enabled again.

The tests that start the real process stay, one at least per command and outcome (see
tests/test_cli.py). `TESTS_CLI_SUBPROCESS=1` runs every call as a subprocess instead, to
check that both ways agree.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from subprocess import CompletedProcess
from subprocess import run as run_process

# The commands that run without the bot's settings and start nothing: bot/cli.py's
# admin_command. Everything else (`check`, `run`, `sandbox`, `--help`) is a subprocess.
ADMIN_COMMANDS = frozenset({"grant", "revoke", "grants", "member", "oncall", "policy"})

# Read when the tests are imported: the autouse fixture clears the environment of settings.
ALWAYS_SUBPROCESS = os.environ.get("TESTS_CLI_SUBPROCESS", "") not in {"", "0"}


def in_process(args: Sequence[str]) -> bool:
    """Whether `python -m bot *args` may be run by `run_in_process`."""
    return not ALWAYS_SUBPROCESS and bool(args) and args[0] in ADMIN_COMMANDS


@contextlib.contextmanager
def _process_state(env: Mapping[str, str], cwd: Path) -> Iterator[None]:
    """os.environ and the current folder as a process started with them has them."""
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    loggers = logging.root.manager.loggerDict
    saved_disabled = {
        name: logger.disabled
        for name, logger in loggers.items()
        if isinstance(logger, logging.Logger)
    }
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        for name, logger in list(loggers.items()):
            if isinstance(logger, logging.Logger):
                logger.disabled = saved_disabled.get(name, False)


def run_in_process(args: Sequence[str], env: Mapping[str, str], cwd: Path) -> tuple[int, str, str]:
    """`python -m bot *args` with environment `env` in folder `cwd`, called in this process:
    (exit status, stdout, stderr)."""
    from bot.cli import main

    out, err = io.StringIO(), io.StringIO()
    last_resort = logging.StreamHandler(err)
    last_resort.setLevel(logging.WARNING)
    code = 0
    with (
        _process_state(env, cwd),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        logging.root.addHandler(last_resort)
        try:
            main(list(args))
        except SystemExit as stop:
            if stop.code is None:
                code = 0
            elif isinstance(stop.code, int):
                code = stop.code
            else:
                print(stop.code, file=err)
                code = 1
        except BaseException:
            traceback.print_exc(file=err)
            code = 1
        finally:
            logging.root.removeHandler(last_resort)
    return code, out.getvalue(), err.getvalue()


def run(
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    timeout: float = 60,
    *,
    subprocess: bool = False,
) -> CompletedProcess[str]:
    """`python -m bot *args`: in this process for an admin command (see above) unless
    `subprocess`, else a subprocess; what it printed and how it ended, as `subprocess.run`
    says it."""
    command = [sys.executable, "-m", "bot", *args]
    if not subprocess and in_process(args):
        code, out, err = run_in_process(args, env, cwd)
        return CompletedProcess(command, code, out, err)
    return run_process(
        command, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout
    )
