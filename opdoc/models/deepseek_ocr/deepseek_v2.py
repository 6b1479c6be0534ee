"""Reference PyTorch modules of DeepSeek-OCR's language model (DeepSeek-3B-MoE), mirroring modeling_deepseekv2.py.

DeepSeek-OCR sets `use_mla: false`, so its decoder layers run transformers' (4.46.3) plain multi-head
attention with full RoPE: `LlamaAttention` (eager) or `LlamaFlashAttention2` (the fused kernel the
model loads); both are implemented here. Every module also runs on the
meta device at full size (no `.item()`, `.tolist()` or autocast on the meta path), so shapes and FLOPs
can be measured without allocating weights.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import DeepseekV2Config

ACT2FN = {"silu": F.silu, "gelu": F.gelu, "relu": F.relu}


class DeepseekV2RMSNorm(nn.Module):
    """RMSNorm: x / sqrt(mean(x²) + eps) computed in fp32, then scaled by a learned weight."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: Tensor) -> Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)  # the variance of bf16 activations needs fp32
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class DeepseekV2MLP(nn.Module):
    """Gated MLP (SwiGLU): down(act(gate(x)) * up(x)); also the shape of every routed and shared expert."""

    def __init__(
        self, config: DeepseekV2Config, hidden_size: int | None = None, intermediate_size: int | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.hidden_size = config.hidden_size if hidden_size is None else hidden_size
        self.intermediate_size = config.intermediate_size if intermediate_size is None else intermediate_size
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=False)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class MoEGate(nn.Module):
    """Router: fp32 logits over the routed experts, scores (softmax or sigmoid), top-k experts and weights.

    The selection methods of the vendor file: "greedy" (DeepSeek-OCR: the k best scores), and two that
    first keep the best `topk_group` of `n_group` expert groups, "group_limited_greedy" (a group ranked
    by its best score) and "noaux_tc" (ranked by its two best scores after a learned per-expert bias,
    inference only). In training mode with aux_loss_alpha > 0 it also returns the load-balancing loss.
    Intermediates are locals of forward, as upstream's, so they stay referenced until it returns.
    """

    def __init__(self, config: DeepseekV2Config) -> None:
        super().__init__()
        self.config = config
        self.top_k = config.num_experts_per_tok
        self.n_routed_experts = config.n_routed_experts
        self.routed_scaling_factor = config.routed_scaling_factor
        self.scoring_func = config.scoring_func
        self.alpha = config.aux_loss_alpha
        self.seq_aux = config.seq_aux
        self.topk_method = config.topk_method
        self.n_group = config.n_group
        self.topk_group = config.topk_group
        self.norm_topk_prob = config.norm_topk_prob
        self.weight = nn.Parameter(torch.empty(self.n_routed_experts, config.hidden_size))
        if self.topk_method == "noaux_tc":  # a learned bias that only steers the choice, not the weights
            self.e_score_correction_bias = nn.Parameter(torch.zeros(self.n_routed_experts))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, hidden_states: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        bsz, seq_len, h = hidden_states.shape
        tokens = bsz * seq_len
        hidden_states = hidden_states.view(-1, h)
        # Routing decisions are made in fp32 even for a bf16 model, as upstream does.
        logits = F.linear(hidden_states.type(torch.float32), self.weight.type(torch.float32), None)
        if self.scoring_func == "softmax":
            scores = logits.softmax(dim=-1, dtype=torch.float32)
        elif self.scoring_func == "sigmoid":
            scores = logits.sigmoid()
        else:
            raise NotImplementedError(f"scoring_func {self.scoring_func!r}")
        per_group = self.n_routed_experts // self.n_group
        if self.topk_method == "greedy":
            topk_weight, topk_idx = torch.topk(scores, k=self.top_k, dim=-1, sorted=False)
        elif self.topk_method == "group_limited_greedy":  # groups ranked by their best score
            group_scores = scores.view(tokens, self.n_group, -1).max(dim=-1).values
            group_idx = torch.topk(group_scores, k=self.topk_group, dim=-1, sorted=False)[1]
            group_mask = torch.zeros_like(group_scores)
            group_mask.scatter_(1, group_idx, 1)  # 1 for each token's kept groups
            score_mask = group_mask.unsqueeze(-1).expand(tokens, self.n_group, per_group).reshape(tokens, -1)
            kept = scores.masked_fill(~score_mask.bool(), 0.0)
            topk_weight, topk_idx = torch.topk(kept, k=self.top_k, dim=-1, sorted=False)
        elif self.topk_method == "noaux_tc":  # groups ranked by their two best biased scores
            if self.training:
                raise NotImplementedError("noaux_tc routing is for inference only (upstream asserts it)")
            biased = scores.view(tokens, -1) + self.e_score_correction_bias.unsqueeze(0)
            group_scores = biased.view(tokens, self.n_group, -1).topk(2, dim=-1)[0].sum(dim=-1)
            group_idx = torch.topk(group_scores, k=self.topk_group, dim=-1, sorted=False)[1]
            group_mask = torch.zeros_like(group_scores)
            group_mask.scatter_(1, group_idx, 1)
            score_mask = group_mask.unsqueeze(-1).expand(tokens, self.n_group, per_group).reshape(tokens, -1)
            kept = biased.masked_fill(~score_mask.bool(), 0.0)
            # The biased values are kept in a local until the call returns, as upstream's `_`.
            choice_values, topk_idx = torch.topk(kept, k=self.top_k, dim=-1, sorted=False)
            topk_weight = scores.gather(1, topk_idx)  # the weights are the unbiased scores
        else:
            raise NotImplementedError(f"topk_method {self.topk_method!r}")
        if self.top_k > 1 and self.norm_topk_prob:
            denominator = topk_weight.sum(dim=-1, keepdim=True) + 1e-20
            topk_weight = topk_weight / denominator * self.routed_scaling_factor
        else:
            topk_weight = topk_weight * self.routed_scaling_factor
        aux_loss = self._aux_loss(scores, topk_idx, bsz, seq_len) if self.training and self.alpha > 0.0 else None
        return topk_idx, topk_weight, aux_loss

    def _aux_loss(self, scores: Tensor, topk_idx: Tensor, bsz: int, seq_len: int) -> Tensor:
        """Load-balancing loss: alpha * sum_e (share of slots routed to e, times E) * (mean score of e)."""
        E, k = self.n_routed_experts, self.top_k
        idx = topk_idx.view(bsz, -1)
        if self.seq_aux:  # balance within each sequence
            per_sequence = scores.view(bsz, seq_len, -1)
            counts = torch.zeros(bsz, E, device=scores.device)
            counts.scatter_add_(1, idx, torch.ones(bsz, seq_len * k, device=scores.device)).div_(seq_len * k / E)
            return (counts * per_sequence.mean(dim=1)).sum(dim=1).mean() * self.alpha
        hits = F.one_hot(idx.view(-1), num_classes=E)  # kept until the loss is formed, as upstream
        share = hits.float().mean(0)
        mean_scores = scores.mean(0)
        return (mean_scores * (share * E)).sum() * self.alpha


