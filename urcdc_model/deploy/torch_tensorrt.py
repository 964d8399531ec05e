"""torch-tensorrt: compile the PyTorch deploy module directly (no ONNX), the alternative TensorRT path."""
from __future__ import annotations

from pathlib import Path

import torch

from urcdc_model.deploy.errors import BackendUnavailableError
from urcdc_model.deploy.tensorrt import require_cuda


def compile_torch_tensorrt(deploy_model: torch.nn.Module, output_path: str | Path, height: int, width: int,
                           fp16: bool = False, dynamic: bool = False) -> Path:
    """Compile with torch_tensorrt (dynamo IR) and save an ExportedProgram; load with
    ``torch.export.load(path).module()`` on the same GPU/TensorRT."""
    try:
        import torch_tensorrt
    except ImportError as error:
        raise BackendUnavailableError("torch-tensorrt is not installed: `pip install torch-tensorrt` "
                                      "(matching your torch version)") from error
    require_cuda()
    dtype = torch.float16 if fp16 else torch.float32
    # Explicit typing (the default in recent torch-tensorrt): the precision follows the module's dtype.
    model = deploy_model.eval().to("cuda", dtype)
    example = torch.zeros(1, 3, height, width, device="cuda", dtype=dtype)
    if dynamic:
        min_hw = (max(32, height // 2 // 32 * 32), max(32, width // 2 // 32 * 32))
        spec = torch_tensorrt.Input(min_shape=(1, 3, *min_hw), opt_shape=example.shape, max_shape=example.shape,
                                    dtype=dtype)
    else:
        spec = torch_tensorrt.Input(shape=example.shape, dtype=dtype)
    compiled = torch_tensorrt.compile(model, ir="dynamo", inputs=[spec])
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    torch_tensorrt.save(compiled, str(output_path), inputs=[example])
    return output_path
