"""Counting: one tiny module per op, the expected count written out as arithmetic."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

from opdoc.check import OpCounter, UnknownOpsError, measure

N = 2 * 3 * 4  # elements of the (2, 3, 4) input most tests use
ROWS = 2 * 3  # rows of it when the last dim (4) is reduced or normalized


class Fn(torch.nn.Module):
    """A module whose forward is one function: the per-op tiny module of these tests."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def x234():
    return torch.randn(2, 3, 4)


def fcm_total(fn, *args):
    with FlopCounterMode(display=False) as fcm:
        fn(*args)
    return fcm.get_total_flops()


# -- tensor-core ---------------------------------------------------------------------------------
def test_linear_with_bias_is_addmm():
    m = measure(torch.nn.Linear(4, 6), torch.randn(3, 4))
    assert m.per_op["aten.addmm"].calls == 1
    assert m.tensor_flops == 2 * 3 * 4 * 6  # 2 per multiply-add: 2 · M · K · N = 144
    assert m.cuda_flops == 3 * 6  # bias add: one per output element = 18
    assert m.ok


def test_linear_without_bias_on_3d_input_is_mm():
    m = measure(torch.nn.Linear(4, 6, bias=False), x234())
    assert m.per_op["aten.mm"].calls == 1
    assert m.tensor_flops == 2 * (2 * 3) * 4 * 6  # rows 2·3 = 6: 2 · 6 · 4 · 6 = 288
    assert m.cuda_flops == 0


def test_bmm():
    m = measure(Fn(torch.bmm), torch.randn(2, 3, 4), torch.randn(2, 4, 5))
    assert m.tensor_flops == 2 * 2 * 3 * 4 * 5  # 2 · b · M · K · N = 240
    assert m.cuda_flops == 0


def test_conv2d():
    m = measure(torch.nn.Conv2d(3, 4, kernel_size=3), torch.randn(1, 3, 8, 8))
    out = 1 * 4 * 6 * 6  # (8 - 3 + 1)² = 36 positions × 4 channels = 144 output elements
    assert m.tensor_flops == 2 * out * 3 * 3 * 3  # 2 · 144 · C_in 3 · 3×3 kernel = 7776
    assert m.cuda_flops == out  # bias: 144


B, H, S, D = 1, 2, 8, 4
SDPA_TENSOR = 4 * B * H * S * S * D  # Q·Kᵀ and P·V: 4 · 1 · 2 · 8 · 8 · 4 = 2048
SDPA_CUDA = 6 * B * H * S * S  # scale 1 + softmax 5 per score: 6 · 1 · 2 · 8 · 8 = 768


def sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def qkv(device="cpu"):
    return [torch.randn(B, H, S, D, device=device) for _ in range(3)]


def test_sdpa_on_cpu_runs_the_flash_kernel_and_is_counted():
    m = measure(Fn(sdpa), *qkv())
    assert m.attention_kernels == {"aten._scaled_dot_product_flash_attention_for_cpu": 1}
    assert m.tensor_flops == SDPA_TENSOR  # causal does not halve it
    assert m.cuda_flops == SDPA_CUDA
    assert fcm_total(sdpa, *qkv()) == 0  # the kernel torch's FlopCounterMode misses


def test_sdpa_with_a_mask_adds_one_per_score():
    mask = torch.zeros(S, S)
    m = measure(Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)), *qkv())
    assert m.tensor_flops == SDPA_TENSOR
    assert m.cuda_flops == SDPA_CUDA + B * H * S * S  # + mask add: 768 + 128 = 896


def test_sdpa_on_meta_takes_the_math_path_with_the_same_tensor_count():
    m = measure(Fn(sdpa), *qkv("meta"))
    assert m.tensor_flops == SDPA_TENSOR  # two bmm: 2 · (2 · 8 · 8 · 4) · 2 = 2048
    assert m.per_op["aten.bmm"].calls == 2
    assert list(m.attention_kernels) == ["math: aten._safe_softmax over 1×2×8×8"]
    assert m.tensor_flops == fcm_total(sdpa, *qkv("meta"))