class AddAuxiliaryLoss(torch.autograd.Function):
    """Identity on the MoE output whose backward also sends gradient 1 into the auxiliary loss."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, loss: Tensor) -> Tensor:
        ctx.dtype, ctx.required_aux_loss = loss.dtype, loss.requires_grad
        return x

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, Tensor | None]:
        grad_loss = torch.ones(1, dtype=ctx.dtype, device=grad_output.device) if ctx.required_aux_loss else None
        return grad_output, grad_loss


def _is_fake_without_shape_env(t: Tensor) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor

    return isinstance(t, FakeTensor) and t.fake_mode.shape_env is None


def tokens_per_expert(topk_idx: Tensor, n_experts: int) -> tuple[Tensor, list[int]]:
    """Count token-slots per expert as upstream's inference path does: a (tokens, experts) int64 table
    with a 1 where a token chose an expert, summed over tokens. Returns the table (upstream keeps it
    referenced until the dispatch ends) and the counts as Python ints (or unbacked SymInts).

    On the meta device (or a FakeTensorMode without a ShapeEnv) the routing is data the tensor does not
    hold, so the slots are assumed spread evenly: N*k/E per expert, the remainder one each to the first
    experts. That keeps every total exact, because an expert's FLOPs and bytes moved are linear in its
    token count and the counts always sum to N*k; only the per-expert split is an assumption.
    With a ShapeEnv each count becomes an unbacked symbol u_e, checked to be >= 0 and to sum to N*k.
    """
    hits = topk_idx.new_zeros((topk_idx.shape[0], n_experts))
    hits.scatter_(1, topk_idx, 1)
    counts = hits.sum(dim=0)  # the same tensor ops on every device, so a dispatch-level count matches
    n = topk_idx.numel()
    if topk_idx.is_meta or _is_fake_without_shape_env(topk_idx):
        q, r = divmod(n, n_experts)
        return hits, [q + (1 if e < r else 0) for e in range(n_experts)]
    per_expert = counts.tolist()  # one host sync, real data only (upstream: .cpu().numpy())
    for c in per_expert:
        torch._check(c >= 0)
    torch._check(sum(per_expert) == n)
    return hits, per_expert


class DeepseekV2MoE(nn.Module):
    """Mixture of experts: each token runs through its top-k routed experts (weighted sum) plus the shared experts."""

    def __init__(self, config: DeepseekV2Config) -> None:
        super().__init__()
        self.config = config
        self.num_experts_per_tok = config.num_experts_per_tok
        self.experts = nn.ModuleList(
            DeepseekV2MLP(config, intermediate_size=config.moe_intermediate_size)
            for _ in range(config.n_routed_experts)
        )
        self.gate = MoEGate(config)
        if config.n_shared_experts:  # the shared experts are stored and run as one MLP E_s times as wide
            self.shared_experts = DeepseekV2MLP(
                config, intermediate_size=config.moe_intermediate_size * config.n_shared_experts
            )

    def forward(self, hidden_states: Tensor) -> Tensor:
        identity, orig_shape = hidden_states, hidden_states.shape
        topk_idx, topk_weight, aux_loss = self.gate(hidden_states)
        # Training and inference share one dispatch; upstream's train path (repeat_interleave + masks) sums the same.
        y = self.moe_infer(hidden_states.view(-1, orig_shape[-1]), topk_idx, topk_weight).view(orig_shape)
        if aux_loss is not None:
            y = AddAuxiliaryLoss.apply(y, aux_loss)
        if self.config.n_shared_experts:
            y = y + self.shared_experts(identity)
        return y

    def moe_infer(self, x: Tensor, topk_idx: Tensor, topk_weight: Tensor) -> Tensor:
        """Dispatch as upstream's inference path: sort the N*k token-slots by expert, one matmul group per
        expert over just its tokens, put the outputs back in (token, choice) order, weight and sum in fp32.

        The intermediates stay referenced until the dispatch returns, as upstream's locals do: the hit
        table, the sorted token copies and the list of expert outputs all count towards the peak.
        """
        hits, counts = tokens_per_expert(topk_idx, len(self.experts))
        order = topk_idx.view(-1).argsort()  # slot positions grouped by expert id
        gathered = x[order // topk_idx.shape[1]]  # copies of activations, never of weights
        outputs, start = [], 0
        for expert, n in zip(self.experts, counts):
            if isinstance(n, int) and n == 0:
                continue  # an idle expert is skipped, as upstream does: its weights are never read
            outputs.append(expert(gathered[start:start + n]))
            start = start + n
        outs = torch.cat(outputs, dim=0) if outputs else gathered.new_empty(0)
        unsorted = torch.empty_like(outs)
        unsorted[order] = outs  # back to slot order: row t*k + j is token t's j-th choice
        # Weighted in the router's fp32, in place, then each token's k rows summed.
        combined = unsorted.view(*topk_idx.shape, -1).to(topk_weight.dtype).mul_(topk_weight.unsqueeze(-1)).sum(dim=1)
        return combined.to(unsorted.dtype)


class LlamaRotaryEmbedding(nn.Module):
    """RoPE tables as transformers 4.46.3 builds them: cos and sin of position * theta^(-2i/d), in fp32.

    The angles come from a batched matrix product (B_pos, d_h/2, 1) @ (B_pos, 1, S) of the inverse
    frequencies and the positions, so their cost is a bmm; both tables are then multiplied by
    ``attention_scaling`` (1.0 for plain RoPE, but the multiply still runs) and cast to the
    activations' dtype. No autocast block: the reference must run on the meta device.
    """

    def __init__(self, config: DeepseekV2Config, device: torch.device | None = None) -> None:
        super().__init__()
        dim = config.hidden_size // config.num_attention_heads
        exponents = torch.arange(0, dim, 2, dtype=torch.int64, device=device).float() / dim
        inv_freq = 1.0 / (config.rope_theta**exponents)
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # fp32 whatever the default dtype
        self.attention_scaling = 1.0  # plain RoPE; scaled variants (YaRN) set other values

    @torch.no_grad()
    def forward(self, x: Tensor, position_ids: Tensor) -> tuple[Tensor, Tensor]:
        """`x` only lends its dtype and device; `position_ids` is (B_pos, S): 1 row or one per sequence."""
        rows = position_ids.shape[0]
        inv_freq = self.inv_freq[None, :, None].float().expand(rows, -1, 1)  # (B_pos, d_h/2, 1), a view
        positions = position_ids[:, None, :].float()  # (B_pos, 1, S) in fp32: positions up to 8191 need it
        freqs = (inv_freq @ positions).transpose(1, 2)  # (B_pos, S, d_h/2): one bmm with an inner size of 1
        emb = torch.cat((freqs, freqs), dim=-1)  # both halves of a head rotate by the same angles
        cos, sin = emb.cos(), emb.sin()
        cos = cos * self.attention_scaling
        sin = sin * self.attention_scaling
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


def rotate_half(x: Tensor) -> Tensor:
    """(x1, x2) -> (-x2, x1) over the two halves of the last dimension."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary_pos_emb(q: Tensor, k: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    """Rotate queries and keys (B, H, S, d) by their positions' angles; cos/sin are (B_pos, S, d)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class KVCache:
    """Minimal per-layer key/value cache: `update` appends along the sequence axis, like transformers' DynamicCache."""

    def __init__(self) -> None:
        self.key_cache: list[Tensor] = []
        self.value_cache: list[Tensor] = []

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.key_cache[layer_idx].shape[-2] if layer_idx < len(self.key_cache) else 0

    def update(self, key: Tensor, value: Tensor, layer_idx: int, cache_kwargs: Any = None) -> tuple[Tensor, Tensor]:
        if layer_idx == len(self.key_cache):
            self.key_cache.append(key)
            self.value_cache.append(value)
        else:
            self.key_cache[layer_idx] = torch.cat([self.key_cache[layer_idx], key], dim=-2)
            self.value_cache[layer_idx] = torch.cat([self.value_cache[layer_idx], value], dim=-2)
        return self.key_cache[layer_idx], self.value_cache[layer_idx]


