"""How many NVIDIA GPUs each SageMaker instance type has, as plain data: the chat and
moderation LLMs run on CUDA containers (LMI, TGI) and need at least their tensor-parallel
degree of GPUs, which synth checks instead of a 20-minute failed endpoint start or an
inference component that can never be placed. Sources: the EC2 accelerated-computing
instance specifications (G4dn, G5, G6, G6e, P3, P4, P5). Families not listed are not
judged (a new family passes); the CPU families listed have no GPU at all."""

from __future__ import annotations

_SIZES_ONE_GPU = ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge")
GPUS: dict[str, int] = {
    **{f"ml.{family}.{size}": 1 for family in ("g5", "g6", "g6e") for size in _SIZES_ONE_GPU},
    **{f"ml.{family}.{size}": 4 for family in ("g5", "g6", "g6e") for size in ("12xlarge", "24xlarge")},
    **{f"ml.{family}.48xlarge": 8 for family in ("g5", "g6", "g6e")},
    **{f"ml.g4dn.{size}": 1 for size in _SIZES_ONE_GPU},
    "ml.g4dn.12xlarge": 4,
    "ml.p3.2xlarge": 1,
    "ml.p3.8xlarge": 4,
    "ml.p3.16xlarge": 8,
    "ml.p3dn.24xlarge": 8,
    "ml.p4d.24xlarge": 8,
    "ml.p4de.24xlarge": 8,
    "ml.p5.48xlarge": 8,
    "ml.p5e.48xlarge": 8,
    "ml.p5en.48xlarge": 8,
}
# general purpose, compute and memory optimized, and AWS Inferentia/Trainium (Neuron, not CUDA)
NO_GPU_FAMILIES = ("t2", "t3", "m4", "m5", "m5d", "m6i", "m6id", "m7i", "c4", "c5", "c5d", "c6i", "c7i",
                   "r5", "r5d", "r6i", "r7i", "inf1", "inf2", "trn1")  # fmt: skip


# Turing (T4) and Volta (V100) GPUs have no bfloat16: a bf16 model does not load there
NO_BF16_FAMILIES = ("g4dn", "p3", "p3dn")


def family(instance_type: str) -> str:
    """`ml.g5.2xlarge` -> `g5`."""
    return instance_type.split(".")[1] if instance_type.count(".") == 2 else ""


def gpu_count(instance_type: str) -> int | None:
    """The instance's NVIDIA GPUs, 0 for a CPU (or Neuron) family, None when not known here."""
    if instance_type in GPUS:
        return GPUS[instance_type]
    return 0 if family(instance_type) in NO_GPU_FAMILIES else None


def smallest_with(gpus: int, like: str) -> str:
    """The smallest listed instance of `like`'s family with at least `gpus` GPUs (for a fix)."""
    name = family(like) if any(family(t) == family(like) for t in GPUS) else "g5"
    fits = [t for t, n in GPUS.items() if family(t) == name and n >= gpus]
    return min(fits, key=lambda t: (GPUS[t], list(GPUS).index(t))) if fits else "ml.p4d.24xlarge"
