"""The record schema, written once: TypedDicts here, and the JSON Schema generated from them.

A run's ``record.json`` is a :class:`Record`. ``ubench/store/record.schema.json`` is the JSON
Schema of
that TypedDict (regenerate it with ``python scripts/check_schema.py --write``; a test fails when
it is stale), and :func:`ubench.store.records.read_record` validates every record
against it, so a record that does not match the types below never reaches a report. Other tools
(another language, a notebook) can validate records with the same file.

Extra keys are allowed everywhere (forward compatibility); the keys listed are required unless
marked ``NotRequired``.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from typing_extensions import NotRequired, TypedDict

#: version of the record layout; bumped only when a reader of the old one would misread it
SCHEMA_VERSION = 1
#: how the run id is computed: 2 = the digests of the assets the run used are part of it
#: (``task.assets``); records without ``identity_version`` (1) are reported as legacy assets
IDENTITY_VERSION = 2
SCHEMA_FILE = Path(__file__).with_name("record.schema.json")
#: the JSON Schema of an attack record (``attack.json``), generated from :class:`AttackRecord`
ATTACK_SCHEMA_FILE = Path(__file__).with_name("attack_record.schema.json")


class MetricRecord(TypedDict):
    """One metric of a run: value, interval, sample size, direction, definition."""

    value: float
    ci_low: float
    ci_high: float
    n: int
    higher_is_better: bool
    #: everything needed to recompute the number (judge hash, sampler, seeds, formula, ...)
    definition: dict[str, Any]


class TaskRecord(TypedDict):
    id: str
    version: str
    config: dict[str, Any]
    #: digests of the assets the run used (pinned base weights, judge, data, the oracle when
    #: used); part of the run identity from identity_version 2 on
    assets: NotRequired[dict[str, str]]
    #: content digests of the user-supplied files the config names (part of the run identity)
    inputs: NotRequired[dict[str, str]]


class MethodRecord(TypedDict):
    id: str
    version: str
    config: dict[str, Any]
    reference: NotRequired[bool]
    #: a training-free method (it changed sampling, not weights; no model saved)
    training_free: NotRequired[bool]


class RequestRecord(TypedDict):
    forget: dict[str, Any] | None
    remain: dict[str, Any] | None


class Record(TypedDict):
    """A run's ``record.json``."""

    schema_version: int
    #: 2: the run id includes the asset digests; absent (1): a legacy record
    identity_version: NotRequired[int]
    run_id: str
    #: the run id without the asset digests (what ``ubench compare`` pairs by); absent in
    #: legacy records, where it equals ``run_id``
    config_id: NotRequired[str]
    status: Literal["running", "ok", "failed"]
    created_at: str
    task: TaskRecord
    method: MethodRecord
    seed: int
    metrics: dict[str, MetricRecord]
    #: seconds per stage and peak memory (``peak_rss_mb``, ``peak_cuda_mb`` on GPU)
    cost: dict[str, float]
    #: package versions, git state, hardware, thread count
    env: dict[str, Any]
    request: NotRequired[RequestRecord]
    #: files next to the record (``grid``, ``samples``, ``scores``, ``features``, ``model``)
    artifacts: NotRequired[dict[str, str]]
    error: NotRequired[str | None]
    details: NotRequired[dict[str, Any]]
    #: how the fair protocol made the run: ``{"role": "tuning", ...}`` or a preset's provenance
    protocol: NotRequired[dict[str, Any]]
    #: an ``external`` row's model (``ubench eval``): ``name`` (the report's label), ``kind``
    #: (``run``, ``path``, ``hub``), ``given`` (what was typed), ``layout`` of its weights
    source: NotRequired[dict[str, Any]]
    #: sha256 of the saved UNet's weights (:func:`ubench.models.weights.unet_digest`): the same
    #: model scored twice (a run and ``ubench eval`` of its weights) has the same digest
    model_digest: NotRequired[str]
    train_log: NotRequired[dict[str, Any]]
    changed_parameters: NotRequired[int]
    #: set when the run was made again to save its model for an attack (``reason``) and which
    #: metrics then differed from the old record (``metrics_changed``; empty: none did)
    remade: NotRequired[dict[str, Any]]


class AttackedRunRecord(TypedDict):
    """The run an attack record belongs to (copied from its record when the attack ran)."""

    run_id: str
    task: TaskRecord
    method: MethodRecord
    seed: int