def past_length(past_key_value: Any, layer_idx: int | None) -> int:
    """Tokens already cached: 0 for None, keys' length for a (k, v) tuple, else the cache's get_seq_length."""
    if past_key_value is None:
        return 0
    if isinstance(past_key_value, (tuple, list)):
        return past_key_value[0].shape[-2]
    return past_key_value.get_seq_length(layer_idx or 0)


def update_kv_cache(
    past_key_value: Any, k: Tensor, v: Tensor, layer_idx: int | None, use_cache: bool
) -> tuple[Tensor, Tensor, Any]:
    """Append this step's keys/values to the cache; returns all keys, all values and the cache to hand back."""
    if isinstance(past_key_value, (tuple, list)):  # legacy (k, v) tuple: concatenate, return the new pair
        k, v = torch.cat([past_key_value[0], k], dim=-2), torch.cat([past_key_value[1], v], dim=-2)
        return k, v, (k, v) if use_cache else None
    if past_key_value is not None:  # cache object (KVCache or transformers' DynamicCache) stores them itself
        k, v = past_key_value.update(k, v, layer_idx or 0)
        return k, v, past_key_value
    return k, v, (k, v) if use_cache else None


def causal_mask_4d(batch: int, q_len: int, past: int, dtype: torch.dtype, device: Any) -> Tensor | None:
    """The additive (batch, 1, q_len, past + q_len) causal mask the eager path receives, or None for one query.

    Built as transformers 4.46.3 builds it for a model without a padding mask: a square fp32 table of
    the dtype's minimum (fp32: `torch.full` takes the default dtype), zeroed on and below the
    diagonal by comparing positions, cast to `dtype`, then prefixed with zero columns for the `past`
    cached positions, which every query sees; the batch dimension is a stride-0 view. A single query
    sees every key, so decoding gets no mask at all.
    """
    if q_len == 1:
        return None
    mask = torch.full((q_len, q_len), torch.finfo(dtype).min, device=device)
    steps = torch.arange(q_len, device=device)
    mask.masked_fill_(steps < (steps + 1).view(q_len, 1), 0)
    mask = mask.to(dtype)
    if past > 0:
        mask = torch.cat([torch.zeros(q_len, past, dtype=dtype, device=device), mask], dim=-1)
    return mask[None, None, :, :].expand(batch, 1, q_len, past + q_len)


