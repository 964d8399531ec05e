"""Latency benchmark of the runtime backends (CLI; the code is urcdc_model.deploy.bench).

    python -m urcdc_model.bench --checkpoint default --backends torch,onnxruntime --input-sizes 352x1216
"""
import sys

from urcdc_model.deploy.bench import main

if __name__ == "__main__":
    sys.exit(main())
