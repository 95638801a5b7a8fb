"""scripts/check-sent-tree.sh: from the per-file hashes that gpu-check.sh
writes into machine.txt, it names the files where the tree a GPU run used
differs from this checkout."""

import hashlib
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check-sent-tree.sh"


def machine_txt(tmp_path, edit=lambda lines: lines):
    """A machine.txt as gpu-check.sh writes it for this checkout (the files of `--list`, hashed here), its
    file lines passed through `edit`."""
    listed = subprocess.run(["bash", str(SCRIPT), "--list"], check=True, capture_output=True, text=True).stdout
    files = [line.split(maxsplit=1)[1] for line in listed.splitlines()]
    lines = [f"file {hashlib.sha256((REPO / f).read_bytes()).hexdigest()}  {f}" for f in sorted(files)]
    path = tmp_path / "machine.txt"
    path.write_text("git HEAD here 0000 (the tree sent may be newer)\nsource sha256 0\n" + "\n".join(edit(lines)) + "\n")
    return path


def run(path):
    return subprocess.run(["bash", str(SCRIPT), str(path)], capture_output=True, text=True)


def test_same_tree_passes(tmp_path):
    r = run(machine_txt(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "equals this checkout" in r.stdout


def test_names_each_kind_of_difference(tmp_path):
    def edit(lines):
        changed = [l for l in lines if l.endswith("  scripts/gpu-check.sh")][0]
        dropped = [l for l in lines if l.endswith("  scripts/check-sent-tree.sh")][0]
        lines = [("file " + "0" * 64 + "  scripts/gpu-check.sh") if l == changed else l for l in lines if l != dropped]
        return lines + ["file " + "1" * 64 + "  csrc/not_here.cpp"]

    r = run(machine_txt(tmp_path, edit))
    assert r.returncode == 1
    assert r.stdout.splitlines() == ["differs: scripts/gpu-check.sh", "only in the tree sent: csrc/not_here.cpp",
                                     "only here: scripts/check-sent-tree.sh"]


def test_old_machine_txt_is_a_clear_error(tmp_path):
    path = tmp_path / "machine.txt"
    path.write_text("source sha256 0123\n")
    r = run(path)
    assert r.returncode == 2
    assert "no 'file' lines" in r.stderr
