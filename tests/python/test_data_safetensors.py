"""Interop of our safetensors reader/writer (csrc/io) with the reference
`safetensors` package that Hugging Face uses: files it writes load in C++,
files we write load in Python, bit for bit, every dtype, with metadata."""
import os
import subprocess

import pytest
import torch

safetensors_torch = pytest.importorskip("safetensors.torch")
from safetensors import safe_open  # noqa: E402

BUILD = os.environ.get("LIGHTHOUSE_BUILD_DIR", "build")
# Test programs land in build/tests/cpp (tests/cpp/CMakeLists.txt).
TOOL = next((p for p in (os.path.join(BUILD, "tests", "cpp", "lighthouse_safetensors_tool"),
                         os.path.join(BUILD, "lighthouse_safetensors_tool")) if os.path.exists(p)),
            os.path.join(BUILD, "tests", "cpp", "lighthouse_safetensors_tool"))

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64,
          torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool]


def random_tensors(seed):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i, dt in enumerate(DTYPES):
        for shape in [(3, 5), (), (0, 4), (2, 1, 3)]:
            raw = torch.randint(0, 256, (max(1, torch.Size(shape).numel()) * dt.itemsize,), generator=g,
                                dtype=torch.uint8)
            if dt == torch.bool:
                t = (raw[: torch.Size(shape).numel()] % 2).bool().reshape(shape)
            else:
                t = raw[: torch.Size(shape).numel() * dt.itemsize].view(dt).reshape(shape)
            out[f"layers.{i}.{str(dt)[6:]}.{len(shape)}"] = t.clone()
    return out


def bits(t):
    t = t.contiguous().reshape(-1)
    return t.view(torch.uint8) if t.dtype != torch.bool else t.to(torch.uint8)


@pytest.fixture(scope="module")
def tool():
    if not os.path.exists(TOOL):
        pytest.fail(f"{TOOL} not built (cmake --build {BUILD})")
    return TOOL


def test_reference_file_through_ours_and_back(tool, tmp_path):
    tensors = random_tensors(0)
    ref = tmp_path / "ref.safetensors"
    ours = tmp_path / "ours.safetensors"
    safetensors_torch.save_file(tensors, str(ref), metadata={"format": "pt", "note": "é"})
    run = subprocess.run([tool, "resave", str(ref), str(ours)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == len(tensors)
    back = safetensors_torch.load_file(str(ours))
    assert back.keys() == tensors.keys()
    for k, t in tensors.items():
        assert back[k].dtype == t.dtype and back[k].shape == t.shape, k
        assert torch.equal(bits(back[k]), bits(t)), k
    with safe_open(str(ours), framework="pt") as f:
        assert f.metadata() == {"format": "pt", "note": "é"}


def test_our_errors_on_a_truncated_reference_file(tool, tmp_path):
    ref = tmp_path / "ref.safetensors"
    safetensors_torch.save_file({"w": torch.randn(64, 64)}, str(ref))
    data = ref.read_bytes()
    ref.write_bytes(data[:-100])
    run = subprocess.run([tool, "resave", str(ref), str(tmp_path / "x.safetensors")], capture_output=True, text=True)
    assert run.returncode == 1
    assert f"safetensors '{ref}': truncated or corrupt" in run.stderr
