"""Deployment: the exported graph, ONNX export and verification, TensorRT, the backends and DepthRuntime.

One module per concern; imports point one way (nothing here imports a CLI):

    errors, files          ← everything below
    geometry               (the one input geometry: canonical-camera plan, intrinsics checks)
    intrinsics             (K from FX FY CX CY values and ROS camera_info YAML files)
    uncertainty ← graph    (the deployed network: depth + uncertainty in metres)
    onnx_export            (export + constant folding + parity check + cache)   ← graph, files
    precision              (FP16 / INT8 Q/DQ ONNX, budgets, check against FP32) ← graph, errors, geometry
    tensorrt_compat        (what each TensorRT version gets; no imports)
    tensorrt, torch_tensorrt  (build, verify, cache, run)     ← precision, tensorrt_compat, onnx_export
    sources                (what a model path is)            ← files, errors
    device_io              (pre/post-processing as torch ops on the GPU)        ← geometry
    backends               (torch / onnxruntime / TensorRT)  ← graph, precision, errors
    runtime                (DepthRuntime)                     ← backends, sources, onnx_export, tensorrt, geometry,
                                                                 precision, device_io
    bench, precision_bench, gpu_check  (measurements)         ← runtime, precision

The user-facing CLIs stay at the package top: ``python -m urcdc_model.export``, ``.predict``, ``.bench``;
``python -m urcdc_model.deploy.gpu_check`` and ``.precision_bench`` are measurement tools.
"""
