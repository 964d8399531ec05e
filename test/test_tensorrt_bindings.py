"""The TensorRT paths against the REAL Python bindings of TensorRT 8.6, 10.3, the newest 10.x and 11.x — no GPU.

NVIDIA publishes each version's binding module as a small wheel (tensorrt-bindings,
tensorrt-cu12-bindings, tensorrt-cu13-bindings; about 1 MB). It imports once the native libraries it
links (libnvinfer, libnvinfer_plugin, libnvonnxparser and, for 8.x, libnvparsers) exist, so each
test run compiles a stub with gcc whose factory functions return NULL (what ``readelf -d`` / ``nm -D``
of the binding list as needed), puts it on LD_LIBRARY_PATH of a subprocess (the loader reads it at
start) and runs tensorrt_binding_cases.py there, one subprocess per version. Wheels are cached in
``$URCDC_TEST_WHEELS`` (default ``~/.cache/urcdc-test-wheels``); without network and cache the
tests skip with the reason.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# version label → pip requirement of the binding wheel
BINDINGS = {
    "8.6": "tensorrt-bindings==8.6.1",
    "10.3": "tensorrt-cu12-bindings==10.3.0",
    "10.x newest": "tensorrt-cu12-bindings<11",
    "11.x": "tensorrt-cu13-bindings<12",
}

# Every symbol the four binding modules import from the TensorRT libraries (nm -D --undefined-only):
# the C factory functions, and for 8.x the UFF/Caffe parser entry points of libnvparsers (C++ names).
STUB_C = r"""
#include <stddef.h>
void *createInferBuilder_INTERNAL(void *logger, int version) { return NULL; }
void *createInferRefitter_INTERNAL(void *engine, void *logger, int version) { return NULL; }
void *createInferRuntime_INTERNAL(void *logger, int version) { return NULL; }
void *createNvOnnxParser_INTERNAL(void *network, void *logger, int version) { return NULL; }
void *createNvOnnxParserRefitter_INTERNAL(void *refitter, void *logger, int version) { return NULL; }
void *getBuilderPluginRegistry(int capability) { return NULL; }
int getNvOnnxParserVersion(void) { return 0; }
void *getPluginRegistry(void) { return NULL; }
int initLibNvInferPlugins(void *logger, const char *ns) { return 1; }
void *uff_create(void) __asm__("_ZN11nvuffparser15createUffParserEv");
void *uff_create(void) { return NULL; }
void uff_field_map(void *self, const char *name, const void *data, int type, int length)
    __asm__("_ZN11nvuffparser8FieldMapC1EPKcPKvNS_9FieldTypeEi");
void uff_field_map(void *self, const char *name, const void *data, int type, int length) {}
void *caffe_create(void) __asm__("_ZN14nvcaffeparser117createCaffeParserEv");
void *caffe_create(void) { return NULL; }
void caffe_shutdown(void) __asm__("_ZN14nvcaffeparser123shutdownProtobufLibraryEv");
void caffe_shutdown(void) {}
"""
STUB_LIBRARIES = ("nvinfer", "nvinfer_plugin", "nvonnxparser", "nvparsers")
STUB_MAJORS = (8, 10, 11)
MIN_CASES = 13  # tensorrt_binding_cases.py has 14; one skips where TensorRT is weakly typed


def wheel_cache() -> Path:
    return Path(os.environ.get("URCDC_TEST_WHEELS", Path.home() / ".cache" / "urcdc-test-wheels"))


def _cached_wheel(requirement: str, cache: Path) -> Path | None:
    """The newest cached wheel matching ``requirement`` (for offline runs)."""
    from packaging.requirements import Requirement
    from packaging.utils import parse_wheel_filename

    req = Requirement(requirement)
    found = []
    for path in cache.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(path.name)
        if name == req.name.replace("_", "-") and version in req.specifier:
            found.append((version, path))
    return max(found)[1] if found else None


def fetch_wheel(requirement: str, cache: Path) -> Path:
    """Download (or reuse) the binding wheel for this interpreter; pytest.skip when impossible."""
    cache.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                             "--disable-pip-version-check", "-q", "-d", str(cache), requirement],
                            capture_output=True, text=True, timeout=300)
    wheel = _cached_wheel(requirement, cache)
    if wheel is None:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"cannot download {requirement} (needs PyPI access once; cached in {cache}): {reason}")
    return wheel


@pytest.fixture(scope="module")
def stub_libs(tmp_path_factory) -> Path:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler (gcc) to build the TensorRT stub libraries")
    root = tmp_path_factory.mktemp("trt_stub")
    source = root / "stub.c"
    source.write_text(STUB_C)
    for major in STUB_MAJORS:
        for lib in STUB_LIBRARIES:
            soname = f"lib{lib}.so.{major}"
            subprocess.run([gcc, "-shared", "-fPIC", "-o", str(root / soname), str(source), f"-Wl,-soname,{soname}"],
                           check=True, capture_output=True)
    return root


def unpack_bindings(wheel: Path, dest: Path) -> Path:
    """The wheel's ``tensorrt_bindings`` package, importable as ``tensorrt`` (what the meta-package does)."""
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.startswith("tensorrt_bindings/")]
        archive.extractall(dest / "unpacked", members)
    shutil.move(dest / "unpacked" / "tensorrt_bindings", dest / "tensorrt")
    return dest


def _run(site: Path, stub: Path | None, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]), "URCDC_TRT_BINDINGS_UNDER_TEST": "1",
           "OMP_NUM_THREADS": "1"}
    env["LD_LIBRARY_PATH"] = str(stub) if stub else ""
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module", params=list(BINDINGS), ids=lambda label: f"trt{label.replace(' ', '-')}")
def bindings(request, tmp_path_factory) -> tuple[str, Path]:
    label = request.param
    wheel = fetch_wheel(BINDINGS[label], wheel_cache())
    return label, unpack_bindings(wheel, tmp_path_factory.mktemp(f"trt{label.replace(' ', '_')}"))


def test_build_and_run_paths_against_real_bindings(bindings, stub_libs):
    """FP32/FP16/INT8 builds, dynamic shapes, the engine runner, engine verification and the one-line
    errors, each against this version's real classes (tensorrt_binding_cases.py)."""
    label, site = bindings
    result = _run(site, stub_libs, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                  str(HERE / "tensorrt_binding_cases.py"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"TensorRT {label}:\n{output[-6000:]}"
    passed = re.search(r"(\d+) passed", output)
    assert passed and int(passed.group(1)) >= MIN_CASES, f"TensorRT {label}: too few cases ran:\n{output[-2000:]}"


def test_bindings_without_their_libraries_are_one_line(bindings):
    """With no libnvinfer at all, importing the real bindings fails inside the loader; the user gets one
    line saying TensorRT is installed but cannot be loaded."""
    label, site = bindings
    code = ("from urcdc_model.deploy.errors import BackendUnavailableError\n"
            "from urcdc_model.deploy.tensorrt import import_tensorrt\n"
            "try:\n    import_tensorrt()\nexcept BackendUnavailableError as e:\n    print('ONE-LINE:', e)\n")
    result = _run(site, None, "-c", code, timeout=300)
    assert re.search(r"ONE-LINE: TensorRT is installed but cannot be loaded \(libnv\w+\.so\.\d+: cannot open", result.stdout), \
        f"TensorRT {label}: {result.stdout}{result.stderr}"