def test_sdpa_under_fake_tensor_mode_either_nesting_matches_real():
    real = measure(Fn(sdpa), *qkv())
    fake_mode = FakeTensorMode()
    with fake_mode:
        q, k, v = qkv()
        outside = measure(Fn(sdpa), q, k, v)
    with OpCounter() as inside:
        with fake_mode:
            sdpa(q, k, v)
    for got in (outside.tensor_flops, inside.tensor_flops):
        assert got == SDPA_TENSOR
    assert outside.cuda_flops == inside.cuda_flops == real.cuda_flops == SDPA_CUDA
    assert outside.attention_kernels == real.attention_kernels


# -- cuda-core -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fn", "cuda_flops", "arithmetic"),
    [
        (lambda x: x + x, N, "add: 1 per output element: 2 · 3 · 4 = 24"),
        (lambda x: x * torch.ones(4), N, "mul, broadcast: 1 per output element = 24"),
        (lambda x: x.add(x, alpha=2), 2 * N, "add with alpha: scale + add = 2 · 24 = 48"),
        (F.silu, 5 * N, "silu: x·1/(1+exp(-x)): 5 · 24 = 120"),
        (torch.rsqrt, N, "rsqrt: 1 · 24 = 24"),
        (lambda x: x.pow(2), N, "pow: 1 · 24 = 24"),
        (lambda x: x.mean(-1), N + ROWS, "mean: sum 24 + one divide per row 6 = 30"),
        (lambda x: x.sum(), N, "sum: 1 per input element = 24"),
        (lambda x: x.softmax(-1), 5 * N, "softmax: max, sub, exp, sum, div: 5 · 24 = 120"),
        (F.gelu, 5 * N, "gelu: x·0.5·(1+erf(x/√2)): 5 · 24 = 120"),
        (lambda x: F.gelu(x, approximate="tanh"), 9 * N, "gelu tanh: 9 · 24 = 216"),
        (torch.sigmoid, 4 * N, "sigmoid: neg, exp, add, div: 4 · 24 = 96"),
        (lambda x: F.layer_norm(x, (4,), torch.ones(4), torch.zeros(4)), 5 * N + 4 * ROWS + 2 * N,
         "layer_norm: 5 · 24 + 4 per row · 6 + weight and bias 2 · 24 = 192"),
        (lambda x: x.topk(2, dim=-1), N, "topk: 1 comparison per input element = 24"),
        (lambda x: x.sort(dim=-1), N * 2, "sort: 24 · ⌈log2 4⌉ = 48"),
        (lambda x: x.cumsum(-1), N, "cumsum: 1 per element = 24"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_cuda_core_op(fn, cuda_flops, arithmetic):
    m = measure(Fn(fn), x234())
    assert m.ok, m.unknown_ops
    assert m.tensor_flops == 0
    assert m.cuda_flops == cuda_flops, arithmetic


def test_bicubic_resampling():
    up = measure(Fn(lambda x: F.interpolate(x, size=(16, 16), mode="bicubic")), torch.randn(1, 2, 8, 8))
    assert up.cuda_flops == 32 * 2 * 16 * 16  # 4×4 taps, 2 per tap, 2·16·16 outputs = 16384
    down = measure(Fn(lambda x: F.interpolate(x, size=(4, 4), mode="bicubic", antialias=True)),
                   torch.randn(1, 2, 8, 8))
    assert down.cuda_flops == 2 * 8 * 8 * 2 * 4 * 4  # scale 2 widens to ⌈4·2⌉ = 8 taps a side: 4096


def test_layer_norm_kernel_counts_what_its_decomposition_counts():
    weight, bias = torch.randn(4), torch.randn(4)

    def by_hand(x):
        mu = x.mean(-1, keepdim=True)  # 24 + 6
        centered = x - mu  # 24
        var = centered.pow(2).mean(-1, keepdim=True)  # 24 + 24 + 6
        return centered * (var + 1e-5).rsqrt() * weight + bias  # 6 + 6 + 24 + 24 + 24

    fused = measure(Fn(lambda x: F.layer_norm(x, (4,), weight, bias)), x234())
    written_out = measure(Fn(by_hand), x234())
    assert fused.cuda_flops == written_out.cuda_flops == 7 * N + 4 * ROWS  # 168 + 24 = 192


def test_rms_norm_written_out():
    weight = torch.ones(4)

    def rms_norm(x):  # DeepSeek-V2's RMSNorm: pow, mean, add eps, rsqrt, mul, mul by weight
        return weight * (x * (x.pow(2).mean(-1, keepdim=True) + 1e-6).rsqrt())

    m = measure(Fn(rms_norm), x234())
    assert m.cuda_flops == 4 * N + 3 * ROWS  # pow 24, mean 24+6, add 6, rsqrt 6, mul 24, mul 24 = 114


def test_softmax_kernel_counts_what_its_decomposition_counts():
    def by_hand(x):
        e = (x - x.amax(-1, keepdim=True)).exp()  # amax 24, sub 24, exp 24
        return e / e.sum(-1, keepdim=True)  # sum 24, div 24

    assert measure(Fn(by_hand), x234()).cuda_flops == measure(Fn(lambda x: x.softmax(-1)), x234()).cuda_flops == 5 * N


# -- unknown, zero-cost, I/O -------------------------------------------------------------------------
@pytest.mark.parametrize(("fn", "op"), [(torch.special.bessel_j0, "aten.special_bessel_j0"),
                                        (torch.fft.fft, "aten._fft_r2c")])
def test_unknown_op_is_reported_not_counted(fn, op):
    m = measure(Fn(lambda x: fn(x) + 1), torch.randn(5))
    assert m.unknown_ops == {op: 1}
    assert not m.ok
    with pytest.raises(UnknownOpsError, match=op):
        m.raise_for_unknown()


def test_views_cost_nothing_and_are_not_unknown():
    def views(x):
        y = x.reshape(6, 4).view(24).view(6, 4).t().transpose(0, 1).permute(1, 0)
        return y.unsqueeze(0).squeeze(0).expand(2, 4, 6)[1, :, 1:3].detach()  # no copy anywhere

    m = measure(Fn(views), x234())
    assert m.ok
    assert len(m.per_op) >= 8
    assert m.tensor_flops == m.cuda_flops == 0
    assert m.io_read_bytes == m.io_write_bytes == 0  # views move no bytes


def test_dtype_cast_is_zero_flops_but_moves_bytes():
    m = measure(Fn(lambda x: x.to(torch.float16)), x234())
    assert m.per_op["aten._to_copy"].calls == 1
    assert m.tensor_flops == m.cuda_flops == 0
    assert m.io_read_bytes == N * 4  # reads 24 × 4 bytes (fp32)
    assert m.io_write_bytes == N * 2  # writes 24 × 2 bytes (fp16)


def test_io_bytes_of_an_add():
    m = measure(Fn(torch.add), x234(), x234())
    assert m.io_read_bytes == 2 * 24 * 4  # reads 2 × 24 × 4 bytes = 192
    assert m.io_write_bytes == 24 * 4  # writes 24 × 4 bytes = 96


def test_io_bytes_read_an_expanded_input_once():
    m = measure(Fn(lambda x, b: x + b.expand(2, 3, 4)), x234(), torch.randn(4))
    assert m.io_read_bytes == 24 * 4 + 4 * 4  # x, plus the 4 distinct elements of b: 96 + 16


def test_io_bytes_of_a_gather_count_the_gathered_rows_only():
    table, ids = torch.randn(100, 8), torch.tensor([1, 5, 7])
    m = measure(Fn(F.embedding), ids, table)
    assert m.io_read_bytes == 3 * 8 + 3 * 8 * 4  # int64 ids 3 × 8 + rows 3 × 8 × 4 = 120
    assert m.io_write_bytes == 3 * 8 * 4  # 96


# -- breakdowns ------------------------------------------------------------------------------------
class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = torch.nn.LayerNorm(4)
        self.fc = torch.nn.Linear(4, 8)

    def forward(self, x):
        return F.gelu(self.fc(self.norm(x)))


def test_breakdown_by_module_path():
    m = measure(Block(), x234())
    assert set(m.per_module) == {"Block", "Block.norm", "Block.fc"}
    assert set(m.per_module["Block.fc"]) >= {"aten.addmm"}
    assert m.per_module["Block"]["aten.gelu"].cuda_flops == 5 * 2 * 3 * 8  # 240
    totals = m.module_totals()
    assert totals["Block"].tensor_flops == m.tensor_flops == 2 * 6 * 4 * 8  # 384
    assert totals["Block"].cuda_flops == m.cuda_flops


# -- agreement across real, meta and fake tensors -----------------------------------------------------
class Mixed(torch.nn.Module):
    """Linear, conv, layer norm, softmax, elementwise: everything but attention."""

    def __init__(self, device=None):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 4, stride=4, device=device)
        self.norm = torch.nn.LayerNorm(8, device=device)
        self.fc = torch.nn.Linear(8, 16, device=device)

    def forward(self, x):
        tokens = self.conv(x).flatten(2).transpose(1, 2)  # (1, 4, 8)
        h = F.silu(self.fc(self.norm(tokens)))
        scores = h @ h.transpose(1, 2)  # (1, 4, 4)
        return (scores.softmax(-1) @ h).mean()


def _summary(m):
    return (m.tensor_flops, m.cuda_flops, m.io_read_bytes, m.io_write_bytes,
            {k: (v.calls, v.tensor_flops, v.cuda_flops) for k, v in m.per_op.items()},
            m.activation_total_bytes, m.activation_peak_bytes)


def test_real_meta_and_fake_agree():
    real = measure(Mixed(), torch.randn(1, 3, 8, 8))
    meta = measure(Mixed("meta"), torch.randn(1, 3, 8, 8, device="meta"))
    fake_mode = FakeTensorMode()
    with fake_mode:
        module, x = Mixed(), torch.randn(1, 3, 8, 8)
        fake_outside = measure(module, x)
    with OpCounter() as counter, torch.no_grad():
        with fake_mode:
            module(x)
    assert real.ok and meta.ok and fake_outside.ok and counter.ok
    assert _summary(real) == _summary(meta) == _summary(fake_outside)
    assert (counter.tensor_flops, counter.cuda_flops, counter.io_read_bytes) == _summary(real)[:3]


# -- against torch's FlopCounterMode -------------------------------------------------------------------
def test_tensor_flops_equal_flop_counter_mode_where_it_counts():
    x = torch.randn(1, 3, 8, 8)
    with FlopCounterMode(display=False) as fcm:
        Mixed()(x)
    assert measure(Mixed(), x).tensor_flops == fcm.get_total_flops()


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 64), k=st.integers(1, 64), n=st.integers(1, 64), b=st.integers(1, 4))
def test_gemm_counts_equal_flop_counter_mode(m, k, n, b):
    a, w = torch.empty(b, m, k, device="meta"), torch.empty(b, k, n, device="meta")
    linear = torch.nn.Linear(k, n, device="meta")
    assert measure(Fn(torch.bmm), a, w).tensor_flops == fcm_total(torch.bmm, a, w) == 2 * b * m * k * n
    assert measure(linear, a).tensor_flops == fcm_total(linear, a) == 2 * b * m * k * n


def test_full_size_meta_linear_counts_exactly():
    linear = torch.nn.Linear(1280, 6848, device="meta")
    m = measure(linear, torch.empty(8192, 1280, device="meta"))
    assert m.tensor_flops == 2 * 8192 * 1280 * 6848
    assert m.cuda_flops == 8192 * 6848  # bias


def test_data_dependent_sizes_give_symbolic_counts():
    """Under FakeTensorMode with a ShapeEnv a masked selection has an unbacked row count u0;
    the counts stay exact expressions in it instead of failing on a guard."""
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    with FakeTensorMode(shape_env=ShapeEnv()):
        x, w, keep = torch.randn(16, 8), torch.randn(8, 4), torch.randn(16) > 0
        m = measure(Fn(lambda x: x[keep] @ w), x)
    expr = m.tensor_flops.node.expr
    (rows,) = expr.free_symbols
    assert expr.subs(rows, 5) == 2 * 5 * 8 * 4  # mm of the 5 kept rows: 320
    assert m.ok
