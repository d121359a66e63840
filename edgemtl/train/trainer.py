"""The training run: data, model, loop, validation, checkpoints, exact resume, DDP."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from edgemtl.balancers import BalanceContext, build_balancer
from edgemtl.checkpoint import read_checkpoint, save_checkpoint
from edgemtl.data.dataset import MultiTaskDataset, load_meta
from edgemtl.data.layout import atomic_write_bytes
from edgemtl.errors import EdgeMTLError
from edgemtl.evaluate import Protocol, evaluate
from edgemtl.log import get_logger
from edgemtl.models import create_model
from edgemtl.models.ownership import param_owners
from edgemtl.recipes import Recipe
from edgemtl.tasks import build_tasks
from edgemtl.train import baselines as bl
from edgemtl.train.adversarial import TaskDiscriminator, ganin_alpha
from edgemtl.train.data import (
    dataset_fingerprint,
    eval_split,
    make_loader,
    resolve_data_root,
    set_loader_epoch,
)
from edgemtl.train.dist import DistInfo, setup_distributed
from edgemtl.train.lock import RunLock
from edgemtl.train.optim import MaskedStep, make_optimizer, make_schedule, param_groups
from edgemtl.train.speed import Amp, fast_dilated_depthwise, plain_convs, resolve_device, use_channels_last
from edgemtl.train.steps import (
    SINGLE_TASKING_BALANCERS,
    NonFiniteLoss,
    StepContext,
    joint_step,
    single_tasking_step,
)

log = get_logger(__name__)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


class Trainer:
    def __init__(
        self,
        recipe: Recipe,
        out: str | os.PathLike,
        resume: bool = False,
        progress: bool = True,
        baselines_path: str | None = None,
        model: torch.nn.Module | None = None,
    ) -> None:
        """``model`` replaces the recipe's model (QAT finetunes a fake-quant graph this way)."""
        self.recipe, self.out, self.progress = recipe, Path(out), progress
        self.cfg = recipe.train_config
        self.dist: DistInfo = setup_distributed()
        # One writer per run folder, taken before the folder is inspected (two runs with one --out
        # would overwrite each other's checkpoints); released when fit()/finetune() end.
        self._lock = RunLock(self.out).acquire() if self.dist.rank == 0 else None
        try:
            self._setup(resume, baselines_path, model)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """End of fit()/finetune(): the run's lock, its loader workers, the training-only conv class."""
        for loader in getattr(self, "_loaders", {}).values():
            it = getattr(loader, "_iterator", None)
            if it is not None and hasattr(it, "_shutdown_workers"):
                it._shutdown_workers()
        self._loaders = {}
        if getattr(self, "model", None) is not None:
            plain_convs(self.model)
        if self._lock is not None:
            self._lock.release()

    def _setup(self, resume: bool, baselines_path: str | None, model: torch.nn.Module | None) -> None:
        """Everything a run needs, in an order that keeps runs reproducible: the seed is set before
        the model's weights, the data and the discriminator draw from the generator."""
        self.baselines_path = baselines_path
        self._check_run_folder(resume)
        seed_everything(self.cfg.seed, self.cfg.deterministic)
        self._setup_device()
        last = self._setup_model(model, resume)
        self._build_data()
        self._setup_balancer()
        self._setup_optimization(model is not None, self._setup_discriminator())
        self._loaders: dict[str, Any] = {}
        self.epoch, self.global_step, self.best_score, self.first_val = 0, 0, -float("inf"), None
        if last is not None:
            self._load_state(last)

    def _check_run_folder(self, resume: bool) -> None:
        if self.out.exists() and (self.out / "last.pt").exists() and not resume:
            raise EdgeMTLError(
                f"{self.out} already holds a run: pass --resume to continue it, or choose another --out"
            )
        if resume and not (self.out / "last.pt").exists():
            raise EdgeMTLError(f"--resume: {self.out}/last.pt not found (nothing to resume)")

    def _setup_device(self) -> None:
        self.device = resolve_device(self.cfg.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device(f"cuda:{self.dist.local_rank}")

    def _setup_model(self, model: torch.nn.Module | None, resume: bool) -> dict[str, Any] | None:
        """The dataset, the model (checked against the run being resumed) and its tasks; returns the
        run's last checkpoint when resuming."""
        self.root = resolve_data_root(self.recipe.data, self.progress) if self.dist.rank == 0 else None
        self.root = self.dist.broadcast_path(self.root)
        self.meta = load_meta(self.root)
        model_cfg = self.recipe.model_config(self.meta)
        last = read_checkpoint(self.out / "last.pt") if resume else None  # read once: config and state
        if last is not None:  # an edited recipe must not silently diverge from what the run records
            model_cfg = self._check_resume(last, model_cfg, model is not None)
        self.model = (model if model is not None else create_model(model_cfg)).to(self.device)
        # Speed settings (edgemtl.train.speed); the checkpoints' state_dicts are unchanged by them.
        # Not for a model passed in (QAT's fake-quant graph keeps the layout it was exported with).
        self.channels_last = model is None and use_channels_last(self.cfg.channels_last, self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if self.device.type == "cpu" and model is None:
            fast_dilated_depthwise(self.model)
        self.tasks = build_tasks(self.model.task_names, self.meta)
        self.aux_tasks = build_tasks(list(self.model.config.aux_tasks), self.meta)
        # The model's input size, never the dataset's: the deployed artifact resizes every image to it,
        # so training sees images at that scale (docs/metrics.md, "Input scale").
        self.input_size = tuple(int(v) for v in self.model.config.image_size)
        self.crop = tuple(self.cfg.crop) if self.cfg.crop else self.input_size
        return last

    def _setup_balancer(self) -> None:
        cfg = self.cfg
        self.loop = (
            cfg.loop if cfg.loop != "auto" else ("single_tasking" if self.model.conditional else "joint")
        )
        fixed = {n: float(cfg.loss_weights.get(n, t.loss_weight)) for n, t in self.tasks.items()}
        self.balancer = build_balancer(
            cfg.balancer, list(self.tasks), fixed_weights=fixed, **cfg.balancer_params
        )
        if self.loop == "single_tasking" and cfg.balancer not in SINGLE_TASKING_BALANCERS:
            raise EdgeMTLError(
                f"train.balancer={cfg.balancer} combines all task losses of one step, but the "
                "single-tasking loop "
                "steps one task at a time: set train.loop=joint, or use one of "
                f"{', '.join(sorted(SINGLE_TASKING_BALANCERS))}"
            )
        self.balancer.to(self.device)  # before the optimizer sees its parameters

    def _setup_discriminator(self) -> list[dict[str, Any]]:
        """ASTMT's task discriminator (train.adversarial); returns the extra optimizer groups
        (discriminator, learnable balancer weights)."""
        cfg = self.cfg
        self.disc = None
        extra_groups = []
        if cfg.adversarial:
            if self.model.one_pass_all_tasks or self.model.config.decoder != "aspp_lite":
                raise EdgeMTLError(
                    "train.adversarial needs the task interface features of an astmt/hard_sharing/"
                    "single_task model with decoder aspp_lite"
                )
            self.disc = TaskDiscriminator(
                self.model.config.decoder_channels, len(self.tasks), cfg.adv_hidden
            ).to(self.device)
            extra_groups.append(
                {
                    "params": list(self.disc.parameters()),
                    "lr": cfg.lr * cfg.adv_lr_mult,
                    "name": "discriminator",
                }
            )
        if self.balancer.parameters():
            extra_groups.append({"params": self.balancer.parameters(), "lr": cfg.lr, "name": "balancer"})
        return extra_groups

    def _setup_optimization(self, custom_model: bool, extra_groups: list[dict[str, Any]]) -> None:
        """The wrapped network, mixed precision, optimizer, schedule and the per-step context."""
        cfg = self.cfg
        self.net = self.dist.wrap(self.model, self.device)
        extra_params = [p for g in extra_groups for p in g["params"]]  # trained outside DDP
        self.dist.broadcast_params(extra_params)
        if cfg.compile:
            self.net = torch.compile(self.net)
        # A model passed in (QAT's fake-quant graph) trains in fp32: observers and fake-quant need it.
        self.amp = Amp.create(
            "fp32" if custom_model else cfg.precision, self.device, self.balancer, cfg.balancer
        )
        groups = param_groups(self.model, cfg, self.loop == "single_tasking", extra_groups)
        self.optimizer = make_optimizer(groups, cfg)
        self.schedule = make_schedule(self.optimizer, cfg, self.steps_per_epoch)
        owners = param_owners(self.model)
        shared = [p for n, p in self.model.named_parameters() if owners[n] is None and p.requires_grad]
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.bctx = BalanceContext(
            shared_params=shared, last_shared=_last_shared(self.model, owners), generator=self.gen
        )
        self.step_ctx = StepContext(
            self.net,
            self.model,
            self.tasks,
            self.aux_tasks,
            self.balancer,
            self.optimizer,
            cfg,
            MaskedStep(self.model),
            self.bctx,
            self.disc,
            self.amp,
            extra_params=extra_params,
        )

    def _same_precision(self, ckpt: dict[str, Any], run: str, now: str) -> bool:
        """Whether ``train.precision`` asked as ``now`` trains in what the run trained in ('auto' and the
        precision it resolves to on this machine are the same run)."""
        from edgemtl.train.speed import resolve_device, resolve_precision

        device = resolve_device(self.cfg.device)
        ran = ((ckpt.get("extra") or {}).get("train_state") or {}).get("precision") or resolve_precision(
            run, device
        )
        return resolve_precision(now, device) == ran

    def _check_resume(self, ckpt: dict[str, Any], model_cfg, custom_model: bool):
        """The run's model and training config must match the recipe; only train.epochs (and settings
        that do not change results: workers, eval cadence, memory format, compile, data cache) may change
        on --resume, and that is said."""
        diffs: list[str] = []
        run_model = ckpt["model_config"]
        if not custom_model:
            now = model_cfg.to_dict()
            # a field added by a newer edgemtl is absent from an older run's config: it ran with the
            # field's default (e.g. model.bifpn_levels, which only the bifpn decoder reads)
            run_model = {**_model_defaults(), **run_model}
            for k in sorted(set(now) | set(run_model)):
                # None = the default the model resolves at build time (mean/std from the backbone).
                # ``pretrained`` only chose the initial weights, which the checkpoint supersedes, and
                # checkpoints store it as None (edgemtl.checkpoint): comparing it refused every resume
                # of a run started from pretrained weights.
                if k == "pretrained":
                    continue
                a, b = now.get(k), run_model.get(k)
                if k in ("tasks", "aux_tasks"):  # what the network predicts, not how a newer version draws it
                    a, b = _task_outputs(a), _task_outputs(b)
                if a is not None and a != b:
                    diffs.append(f"model.{k}: run {run_model.get(k)!r} -> recipe {now.get(k)!r}")
        run_train = (ckpt.get("extra") or {}).get("train_config") or {}
        now_train = self.cfg.to_dict()
        applied = []
        for k in sorted(set(now_train) & set(run_train)):
            if now_train[k] == run_train[k]:
                continue
            if k == "precision" and self._same_precision(ckpt, run_train[k], now_train[k]):
                applied.append(f"train.precision {run_train[k]!r} -> {now_train[k]!r} (the same here)")
                continue
            if k in ("epochs", "num_workers", "eval_every", "channels_last", "compile", "data_cache"):
                applied.append(f"train.{k} {run_train[k]!r} -> {now_train[k]!r}")
            else:
                diffs.append(f"train.{k}: run {run_train[k]!r} -> recipe {now_train[k]!r}")
        run_root = (ckpt.get("extra") or {}).get("data_root")
        if run_root and Path(run_root).resolve() != Path(self.root).resolve():
            diffs.append(f"data: run {run_root} -> recipe {self.root}")
        if diffs:
            raise EdgeMTLError(
                f"--resume {self.out}: the recipe differs from the run it would continue: "
                + "; ".join(diffs)
                + ". Resume with the run's settings, or start a new run with "
                "another --out"
            )
        if applied and self.progress:
            log.info("resume: applying %s", ", ".join(applied))
        return run_model

    # ---------------------------------------------------------------- data
    def _build_data(self) -> None:
        from edgemtl.data.transforms import default_eval_transform, default_train_transform

        cfg = self.cfg
        names = list(self.tasks) + [t for t in self.aux_tasks if t in self.meta["tasks"]]
        if cfg.augment:
            tf = default_train_transform(self.crop, scales=cfg.scales, base=self.input_size)
        else:
            tf = default_eval_transform(self.input_size)
        # Partially-labelled data: training uses the images labelled for at least one of the run's
        # tasks (a single-task baseline trains on the images that have its labels).
        self.train_ds = MultiTaskDataset(
            self.root,
            "train",
            tasks=names,
            transform=tf,
            seed=cfg.seed,
            cache_gib=cfg.data_cache,
            require_labels=list(self.tasks),
        )
        self.val_ds = MultiTaskDataset(
            self.root,
            cfg.val_split,
            tasks=list(self.tasks),
            seed=cfg.seed,
            input_size=self.input_size,
            cache_gib=cfg.data_cache,
        )
        # The split the finished run is tested on, checked now (images and label files present):
        # not after hours of training.
        test_split = "test" if eval_split(self.root) == "test" else cfg.val_split
        self.test_ds = (
            self.val_ds
            if test_split == cfg.val_split
            else MultiTaskDataset(self.root, test_split, tasks=list(self.tasks), input_size=self.input_size)
        )
        n = len(self.train_ds) // (cfg.batch_size * self.dist.world_size)
        if n < 1:
            raise EdgeMTLError(
                f"the train split of {self.root} has {len(self.train_ds)} images: fewer than "
                f"train.batch_size={cfg.batch_size} x {self.dist.world_size} process(es)"
            )
        self.steps_per_epoch = min(n, cfg.max_steps_per_epoch or n)

    # ---------------------------------------------------------------- state
    def _state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best_score": self.best_score,
            "first_val": self.first_val,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "balancer": self.balancer.state_dict(),
            "disc": self.disc.state_dict() if self.disc is not None else None,
            "rng_torch": torch.get_rng_state(),
            "rng_gen": self.gen.get_state(),
            "loop": self.loop,
            "grad_scaler": self.amp.state_dict(),
            "precision": self.amp.precision,
            "last_means": dict(getattr(self, "_last_means", {})),
        }

    def _load_state(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["state_dict"])
        st = ckpt["extra"]["train_state"]
        self.optimizer.load_state_dict(st["optimizer"])
        self.schedule.load_state_dict(st["schedule"])
        self.balancer.load_state_dict(st["balancer"])
        self._last_means = dict(st.get("last_means") or {})
        if self.disc is not None and st["disc"] is not None:
            self.disc.load_state_dict(st["disc"])
        ran = st.get("precision", "fp32")  # runs from before train.precision trained in fp32
        if ran != self.amp.precision:  # 'auto' resolves per machine: resuming elsewhere must not switch
            raise EdgeMTLError(
                f"--resume {self.out}: the run trained in {ran}, this machine would continue in "
                f"{self.amp.precision}; resume with --set train.precision={ran}"
            )
        self.amp.load_state_dict(st.get("grad_scaler") or {})
        torch.set_rng_state(st["rng_torch"])
        self.gen.set_state(st["rng_gen"])
        self.epoch, self.global_step = st["epoch"], st["global_step"]
        self.best_score, self.first_val = st["best_score"], st["first_val"]

    def _save(self, name: str, metrics: dict | None = None) -> None:
        if self.dist.rank != 0:
            return
        save_checkpoint(
            self.out / name,
            self.model,
            self.meta,
            extra={
                "train_state": self._state(),
                "recipe": self.recipe.path,
                "train_config": self.cfg.to_dict(),
                "val": metrics or {},
                "data_root": str(Path(self.root).resolve()),
            },
        )

    # ---------------------------------------------------------------- loop
    def fit(self) -> dict[str, Any]:
        try:
            return self._fit()
        except NonFiniteLoss as e:
            last = self.out / "last.pt"
            where = (
                f"the last good checkpoint is {last} (after epoch {self.epoch})"
                if last.is_file()
                else "no checkpoint was written (it diverged in the first epoch)"
            )
            raise NonFiniteLoss(f"{e}; {where}") from None
        finally:
            self.release()

    def _fit(self) -> dict[str, Any]:
        cfg = self.cfg
        if self.dist.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            resolved = {
                "description": self.recipe.description,
                "model": self.model.config.to_dict(),
                "tasks": list(self.tasks),
                "aux_tasks": list(self.aux_tasks),
                "data": {**self.recipe.data, "resolved_root": str(self.root)},
                "train": cfg.to_dict(),
                "loop": self.loop,
                "world_size": self.dist.world_size,
            }
            atomic_write_bytes(self.out / "config.yaml", yaml.safe_dump(resolved, sort_keys=False).encode())
        while self.epoch < cfg.epochs:
            t0 = time.perf_counter()
            train_losses = self._train_epoch()
            self.balancer.epoch_end(self.epoch, train_losses)
            record = {
                "epoch": self.epoch,
                "step": self.global_step,
                "lr": self.optimizer.param_groups[0]["lr"],
                "loop": self.loop,
                "train_loss": train_losses,
                "weights": dict(self.balancer.last_weights),
            }
            is_best = False
            if (self.epoch + 1) % cfg.eval_every == 0 or self.epoch + 1 == cfg.epochs:
                val = self.validate()
                score = self._score(val)
                record.update(val=val, score=score)
                is_best = score > self.best_score
                if is_best:
                    self.best_score = score
            record["time_s"] = round(time.perf_counter() - t0, 2)
            self.epoch += 1
            self._save("last.pt", record.get("val"))
            if is_best:
                self._save("best.pt", record.get("val"))
            if self.dist.rank == 0:
                with open(self.out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(record, default=float) + "\n")
                if self.progress:
                    loss_txt = " ".join(f"{k}={v:.3f}" for k, v in train_losses.items())
                    log.info(
                        f"epoch {self.epoch}/{cfg.epochs} {loss_txt} "
                        f"score={record.get('score', float('nan')):.4g} "
                        f"({record['time_s']:.1f}s)"
                    )
        return self.finish()

    def finetune(self) -> list[dict[str, Any]]:
        """Train for ``train.epochs`` without checkpoints or final evaluation (QAT finetuning)."""
        try:
            return self._finetune()
        finally:
            self.release()

    def _finetune(self) -> list[dict[str, Any]]:
        history = []
        while self.epoch < self.cfg.epochs:
            losses = self._train_epoch()
            self.balancer.epoch_end(self.epoch, losses)
            history.append({"epoch": self.epoch, "train_loss": losses})
            if self.progress:
                log.info(
                    f"finetune epoch {self.epoch + 1}/{self.cfg.epochs} "
                    + " ".join(f"{k}={v:.3f}" for k, v in losses.items())
                )
            self.epoch += 1
        return history

    def _loader(self, name: str, ds, shuffle: bool):
        """One loader per split for the whole run (its workers persist); decoded once into the cache
        before the workers fork, so that they share it."""
        if name not in self._loaders:
            if self.cfg.num_workers > 0 and self.cfg.data_cache > 0:
                ds.preload()
            self._loaders[name] = make_loader(
                ds,
                self.cfg.batch_size,
                shuffle,
                self.cfg.seed if shuffle else 0,
                0,
                self.cfg.num_workers,
                self.dist.enabled and shuffle,
                drop_last=shuffle,
                pin_memory=self.device.type == "cuda",
            )
        return self._loaders[name]

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        if self.channels_last:
            out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
        return out

    def _train_epoch(self) -> dict[str, float]:
        cfg = self.cfg
        self.model.train()
        loader = self._loader("train", self.train_ds, True)
        set_loader_epoch(loader, self.epoch)
        self.step_ctx.alpha = ganin_alpha(self.epoch, cfg.epochs)
        self.bctx.epoch = self.epoch
        step_fn = single_tasking_step if self.loop == "single_tasking" else joint_step
        sums = {n: 0.0 for n in self.tasks}
        counts = {n: 0 for n in self.tasks}  # steps a task had labels in (partially-labelled data)
        it = loader
        if self.progress and self.dist.rank == 0:
            from tqdm import tqdm

            it = tqdm(
                loader, total=self.steps_per_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}", leave=False
            )
        count = 0
        for i, batch in enumerate(it):
            if i >= self.steps_per_epoch:
                break
            batch = self._to_device(batch)
            self.bctx.step = self.global_step
            losses = step_fn(self.step_ctx, batch, f"epoch {self.epoch + 1}, step {self.global_step + 1}")
            self.schedule.step()
            self.global_step += 1
            count += 1
            for n, v in losses.items():
                sums[n] += v
                counts[n] += 1
        # A task without a labelled image all epoch keeps its previous mean (1.0 at first), so that
        # loss-history balancers (DWA) see no change for it.
        last = getattr(self, "_last_means", {})
        means = {n: sums[n] / counts[n] if counts[n] else last.get(n, 1.0) for n in sums}
        self._last_means = means
        return means

    def validate(self) -> dict[str, dict[str, float]]:
        """Rank 0 evaluates; every rank gets the results so KPI-driven balancers stay in sync."""
        val = None
        if self.dist.rank == 0:
            loader = self._loader("val", self.val_ds, False)
            protocol = Protocol(
                self.cfg.val_split, edge_thresholds=self.cfg.edge_thresholds, input_size=self.input_size
            )
            val = evaluate(self.model, loader, self.tasks, protocol, self.device)
        val = self.dist.broadcast_object(val)
        self.balancer.update_kpi({n: val[n][t.kpi_metric] / 100.0 for n, t in self.tasks.items()})
        self.model.train()
        return val

    def _score(self, val: dict[str, dict[str, float]]) -> float:
        """Model selection on the val split: Δm vs the first validation (LibMTL-style), in %."""
        from edgemtl.metrics import delta_m

        prim = {n: val[n][t.primary_metric] for n, t in self.tasks.items()}
        if self.first_val is None:
            self.first_val = prim
        hib = {n: t.higher_is_better for n, t in self.tasks.items()}
        # A higher-is-better reference (mIoU, maxF, odsF, mAP: all in %) below 1 % counts as 1 %: a task
        # that starts near 0 (a young detector's mAP) would otherwise dominate the score.
        safe = {n: max(v, 1.0) if hib[n] else (v if v != 0 else 1e-9) for n, v in self.first_val.items()}
        return float(delta_m(prim, safe, hib))

    def finish(self) -> dict[str, Any]:
        """Test-split evaluation of best.pt; single-task runs record themselves as baselines."""
        summary: dict[str, Any] = {"run": str(self.out), "epochs": self.epoch, "loop": self.loop}
        if self.dist.rank == 0:
            from edgemtl.checkpoint import load_checkpoint

            best, _ = load_checkpoint(self.out / "best.pt")
            ds, split = self.test_ds, self.test_ds.split
            protocol = Protocol(split, edge_thresholds=self.cfg.edge_thresholds, input_size=self.input_size)
            states: dict[str, Any] = {}
            test = evaluate(
                best,
                make_loader(ds, self.cfg.batch_size, False, 0, 0, self.cfg.num_workers),
                self.tasks,
                protocol,
                self.device,
                image_states=states,
            )
            save_image_states(self.out / "test_states.npz", states)
            summary.update(
                split=split,
                protocol=protocol.describe(self.tasks),
                metrics=test,
                primary={n: test[n][t.primary_metric] for n, t in self.tasks.items()},
            )
            key_fields = (
                f"{self.meta.get('name', self.root.name)}@{dataset_fingerprint(self.root)}",
                self.model.config.backbone,
                tuple(self.crop),
                self.cfg.seed,
            )
            if self.model.config.arch == "single_task":
                n = self.model.task_names[0]
                path = bl.record_baseline(
                    bl.baseline_key(*key_fields, n),
                    {
                        "metrics": test[n],
                        "checkpoint": str((self.out / "best.pt").resolve()),
                        "recipe": self.recipe.path,
                        "protocol": summary["protocol"],
                    },
                    self.baselines_path,
                )
                summary["baseline_recorded"] = str(path)
            else:
                base = bl.lookup_baselines(*key_fields, list(self.tasks), self.baselines_path)
                if base is not None:
                    from edgemtl.metrics import task_delta_m

                    summary["baselines"] = {n: base[n][t.primary_metric] for n, t in self.tasks.items()}
                    try:
                        summary["delta_m"], summary["delta_m_per_task"] = task_delta_m(
                            self.tasks, summary["metrics"], base, per_task=True
                        )
                    except EdgeMTLError as e:  # e.g. a baseline of 0: report it, keep the finished run
                        summary["delta_m_error"] = str(e)
            from edgemtl.report import write_json

            write_json(self.out / "summary.json", summary)
        self.dist.barrier()
        return summary