def _has_data(t: Tensor) -> bool:
    """False on the meta device and under FakeTensorMode: there are shapes but no values."""
    from torch._subclasses.fake_tensor import FakeTensor

    return not (t.is_meta or isinstance(t, FakeTensor))


def positions_ascend(position_ids: Tensor) -> bool:
    """Whether every row of position ids ascends, the test transformers' flash path makes before a prefill.

    The test runs as tensor work (a difference, a comparison, a reduction) and its verdict is read on
    the host. Without data (meta, fake tensors) it is taken as true: the positions the model makes are
    an arange. `tolist` reads the verdict without an aten op; upstream's `not tensor` dispatches a
    one-byte read that fake tensors cannot run, so the checker's count never includes it.
    """
    ascending = (torch.diff(position_ids, dim=-1) >= 0).all()
    return bool(ascending.tolist()) if _has_data(ascending) else True


def flash_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool, scale: float | None = None) -> Tensor:
    """A stand-in for flash_attn_func: (B, S, H, d) in and out, causal masks aligned bottom-right.

    flash-attn (2.1 and later) lines the causal mask up with the last key, so query i of S sees the
    P = S_k - S_q cached keys and keys up to its own position. torch's scaled_dot_product_attention
    runs the same fused, tiled algorithm (no score matrix, no mask tensor) and aligns `is_causal`
    top-left, which agrees when S_q = S_k; a single query sees every key, so it needs no mask. For a
    chunk of 1 < S_q < S_k queries over a cache, real tensors get a materialised bottom-right boolean
    mask (numerically right, but a tensor flash_attn never builds); without data (the checker's
    full-size runs) the top-left flag is passed, which counts exactly what flash_attn runs.
    """
    s_q, s_k = q.shape[1], k.shape[1]
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if causal and 1 < s_q < s_k and _has_data(q):
        sees = torch.ones(s_q, s_k, dtype=torch.bool, device=q.device).tril(s_k - s_q)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=sees, scale=scale)
    else:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal and s_q > 1, scale=scale)
    return out.transpose(1, 2)


