"""Deployment: the exported graph, ONNX export and verification, TensorRT, the backends and DepthRuntime.

One module per concern; imports point one way (nothing here imports a CLI):

    errors, files          ← everything below
    geometry               (the one input geometry: canonical-camera plan, intrinsics checks)
    intrinsics             (K from FX FY CX CY values and ROS camera_info YAML files)
    uncertainty ← graph    (the deployed network: depth + uncertainty in metres)
    onnx_export            (export + parity check + cache)   ← graph, files
    tensorrt, torch_tensorrt                                  ← graph, files, errors
    sources                (what a model path is)            ← files, errors
    backends               (torch / onnxruntime / TensorRT)  ← graph, tensorrt, errors
    runtime                (DepthRuntime)                     ← backends, sources, onnx_export, tensorrt, geometry
    bench                  (latency benchmark)                ← runtime

The user-facing CLIs stay at the package top: ``python -m urcdc_model.export``, ``.predict``, ``.bench``.
"""