def save_image_states(path: Path, states: dict[str, Any]) -> None:
    """Per-image additive metric states of a test evaluation (the paired bootstrap's input)."""
    import io

    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        _ids=np.asarray(states["_ids"], dtype=str),
        **{f"task_{k}": v for k, v in states.items() if k != "_ids"},
    )
    atomic_write_bytes(path, buf.getvalue())


def load_image_states(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        out: dict[str, Any] = {k[5:]: z[k] for k in z.files if k.startswith("task_")}
        out["_ids"] = [str(i) for i in z["_ids"]]
    return out


def _last_shared(model, owners) -> torch.nn.Parameter | None:
    """The last shared weight tensor (GradNorm normalises gradients there)."""
    last = None
    for n, p in model.named_parameters():
        if owners[n] is None and p.dim() > 1 and p.requires_grad:
            last = p
    return last


def _model_defaults() -> dict[str, Any]:
    """ModelConfig's field defaults, as ``to_dict`` writes them (tuples as lists)."""
    import dataclasses

    from edgemtl.models.config import ModelConfig

    out: dict[str, Any] = {}
    for f in dataclasses.fields(ModelConfig):
        if f.default is not dataclasses.MISSING:
            out[f.name] = list(f.default) if isinstance(f.default, tuple) else f.default
    return out


def _task_outputs(tasks: dict[str, Any] | None) -> dict[str, tuple] | None:
    """Task name -> (channels, class names): the part of a task description a resume must keep."""
    if tasks is None:
        return None
    return {n: (d.get("out_channels"), d.get("class_names")) for n, d in tasks.items()}
