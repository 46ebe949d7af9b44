"""``external`` — a model ubench did not make, scored by ``ubench eval``.

Not an unlearning method: the row of a UNet someone else trained (a released ESD or SalUn
checkpoint, a user's own ``.pth``, a ubench run's model re-evaluated under the current task
version). ``ubench eval --task T --model SRC`` reads the weights from whatever layout ``SRC`` is
in (:mod:`ubench.models.weights`), checks them against the task's UNet, and imports them into
the asset cache under their content digest; this method then *is* that import: its only
setting, ``model``, is the digest, so a record's identity is the task's identity plus the
model's content — the same weights give the same run id from a diffusers folder, a single
safetensors file or an original-format checkpoint, wherever they were copied. The task's own
evaluation, seeds, judges and attacks then run exactly as on a method's output.

``ubench run --method external`` is refused (there is nothing to train); an attack on an
external row rebuilds it from its saved ``model/`` like any run, and a missing import says
which ``ubench eval`` command makes it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ubench.api import Method, RunContext, UnlearnOutput, UnlearnRequest
from ubench.core.config import BaseConfig
from ubench.core.errors import ConfigError, CorruptAssetError, MissingAssetError
from ubench.models.diffusion import DiffusionModel

#: the asset-cache kind of imported models (``<UBENCH_HOME>/external/<hash>/unet.safetensors``)
CACHE_KIND = "external"
WEIGHTS_FILE = "unet.safetensors"


@dataclass(frozen=True)
class ExternalConfig(BaseConfig):
    """The imported model."""

    #: sha256 of the UNet's weights (:func:`ubench.models.weights.unet_digest`)
    model: str = ""


def cache_key(digest: str) -> dict[str, Any]:
    return {"unet": digest}


class External(Method):
    """A model ubench did not make, scored by ubench eval (not an unlearning method)."""

    name: ClassVar[str] = "external"
    Config: ClassVar[type[BaseConfig]] = ExternalConfig
    external: ClassVar[bool] = True

    def unlearn(self, model: DiffusionModel, request: UnlearnRequest, config: Any,
                ctx: RunContext) -> UnlearnOutput:
        from ubench.models.weights import unet_digest
        from ubench.store.cache import asset_dir, load_cached, read_tensors

        if not config.model:
            raise ConfigError("the external row scores a given model: use `ubench eval --task "
                              "T --model SRC`, not `ubench run --method external`")
        folder = asset_dir(CACHE_KIND, cache_key(config.model))
        if not (folder / "key.json").is_file():
            raise MissingAssetError(
                f"the model {config.model[:16]} is not imported on this machine "
                f"({folder}); run `ubench eval --task <task> --model <its source>` again")
        state = load_cached(folder, "imported model",
                            lambda: read_tensors(folder / WEIGHTS_FILE))
        if unet_digest(state) != config.model:
            raise CorruptAssetError(f"the imported model in {folder} no longer has the digest "
                                    f"{config.model[:16]}; delete {folder} and import it again "
                                    "with `ubench eval`")
        model.unet.load_state_dict(state, strict=True)
        model.unet.requires_grad_(False)
        if ctx.say is not None:
            ctx.say(f"external model {config.model[:16]} loaded")
        return UnlearnOutput(model, [], {"steps": 0})
