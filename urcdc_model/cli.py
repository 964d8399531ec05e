"""What every command-line tool of urcdc shares: its name in ``--help``, the flags that mean the same thing
in several tools, the help layout, progress output and the one-line error for a bad model file.

One flag, one meaning, one help text (README, "Command-line tools"):

- ``--checkpoint``       the model: 'default' or a file (tools that run DepthRuntime also take .onnx/.engine)
- ``--model-max-depth``  override the model's own maximum depth (official NYU checkpoints: 10)
- ``--max-depth``        cap on ground-truth depth when scoring (evaluation tools only)
- ``--no-flip-tta``      skip flip test-time augmentation
- ``--input-size HxW``   network input size (default: the size stored with the model)
- ``--device``, ``--backend``, ``--num-threads``   where and how inference runs
- ``--frames N``         how many frames to render; ``--max-frames N`` only the first N of the input
- ``--output``           where the tool writes its result; ``--json FILE`` also writes the numbers as JSON
- ``--no-progress``      no progress bars or per-stage lines

Old spellings stay accepted as hidden aliases (``hidden_alias``), with the same meaning.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from typing import Any, Iterable, TypeVar

from urcdc_model.deploy.errors import BackendUnavailableError, ModelFileError

T = TypeVar("T")

# Errors a user fixes by passing something else: printed as one line, never as a traceback.
USER_ERRORS = (ModelFileError, BackendUnavailableError)

CHECKPOINT_HELP = "model weights: 'default' (the embedded nano model) or a .safetensors/.ckpt checkpoint"
RUNTIME_MODEL_HELP = ("model to run: 'default' (the embedded nano model), a .safetensors/.ckpt checkpoint, "
                      "an .onnx export or a TensorRT .engine")
MODEL_MAX_DEPTH_HELP = ("override the model's maximum depth in metres (default: the checkpoint's own; 80 for "
                        "official checkpoints, which store none: use 10 for the official NYU model)")
NO_FLIP_TTA_HELP = "skip the flip test-time augmentation (half the time, slightly worse depth)"
INPUT_SIZE_HELP = "network input size HEIGHTxWIDTH, e.g. 352x1216"
DEVICE_HELP = "where inference runs"
BACKEND_HELP = "inference backend; auto = the fastest one installed"
NUM_THREADS_HELP = "CPU threads for onnxruntime; 0 = all cores"
NO_PROGRESS_HELP = "no progress bars or per-stage progress lines"
MAX_FRAMES_HELP = "use only the first N frames"
JSON_HELP = "also write the numbers to this JSON file"
EVAL_MAX_DEPTH_HELP = ("evaluation cap in metres: ground truth beyond it is ignored and predictions are clipped "
                       "to it")
EVAL_CROP_HELP = "evaluation crop of the ground truth"


def cli_prog(module: str, script: str | None = None) -> str:
    """The name ``--help`` shows: the console script when run as one, else ``python -m module``
    (how the README tells users to run it)."""
    if script and os.path.basename(sys.argv[0]) == script:
        return script
    return f"python -m {module}"


_NAMES_ITS_DEFAULT = re.compile(r"\(default\b|\bdefault:|; default\b")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks; appends ``(default: X)`` once, and only when X says something
    (not for required options, flags, None, or help text that already names its default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default is None or default is False or default is argparse.SUPPRESS or default == [] or action.required
                or _NAMES_ITS_DEFAULT.search(text) or not action.option_strings or action.nargs == 0):
            return text
        shown = ",".join(str(v) for v in default) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})"


def new_parser(module: str, description: str, script: str | None = None) -> argparse.ArgumentParser:
    """An ArgumentParser with the shared prog name and help layout."""
    return argparse.ArgumentParser(prog=cli_prog(module, script), description=description,
                                   formatter_class=HelpFormatter)


def hidden_alias(parser: argparse.ArgumentParser | Any, *names: str, dest: str, **kwargs: Any) -> None:
    """An old spelling that still works with the same meaning but is not shown in ``--help``."""
    parser.add_argument(*names, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)


def parse_size(text: str) -> tuple[int, int]:
    """'352x1216' → (352, 1216), for ``--input-size``."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 352x1216, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def add_checkpoint(parser: argparse.ArgumentParser | Any, runtime: bool = False, default: str | None = "default",
                   **kwargs: Any) -> None:
    """``--checkpoint``: checkpoints only, or (``runtime``) anything DepthRuntime runs."""
    parser.add_argument("--checkpoint", default=default, help=RUNTIME_MODEL_HELP if runtime else CHECKPOINT_HELP,
                        **kwargs)