class LlamaAttention(nn.Module):
    """Multi-head attention with full RoPE and a KV cache: transformers 4.46.3's eager class, which
    DeepSeek-OCR runs when use_mla is false and the eager kernel is asked for.

    It materialises the (S, P+S) scores (matmul, fp32 softmax, matmul) and adds `attention_mask` when
    one is given: the model's additive (B, 1, S, P+S) causal mask, or None when a single query is
    decoded. Without `position_embeddings` (DeepSeek-OCR's DeepseekV2Model never passes them) the
    layer builds its own cos and sin from `position_ids` with its `rotary_emb`.
    `past_key_value` is a (k, v) tuple (the new pair is returned) or a cache object with `update`.
    """

    def __init__(self, config: DeepseekV2Config, layer_idx: int | None = None) -> None:
        super().__init__()
        self.config, self.layer_idx = config, layer_idx
        self.attention_dropout = config.attention_dropout
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.is_causal = True
        bias = config.attention_bias
        self.q_proj = nn.Linear(self.hidden_size, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(self.hidden_size, self.num_key_value_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(self.hidden_size, self.num_key_value_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, self.hidden_size, bias=bias)
        self.rotary_emb = LlamaRotaryEmbedding(config)  # buffers only; used when no position_embeddings arrive

    def _project(self, hidden_states: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values as (B, H, S, d_h) views of the three projections."""
        bsz, q_len, _ = hidden_states.shape
        q = self.q_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(hidden_states).view(bsz, q_len, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(hidden_states).view(bsz, q_len, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        return q, k, v

    def _tables(self, v: Tensor, position_ids: Tensor | None,
                position_embeddings: tuple[Tensor, Tensor] | None) -> tuple[Tensor, Tensor]:
        if position_embeddings is not None:
            return position_embeddings
        if position_ids is None:
            raise ValueError(f"{type(self).__name__}: give position_ids (B_pos, S) or position_embeddings (cos, sin)")
        return self.rotary_emb(v, position_ids)  # this layer's own tables, rebuilt in every forward

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        past_key_value: Any = None,
        output_attentions: bool = False,
        use_cache: bool = False,
        position_embeddings: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor | None, Any]:
        bsz, q_len, _ = hidden_states.shape
        query, key, value = self._project(hidden_states)
        cos, sin = self._tables(value, position_ids, position_embeddings)
        query, key = apply_rotary_pos_emb(query, key, cos, sin)
        key, value, present = update_kv_cache(past_key_value, key, value, self.layer_idx, use_cache)
        key = repeat_kv(key, self.num_key_value_groups)
        value = repeat_kv(value, self.num_key_value_groups)
        # Each step rebinds `weights`, so the previous score tensor is freed as the next one exists.
        weights = torch.matmul(query, key.transpose(2, 3)) / math.sqrt(self.head_dim)
        if attention_mask is not None:
            weights = weights + attention_mask[:, :, :, : key.shape[-2]]
        weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
        weights = F.dropout(weights, p=self.attention_dropout, training=self.training)
        out = torch.matmul(weights, value)
        out = out.transpose(1, 2).contiguous().reshape(bsz, q_len, -1)  # heads side by side again
        out = self.o_proj(out)
        return out, weights if output_attentions else None, present


class LlamaFlashAttention2(LlamaAttention):
    """The same weights run through a fused flash kernel: transformers 4.46.3's LlamaFlashAttention2,
    which DeepSeek-OCR loads (attn_implementation="flash_attention_2").

    No score matrix and no mask tensor exist: the kernel is told `causal` and aligns it bottom-right.
    Before a prefill (S > 1) it checks that every row of `position_ids` ascends (packed sequences would
    take a variable-length kernel). Padded batches (a 2-D `attention_mask`) and packed sequences take
    flash-attn's variable-length path, which this reference does not implement.
    """

    def __init__(self, config: DeepseekV2Config, layer_idx: int | None = None) -> None:
        super().__init__(config, layer_idx)  # the same weights and rotary_emb: no parameter is added
        # flash-attn 2.1 and later align the causal mask bottom-right, which a chunk over a cache needs.
        self._flash_attn_uses_top_left_mask = False

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        past_key_value: Any = None,
        output_attentions: bool = False,
        use_cache: bool = False,
        position_embeddings: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor | None, Any]:
        bsz, q_len, _ = hidden_states.shape
        query, key, value = self._project(hidden_states)
        cos, sin = self._tables(value, position_ids, position_embeddings)
        query, key = apply_rotary_pos_emb(query, key, cos, sin)
        key, value, present = update_kv_cache(past_key_value, key, value, self.layer_idx, use_cache)
        # flash-attn takes (B, S, H, d_h): transposed views, no copies (the last dimension stays dense).
        query, key, value = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)
        if attention_mask is not None:
            raise NotImplementedError("LlamaFlashAttention2 reference: padded batches (a 2-D attention_mask) "
                                      "take flash-attn's variable-length kernel, which is not implemented here")
        if position_ids is not None and q_len != 1 and not positions_ascend(position_ids):
            raise NotImplementedError("LlamaFlashAttention2 reference: packed sequences (position ids that "
                                      "restart) take flash-attn's variable-length kernel, not implemented here")
        out = flash_attention(query, key, value, causal=self.is_causal)
        out = self.o_proj(out.reshape(bsz, q_len, -1).contiguous())  # (B, S, H, d_h) is already dense
        return out, None, present


ATTENTION_CLASSES = {"eager": LlamaAttention, "flash_attention_2": LlamaFlashAttention2}


def attention_class(config: DeepseekV2Config) -> type[LlamaAttention]:
    """The class a decoder layer builds for `config._attn_implementation`, as upstream's ATTENTION_CLASSES."""
    try:
        return ATTENTION_CLASSES[config._attn_implementation]
    except KeyError:
        raise ValueError(f"_attn_implementation {config._attn_implementation!r}: DeepSeek-OCR's decoder supports "
                         f"{', '.join(ATTENTION_CLASSES)}") from None


def repeat_kv(hidden_states: Tensor, n_rep: int) -> Tensor:
    """(B, H_kv, P+S, d_h) -> (B, H, P+S, d_h); DeepSeek-OCR (H_kv = H) gets its input back."""
    if n_rep == 1:
        return hidden_states
    b, h_kv, s, d = hidden_states.shape
    return hidden_states[:, :, None].expand(b, h_kv, n_rep, s, d).reshape(b, h_kv * n_rep, s, d)


class DeepseekV2DecoderLayer(nn.Module):
    """Pre-norm decoder layer: x + attn(norm(x)), then + mlp(norm(x)); the MLP is an MoE after the first dense ones."""

    def __init__(self, config: DeepseekV2Config, layer_idx: int) -> None:
        super().__init__()
        if config.use_mla:
            raise NotImplementedError("MLA attention (use_mla: true) is not used by DeepSeek-OCR")
        self.hidden_size = config.hidden_size
        self.self_attn = attention_class(config)(config, layer_idx=layer_idx)
        is_moe = (
            config.n_routed_experts is not None
            and layer_idx >= config.first_k_dense_replace
            and layer_idx % config.moe_layer_freq == 0
        )
        self.mlp = DeepseekV2MoE(config) if is_moe else DeepseekV2MLP(config)
        self.input_layernorm = DeepseekV2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = DeepseekV2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        past_key_value: Any = None,
        output_attentions: bool = False,
        use_cache: bool = False,
        position_embeddings: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor | None, Any]:
        residual = hidden_states
        hidden_states, attn_weights, present = self.self_attn(
            self.input_layernorm(hidden_states), attention_mask, position_ids, past_key_value,
            output_attentions, use_cache, position_embeddings,
        )
        hidden_states = residual + hidden_states
        hidden_states = hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))
        return hidden_states, attn_weights, present


