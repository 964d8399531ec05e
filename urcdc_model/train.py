"""Train URCDC-Depth: `python -m urcdc_model.train --config config/model/NAME.yaml [--output DIR] [--max-steps N] [--resume]`.

Single process, or `torchrun --nproc_per_node N -m urcdc_model.train ...` for DDP (gloo on CPU,
NCCL on GPU; the config's batch is the global batch, split over the processes). One `Trainer`
whose loop reads `process_batch` → `compute_losses` → backward/step → `log`; only rank 0 writes.

Output folder (default runs/<config name>):
  config.yaml          the resolved config          train_log.jsonl  losses, lr, speed per log step
  checkpoints/last.pt  training state (--resume)    eval.jsonl       online evaluation results
  tensorboard/         scalars + images             model.safetensors  final weights (checkpoints.save_model)
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from urcdc_model import cli
from urcdc_model.checkpoints import load_state_dict, load_swin_imagenet, read_checkpoint, save_model
from urcdc_model.losses import URCDCLoss
from urcdc_model.models import URCDCDepth, with_zero_initialised_weights
from urcdc_model.training.config import TrainConfig
from urcdc_model.training.data import (ResumableDistributedSampler, SampleSeededDataset, WindowCollate,
                                       build_datasets, canonical_camera)
from urcdc_model.training.distributed import cleanup_distributed, setup_distributed
from urcdc_model.training.evaluation import evaluate_branches
from urcdc_model.training.state import capture_rng_state, load_training_state, restore_rng_state, save_atomic
from urcdc_model.training.visualize import confidence_image, depth_image, rgb_image

NUM_LOG_IMAGES = 2


def _parameter_groups(model: torch.nn.Module, optim) -> list[dict]:
    """One group, or two when the model has a ray embedding: that one at ``optim.ray_embed_lr_scale`` × lr
    (the schedule scales both alike)."""
    ray = [p for name, p in model.named_parameters() if name.startswith("backbone.ray_embed.")]
    rest = [p for name, p in model.named_parameters() if not name.startswith("backbone.ray_embed.")]
    if not ray:
        return [{"params": rest}]
    return [{"params": rest}, {"params": ray, "lr": optim.lr * optim.ray_embed_lr_scale}]


class PolyDecay:
    """LambdaLR factor of the official schedule: lr = (lr0 − lr_end)·(1 − step/total)^power + lr_end.

    A small class rather than a lambda so its fields go into the scheduler's state dict.
    """

    def __init__(self, total_steps: int, start_lr: float, end_lr: float, power: float = 0.9):
        self.total_steps = int(total_steps)
        self.start_lr = float(start_lr)
        self.end_lr = float(end_lr)
        self.power = float(power)

    def __call__(self, step: int) -> float:
        progress = min(max(step / max(self.total_steps, 1), 0.0), 1.0)
        lr = (self.start_lr - self.end_lr) * (1.0 - progress) ** self.power + self.end_lr
        return lr / self.start_lr


class Trainer:
    """Owns model, data, optimiser and logging for one training run (one per process under torchrun)."""

    def __init__(self, config: TrainConfig, output_dir: str | Path, max_steps: int | None = None,
                 stop_at_step: int | None = None, resume: bool = False, device: str | None = None,
                 progress: bool = True, command: str = ""):
        """
        Args:
            config: the validated training config.
            output_dir: where checkpoints, logs and the final weights go.
            max_steps: total optimiser steps (sets the LR schedule; overrides epochs / optim.total_steps).
            stop_at_step: stop (with a checkpoint) at this step *without* changing the schedule,
                as an interrupted job would; continue later with `resume`.
            resume: continue from output_dir/checkpoints/last.pt at the same step and RNG state.
            device: "cpu" | "cuda" | None (CUDA when available).
            progress: show the progress bar (rank 0).
            command: the command line, recorded in the exported weights.
        """
        self.config = config
        self.output_dir = Path(output_dir)
        self.command = command
        self.dist = setup_distributed(device)
        self.device = self.dist.device
        self.is_main = self.dist.is_main
        optim = config.optim

        # Identical initial weights on every rank, then a distinct stream per rank (drop-path etc.).
        torch.manual_seed(config.seed)
        self.model_config = config.model.build_config()
        self.model = URCDCDepth(self.model_config)
        if config.model.init_checkpoint and not resume:
            # Fine-tuning: every key of both branches must match, so a wrong variant fails loudly.
            state, _, _ = read_checkpoint(config.model.init_checkpoint)
            load_state_dict(self.model, with_zero_initialised_weights(self.model, state))
            if self.dist.is_main:
                print(f"[train] initial weights from {config.model.init_checkpoint}", flush=True)
        if config.model.swin_imagenet_checkpoint and not resume:
            loaded = load_swin_imagenet(self.model, config.model.swin_imagenet_checkpoint)
            if self.dist.is_main:
                print(f"[train] Swin backbone: {len(loaded)} tensors from {config.model.swin_imagenet_checkpoint}")
        self.model.to(self.device)
        self._seed_process(config.seed + self.dist.rank)
        self.train_model: torch.nn.Module = self.model
        if self.dist.is_distributed:
            # find_unused_parameters: the alternating schedule leaves the confidence heads out of odd steps.
            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)

        if optim.batch_size % self.dist.world_size:
            raise ValueError(f"optim.batch_size {optim.batch_size} is the global batch; it must be divisible by "
                             f"the {self.dist.world_size} torchrun processes")
        self.batch_per_process = optim.batch_size // self.dist.world_size
        train_set, self.val_set = build_datasets(config.data, self.model_config.max_depth, source=config.name)
        # Through the inference plan, samples come at their camera's network size: one window per batch.
        collate = None
        if config.data.cameras != "fixed":
            collate = WindowCollate(config.data.window_sizes or [(config.data.height, config.data.width)],
                                    max_batch_pixels=self.batch_per_process * config.data.height * config.data.width,
                                    whole_frame_fraction=config.data.whole_frame_fraction,
                                    whole_frame_padding_px=config.data.whole_frame_padding_px,
                                    centred=config.data.window_placement == "centred")
        # The window collate may use fewer samples than a batch is given: it loads only those.
        self.train_set = SampleSeededDataset(train_set, seed=config.seed, deferred=collate is not None)
        self.sampler = ResumableDistributedSampler(self.train_set, num_replicas=self.dist.world_size,
                                                   rank=self.dist.rank, seed=config.seed)
        self.steps_per_epoch = len(self.sampler) // self.batch_per_process
        if self.steps_per_epoch == 0:
            raise ValueError(f"{config.name}: {len(train_set)} training samples give no full batch of "
                             f"{self.batch_per_process} per process; raise data.train_samples")
        self.canonical = canonical_camera(config.data)
        # A private generator keeps DataLoader from drawing on the global RNG when an iterator starts.
        self.loader = DataLoader(self.train_set, batch_size=self.batch_per_process, sampler=self.sampler,
                                 num_workers=config.data.num_workers, drop_last=True, collate_fn=collate,
                                 pin_memory=self.device.type == "cuda",
                                 generator=torch.Generator().manual_seed(config.seed))
        self.total_steps = int(max_steps or optim.total_steps or optim.epochs * self.steps_per_epoch)
        self.stop_at_step = min(int(stop_at_step), self.total_steps) if stop_at_step else self.total_steps

        optimizer_cls = torch.optim.AdamW if optim.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = optimizer_cls(_parameter_groups(self.model, optim), lr=optim.lr, eps=optim.adam_eps,
                                       weight_decay=optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, PolyDecay(self.total_steps, optim.lr, optim.end_lr, optim.poly_power))
        self.use_amp = optim.amp and self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.loss_fn = URCDCLoss(config.loss)

        self.step = 0
        self.nonfinite_streak = 0
        self.skipped_steps = 0
        self.last_eval: dict[str, float] = {}
        self._window: dict[str, tuple[float, int]] = {}  # loss sums since the last log line
        self.writer = None
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.yaml").write_text(config.to_yaml())
            from torch.utils.tensorboard import SummaryWriter  # only rank 0 needs tensorboard

            self.writer = SummaryWriter(str(self.output_dir / "tensorboard"))
        if resume:
            self.load_checkpoint()
        self.progress = tqdm(total=self.total_steps, initial=self.step, disable=not (progress and self.is_main),
                             dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 30.0)

    @staticmethod
    def _seed_process(seed: int) -> None:
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        import random

        random.seed(seed)

    @property
    def checkpoint_path(self) -> Path:
        return self.output_dir / "checkpoints" / "last.pt"

    # --- the loop -----------------------------------------------------------------------------

    def train(self) -> dict[str, float]:
        """Run to `stop_at_step`; returns the last online-evaluation metrics (rank 0; {} elsewhere)."""
        if self.is_main:
            print(f"[train] {self.config.name}: {self.model_config.name} "
                  f"({sum(p.numel() for p in self.model.parameters()) / 1e6:.2f} M params), "
                  f"{self.dist.world_size} process(es) on {self.device}, batch {self.config.optim.batch_size}, "
                  f"steps {self.step} -> {self.stop_at_step} of {self.total_steps}", flush=True)
        while self.step < self.stop_at_step:
            epoch = self.step // self.steps_per_epoch
            self.train_set.set_epoch(epoch)
            self.sampler.set_epoch(epoch)
            self.sampler.start_index = (self.step - epoch * self.steps_per_epoch) * self.batch_per_process
            for batch in self.loader:
                self.train_step(batch)
                if self.step >= self.stop_at_step:
                    break
            self.sampler.start_index = 0
        self.progress.close()
        log = self.config.log
        if not log.checkpoint_every or self.step % log.checkpoint_every:  # not already saved at this step
            self.save_checkpoint()
        if self.step >= self.total_steps:
            if not log.eval_every or self.step % log.eval_every:
                self.evaluate()
            self.export()
        if self.writer is not None:
            self.writer.close()
        return self.last_eval

    def train_step(self, batch: dict) -> None:
        start = time.perf_counter()
        self.model.train()
        outputs, losses = self.process_batch(batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["loss"]).backward()
        self.scaler.unscale_(self.optimizer)
        max_norm = self.config.optim.grad_clip_norm or math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        # Gradients are averaged over ranks before this point, so every rank takes the same decision.
        if torch.isfinite(grad_norm):
            self.scaler.step(self.optimizer)
            self.nonfinite_streak = 0
        else:
            self._skip_nonfinite_step(losses)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        self.log(batch, outputs, losses, float(grad_norm), time.perf_counter() - start)
        log = self.config.log
        if log.eval_every and self.step % log.eval_every == 0:
            self.evaluate()
        if log.checkpoint_every and self.step % log.checkpoint_every == 0:
            self.save_checkpoint()

    def process_batch(self, batch: dict) -> tuple[dict, dict]:
        """Forward both branches on the batch and compute the URCDC losses."""
        image = batch["image"].to(self.device, non_blocking=True)
        depth_gt = batch["depth"].to(self.device, non_blocking=True)
        image_cnn = batch["image_cnn"].to(self.device, non_blocking=True) if self.model_config.with_cnn else None
        with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            outputs = self.train_model(image, image_cnn)
        outputs = {key: value.float() for key, value in outputs.items()}
        return outputs, self.compute_losses(outputs, depth_gt)

    def compute_losses(self, outputs: dict, depth_gt: torch.Tensor) -> dict:
        return self.loss_fn(outputs, depth_gt, self.step)

    def _skip_nonfinite_step(self, losses: dict) -> None:
        self.nonfinite_streak += 1
        self.skipped_steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        if self.is_main:
            terms = {key: float(value.detach()) for key, value in losses.items()}
            tqdm.write(f"[train] step {self.step}: non-finite gradient, update skipped (losses {terms})")
        limit = self.config.optim.max_nonfinite_steps
        if self.nonfinite_streak >= limit:
            raise FloatingPointError(
                f"{self.config.name}: {limit} consecutive steps with NaN/inf gradients at step {self.step}; "
                "lower optim.lr, set optim.grad_clip_norm, or check the data for invalid depth")

    # --- logging, evaluation, checkpoints ----------------------------------------------------

    def log(self, batch: dict, outputs: dict, losses: dict, grad_norm: float, step_seconds: float) -> None:
        """Progress bar every step; window means of every loss term (over all ranks) every log_every steps."""
        lr = self.scheduler.get_last_lr()[0]
        images_per_s = self.config.optim.batch_size / max(step_seconds, 1e-9)
        for key, value in losses.items():
            total, count = self._window.get(key, (0.0, 0))
            self._window[key] = (total + float(value.detach()), count + 1)
        self.progress.update(1)
        self.progress.set_postfix(loss=f"{float(losses['loss'].detach()):.3f}", lr=f"{lr:.2e}",
                                  img_s=f"{images_per_s:.2f}", refresh=False)
        log = self.config.log
        if self.step % log.log_every == 0 or self.step == self.stop_at_step:
            # Every rank joins the average; ranks see the same steps, hence the same keys in the same order.
            values = {key: self.dist.mean(total / count) for key, (total, count) in self._window.items()}
            self._window.clear()
            if self.is_main:
                for key, value in values.items():
                    self.writer.add_scalar(f"train/{key}", value, self.step)
                self.writer.add_scalar("train/lr", lr, self.step)
                self.writer.add_scalar("train/grad_norm", grad_norm, self.step)
                self.writer.add_scalar("train/images_per_s", images_per_s, self.step)
                record = {"step": self.step, "lr": lr, "grad_norm": grad_norm,
                          "images_per_s": images_per_s, **values}
                with open(self.output_dir / "train_log.jsonl", "a") as handle:
                    handle.write(json.dumps(record) + "\n")
        if self.is_main and log.image_every and self.step % log.image_every == 0:
            self._log_images(batch, outputs)

    def _log_images(self, batch: dict, outputs: dict) -> None:
        max_depth = self.model_config.max_depth
        for i in range(min(NUM_LOG_IMAGES, batch["image"].shape[0])):
            self.writer.add_image(f"image/{i}", rgb_image(batch["image"][i]), self.step, dataformats="HWC")
            self.writer.add_image(f"depth_gt/{i}", depth_image(batch["depth"][i], max_depth), self.step,
                                  dataformats="HWC")
            for key in ("depth", "depth_cnn"):
                if key in outputs:
                    self.writer.add_image(f"{key}/{i}", depth_image(outputs[key][i], max_depth), self.step,
                                          dataformats="HWC")
            for key in ("confidence", "confidence_cnn"):
                if key in outputs:
                    self.writer.add_image(f"{key}/{i}", confidence_image(outputs[key][i]), self.step,
                                          dataformats="HWC")

    def evaluate(self) -> dict[str, float]:
        """Online evaluation on the held-out set (rank 0; the others wait)."""
        if self.is_main:
            metrics = evaluate_branches(self.model, self.val_set, self.device, self.model_config.max_depth,
                                        dataset_name=self.config.data.dataset,
                                        flip_tta=self.config.log.eval_flip_tta,
                                        # network-size samples differ in size per camera
                                        batch_size=1 if self.config.data.cameras != "fixed" else 4)
            self.last_eval = metrics
            for key, value in metrics.items():
                self.writer.add_scalar(f"eval/{key}", value, self.step)
            with open(self.output_dir / "eval.jsonl", "a") as handle:
                handle.write(json.dumps({"step": self.step, **metrics}) + "\n")
            summary = ", ".join(f"{key} {metrics[key]:.4f}" for key in ("abs_rel", "rms", "d1", "cnn/abs_rel")
                                if key in metrics)
            tqdm.write(f"[eval] step {self.step}: {summary}")
        self.dist.barrier()
        return self.last_eval

    def save_checkpoint(self) -> None:
        rng_states = self.dist.gather_objects(capture_rng_state())  # every rank's stream, for exact resume
        if self.is_main:
            save_atomic({
                "step": self.step,
                "world_size": self.dist.world_size,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": rng_states,
                "nonfinite_streak": self.nonfinite_streak,
                "skipped_steps": self.skipped_steps,
                "config_yaml": self.config.to_yaml(),
            }, self.checkpoint_path)
        self.dist.barrier()

    def load_checkpoint(self) -> None:
        state = load_training_state(self.checkpoint_path, map_location=self.device)
        stored = TrainConfig.from_dict(yaml.safe_load(state["config_yaml"]), source=str(self.checkpoint_path))
        if stored.model != self.config.model:
            raise ValueError(f"{self.checkpoint_path}: written for model section {stored.model}, "
                             f"the config now says {self.config.model}; use a new --output")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.nonfinite_streak = int(state["nonfinite_streak"])
        self.skipped_steps = int(state["skipped_steps"])
        if int(state["world_size"]) == self.dist.world_size:
            restore_rng_state(state["rng"][self.dist.rank])
        elif self.is_main:
            print(f"[train] {self.checkpoint_path}: written by {state['world_size']} process(es), resuming with "
                  f"{self.dist.world_size}; weights and optimiser continue, random streams restart", flush=True)
        if self.is_main:
            print(f"[train] resumed from {self.checkpoint_path} at step {self.step}", flush=True)

    def export(self) -> Path | None:
        """Final weights (both branches; a deploy model loads only its own keys) with metadata."""
        if not self.is_main:
            return None
        data = self.config.data
        dataset = (f"procedural {data.kind} scenes (urcdc_model.data.synthetic, seeds 0..{data.train_samples - 1})"
                   if data.dataset == "synthetic" else f"{data.dataset}: {data.filenames_file}")
        if data.cameras != "fixed":
            dataset += (f"; cameras: {data.cameras}, through the inference plan to the canonical focal "
                        f"{self.canonical.focal_px:.2f} px; training windows {data.window_sizes or [[data.height, data.width]]}")
        meta = {
            "input_height": data.height, "input_width": data.width, **self.canonical.to_meta(),
            "max_depth": self.model_config.max_depth,
            "training_command": self.command, "dataset": dataset, "steps": self.step,
            "train_config": self.config.to_dict(), "val_metrics": self.last_eval,
        }
        path = save_model(self.output_dir / "model.safetensors", self.model, self.model_config, meta=meta)
        print(f"[train] wrote {path}", flush=True)
        return path


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_model.train", __doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="training config YAML (config/model/*.yaml)")
    parser.add_argument("--output", default=None, help="output folder (default runs/<config name>)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="total optimiser steps; sets the LR schedule and overrides the config's epochs")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUTPUT/checkpoints/last.pt at the same step, optimiser and RNG state")
    parser.add_argument("--stop-at-step", type=int, default=None,
                        help="stop with a checkpoint at this step without changing the schedule (time-boxed jobs)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="where training runs (default: cuda when available)")
    cli.add_no_progress(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.max_steps is not None and args.max_steps < 1:
        build_parser().error("--max-steps must be >= 1")
    config = TrainConfig.from_yaml(args.config)
    output = Path(args.output) if args.output else Path("runs") / config.name
    command = "python -m urcdc_model.train " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                   else sys.argv[1:]))
    try:
        trainer = Trainer(config, output, max_steps=args.max_steps, stop_at_step=args.stop_at_step,
                          resume=args.resume, device=args.device, progress=not args.no_progress, command=command)
        trainer.train()
    finally:
        cleanup_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
