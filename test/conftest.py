"""Shared test setup.

ROS isolation: each pytest process gets its own DDS domain and localhost-only discovery, so
parallel test runs on one machine never hear each other and no traffic leaves the host. The
large-data Fast DDS profile is applied so multi-MB images survive between processes.
"""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 200))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
_profile = REPO_ROOT / "config" / "fastdds_large_data.xml"
if _profile.exists():
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(_profile))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real sample frames beside the checkout (../shared/data); tests skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA} (see ../shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def nano_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised deploy-size nano network for tests of the plumbing (node, replay), not accuracy."""
    import dataclasses

    import torch

    from urcdc_model.checkpoints import save_model
    from urcdc_model.models import ModelConfig, URCDCDepth

    torch.manual_seed(0)
    cfg = dataclasses.replace(ModelConfig.from_name("nano"), with_cnn=False, max_depth=80.0)
    path = tmp_path_factory.mktemp("model") / "nano.safetensors"
    return save_model(path, URCDCDepth(cfg).eval(), cfg, meta={"input_height": 64, "input_width": 192})
