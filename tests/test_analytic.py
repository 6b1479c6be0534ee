"""The analytic layer API against hand arithmetic (DeepSeek-OCR: h=1280, d_ff=6848, H=10, d_h=128; bf16)."""

import pytest

from opdoc.analytic import layer


def test_dense_mlp_at_prefill():
    mlp = layer("DeepseekV2MLP", B=1, S=8192)
    assert mlp.forward_tensor_core_flops() == 6 * 8192 * 1280 * 6848 == 430_838_906_880
    assert mlp.forward_cuda_core_flops() == 6 * 8192 * 6848  # SiLU 5 + the gate multiply 1 per inner element
    assert mlp.forward_flops() == 430_838_906_880 + 336_592_896
    # weights: 3 × 1280 × 6848 × 2 bytes = 52,592,640 B = 0.05259264 GB
    assert mlp.forward_memory_weight() == pytest.approx(0.05259264, rel=1e-12)
    # produced: gate, act, up, prod of 8192 × 6848 and out of 8192 × 1280, bf16
    assert mlp.forward_memory_activation() == pytest.approx((4 * 8192 * 6848 + 8192 * 1280) * 2 / 1e9, rel=1e-12)
    assert mlp.forward_memory_kvcache() == 0.0


def test_io_is_in_terabits():
    mlp = layer("DeepseekV2MLP")
    x, w, inner = 8192 * 1280 * 2, 6848 * 1280 * 2, 8192 * 6848 * 2
    read = 2 * x + 3 * w + 4 * inner  # x twice, three weights, gate/act/up/prod once each
    written = 4 * inner + x  # gate, act, up, prod, out
    assert read + written == 1_013_088_256
    assert mlp.forward_cal_io() == pytest.approx(1_013_088_256 * 8 / 1e12, rel=1e-12)  # 0.0081 Tb


def test_dimensions_override_the_example():
    mlp = layer("DeepseekV2MLP", B=2, S=4096)
    assert mlp.forward_tensor_core_flops() == 6 * 2 * 4096 * 1280 * 6848
    narrow = layer("DeepseekV2MLP", S=16, d_ff=896)  # one routed expert's width
    assert narrow.forward_tensor_core_flops() == 6 * 16 * 1280 * 896


def test_attention_kv_cache_and_executed_work():
    decode = layer("LlamaFlashAttention2", example="decode")
    # keys and values of 8192 positions × 10 heads × 128, bf16: 41,943,040 B
    assert decode.forward_memory_kvcache() == pytest.approx(0.04194304, rel=1e-12)
    # one query sees every key: nothing for the causal kernel to skip
    assert decode.forward_tensor_core_flops(executed=True) == decode.forward_tensor_core_flops()
    half = layer("LlamaFlashAttention2", S=4096)  # per_layer: the layer builds its rotary angles (2 · 64 · S)
    products = 4 * 10 * 4096 * 4096 * 128
    assert half.forward_tensor_core_flops() == 8 * 4096 * 1280 * 1280 + products + 2 * 64 * 4096
    # 32 blocks of 128: n(n+1)/2 of n² tiles = 33/64 of the products
    assert half.forward_tensor_core_flops(executed=True) == 8 * 4096 * 1280 * 1280 + products * 33 // 64 + 2 * 64 * 4096
    eager = layer("LlamaAttention", S=4096)  # the eager class has no causal kernel: it executes what it counts
    assert eager.forward_tensor_core_flops(executed=True) == eager.forward_tensor_core_flops()


def test_backward_and_training():
    mlp = layer("DeepseekV2MLP")
    assert mlp.backward_tensor_core_flops() == 2 * 430_838_906_880  # a gradient for each operand
    assert mlp.backward_cuda_core_flops() == 2 * 336_592_896
    assert mlp.training_flops() == 3 * (430_838_906_880 + 336_592_896)
    assert mlp.backward_memory_weight() == pytest.approx(0.05259264, rel=1e-12)  # bf16 gradients
    # weights + gradients (bf16) + AdamW (2 × fp32 per parameter) + kept activations
    params = 3 * 1280 * 6848
    activations = (4 * 8192 * 6848 + 8192 * 1280) * 2
    assert mlp.training_memory() == pytest.approx((2 * 2 * params + 8 * params + activations) / 1e9, rel=1e-12)


def test_variants_and_time_bound():
    dense = layer("DeepseekV2DecoderLayer", variant="dense", S=100)
    # attention 8·S·h² + 4·H·S²·d_h + its rotary bmm 2·(d_h/2)·S + dense MLP 6·S·h·d_ff (tensor cores)
    assert dense.forward_tensor_core_flops() == (8 * 100 * 1280**2 + 4 * 10 * 100**2 * 128 + 2 * 64 * 100
                                                 + 6 * 100 * 1280 * 6848)
    mlp = layer("DeepseekV2MLP")
    # H100: 430.8 GFLOPs / 989.5 TFLOP/s = 435.4 µs > bytes (weights, x and out: 94.5 MB) / 3.35 TB/s = 28 µs
    assert mlp.bound_by("H100") == "tensor cores"
    assert mlp.forward_time_bound("H100") == pytest.approx(430_838_906_880 / 989.5e12, rel=1e-12)
    assert layer("DeepseekV2MLP", example="decode").bound_by("H100") == "memory"


@pytest.mark.parametrize("call, message", [
    (lambda: layer("DeepseekV2MPL"), "no op 'DeepseekV2MPL'"),
    (lambda: layer("DeepseekV2MLP", example="batch"), "has no example 'batch'"),
    (lambda: layer("DeepseekV2DecoderLayer", variant="sparse"), "has no variant 'sparse'"),
    (lambda: layer("DeepseekV2MLP", seq=4), "unknown dimension(s) seq"),
    (lambda: layer("DeepseekV2MLP").forward_time_bound("V100"), "no GPU 'V100'"),
])
def test_bad_requests_say_what_exists(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()
