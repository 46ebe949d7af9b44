"""The built-in components: id -> where the class lives, and its one-line summary.

This table is what ``ubench list`` prints without importing torch. ``tests/test_registry.py``
checks that it matches the classes (each summary is the first line of the class docstring) and that
every module under ``methods/`` and ``tasks/`` appears here, so it cannot go stale silently.
"""

from __future__ import annotations

from typing import Any

BUILTIN_METHODS = {
    "boostalign": (
        "ubench.methods.boostalign:BoostAlign",
        "Restricted gradient (Ko et al. 2024): forget ascent and remain descent, each projected "
        "off the other when they conflict.",
    ),
    "graddiff": (
        "ubench.methods.graddiff:GradDiff",
        "Gradient difference: forget ascent plus weighted remain descent, summed without "
        "projection.",
    ),
    "ga": ("ubench.methods.ga:GradientAscent", "Gradient ascent on the forget set only."),
    "finetune": ("ubench.methods.finetune:Finetune", "Fine-tuning on the remain set only."),
    "rl": (
        "ubench.methods.rl:RandomLabel",
        "Random label: train the forget condition toward another condition's prediction, plus a "
        "remain term.",
    ),
    "salun": (
        "ubench.methods.salun:SalUn",
        "SalUn (Fan et al. 2024): random-label forgetting restricted by a weight-saliency mask.",
    ),
    "esd-u": (
        "ubench.methods.esd:ESDu",
        "ESD-u (Gandikota et al. 2023): negative-guidance self-distillation outside "
        "cross-attention.",
    ),
    "esd-x": (
        "ubench.methods.esd:ESDx",
        "ESD-x (Gandikota et al. 2023): negative-guidance self-distillation on cross-attention "
        "only.",
    ),
    "esd-full": (
        "ubench.methods.esd:ESDFull",
        "ESD (Gandikota et al. 2023): negative-guidance self-distillation on every parameter.",
    ),
    "uce": (
        "ubench.methods.uce:UCE",
        "UCE (Gandikota et al. 2024): closed-form edit of the cross-attention keys and values.",
    ),
    "ca": (
        "ubench.methods.ca:ConceptAblation",
        "Concept Ablation (Kumari et al. 2023): the forget condition learns an anchor's "
        "prediction.",
    ),
    "sa": (
        "ubench.methods.sa:SelectiveAmnesia",
        "Selective Amnesia (Heng & Soh 2023): a surrogate for the forget condition, EWC and "
        "replay.",
    ),
    "erasediff": (
        "ubench.methods.erasediff:EraseDiff",
        "EraseDiff (Wu et al. 2024): remain denoising under a forget-objective constraint, "
        "first-order.",
    ),
    "negprompt": (
        "ubench.methods.negprompt:NegPrompt",
        "Negative prompting (SD-NEGP): the concept's prompt in place of the unconditional branch.",
    ),
    "sld": (
        "ubench.methods.sld:SLD",
        "Safe Latent Diffusion (Schramowski et al. 2023): safety guidance away from a concept.",
    ),
    "external": (
        "ubench.methods.external:External",
        "A model ubench did not make, scored by ubench eval (not an unlearning method).",
    ),
    "base": ("ubench.methods.base:Base", "Reference row: the base model, no unlearning."),
    "retrain": (
        "ubench.methods.retrain:Retrain",
        "Reference row: the oracle trained from scratch without the forget data.",
    ),
}

BUILTIN_TASKS = {
    "digits-class": (
        "ubench.tasks.digits.task:DigitsClass",
        "Forget one digit class from a class-conditional DDPM trained on scikit-learn's 8x8 "
        "digits.",
    ),
    "digits-class-tiny": (
        "ubench.tasks.digits.task:DigitsClassTiny",
        "Tiny digits-class for tests: small model, few steps, few samples (numbers meaningless).",
    ),
    "t2i-attribute": (
        "ubench.tasks.t2i.task:T2IAttribute",
        "Remove an attribute (a frame) that any prompt can add; the text-to-image nudity analogue.",
    ),
    "t2i-style": (
        "ubench.tasks.t2i.task:T2IStyle",
        "Remove one background style (stripes) while the other styles stay; the Van Gogh analogue.",
    ),
    "t2i-object": (
        "ubench.tasks.t2i.task:T2IObject",
        "Remove one digit from every prompt that names it while the other digits stay.",
    ),
    "t2i-attribute-tiny": (
        "ubench.tasks.t2i.task:T2IAttributeTiny",
        "Tiny t2i-attribute for tests: tiny model, few steps and prompts (numbers meaningless).",
    ),
    "t2i-style-tiny": (
        "ubench.tasks.t2i.task:T2IStyleTiny",
        "Tiny t2i-style for tests: tiny model, few steps and prompts (numbers meaningless).",
    ),
    "t2i-object-tiny": (
        "ubench.tasks.t2i.task:T2IObjectTiny",
        "Tiny t2i-object for tests: tiny model, few steps and prompts (numbers meaningless).",
    ),
    "cifar10-class": (
        "ubench.tasks.cifar10.task:Cifar10Class",
        "Forget one CIFAR-10 class from a class-conditional DDPM (paper Table 1); CLIP UA/RA + "
        "FID.",
    ),
    "cifar10-class-tiny": (
        "ubench.tasks.cifar10.task:Cifar10ClassTiny",
        "Tiny cifar10-class for tests: tiny UNet and recipes, injected evaluators (numbers "
        "meaningless).",
    ),
    "sd-nudity": (
        "ubench.tasks.sd.task:SDNudity",
        "Remove nudity from Stable Diffusion v1.4 (paper §4.2); NudeNet on I2P + CLIP alignment.",
    ),
    "sd-vangogh": (
        "ubench.tasks.sd.task:SDVanGogh",
        "Remove Van Gogh's style from Stable Diffusion v1.4; CLIP zero-shot style + alignment.",
    ),
    "sd-object": (
        "ubench.tasks.sd.task:SDObject",
        "Remove an object (church) from Stable Diffusion v1.4; CLIP zero-shot over Imagenette.",
    ),
}

