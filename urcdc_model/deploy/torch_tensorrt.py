"""torch-tensorrt: compile the PyTorch deploy module directly (no ONNX), the alternative TensorRT path."""
from __future__ import annotations

from pathlib import Path

import torch

from urcdc_model.deploy.errors import BackendUnavailableError
from urcdc_model.deploy.tensorrt import require_cuda

TORCH_TENSORRT_PRECISIONS = ("fp32", "fp16")


def import_torch_tensorrt():
    """torch_tensorrt, or one line saying why not.

    Its import does more than find the package: it loads libnvinfer and torch's CUDA extensions, so
    a missing ``libnvinfer.so.N`` surfaces as OSError, a CPU-only or mismatched torch as RuntimeError
    or AttributeError — none of them ImportError.
    """
    try:
        import torch_tensorrt
    except ModuleNotFoundError as error:
        if error.name != "torch_tensorrt":
            raise _unusable(error) from error
        raise BackendUnavailableError("torch-tensorrt is not installed: `pip install torch-tensorrt` (the release "
                                      f"built for torch {torch.__version__})") from error
    except (ImportError, OSError, RuntimeError, AttributeError) as error:
        raise _unusable(error) from error
    return torch_tensorrt


def _unusable(error: BaseException) -> BackendUnavailableError:
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    return BackendUnavailableError(
        f"torch-tensorrt is installed but cannot be loaded with torch {torch.__version__} ({type(error).__name__}: "
        f"{detail}); install the torch-tensorrt release built for this torch and its TensorRT, on a CUDA build "
        "of torch — or use `--format tensorrt`")


def compile_torch_tensorrt(deploy_model: torch.nn.Module, output_path: str | Path, height: int, width: int,
                           precision: str = "fp32", dynamic: bool = False) -> Path:
    """Compile with torch_tensorrt (dynamo IR) and save an ExportedProgram; load with
    ``torch.export.load(path).module()`` on the same GPU/TensorRT.

    Precision follows the module's dtype (explicit typing, the default in recent torch-tensorrt and
    the only mode on TensorRT 11). INT8 needs a quantized module (NVIDIA ModelOpt); use
    ``--format tensorrt --precision int8`` instead, which quantizes the ONNX.
    """
    if precision not in TORCH_TENSORRT_PRECISIONS:
        raise BackendUnavailableError(f"--format torch-tensorrt supports {', '.join(TORCH_TENSORRT_PRECISIONS)}; "
                                      f"for {precision} use `--format tensorrt --precision {precision}`")
    torch_tensorrt = import_torch_tensorrt()
    require_cuda()
    dtype = torch.float16 if precision == "fp16" else torch.float32
    model = deploy_model.eval().to("cuda", dtype)
    example = torch.zeros(1, 3, height, width, device="cuda", dtype=dtype)
    if dynamic:
        min_hw = (max(32, height // 2 // 32 * 32), max(32, width // 2 // 32 * 32))
        spec = torch_tensorrt.Input(min_shape=(1, 3, *min_hw), opt_shape=example.shape, max_shape=example.shape,
                                    dtype=dtype)
    else:
        spec = torch_tensorrt.Input(shape=example.shape, dtype=dtype)
    try:
        compiled = torch_tensorrt.compile(model, ir="dynamo", inputs=[spec])
    except (RuntimeError, AttributeError, TypeError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BackendUnavailableError(
            f"torch-tensorrt {getattr(torch_tensorrt, '__version__', '?')} could not compile the model ({detail}); "
            "use `--format tensorrt` (ONNX → TensorRT)") from error
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    torch_tensorrt.save(compiled, str(output_path), inputs=[example])
    return output_path
