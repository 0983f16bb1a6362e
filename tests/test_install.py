"""``make install`` takes the torch build each machine needs: PyTorch's CPU build on Linux (from
pip's own sources first, then PyTorch's CPU index), its CUDA build with TORCH=cuda, PyPI's wheel
on macOS. Each test reads the recipe ``make -n`` prints in a sandbox without ``.venv``: nothing
is downloaded.
"""

from __future__ import annotations

import platform
import re

import pytest

from tests.make import ROOT, make, sandbox

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CUDA_INDEX = "https://download.pytorch.org/whl/cu130"


def torch_version() -> str:
    (version,) = re.findall(r"^torch==(.+)$", (ROOT / "constraints.txt").read_text(), re.M)
    return version


def recipe(folder, *args: str) -> str:
    out = make(folder, "-n", "install", *args)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def repo(tmp_path):
    return sandbox(tmp_path)


def test_constraints_pin_torch_as_a_public_version_that_every_build_satisfies():
    assert re.fullmatch(r"\d+\.\d+\.\d+", torch_version())  # no +cpu: PyPI's wheel satisfies it


def test_linux_takes_the_cpu_build_from_pips_own_sources_before_pytorchs_cpu_index(repo):
    v = torch_version()
    out = recipe(repo, "OS=Linux")
    local = out.index(f'"torch=={v}+cpu"')  # this machine's find-links folder holds it
    fallback = out.index(f'--index-url {CPU_INDEX} "torch=={v}"')
    assert local < fallback
    assert "cu130" not in out
    # the rest of the dependencies, pinned, after torch
    assert out.index('pip install --quiet -c constraints.txt -e ".[dev]"') > fallback


def test_torch_cuda_takes_the_build_from_pytorchs_cuda_index(repo):
    out = recipe(repo, "OS=Linux", "TORCH=cuda")
    assert f'--index-url {CUDA_INDEX} "torch=={torch_version()}"' in out
    assert "+cpu" not in out and CPU_INDEX not in out


def test_torch_index_names_another_index(repo):
    index = "https://download.pytorch.org/whl/cu126"
    out = recipe(repo, "OS=Linux", "TORCH=cuda", f"TORCH_INDEX={index}")
    assert f"--index-url {index} " in out
    assert CUDA_INDEX not in out


def test_macos_takes_pypis_torch(repo):
    out = recipe(repo, "OS=Darwin")
    assert f'"torch=={torch_version()}"' in out
    assert "download.pytorch.org" not in out and "--index-url" not in out and "+cpu" not in out


def test_os_defaults_to_this_machine(repo):
    assert recipe(repo) == recipe(repo, f"OS={platform.system()}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["OS=Darwin", "TORCH=cuda"], "TORCH=cuda: PyTorch has no CUDA build for macOS"),
        (["TORCH=rocm"], "TORCH=rocm: expected cpu (default) or cuda"),
    ],
)
def test_a_torch_build_that_does_not_exist_is_refused(repo, args, message):
    out = make(repo, "-n", "install", *args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "pip" not in out.stdout


def test_another_torch_choice_reinstalls_torch_and_the_same_one_nothing(repo):
    v = torch_version()
    (repo / ".venv").mkdir()
    stamp = repo / ".venv" / ".installed"
    stamp.write_text(f"torch {v} cpu {CPU_INDEX}\n")  # newer than pyproject.toml: up to date
    assert "pip" not in recipe(repo, "OS=Linux")
    out = recipe(repo, "OS=Linux", "TORCH=cuda")
    assert f'--force-reinstall --index-url {CUDA_INDEX} "torch=={v}"' in out
    assert f"echo 'torch {v} cuda {CUDA_INDEX}' > .venv/.installed" in out