class DeepseekV2Model(nn.Module):
    """Decoder stack: token embedding, L decoder layers, final RMSNorm.

    As DeepSeek-OCR's modeling_deepseekv2.py does, the stack computes no rotary tables: each layer's
    attention builds its own from the position ids. The eager kernel receives the additive 4-D causal
    mask built once here; the flash kernel receives no mask (none is built) when nothing is padded.
    """

    def __init__(self, config: DeepseekV2Config) -> None:
        super().__init__()
        self.config = config
        self.padding_idx = config.pad_token_id
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(DeepseekV2DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = DeepseekV2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self._use_flash_attention_2 = config._attn_implementation == "flash_attention_2"

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: Tensor | None = None,
        use_cache: bool = False,
    ) -> tuple[Tensor, Any]:
        """Returns (last hidden states, cache); `past_key_values` is a KVCache (created when use_cache) or None.

        `position_ids`: (B_pos, S), one row shared by the batch or one per sequence (generation makes
        them from its attention mask); made here as one arange row when not given.
        """
        batch, seq_len = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        if use_cache and past_key_values is None:
            past_key_values = KVCache()
        past = past_length(past_key_values, 0)
        if position_ids is None:
            position_ids = torch.arange(past, past + seq_len, dtype=torch.long,
                                        device=(input_ids if input_ids is not None else inputs_embeds).device)[None]
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # stays referenced until the forward returns, as upstream
        if attention_mask is not None:
            raise NotImplementedError("DeepseekV2Model reference: a 2-D padding mask is not implemented; "
                                      "pass None for unpadded batches")
        if not self._use_flash_attention_2:  # the flash kernel gets no mask at all when nothing is padded
            attention_mask = causal_mask_4d(batch, seq_len, past, inputs_embeds.dtype, inputs_embeds.device)
        hidden_states = inputs_embeds
        for layer in self.layers:
            hidden_states = layer(hidden_states, attention_mask, position_ids, past_key_values, use_cache=use_cache)[0]
        return self.norm(hidden_states), past_key_values


