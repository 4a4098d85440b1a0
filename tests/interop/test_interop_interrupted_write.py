"""A write killed half-way (kill -9) leaves its temporaries under names that say target and pid; the next
write to the same target removes them, and never those of a writer that is still running."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from archlab.cli import main
from archlab.fileio import atomic_write_text, remove_stale_temps


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


def test_kill_9_during_an_atomic_write_is_cleaned_by_the_next_write(tmp_path):
    target = tmp_path / "model.safetensors"
    code = ("import os, signal, sys; from pathlib import Path; from archlab.fileio import atomic_write\n"
            "def w(tmp):\n"
            "    Path(tmp).write_bytes(b'x' * 100000); (Path(tmp).parent / '.tmpAbC123').write_bytes(b'y' * 1000)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            f"atomic_write({str(target)!r}, w)\n")
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": "src"}, cwd=Path(__file__)
                       .parents[2])
    assert r.returncode == -signal.SIGKILL
    left = _leftovers(tmp_path)
    assert len(left) == 1 and left[0].startswith(".model.safetensors.tmp-")  # a folder named after the target
    assert not target.exists()
    atomic_write_text(target, "ok")
    assert target.read_text() == "ok" and _leftovers(tmp_path) == []


def test_convert_to_hf_removes_a_dead_writers_temporaries_and_keeps_a_live_ones(tmp_path, capsys):
    out = tmp_path / "hf"
    out.mkdir()
    dead = _dead_pid()
    big = out / f".model.safetensors.tmp-{dead}"  # the folder a killed convert left, with safetensors' own temp
    big.mkdir()
    (big / ".tmpQw3rTy").write_bytes(b"\0" * 1_000_000)
    (out / f".config.json.tmp-{dead}").mkdir()
    (out / f".tokenizer.json.tmp-{dead}.1").mkdir()  # a file this convert does not rewrite
    (out / ".config.json.0123abcd.tmp").write_text("{")  # named the way archlab named temporaries before
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / f".model.safetensors.tmp-{live.pid}").mkdir()  # another convert still writing: not ours to delete
        (out / "notes.tmp").write_text("user file")  # not a temporary of any target
        assert main(["convert", "--from", "gpt-tiny", "--to-hf", str(out), "--no-check"]) == 0
        assert _leftovers(out) == [f".model.safetensors.tmp-{live.pid}"]
        assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "notes.tmp"}
    finally:
        live.kill()
        live.wait()
    assert remove_stale_temps(out / "model.safetensors") == [out / f".model.safetensors.tmp-{live.pid}"]
    assert _leftovers(out) == []


def test_convert_to_archlab_removes_a_killed_checkpoint_folder(tmp_path, capsys):
    out = tmp_path / "al"
    assert main(["convert", "--from", "gpt-tiny", "--to", str(out), "--no-check"]) == 0
    stale = out / ".tmp-step_00000000-deadbeef"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\0" * 1000)
    assert main(["convert", "--from", "gpt-tiny", "--to", str(out), "--no-check"]) == 0
    assert not stale.exists()
