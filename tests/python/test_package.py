"""Issue 11: the installed package.

- `import lighthouse` and `python -m lighthouse` work from any directory;
  the latter prints the version, the torch the library was built for and
  whether the CUDA kernels are in, as the build recorded them;
- under scripts/test.sh (LIGHTHOUSE_TEST_INSTALLED=1) the package and its op
  library are the pip-installed copy, not the source tree;
- a library built for another torch is refused at import with a message
  naming both versions and the fix; a missing library names the install
  command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lighthouse

REPO = Path(__file__).resolve().parents[2]


def run_python(args, cwd, env=None):
    env = dict(os.environ if env is None else env)
    if env.get("PYTHONPATH"):  # a developer's relative entries (python/) must survive the change of directory
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in env["PYTHONPATH"].split(os.pathsep))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_import_and_main_from_another_directory(tmp_path):
    r = run_python(["-c", "import lighthouse, torch; print(lighthouse.__file__); "
                          "print(torch.ops.lighthouse.attention.default._schema.name)"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [lighthouse.__file__, "lighthouse::attention"]

    r = run_python(["-m", "lighthouse"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = lighthouse.build_info()
    assert r.stdout.startswith(f"lighthouse {lighthouse.__version__}\n")
    assert f"built for:     torch {info['torch']} (installed: torch {torch.__version__})" in r.stdout
    assert ("CUDA kernels:  yes" in r.stdout) == info["cuda_kernels"]
    assert info["torch"] == torch.__version__


@pytest.mark.skipif(os.environ.get("LIGHTHOUSE_TEST_INSTALLED") != "1",
                    reason="scripts/test.sh sets LIGHTHOUSE_TEST_INSTALLED=1 when it tests the installed package")
def test_tests_run_against_the_installed_copy(tmp_path):
    pkg = Path(lighthouse.__file__).resolve().parent
    assert REPO / "python" not in pkg.parents and pkg != REPO / "python" / "lighthouse", pkg
    assert pkg.parent.name == "site-packages", pkg
    assert "LIGHTHOUSE_LIBRARY" not in os.environ
    assert lighthouse.library_path() == pkg / "liblighthouse_ops.so"
    assert (pkg / "liblighthouse_ops.json").is_file()
    # The context-parallel library is installed beside it, and lighthouse.cp
    # loads it from there in a fresh process from another directory.
    assert (pkg / "liblighthouse_dist.so").is_file()
    env = {k: v for k, v in os.environ.items() if k != "LIGHTHOUSE_DIST_LIBRARY"}
    r = run_python(["-c", "from lighthouse import cp; import torch; print(cp.dist_library_path()); "
                          "print(torch.ops.lighthouse.cp_attention.default._schema.name)"], cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(pkg / "liblighthouse_dist.so"), "lighthouse::cp_attention"]


def copy_package(tmp_path: Path) -> Path:
    """The package and its op library copied to tmp_path/site/lighthouse."""
    src = Path(lighthouse.__file__).resolve().parent
    dst = tmp_path / "site" / "lighthouse"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("__init__.py", "_library.py", "__main__.py", "hf.py"):
        shutil.copy(REPO / "python" / "lighthouse" / name, dst / name)
    lib = lighthouse.library_path()
    shutil.copy(lib, dst / lib.name)
    shutil.copy(lib.with_suffix(".json"), dst / "liblighthouse_ops.json")
    return dst


def import_copy(tmp_path: Path, pkg: Path):
    env = {k: v for k, v in os.environ.items() if k not in ("LIGHTHOUSE_LIBRARY", "PYTHONPATH")}
    env["PYTHONPATH"] = str(pkg.parent)
    return run_python(["-c", "import lighthouse; print(lighthouse.__file__)"], cwd=tmp_path, env=env)


def test_copy_of_the_package_imports(tmp_path):
    """The control for the two refusals below."""
    pkg = copy_package(tmp_path)
    r = import_copy(tmp_path, pkg)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(pkg / "__init__.py")


def test_library_built_for_another_torch_is_refused(tmp_path):
    pkg = copy_package(tmp_path)
    info_path = pkg / "liblighthouse_ops.json"
    info = json.loads(info_path.read_text())
    info["torch"] = "2.9.1+cu128"
    info_path.write_text(json.dumps(info))
    r = import_copy(tmp_path, pkg)
    assert r.returncode != 0
    assert "ImportError" in r.stderr
    for needle in ("built for torch 2.9.1+cu128", f"torch {torch.__version__} is installed",
                   "pip install --no-build-isolation ."):
        assert needle in r.stderr, r.stderr


def test_missing_library_names_the_install_command(tmp_path):
    pkg = copy_package(tmp_path)
    (pkg / "liblighthouse_ops.so").unlink()
    r = import_copy(tmp_path, pkg)
    assert r.returncode != 0
    assert "no op library at" in r.stderr and "pip install --no-build-isolation ." in r.stderr, r.stderr
