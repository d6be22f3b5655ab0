"""One writer per output (``atomic_path``'s lock), and the stale Snakemake lock of a killed run.

Two real processes write the same output: the second waits for the first (it
says so once), never deletes the first's temporary file, and writes the output
itself when the first finishes or is SIGKILLed. Every wait here is on an event
(a line a process prints, a process ending), never on a fixed time.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import yaml

from brainalign.cli import main
from brainalign.io import OutputBusyError, atomic_path, write_table, write_text
from brainalign.pipeline.workflow_lock import RUN_LOCK, hold_workflow_folder

#: A hang guard for the helper processes, not a performance bound.
HANG = 600

# The first writer: holds the output's lock mid-write, prints its temporary file,
# and finishes when told to (a line on stdin).
HOLDER = textwrap.dedent("""
    import sys
    from brainalign.io import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_text("first writer")
        print(tmp, flush=True)
        sys.stdin.readline()
""")
# The second writer of the same output.
SECOND = textwrap.dedent("""
    import sys
    from brainalign.io import write_text
    write_text(sys.argv[1], "second writer")
    print("written", flush=True)
""")


def _python(code: str, *args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def holder(tmp_path: Path):
    """A first writer of ``out/table.csv``, stopped mid-write: (process, output, its temporary file)."""
    out = tmp_path / "out" / "table.csv"
    proc = _python(HOLDER, str(out), cwd=tmp_path)
    line = proc.stdout.readline().strip()
    assert line, proc.stderr.read()
    yield proc, out, Path(line)
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=HANG)


@pytest.mark.parametrize("first_ends", ["finishes", "is killed"])
def test_a_second_writer_waits_for_the_first(holder, tmp_path, first_ends):
    first, out, first_tmp = holder
    second = _python(SECOND, str(out), cwd=tmp_path)
    waiting = second.stderr.readline()  # the one line it logs when it finds the output locked
    assert str(out) in waiting and f"process {first.pid} is writing this output" in waiting, waiting
    assert second.poll() is None and first_tmp.read_text() == "first writer"  # it waits; nothing deleted
    if first_ends == "finishes":
        first.communicate("go\n", timeout=HANG)
        assert first.returncode == 0
    else:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=HANG)
    stdout, stderr = second.communicate(timeout=HANG)
    assert second.returncode == 0 and stdout.strip() == "written", stderr
    assert out.read_text() == "second writer"
    assert _hidden(out.parent) == []  # the killed writer's .part and every .lock are gone


def test_a_writer_gives_up_after_its_timeout(holder, tmp_path, monkeypatch, capsys):
    first, out, first_tmp = holder
    with pytest.raises(OutputBusyError, match=f"process {first.pid} is still writing this output"):
        with atomic_path(out, lock_timeout=0.3):
            pass
    # Through the command line (BRAINALIGN_LOCK_TIMEOUT): one line naming the output, exit status 2.
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"dataset": {"name": "busy", "kind": "simulated"},
                                      "simulation": {"n_words": 200},
                                      "feature_sets": {"minilm": {"kind": "transformer"}}}))
    monkeypatch.setenv("BRAINALIGN_LOCK_TIMEOUT", "0.3")
    assert main(["stimuli", "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("brainalign: error: ") and str(out) in err[-1] and "still writing" in err[-1], err
    assert first_tmp.read_text() == "first writer" and not out.exists()


def test_writers_in_two_threads_take_turns(tmp_path):
    out = tmp_path / "t.txt"
    inside = threading.Event()
    release = threading.Event()

    def first():
        with atomic_path(out) as tmp:
            tmp.write_text("first")
            inside.set()
            release.wait(HANG)

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(HANG)
    second = threading.Thread(target=write_text, args=(out, "second"))
    second.start()
    release.set()
    thread.join(HANG)
    second.join(HANG)
    assert out.read_text() == "second" and _hidden(tmp_path) == []


def test_a_nested_write_of_the_same_output_is_refused(tmp_path):
    with atomic_path(tmp_path / "t.txt") as tmp:
        tmp.write_text("outer")
        with pytest.raises(RuntimeError, match="already open"):
            with atomic_path(tmp_path / "t.txt"):
                pass
    assert (tmp_path / "t.txt").read_text() == "outer"


def test_only_this_outputs_leftovers_are_removed(tmp_path):
    """``t.csv``'s leftovers go; those of ``t.csv.json`` (another output) stay."""
    own = tmp_path / ".t.csv.abcd_123.part"
    other = tmp_path / ".t.csv.json.abcd_123.part"
    own.write_text("killed")
    other.write_text("another output's")
    import pandas as pd

    write_table(tmp_path / "t.csv", pd.DataFrame({"a": [1]}))
    assert not own.exists() and other.exists()


# --------------------------------------------------------------------------- Snakemake's lock
def _stale_locks(folder: Path) -> Path:
    locks = folder / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("")
    (locks / "0.output.lock").write_text("results/x/scores.csv\n")
    return locks


class _Workflow:
    def __init__(self, main_process=True, dryrun=False):
        self.is_main_process = main_process
        self.output_settings = type("OutputSettings", (), {"dryrun": dryrun})()


def test_a_killed_runs_lock_is_removed(tmp_path, capsys):
    locks = _stale_locks(tmp_path / "alone")
    removed = hold_workflow_folder(_Workflow(), tmp_path / "alone")
    assert [p.name for p in removed] == ["0.input.lock", "0.output.lock"] and not any(locks.iterdir())
    assert "removed the Snakemake lock left by a run that was killed" in capsys.readouterr().err
    # The folder is now held (shared) by this process: a later starter is not alone.
    fd = os.open(tmp_path / "alone" / RUN_LOCK, os.O_RDWR)
    with pytest.raises(BlockingIOError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared with it: fine
    os.close(fd)


def test_a_live_runs_lock_is_kept(tmp_path):
    folder = tmp_path / "live"
    live = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from brainalign.pipeline.workflow_lock import hold_workflow_folder
        hold_workflow_folder(None, {str(folder)!r})
        print("holding", flush=True)
        sys.stdin.readline()
    """)], cwd=tmp_path, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert live.stdout.readline().strip() == "holding"
        locks = _stale_locks(folder)  # the live run's own lock, as Snakemake writes it
        assert hold_workflow_folder(_Workflow(), folder) == []
        assert sorted(p.name for p in locks.iterdir()) == ["0.input.lock", "0.output.lock"]
    finally:
        live.communicate("done\n", timeout=HANG)


def test_a_dry_run_or_a_job_process_removes_nothing(tmp_path):
    for name, workflow in (("dry", _Workflow(dryrun=True)), ("job", _Workflow(main_process=False))):
        locks = _stale_locks(tmp_path / name)
        assert hold_workflow_folder(workflow, tmp_path / name) == []
        assert len(list(locks.iterdir())) == 2
