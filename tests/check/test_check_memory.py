"""Activation memory: total and peak of storages a forward creates, without allocating."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

from opdoc.check import ActivationTracker, cuda_peak, measure

ROOT = Path(__file__).resolve().parents[2]


class TwoStep(torch.nn.Module):
    def __init__(self, device=None):
        super().__init__()
        self.lin = torch.nn.Linear(4, 8, bias=False, device=device)

    def forward(self, x):  # x: (3, 4) fp32
        y = self.lin(x) * 2  # mm -> 3·8·4 = 96 B; mul -> 96 B; the mm result dies after the mul
        return y.sum(-1)  # 3·4 = 12 B; y dies when forward returns


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_two_step_module_by_hand(device):
    m = measure(TwoStep(device), torch.randn(3, 4, device=device))
    assert m.activation_total_bytes == 96 + 96 + 12  # 204: every storage the forward made
    assert m.activation_peak_bytes == 96 + 96  # 192: mm and mul results live at once
    assert m.activation_live_at_exit_bytes == 12  # only the returned sum
    # parameters and inputs never count: the weight's t() view and x are not activations


def test_two_step_module_under_fake_tensor_mode_either_nesting():
    fake_mode = FakeTensorMode()
    with fake_mode:
        module, x = TwoStep(), torch.randn(3, 4)
        with ActivationTracker() as outside:
            module(x)
    with ActivationTracker() as inside:
        with fake_mode:
            module(x)
    for tracker in (outside, inside):
        assert (tracker.total_bytes, tracker.peak_bytes) == (204, 192)


def test_agrees_with_torch_mem_tracker_where_it_applies():
    from torch.distributed._tools.mem_tracker import MemTracker

    fake_mode = FakeTensorMode()
    with fake_mode:
        module = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64))
        x = torch.randn(128, 64)
        ours = measure(module, x)
        theirs = MemTracker()
        theirs.track_external(module, x)  # without this, x would count as an activation
        with theirs, torch.no_grad():
            module(x)
    (device_peak,) = theirs.get_tracker_snapshot("peak").values()
    activation_peak = next(v for k, v in device_peak.items() if str(k).endswith("ACT"))
    # addmm 128·256·4 and gelu 128·256·4 live at once = 262144 B
    assert ours.activation_peak_bytes == activation_peak == 2 * 128 * 256 * 4


def test_attention_kernel_decides_the_peak():
    b, h, s, d = 1, 2, 256, 16
    scores = b * h * s * s * 4  # 524288 B of fp32 scores, held only by the math path

    def attention(q):
        return F.scaled_dot_product_attention(q, q, q)

    fake_mode = FakeTensorMode()
    with fake_mode:
        fused = measure(attention, torch.randn(b, h, s, d))
    math = measure(attention, torch.randn(b, h, s, d, device="meta"))
    assert fused.attention_kernels == {"aten._scaled_dot_product_flash_attention_for_cpu": 1}
    assert fused.activation_peak_bytes == b * h * s * d * 4 + b * h * s * 4  # output + logsumexp
    assert list(math.attention_kernels) == [f"math: aten._safe_softmax over {b}×{h}×{s}×{s}"]
    assert math.activation_peak_bytes >= 2 * scores  # scores and their softmax at once


def test_full_size_meta_linear_allocates_nothing():
    """Linear 1280→6848 at S=8192: 224 MiB of output if it were real; RSS must not grow."""
    script = textwrap.dedent("""
        import resource, torch
        from opdoc.check import measure
        linear = torch.nn.Linear(1280, 6848, device="meta")
        x = torch.empty(8192, 1280, device="meta")
        measure(linear, torch.empty(4, 1280, device="meta"))  # warm up lazy imports
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        m = measure(linear, x)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(after - before, m.tensor_flops, m.activation_peak_bytes)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    grown_kib, flops, peak = (int(v) for v in result.stdout.split())
    assert flops == 2 * 8192 * 1280 * 6848
    assert peak == 8192 * 6848 * 4  # 224,395,264 B tracked, not allocated
    assert grown_kib < 16 * 1024  # under 16 MiB of real memory


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the guard on machines without CUDA")
def test_cuda_peak_refuses_without_cuda():
    with pytest.raises(RuntimeError, match="CUDA"):
        cuda_peak(lambda: None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_sees_at_least_the_tracked_activations():
    linear = torch.nn.Linear(1024, 4096, bias=False, device="cuda")
    x = torch.randn(2048, 1024, device="cuda")
    with torch.no_grad():
        peak = cuda_peak(lambda: F.gelu(linear(x)))
    assert peak >= 2 * 2048 * 4096 * 4  # mm output and gelu output