BUILTIN_METRICS = {
    "ua": (
        "ubench.metrics.classification:UnlearningAccuracy",
        "Unlearning accuracy: 1 - fraction of forget-condition generations judged as the concept.",
    ),
    "ra": (
        "ubench.metrics.classification:RemainingAccuracy",
        "Remaining accuracy: fraction of remain-condition generations judged as their condition.",
    ),
    "garbage_rate": (
        "ubench.metrics.classification:GarbageRate",
        "Garbage rate: fraction of forget-condition generations the judge rejects as not an "
        "image of any class.",
    ),
    "neighbour_accuracy": (
        "ubench.metrics.classification:NeighbourAccuracy",
        "Neighbour accuracy: remain-condition generations of the classes closest to the forget "
        "class judged right.",
    ),
    "judge_agreement_forget": (
        "ubench.metrics.classification:JudgeAgreementForget",
        "Judge agreement on forget generations: the validated judge and its partner give the "
        "same label.",
    ),
    "judge_agreement_remain": (
        "ubench.metrics.classification:JudgeAgreementRemain",
        "Judge agreement on remain generations: the validated judge and its partner give the "
        "same label.",
    ),
    "concept_rate": (
        "ubench.metrics.alignment:ConceptRate",
        "Concept rate: fraction of forget-prompt generations in which the concept is detected.",
    ),
    "concept_rate_paraphrase": (
        "ubench.metrics.alignment:ConceptRateParaphrase",
        "Concept rate on paraphrased forget prompts whose wording never appears in D_f.",
    ),
    "alignment_train": (
        "ubench.metrics.alignment:AlignmentTrain",
        "Exact alignment on remain prompts of the train attribute values (every named attribute).",
    ),
    "alignment_test": (
        "ubench.metrics.alignment:AlignmentTest",
        "Exact alignment on remain prompts of held-out attribute values (every named attribute).",
    ),
    "forget_fidelity": (
        "ubench.metrics.alignment:ForgetFidelity",
        "Forget-prompt fidelity: forget-prompt generations showing every named attribute but "
        "the concept.",
    ),
    "concept_strength": (
        "ubench.metrics.alignment:ConceptStrength",
        "Graded concept strength on forget prompts: how much of the forgotten style is still "
        "drawn (1: as rendered).",
    ),
    "neighbour_alignment": (
        "ubench.metrics.alignment:NeighbourAlignment",
        "Exact alignment on prompts naming the forgotten concept's neighbours (its side "
        "effects).",
    ),
    "nudity_rate": (
        "ubench.metrics.nudity:NudityRate",
        "Nudity rate: fraction of generations with a NudeNet exposed-part detection (score > "
        "0.6).",
    ),
    "exposed_parts": (
        "ubench.metrics.nudity:ExposedParts",
        "Exposed parts: mean NudeNet exposed-part detections per generation (paper total = mean "
        "x n).",
    ),
    "clip_alignment_train": (
        "ubench.metrics.clip_score:ClipAlignmentTrain",
        "CLIP alignment (the paper's AS): mean image-prompt cosine on the train remain prompts.",
    ),
    "clip_alignment_test": (
        "ubench.metrics.clip_score:ClipAlignmentTest",
        "CLIP alignment score: mean image-prompt cosine on the held-out test remain prompts.",
    ),
    "other_accuracy": (
        "ubench.metrics.clip_score:OtherAccuracy",
        "Other-concept accuracy: generations for other styles/objects labelled as the one named.",
    ),
    "neighbour_clip_alignment": (
        "ubench.metrics.clip_score:NeighbourClipAlignment",
        "Neighbour CLIP alignment: mean image-prompt cosine on a user's neighbour prompt set.",
    ),
    "neighbour_label_accuracy": (
        "ubench.metrics.clip_score:NeighbourLabelAccuracy",
        "Neighbour label accuracy: neighbour-prompt generations CLIP labels as the neighbour "
        "named.",
    ),
    "fd": (
        "ubench.metrics.frechet:FrechetDistance",
        "Frechet distance between generated and real features of a task's own feature network.",
    ),
    "fid": (
        "ubench.metrics.frechet:FID",
        "FID (clean-fid, Inception features) of generations against user-provided reference "
        "images.",
    ),
}


BUILTIN_ATTACKS = {
    "relearn": (
        "ubench.attacks.relearn:Relearn",
        "Relearning: fine-tune on a few forget samples; forgetting after each step budget.",
    ),
    "resurgence": (
        "ubench.attacks.resurgence:Resurgence",
        "Concept resurgence: fine-tune on remain data only; does the forgotten concept return?",
    ),
    "invert": (
        "ubench.attacks.invert:Invert",
        "Concept inversion: learn a class or token embedding that brings the concept back.",
    ),
    "softprompt": (
        "ubench.attacks.softprompt:SoftPrompt",
        "UnlearnDiffAtk: k prepended tokens per forget prompt, optimised by the denoising loss.",
    ),
}


def register_builtins(methods: Any, tasks: Any, metrics: Any, attacks: Any = None) -> None:
    """Fill the registries with the lazy built-in entries."""
    tables = [(methods, BUILTIN_METHODS), (tasks, BUILTIN_TASKS), (metrics, BUILTIN_METRICS)]
    if attacks is not None:
        tables.append((attacks, BUILTIN_ATTACKS))
    for registry, table in tables:
        for name, (target, summary) in table.items():
            registry.add(name, target, summary)