class AttackSpecRecord(TypedDict):
    id: str
    version: str
    config: dict[str, Any]


class AttackRecord(TypedDict):
    """An attack's ``attack.json``, next to the attacked run's record
    (``<run folder>/attacks/<attack>/<attack_id>/attack.json``).

    Its identity (``attack_id``) is a hash of the attacked run's id, the attack (id, version,
    config) and the attack's seed. Metric ids carry the attack and its budget
    (``relearn_ua@50``, ``invert_rate@200``, ``softprompt_asr@2000``).
    """

    schema_version: int
    kind: Literal["attack"]
    attack_id: str
    status: Literal["running", "ok", "failed"]
    created_at: str
    run: AttackedRunRecord
    attack: AttackSpecRecord
    seed: int
    metrics: dict[str, MetricRecord]
    #: seconds (``attack_seconds``, ``total_seconds``) and peak memory
    cost: dict[str, float]
    env: dict[str, Any]
    #: the task's forgetting metric the attack measures (``ua``, ``concept_rate``, ...), and
    #: what was attacked (``saved model`` or ``rebuilt reference row``)
    details: NotRequired[dict[str, Any]]
    #: files next to the attack record (``grid``, ``embedding``, ``prompts``)
    artifacts: NotRequired[dict[str, str]]
    error: NotRequired[str | None]


def generate_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`Record` (pydantic's generator, run by the developers only)."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(Record).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ubench run record"
    return schema


def generate_attack_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`AttackRecord` (developers only, like :func:`generate_schema`)."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(AttackRecord).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ubench attack record"
    return schema


@lru_cache(maxsize=1)
def attack_validator() -> Any:
    """A jsonschema validator of the committed attack-record schema (built once)."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(ATTACK_SCHEMA_FILE.read_text()))


#: what an id that names a folder or a file may be: a run id, a method, task or attack id (a
#: record is someone else's file: ``../../x`` would put a report page or an unpacked run outside
#: its folder)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
RUN_NAMES = (("run_id",), ("config_id",), ("task", "id"), ("method", "id"))
ATTACK_NAMES = (("attack_id",), ("attack", "id"), ("run", "run_id"), ("run", "task", "id"),
                ("run", "method", "id"))


def name_errors(record: Any, fields: tuple[tuple[str, ...], ...]) -> list[str]:
    """The ids of ``record`` that would not be a plain file name (a path separator, ``..``)."""
    out = []
    for path in fields:
        value: Any = record
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str) and (not NAME.fullmatch(value) or ".." in value):
            out.append(f"{'.'.join(path)}: {value[:60]!r} is not a name (letters, digits, "
                       "'.', '_', '+', '-')")
    return out


def attack_schema_errors(record: Any) -> list[str]:
    """Every way an attack record breaks its schema, as ``path: message`` lines."""
    return _errors("attack", record) + name_errors(record, ATTACK_NAMES)


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The committed JSON Schema of a record."""
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return loaded


@lru_cache(maxsize=1)
def validator() -> Any:
    """A jsonschema validator of the committed schema (built once)."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema())


def schema_errors(record: Any) -> list[str]:
    """Every way ``record`` breaks the schema, as ``path: message`` lines (empty: valid)."""
    return _errors("run", record) + name_errors(record, RUN_NAMES)


@lru_cache(maxsize=2)
def fast_validator(kind: str) -> Any:
    """A compiled validator of the same schema (jsonschema-rs, ~100x faster): what most reads
    ask is only "is it valid", and a record it passes, jsonschema passes too (it is stricter on
    NaN only, which the slow path then accepts); the messages of an invalid record come from
    jsonschema. None when jsonschema-rs is not installed."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.validator_for(
        schema() if kind == "run" else json.loads(ATTACK_SCHEMA_FILE.read_text()))


def _errors(kind: str, record: Any) -> list[str]:
    fast = fast_validator(kind)
    if fast is not None and fast.is_valid(record):
        return []
    check = validator() if kind == "run" else attack_validator()
    out = []
    for err in sorted(check.iter_errors(record), key=lambda e: list(map(str, e.path))):
        where = ".".join(str(p) for p in err.path) or "(top level)"
        message = err.message if len(err.message) <= 120 else err.message[:117] + "..."
        out.append(f"{where}: {message}")
    return out