class DeepseekV2ForCausalLM(nn.Module):
    """Language model head on the decoder: logits over the vocabulary, returned in fp32 as upstream."""

    def __init__(self, config: DeepseekV2Config) -> None:
        super().__init__()
        self.config = config
        self.model = DeepseekV2Model(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,
        use_cache: bool = False,
    ) -> tuple[Tensor | None, Tensor, Any]:
        """Returns (loss or None, fp32 logits, cache)."""
        hidden_states, cache = self.model(
            input_ids, attention_mask, position_ids, past_key_values, inputs_embeds, use_cache
        )
        logits = self.lm_head(hidden_states).float()
        loss = None
        if labels is not None:  # next-token prediction: position t predicts token t + 1
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, self.vocab_size), labels[:, 1:].reshape(-1))
        return loss, logits, cache


class DeepseekV2ForSequenceClassification(nn.Module):
    """The decoder with a bias-free linear score head, pooled at each sequence's last real token.

    The head scores every position; one row per sequence is then picked: the position before the first
    pad token (the last one when a row has none, as upstream's argmax gives 0 there), or with no
    pad_token_id configured the last position, which upstream allows for one sequence only.
    """

    def __init__(self, config: DeepseekV2Config) -> None:
        super().__init__()
        self.config = config
        self.num_labels = config.num_labels
        self.model = DeepseekV2Model(config)
        self.score = nn.Linear(config.hidden_size, self.num_labels, bias=False)

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,
        use_cache: bool = False,
    ) -> tuple[Tensor | None, Tensor, Any]:
        """Returns (loss or None, pooled logits (B, N_c), N_c = num_labels, in the model dtype, cache)."""
        hidden_states, cache = self.model(
            input_ids, attention_mask, position_ids, past_key_values, inputs_embeds, use_cache
        )
        logits = self.score(hidden_states)  # (B, S, N_c): every position is scored
        batch = (input_ids if input_ids is not None else inputs_embeds).shape[0]
        pad = self.config.pad_token_id
        if pad is None and batch != 1:
            raise ValueError("DeepseekV2ForSequenceClassification: batches of more than one sequence need a "
                             "pad_token_id in the configuration")
        if pad is None or input_ids is None:
            last: Tensor | int = -1
        else:  # first pad position minus one; -1 (the last position) when a row has no pad
            last = (torch.eq(input_ids, pad).int().argmax(-1) - 1).to(logits.device)
        pooled = logits[torch.arange(batch, device=logits.device), last]
        loss = None if labels is None else self._loss(pooled, labels.to(logits.device))
        return loss, pooled, cache

    def _loss(self, pooled: Tensor, labels: Tensor) -> Tensor:
        """Regression for one label, cross-entropy for integer labels, else multi-label BCE (as upstream)."""
        if self.num_labels == 1:
            return F.mse_loss(pooled.squeeze(), labels.squeeze())
        if labels.dtype in (torch.long, torch.int):
            return F.cross_entropy(pooled.view(-1, self.num_labels), labels.view(-1))
        return F.binary_cross_entropy_with_logits(pooled, labels)

