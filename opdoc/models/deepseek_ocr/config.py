"""Configuration of the reference modules, read from the one place that types model dimensions: model.yaml."""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

# opdoc/models/deepseek_ocr/config.py -> the repository root is three folders up.
REPO_ROOT = Path(__file__).resolve().parents[3]
MODEL_YAML = REPO_ROOT / "specs" / "deepseek_ocr" / "model.yaml"


@lru_cache(maxsize=None)
def _model_yaml(path: Path = MODEL_YAML) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_scope_config(scope: str) -> dict[str, Any]:
    """Return a fresh copy of `scopes.<scope>.config` from specs/deepseek_ocr/model.yaml."""
    scopes = _model_yaml()["scopes"]
    if scope not in scopes:
        raise KeyError(f"{MODEL_YAML}: no scope {scope!r} (have: {', '.join(scopes)})")
    return dict(scopes[scope]["config"])


class _FromScope:
    """Mixin: build a dataclass from a model.yaml scope; unknown or missing keys are a TypeError."""

    SCOPE: str = ""

    @classmethod
    def from_scope(cls, scope: str | None = None, *, values: dict[str, Any] | None = None, **overrides: Any):
        """`values`: the scope's configuration as the catalog loaded it (what the checker passes, so
        `--specs` reaches the modules); without it, this repository's own model.yaml (for examples)."""
        values = dict(values) if values is not None else load_scope_config(scope or cls.SCOPE)
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = set(values) - names
        if unknown:
            raise TypeError(f"{cls.__name__}: model.yaml keys with no field: {sorted(unknown)}")
        return cls(**{**values, **overrides})


@dataclass
class DeepseekV2Config(_FromScope):
    """The DeepseekV2Config fields DeepSeek-OCR's language model reads (HF names); values come from model.yaml."""

    SCOPE = "language"

    hidden_size: int
    intermediate_size: int
    moe_intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    n_routed_experts: int
    n_shared_experts: int
    num_experts_per_tok: int
    first_k_dense_replace: int
    moe_layer_freq: int
    topk_method: str
    scoring_func: str
    norm_topk_prob: bool
    routed_scaling_factor: float
    n_group: int
    topk_group: int
    aux_loss_alpha: float
    seq_aux: bool
    use_mla: bool
    hidden_act: str
    rms_norm_eps: float
    rope_theta: float
    attention_bias: bool
    max_position_embeddings: int
    tie_word_embeddings: bool
    bos_token_id: int
    eos_token_id: int
    pad_token_id: int | None = None  # DeepseekV2Config default; config.json does not set it
    num_labels: int = 2  # PretrainedConfig default (a two-way classifier); config.json does not set it
    attention_dropout: float = 0.0  # DeepseekV2Config default
    _attn_implementation: str = "eager"  # "eager" (materialised scores) or "flash_attention_2" (fused)



@dataclass
class DeepseekOCRConfig(DeepseekV2Config):
    """DeepSeek-OCR's own configuration class: DeepseekV2Config's fields unchanged, under its own model
    type, so that the auto classes map config.json's "model_type" to the OCR model classes."""

    model_type = "DeepseekOCR"  # a class attribute, not a field (no annotation)

@dataclass
class MlaConfig(_FromScope):
    """DeepSeek-V2-Lite's attention and rotary settings (HF names): multi-head latent attention, which
    DeepSeek-OCR's configuration switches off but its vendor file defines. `v2_q_lora_rank` is
    DeepSeek-V2's query-compression rank, used when a query-compression variant is built."""

    SCOPE = "v2_lite"

    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    q_lora_rank: int | None
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    max_position_embeddings: int
    rope_theta: float
    rope_scaling: dict | None
    attention_bias: bool
    attention_dropout: float
    rms_norm_eps: float
    v2_q_lora_rank: int
    _attn_implementation: str = "eager"


@dataclass
class SamConfig(_FromScope):
    """SAM-B ImageEncoderViT hyper-parameters (hard-coded upstream in deepencoder.py)."""

    SCOPE = "sam"

    img_size: int
    patch_size: int
    in_chans: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    out_chans: int
    qkv_bias: bool
    use_rel_pos: bool
    window_size: int
    global_attn_indexes: list[int]
    layer_norm_eps: float
    net_2_channels: int
    net_3_channels: int
    num_global_blocks: int


@dataclass
class ClipConfig(_FromScope):
    """CLIP-L VitModel hyper-parameters (the `cfg` upstream's NoTP* classes read)."""

    SCOPE = "clip"

    hidden_size: int
    num_layers: int
    num_attention_heads: int
    ffn_hidden_size: int
    image_size: int
    patch_size: int
    num_positions: int
    layernorm_epsilon: float
    hidden_act: str
    num_channels: int
    sam_downsample: int
    attention_dropout: float = 0.0


@dataclass
class ProjectorConfig(_FromScope):
    """MlpProjector configuration (config.json's projector_config)."""

    SCOPE = "projector"

    projector_type: str
    input_dim: int
    n_embed: int
    sam_downsample: int  # pixels per vision token along each side; the view-size examples use it
    # Read only by the projector types DeepSeek-OCR does not load (mlp_gelu, downsample_mlp_gelu).
    depth: int = 1
    mlp_ratio: int = 1
    downsample_ratio: int = 1