def add_model_max_depth(parser: argparse.ArgumentParser, old_name: str | None = None) -> None:
    parser.add_argument("--model-max-depth", type=float, default=None, metavar="M", help=MODEL_MAX_DEPTH_HELP)
    if old_name:
        hidden_alias(parser, old_name, dest="model_max_depth", type=float)


def add_no_flip_tta(parser: argparse.ArgumentParser, old_name: str | None = None) -> None:
    parser.add_argument("--no-flip-tta", action="store_true", help=NO_FLIP_TTA_HELP)
    if old_name:
        hidden_alias(parser, old_name, dest="no_flip_tta", action="store_true")


def add_input_size(parser: argparse.ArgumentParser, old_name: str | None = None,
                   default: tuple[int, int] | None = None, pins: bool = False) -> None:
    """``--input-size HxW``. ``pins``: for tools that run DepthRuntime, which otherwise sizes the network
    per camera; the others default to the checkpoint's training size."""
    if pins:
        text = f"{INPUT_SIZE_HELP}, the same for every frame (frames are fitted in, aspect kept; default: sized per camera)"
    else:
        shown = f"{default[0]}x{default[1]}" if default else "the size stored with the model"
        text = f"{INPUT_SIZE_HELP} (default: {shown})"
    parser.add_argument("--input-size", type=parse_size, default=default, metavar="HxW", help=text)
    if old_name:
        hidden_alias(parser, old_name, dest="input_size", type=parse_size)


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help=DEVICE_HELP)


def add_backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime", "tensorrt"), default="auto",
                        help=BACKEND_HELP)


def add_num_threads(parser: argparse.ArgumentParser, old_name: str | None = None) -> None:
    parser.add_argument("--num-threads", type=int, default=0, metavar="N", help=NUM_THREADS_HELP)
    if old_name:
        hidden_alias(parser, old_name, dest="num_threads", type=int)


def add_no_progress(parser: argparse.ArgumentParser, old_name: str | None = None) -> None:
    parser.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    if old_name:
        hidden_alias(parser, old_name, dest="no_progress", action="store_true")


def add_max_frames(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-frames", type=int, default=None, metavar="N", help=MAX_FRAMES_HELP)


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", default=None, metavar="FILE", help=JSON_HELP)


def print_error(error: BaseException | str) -> int:
    """``error: <one line>`` on stderr; returns exit code 1."""
    print(f"error: {error}", file=sys.stderr)
    return 1


# Loggers whose INFO lines announce slow first-use work (ONNX export, TensorRT engine build).
PROGRESS_LOGGERS = ("urcdc_model.deploy.onnx_export", "urcdc_model.deploy.tensorrt")


class StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever ``sys.stderr`` is when a record is emitted, not when the handler was
    made: a caller that redirects stderr later (tests, notebooks, a wrapper) still gets the lines, and a
    closed earlier stream is never written to."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):  # StreamHandler.__init__ assigns it; the property always answers sys.stderr
        pass


def show_progress_logs(enabled: bool = True) -> None:
    """Show the INFO lines of slow first-use steps (ONNX export, engine build) on stderr, without timestamps;
    ``enabled=False`` turns them off again (a process may run several tools, each with its own choice)."""
    for name in PROGRESS_LOGGERS:
        logger = logging.getLogger(name)
        ours = any(getattr(h, "_urcdc_progress", False) for h in logger.handlers)
        if enabled and not ours:
            handler = StderrHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            handler._urcdc_progress = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
        logger.setLevel(logging.INFO if enabled else logging.WARNING)


def progress(items: Iterable[T], total: int | None = None, desc: str = "", enabled: bool = True,
             unit: str = "frame", every: int | None = None, plain_lines: bool = True) -> Iterable[T]:
    """A tqdm bar on stderr when it is a terminal; otherwise (``plain_lines``) a plain line every ``every``
    items (default: about 10 lines in all), so logs of long runs still show progress."""
    if not enabled or not (plain_lines or sys.stderr.isatty()):
        yield from items
        return
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)
        return
    step = every or max(1, (total or 10) // 10)
    count = 0
    for count, item in enumerate(items, start=1):
        yield item
        if count % step == 0 or count == total:
            print(f"{desc}: {count}" + (f"/{total}" if total else "") + f" {unit}s", file=sys.stderr, flush=True)
