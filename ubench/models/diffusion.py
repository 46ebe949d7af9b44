"""``DiffusionModel``: the one abstraction every method and task works through.

It wraps diffusers components — a UNet, a noise scheduler and a *conditioner* that turns
conditions (class ids, or prompts through a frozen text encoder) into what the UNet consumes,
with a *null* condition for classifier-free guidance — and exposes a handful of verbs: the
denoising loss, noise prediction, guided sampling with explicit seeds, partial denoising (ESD's
training inputs), parameter scopes, a frozen clone and save/load in the diffusers layout with
safetensors. ESD, SalUn and the gradient family are written against these verbs only, so they
run unchanged on every task.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel, UNet2DModel

from ubench.core.errors import IncompatibleError, MissingAssetError
from ubench.models.text import TextConditioner

Scope = Literal["full", "xattn", "noxattn"]
SCOPES: tuple[str, ...] = ("full", "xattn", "noxattn")
#: samplers of :meth:`DiffusionModel.sample`: DDIM (eta = 0) and DPM-Solver++ (2M), both diffusers'
SAMPLERS: tuple[str, ...] = ("ddim", "dpm-solver")


class ClassConditioner:
    """Class labels ``0..num_classes-1`` plus a null label ``num_classes`` for guidance.

    The UNet must have ``num_class_embeds == num_classes + 1``; the null label is what training
    with label dropout teaches the model to treat as "no condition".
    """

    kind = "class"

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes

    @property
    def null_id(self) -> int:
        return self.num_classes

    def encode(self, conditions: Any, device: torch.device | str) -> torch.Tensor:
        ids = torch.as_tensor(conditions, dtype=torch.long).reshape(-1)
        if ids.numel() and (ids.min() < 0 or ids.max() > self.num_classes):
            raise ValueError(f"class ids must be in 0..{self.num_classes}; got {ids.tolist()}")
        return ids.to(device)

    def null(self, n: int, device: torch.device | str) -> torch.Tensor:
        return torch.full((n,), self.null_id, dtype=torch.long, device=device)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "num_classes": self.num_classes}


def _noise(shape: tuple[int, ...], generator: torch.Generator | None, seeds: Sequence[int] | None
           ) -> torch.Tensor:
    """Gaussian noise on CPU; with ``seeds``, sample i depends on seeds[i] only (batch-invariant).
    """
    if seeds is None:
        return torch.randn(shape, generator=generator)
    out = torch.empty(shape)
    for i, s in enumerate(seeds):
        out[i] = torch.randn(shape[1:], generator=torch.Generator("cpu").manual_seed(int(s)))
    return out


class SamplingRule(Protocol):
    """How a training-free method changes sampling (SLD, negative prompting): it forms the
    guided noise prediction of each step in place of classifier-free guidance. The weights stay
    the base model's; what the method changed is this rule, rebuilt from the run's config
    wherever the model is used again (attacks, ``ubench eval``)."""

    #: the method id that set it (recorded next to sample grids and in errors)
    name: str

    def begin(self, model: DiffusionModel, cond: torch.Tensor, steps: int) -> Any:
        """Per-batch state before the first of ``steps`` steps (encoded prompts, momentum)."""

    def noise(self, model: DiffusionModel, x_t: torch.Tensor, t: torch.Tensor,
              cond: torch.Tensor, guidance: float, step: int, state: Any) -> torch.Tensor:
        """The guided prediction at step ``step`` (0-based) for the batch ``x_t``."""


class DiffusionModel:
    """A conditional epsilon-prediction diffusion model over diffusers components.

    With ``mixed_precision`` on a CUDA device the UNet runs under bf16 autocast while its weights
    (the optimiser's master copy) stay fp32 and predictions are returned as fp32; elsewhere, and
    by default, everything is fp32.
    """

    def __init__(self, unet: UNet2DModel | UNet2DConditionModel, scheduler: DDPMScheduler,
                 conditioner: ClassConditioner | TextConditioner,
                 mixed_precision: bool = False) -> None:
        # typed Any: diffusers' lazy module objects are opaque to static checkers
        self.unet: Any = unet
        self.noise_scheduler: Any = scheduler
        self.conditioner = conditioner
        self.mixed_precision = mixed_precision
        #: a training-free method's sampling rule (None: classifier-free guidance as usual)
        self.sampling_rule: SamplingRule | None = None
        #: called after every sampling step with (steps done, steps in this call): the progress
        #: bar of an evaluation (not copied by :meth:`clone`; the runner sets and clears it)
        self.on_sample_step: Callable[[int, int], None] | None = None

    # ------------------------------------------------------------------ basics
    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        cfg = self.unet.config
        size = cfg.sample_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return (cfg.in_channels, h, w)

    def to(self, device: torch.device | str) -> DiffusionModel:
        self.unet.to(device)
        return self

    @property
    def text_conditioned(self) -> bool:
        return self.conditioner.kind == "text"

    def encode(self, conditions: Any) -> torch.Tensor:
        """Turn conditions (class ids, or a list of prompts) into what the UNet consumes."""
        return self.conditioner.encode(conditions, self.device)

    def null_condition(self, n: int) -> torch.Tensor:
        """The encoded null condition (unconditional branch of guidance), repeated ``n`` times."""
        return self.conditioner.null(n, self.device)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast when ``mixed_precision`` is on and the UNet is on CUDA, else nothing."""
        if self.mixed_precision and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ training verbs
    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """epsilon_theta(x_t, t, c) for an encoded condition ``cond`` (fp32)."""
        if not self.mixed_precision:
            if self.text_conditioned:
                return self.unet(x_t, t, encoder_hidden_states=cond).sample
            return self.unet(x_t, t, class_labels=cond).sample
        with self._autocast():
            if self.text_conditioned:
                out = self.unet(x_t, t, encoder_hidden_states=cond).sample
            else:
                out = self.unet(x_t, t, class_labels=cond).sample
        return out.float()

    def noised(self, x0: torch.Tensor, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw (t, noise) from ``generator`` and return (x_t, t, noise)."""
        n = x0.shape[0]
        steps = self.noise_scheduler.config.num_train_timesteps
        t = torch.randint(0, steps, (n,), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        return self.noise_scheduler.add_noise(x0, noise, t), t, noise

    def denoising_error(self, x0: torch.Tensor, cond: torch.Tensor,
                        generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-element squared error (eps_theta - eps)^2, shape of ``x0`` (for truncation)."""
        return self.denoising_error_snr(x0, cond, generator)[0]

    def denoising_error_snr(self, x0: torch.Tensor, cond: torch.Tensor,
                            generator: torch.Generator | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-element (eps_theta - eps)^2, the signal-to-noise ratio abar_t / (1 - abar_t) of
        each item's timestep, shaped to broadcast against it). The denoised-image error is the
        first divided by the second, so a cap on it is a cap of ``alpha * SNR`` here."""
        x_t, t, noise = self.noised(x0, generator)
        err = (self.predict_noise(x_t, t, cond) - noise).pow(2)
        abar = self.noise_scheduler.alphas_cumprod.to(err.device)[t].float()
        snr = (abar / (1 - abar)).view(-1, *([1] * (err.dim() - 1)))
        return err, snr

    def denoising_loss(self, x0: torch.Tensor, cond: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """The standard epsilon-prediction MSE, averaged over the batch."""
        return self.denoising_error(x0, cond, generator).mean()

    # ------------------------------------------------------------------ sampling
    def guided_noise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                     guidance: float) -> torch.Tensor:
        """Classifier-free guided prediction eps_u + w (eps_c - eps_u); w = 1 is plain eps_c."""
        if guidance == 1.0:
            return self.predict_noise(x_t, t, cond)
        both = self.predict_noise(torch.cat([x_t, x_t]), torch.cat([t, t]),
                                  torch.cat([cond, self.null_condition(len(cond))]))
        e_c, e_u = both.chunk(2)
        return e_u + guidance * (e_c - e_u)

    @torch.no_grad()
    def denoise_partially(self, cond: torch.Tensor, *, steps: int, stop: int,
                          guidance: float = 1.0, generator: torch.Generator | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the first ``stop`` of ``steps`` DDIM (eta=0) steps from fresh noise under ``cond``.

        ``cond`` is an encoded condition batch (one sample per row); the starting noise is drawn
        from ``generator`` exactly as :meth:`sample` draws it. Returns ``(x_t, t)``: the partially
        denoised batch and the timestep it is at (``timesteps[stop]`` of the DDIM schedule, one per
        sample). ``stop=0`` returns the starting noise. ESD makes its training inputs this way.
        """
        if not 0 <= stop < steps:
            raise ValueError(f"stop must be in 0..{steps - 1}; got {stop}")
        sched = DDIMScheduler.from_config(self.noise_scheduler.config, clip_sample=False)
        sched.set_timesteps(steps)
        n = cond.shape[0]
        x = _noise((n, *self.sample_shape), generator, None).to(self.device)
        was_training = self.unet.training
        self.unet.eval()
        for t in sched.timesteps[:stop]:
            tt = torch.full((n,), int(t), device=self.device, dtype=torch.long)
            x = sched.step(self.guided_noise(x, tt, cond, guidance), t, x).prev_sample
        self.unet.train(was_training)
        return x, torch.full((n,), int(sched.timesteps[stop]), device=self.device,
                             dtype=torch.long)

    def sampler_scheduler(self, sampler: str = "ddim") -> Any:
        """A fresh deterministic sampling scheduler on the model's noise schedule: ``ddim``
        (DDIM, eta = 0) or ``dpm-solver`` (DPM-Solver++ 2M, diffusers' multistep solver)."""
        if sampler == "ddim":
            return DDIMScheduler.from_config(self.noise_scheduler.config, clip_sample=False)
        if sampler == "dpm-solver":  # imported here: its module imports scipy.stats (~1 s)
            from diffusers import DPMSolverMultistepScheduler

            return DPMSolverMultistepScheduler.from_config(
                self.noise_scheduler.config, algorithm_type="dpmsolver++", solver_order=2)
        raise ValueError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")

    @torch.no_grad()
    def sample(self, conditions: Any, *, steps: int = 25, guidance: float = 2.0,
               generator: torch.Generator | None = None, seeds: Sequence[int] | None = None,
               batch_size: int = 256, sampler: str = "ddim") -> torch.Tensor:
        """Samples in [-1, 1] for the given conditions, with classifier-free guidance.

        ``sampler`` is ``ddim`` (eta = 0, the default) or ``dpm-solver`` (DPM-Solver++ 2M); both
        are deterministic given the starting noise. ``guidance`` is w in
        eps_u + w (eps_c - eps_u): 1 is plain conditional sampling, 0 is unconditional. With
        ``seeds`` each sample's starting noise comes from its own seed, so a sample does not
        depend on which batch it was generated in.
        """
        return self.sample_encoded(self.encode(conditions), steps=steps, guidance=guidance,
                                   generator=generator, seeds=seeds, batch_size=batch_size,
                                   sampler=sampler)

    @torch.no_grad()
    def sample_encoded(self, cond_all: torch.Tensor, *, steps: int = 25, guidance: float = 2.0,
                       generator: torch.Generator | None = None,
                       seeds: Sequence[int] | None = None, batch_size: int = 256,
                       sampler: str = "ddim") -> torch.Tensor:
        """:meth:`sample` for already encoded conditions (one row per sample): learned class
        vectors and soft prompts (``ubench.models.soft``) are sampled through it."""
        n = cond_all.shape[0]
        if seeds is not None and len(seeds) != n:
            raise ValueError("need one seed per condition")
        sched = self.sampler_scheduler(sampler)
        sched.set_timesteps(steps)
        x_all = _noise((n, *self.sample_shape), generator, seeds)
        was_training = self.unet.training
        self.unet.eval()
        out = []
        rule = self.sampling_rule
        total, done = -(-n // batch_size) * steps, 0
        for lo in range(0, n, batch_size):
            x = x_all[lo:lo + batch_size].to(self.device)
            c = cond_all[lo:lo + batch_size]
            if sampler != "ddim":  # multistep solvers keep a history: restart it per batch
                sched.set_timesteps(steps)
            state = rule.begin(self, c, steps) if rule is not None else None
            for i, t in enumerate(sched.timesteps):
                tt = torch.full((x.shape[0],), int(t), device=self.device, dtype=torch.long)
                eps = (self.guided_noise(x, tt, c, guidance) if rule is None
                       else rule.noise(self, x, tt, c, guidance, i, state))
                x = sched.step(eps, t, x).prev_sample
                done += 1
                if self.on_sample_step is not None:
                    self.on_sample_step(done, total)
            out.append(x.clamp(-1, 1).cpu())
        self.unet.train(was_training)
        return torch.cat(out)

    def decode(self, samples: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
        """Samples -> images in [-1, 1]: the identity for pixel-space models (latent models
        decode with their VAE)."""
        return samples

    # ------------------------------------------------------------------ parameters
    def named_parameters(self, scope: str = "full") -> list[tuple[str, torch.nn.Parameter]]:
        """Parameters a method may train, by ESD's scopes.

        ``full``: every UNet parameter. ``xattn``: only cross-attention (``attn2``) layers.
        ``noxattn``: everything except cross-attention, the time embedding and the output layer
        (ESD-u's choice; CompVis names ``time_embed``/``out.`` are ``time_embedding``/``conv_out``
        in diffusers).
        """
        params = list(self.unet.named_parameters())
        if scope == "full":
            chosen = params
        elif scope == "xattn":
            chosen = [(n, p) for n, p in params if "attn2" in n]
        elif scope == "noxattn":
            chosen = [(n, p) for n, p in params
                      if "attn2" not in n and not n.startswith(("time_embedding", "conv_out"))]
        else:
            raise ValueError(f"unknown scope {scope!r}; valid: {', '.join(SCOPES)}")
        if not chosen:
            raise IncompatibleError(
                f"parameter scope {scope!r} selects no parameter of this model "
                "(it has no cross-attention); use a text-conditioned task"
            )
        return chosen

    def trainable_parameters(self, scope: str = "full") -> list[torch.nn.Parameter]:
        """Set ``requires_grad`` on exactly the scope's parameters and return them."""
        chosen = self.named_parameters(scope)
        ids = {id(p) for _, p in chosen}
        for p in self.unet.parameters():
            p.requires_grad_(id(p) in ids)
        return [p for _, p in chosen]

    def clone_frozen(self) -> DiffusionModel:
        """A deep copy in eval mode with gradients off (ESD's teacher, SalUn's reference)."""
        twin = DiffusionModel(copy.deepcopy(self.unet), self.noise_scheduler,
                              copy.deepcopy(self.conditioner), self.mixed_precision)
        twin.sampling_rule = self.sampling_rule
        twin.unet.eval()
        twin.unet.requires_grad_(False)
        return twin

    def clone(self) -> DiffusionModel:
        """A trainable deep copy (with the same sampling rule, if any)."""
        twin = DiffusionModel(copy.deepcopy(self.unet), self.noise_scheduler,
                              copy.deepcopy(self.conditioner), self.mixed_precision)
        twin.sampling_rule = self.sampling_rule
        return twin

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> None:
        """Write ``unet/``, ``scheduler/`` (diffusers layout, safetensors) and the conditioner."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(d / "unet", safe_serialization=True)
        self.noise_scheduler.save_pretrained(d / "scheduler")
        (d / "conditioner.json").write_text(json.dumps(self.conditioner.to_json()))

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> DiffusionModel:
        """Load what :meth:`save` wrote (never unpickles anything)."""
        d = Path(directory)
        meta_path = d / "conditioner.json"
        if not meta_path.is_file():
            raise MissingAssetError(f"no ubench model at {d} (missing conditioner.json)")
        meta = json.loads(meta_path.read_text())
        sched = DDPMScheduler.from_pretrained(d / "scheduler")
        if meta.get("kind") == "class":
            unet = UNet2DModel.from_pretrained(d / "unet", use_safetensors=True)
            return cls(unet, sched, ClassConditioner(int(meta["num_classes"]))).to(device)
        if meta.get("kind") == "text":
            cunet = UNet2DConditionModel.from_pretrained(d / "unet", use_safetensors=True)
            return cls(cunet, sched, TextConditioner.from_json(meta)).to(device)
        raise MissingAssetError(f"unsupported conditioner {meta.get('kind')!r} in {d}")


def class_conditional_model(*, resolution: int, channels: tuple[int, ...] = (32, 64),
                            layers_per_block: int = 1, num_classes: int = 10,
                            train_timesteps: int = 1000, seed: int = 0, in_channels: int = 1,
                            attention_levels: tuple[int, ...] = (), norm_num_groups: int = 8,
                            **unet_options: Any) -> DiffusionModel:
    """A fresh class-conditional UNet2DModel + DDPM scheduler, initialised from ``seed``.

    ``attention_levels`` lists the resolution levels (0 = full resolution) whose blocks carry
    self-attention, in both the down and the up path; ``unet_options`` go to ``UNet2DModel``
    as they are (``dropout``, ``norm_eps``, ...). The defaults build the digits model.
    """
    with torch.random.fork_rng(devices=[]):  # seed the initialisation without touching global RNG
        torch.manual_seed(seed)
        unet = _unet(resolution, channels, layers_per_block, num_classes, in_channels,
                     attention_levels, norm_num_groups, unet_options)
    sched = DDPMScheduler(num_train_timesteps=train_timesteps, clip_sample=False)
    return DiffusionModel(unet, sched, ClassConditioner(num_classes))


def _unet(resolution: int, channels: tuple[int, ...], layers_per_block: int, num_classes: int,
          in_channels: int = 1, attention_levels: tuple[int, ...] = (), norm_num_groups: int = 8,
          options: dict[str, Any] | None = None) -> UNet2DModel:
    n = len(channels)
    down = tuple("AttnDownBlock2D" if i in attention_levels else "DownBlock2D" for i in range(n))
    up = tuple("AttnUpBlock2D" if n - 1 - i in attention_levels else "UpBlock2D"
               for i in range(n))
    return UNet2DModel(
        sample_size=resolution, in_channels=in_channels, out_channels=in_channels,
        layers_per_block=layers_per_block, block_out_channels=channels,
        down_block_types=down, up_block_types=up,
        num_class_embeds=num_classes + 1, norm_num_groups=norm_num_groups, **(options or {}),
    )


def load_class_conditional(folder: str | Path, *, num_classes: int, in_channels: int,
                           resolution: int, device: str = "cpu", hint: str = ""
                           ) -> DiffusionModel:
    """A class-conditional model from a local folder in any of three layouts, safetensors only.

    * ubench's own (``conditioner.json``, ``unet/``, ``scheduler/``: what :meth:`DiffusionModel.
      save` and ``ubench pretrain`` write);
    * a diffusers pipeline folder (``unet/`` with ``config.json``, optionally ``scheduler/``);
    * a bare ``UNet2DModel`` folder (``config.json`` + ``diffusion_pytorch_model.safetensors``).

    The UNet must take ``in_channels`` x ``resolution`` x ``resolution`` inputs and have
    ``num_classes + 1`` class embeddings (the classes and the null class of guidance, at index
    ``num_classes``). Without a scheduler folder the DDPM schedule (linear betas 1e-4..0.02, 1000
    steps) is used. Every problem is one :class:`MissingAssetError` line ending with ``hint``.
    """
    d = Path(folder).expanduser()
    tail = f"; {hint}" if hint else ""
    if not d.is_dir():
        raise MissingAssetError(f"model folder {str(d)!r} does not exist{tail}")
    if (d / "conditioner.json").is_file():
        try:
            model = DiffusionModel.load(d, device)
        except MissingAssetError:
            raise
        except Exception as e:  # a truncated weights file, a broken config
            reason = " ".join(str(e).split())[:200]
            raise MissingAssetError(f"could not load the model in {d} ({type(e).__name__}: "
                                    f"{reason}){tail}") from None
        if model.conditioner.kind != "class":
            raise MissingAssetError(f"{d} holds a text-conditioned model; this task needs a "
                                    f"class-conditional one{tail}")
        _check_class_unet(model.unet.config, d, num_classes, in_channels, resolution, tail)
        return model
    unet_dir = d / "unet" if (d / "unet" / "config.json").is_file() else d
    if not (unet_dir / "config.json").is_file():
        raise MissingAssetError(f"{d} is not a diffusers model folder (no config.json, "
                                f"unet/config.json or conditioner.json){tail}")
    config = json.loads((unet_dir / "config.json").read_text())
    if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise MissingAssetError(f"{unet_dir} holds a {config.get('_class_name')}, not a "
                                f"class-conditional UNet2DModel{tail}")
    _check_class_unet(config, unet_dir, num_classes, in_channels, resolution, tail)
    if not any(unet_dir.glob("*.safetensors")):
        raise MissingAssetError(f"{unet_dir} has no .safetensors weights (ubench never unpickles "
                                "a .bin file); convert it with `UNet2DModel.from_pretrained(...)"
                                f".save_pretrained(..., safe_serialization=True)`{tail}")
    try:
        unet = UNet2DModel.from_pretrained(unet_dir, use_safetensors=True)
    except Exception as e:  # a truncated file, a foreign config: say which, on one line
        reason = " ".join(str(e).split())[:200]
        raise MissingAssetError(f"could not load the UNet in {unet_dir} ({type(e).__name__}: "
                                f"{reason}){tail}") from None
    sched_cfg = d / "scheduler" / "scheduler_config.json"
    if sched_cfg.is_file():
        loaded = json.loads(sched_cfg.read_text())
        if loaded.get("prediction_type", "epsilon") != "epsilon":
            raise MissingAssetError(f"{sched_cfg} says prediction_type="
                                    f"{loaded.get('prediction_type')!r}; ubench's model layer "
                                    f"predicts epsilon{tail}")
        sched = DDPMScheduler.from_config(DDPMScheduler.load_config(d / "scheduler"),
                                          clip_sample=False)
    else:
        sched = DDPMScheduler(num_train_timesteps=1000, clip_sample=False)
    return DiffusionModel(unet, sched, ClassConditioner(num_classes)).to(device)


def _check_class_unet(config: Any, where: Path, num_classes: int, in_channels: int,
                      resolution: int, tail: str) -> None:
    """One line saying why a UNet config does not fit a class-conditional task (if it does not).
    """
    get = config.get if isinstance(config, dict) else (lambda k, v=None: getattr(config, k, v))
    embeds = get("num_class_embeds")
    if embeds is None:
        raise MissingAssetError(f"the UNet in {where} is unconditional (no num_class_embeds, e.g. "
                                f"google/ddpm-cifar10-32); a class-conditional one with "
                                f"{num_classes + 1} class embeddings is needed{tail}")
    if int(embeds) != num_classes + 1:
        raise MissingAssetError(
            f"the UNet in {where} has num_class_embeds={embeds}; this task needs "
            f"{num_classes + 1} ({num_classes} classes + the null class {num_classes} of "
            f"classifier-free guidance){tail}")
    size = get("sample_size")
    size = size if isinstance(size, int) else (next(iter(size)) if size else None)
    if get("in_channels") != in_channels or size != resolution:
        raise MissingAssetError(
            f"the UNet in {where} takes {get('in_channels')}x{size}x{size} inputs; this task "
            f"needs {in_channels}x{resolution}x{resolution}{tail}")


def text_conditional_model(*, resolution: int, in_channels: int = 3,
                           channels: tuple[int, ...] = (32, 64), layers_per_block: int = 1,
                           encoder: str = "minilm", max_length: int = 24,
                           cross_attention: str = "low", train_timesteps: int = 1000,
                           seed: int = 0) -> DiffusionModel:
    """A fresh text-conditioned ``UNet2DConditionModel`` on a frozen text encoder.

    As in Stable Diffusion, the text enters *only* through cross-attention (no pooled-text path),
    so cross-attention-only methods (ESD-x) see all of it. ``cross_attention="low"`` puts it on
    the lowest-resolution block only (the offline notes: half the step time), ``"all"`` on every
    block. Key/value projections read the encoder's 384-d token states directly.
    """
    if cross_attention not in ("low", "all"):
        raise ValueError(f"cross_attention must be 'low' or 'all'; got {cross_attention!r}")
    conditioner = TextConditioner(encoder, max_length)
    n = len(channels)
    if cross_attention == "all":
        down, up = ("CrossAttnDownBlock2D",) * n, ("CrossAttnUpBlock2D",) * n
    else:
        down = ("DownBlock2D",) * (n - 1) + ("CrossAttnDownBlock2D",)
        up = ("CrossAttnUpBlock2D",) + ("UpBlock2D",) * (n - 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=resolution, in_channels=in_channels, out_channels=in_channels,
            layers_per_block=layers_per_block, block_out_channels=channels,
            down_block_types=down, up_block_types=up,
            cross_attention_dim=conditioner.dim, attention_head_dim=8, norm_num_groups=8,
        )
    sched = DDPMScheduler(num_train_timesteps=train_timesteps, clip_sample=False)
    return DiffusionModel(unet, sched, conditioner)
