"""`opdoc check --upstream`: locations and source hashes against the vendor checkout, the staleness
report, the gate step without a checkout, and one run of the vendor's classes in .venv-upstream.

The vendor checkout is found at $OPDOC_UPSTREAM or ../shared/upstream/deepseek-ocr. Without one these
tests skip saying "no vendor checkout"; under CI=true they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from opdoc.check.upstream import check_locations, find_class, source_hash, staleness
from opdoc.pipeline import Paths, load

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_VENV = ROOT / ".venv-upstream"


def _checkout() -> Path:
    path = Path(os.environ.get("OPDOC_UPSTREAM", ROOT.parent / "shared" / "upstream" / "deepseek-ocr"))
    if not (path / "modeling_deepseekv2.py").is_file():
        message = f"no vendor checkout at {path} (set OPDOC_UPSTREAM)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + ": CI requires one")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def checkout() -> Path:
    return _checkout()


@pytest.fixture(scope="module")
def catalog():
    return load(Paths(root=ROOT))[0]


def _vendor_transformers() -> tuple[Path, str] | None:
    """transformers 4.46.3 as installed in .venv-upstream, found without importing it here."""
    for dist in sorted(UPSTREAM_VENV.glob("lib/python*/site-packages/transformers-*.dist-info")):
        return dist.parent, dist.name.removeprefix("transformers-").removesuffix(".dist-info")
    return None


def test_find_class_starts_at_the_first_decorator(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import x\n\n@dec\n@dec2(1)\nclass A:\n    a = 1\n\n    def f(self):\n        return 2\n\nb = 3\n")
    first, last, digest = find_class(source, "A")
    assert (first, last) == (3, 9)  # "@dec" on line 3, "return 2" on line 9
    assert digest == source_hash(source.read_text().splitlines()[2:9])
    assert find_class(source, "B") is None


def test_find_class_finds_a_name_a_module_binds_by_assignment(tmp_path):
    # torch names its C++ operators this way: scaled_dot_product_attention = _add_docstr(..., """...""")
    source = tmp_path / "f.py"
    source.write_text("import x\n\nsdpa = _doc(\n    x.op,\n    'text',\n)\n\nother = 1\n")
    first, last, digest = find_class(source, "sdpa")
    assert (first, last) == (3, 6)  # from "sdpa = _doc(" to its closing parenthesis
    assert digest == source_hash(source.read_text().splitlines()[2:6])
    assert find_class(source, "_doc") is None  # a name only called, not bound


def test_every_spec_location_matches_the_checkout(checkout, catalog):
    locations = check_locations(catalog, checkout, _vendor_transformers())
    assert len(locations) == len(catalog.specs)
    for loc in locations:
        if loc.file.startswith("transformers/") and _vendor_transformers() is None:
            assert "not installed here" in loc.problem  # verified by `make check-upstream` instead
            continue
        assert loc.problem == "", loc.problem
        assert loc.found == loc.lines and not loc.stale, loc.op
    assert staleness(locations) == []


def _edit(path: Path, line: int, change) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[line - 1] = change(lines[line - 1])
    path.write_text("".join(lines), encoding="utf-8")


def test_one_changed_line_names_the_affected_page(checkout, catalog, tmp_path):
    copy = tmp_path / "checkout"
    shutil.copytree(checkout, copy)
    for path in copy.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # the shared checkout is read-only
    mlp = catalog.specs["DeepseekV2MLP"].spec.upstream
    # One line inside DeepseekV2MLP (its last one, the return) changes; nothing moves.
    _edit(copy / mlp.file, mlp.lines[1], lambda text: text.replace("return down_proj", "return down_proj * 1"))
    locations = check_locations(catalog, copy, None)
    stale = staleness(locations)
    assert len(stale) == 1 and stale[0].startswith("site/op-DeepseekV2MLP.md: upstream class DeepseekV2MLP changed")
    assert [loc.op for loc in locations if loc.problem and not loc.file.startswith("transformers/")] == []


def test_a_moved_class_is_a_location_error(checkout, catalog, tmp_path):
    copy = tmp_path / "checkout"
    shutil.copytree(checkout, copy)
    for path in copy.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    patch = catalog.specs["PatchEmbed"].spec.upstream
    _edit(copy / patch.file, patch.lines[0], lambda text: "\n" + text)  # one blank line above the class
    problems = {loc.op: loc.problem for loc in check_locations(catalog, copy, None) if loc.problem}
    first, last = patch.lines
    assert f"write [{first + 1}, {last + 1}]" in problems["PatchEmbed"]
    assert "NoTPAttention" not in problems  # above the inserted line: unmoved


@pytest.mark.parametrize("ci, code", [("", 0), ("true", 1)])
def test_gate_step_without_a_checkout(tmp_path, ci, code):
    env = {**os.environ, "OPDOC_UPSTREAM": str(tmp_path / "absent"), "CI": ci}
    result = subprocess.run(["bash", str(ROOT / "scripts" / "check-upstream.sh")], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == code
    assert "no vendor checkout" in result.stdout + result.stderr


def test_vendor_classes_run_in_the_upstream_environment(checkout, tmp_path):
    """The vendor's MoE at a full-size point (forced even routing) and at the real-routing point,
    and transformers' LlamaFlashAttention2 with the kernel stand-in, measured in .venv-upstream."""
    if not (UPSTREAM_VENV / "bin" / "opdoc").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("no .venv-upstream: `make test` sets it up")
        pytest.skip("no .venv-upstream (run `make check-upstream`)")
    report = tmp_path / "report.json"
    result = subprocess.run([str(UPSTREAM_VENV / "bin" / "opdoc"), "check", "--upstream", str(checkout),
                             "DeepseekV2MoE", "LlamaFlashAttention2", "--quick", "--report", str(report)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    data = json.loads(report.read_text())
    rows = [r for r in data["rows"] if r["op"] == "DeepseekV2MoE"]
    assert rows and all(r["status"] == "pass" for r in rows), result.stdout[-3000:]
    notes = " ".join(r["note"] for r in rows)
    assert "even split, 64 of 64 experts run" in notes  # prefill: 8192 * 6 slots reach every expert
    assert "even split, 6 of 64 experts run" in notes  # decode: 1 * 6 slots
    # transformers' own flash path around the kernel (its order check of the position ids included)
    flash_rows = [r for r in data["rows"] if r["op"] == "LlamaFlashAttention2"]
    assert flash_rows and all(r["status"] == "pass" for r in flash_rows), result.stdout[-3000:]
    flash = " ".join(r["note"] for r in flash_rows)
    assert "flash kernel stand-in got q (1, 8192, 10, 128)" in flash and "no mask, causal=True" in flash
    assert data["sources"]["transformers"] == "4.46.3"


# The vendor's dynamic_preprocess on PIL pages of these sizes, in .venv-upstream (it imports the checkout
# with load_checkout, as the upstream check does); prints [width, height, c_w, c_h, tiles, tile sizes ok].
_VENDOR_GRIDS = """
import json, sys
from pathlib import Path
from PIL import Image
from opdoc.models.deepseek_ocr.upstream import load_checkout, ocr_module
module = ocr_module(load_checkout(Path(sys.argv[1])))
rows = []
for width, height in json.loads(sys.argv[2]):
    tiles, (c_w, c_h) = module.dynamic_preprocess(Image.new("L", (width, height)))
    rows.append([width, height, c_w, c_h, len(tiles), all(t.size == (640, 640) for t in tiles)])
print(json.dumps(rows))
"""


def _page_sizes() -> list[tuple[int, int]]:
    """A sweep of aspect ratios from 1:11 to 13:1, plus the exact ties and the page table's sizes."""
    sweep = [(width, height) for width in range(300, 4001, 250) for height in (480, 700, 1000, 1358, 2200, 3300)]
    ties = [(1250, 1000), (1200, 960), (1357, 1357), (1358, 1358), (1800, 900), (1810, 905), (900, 1800),
            (1000, 1250), (2000, 1000), (1000, 3000), (3000, 1000), (1920, 1920)]
    pages = [(1654, 2339), (1700, 2200), (1920, 1080), (1500, 1500), (1000, 1000), (800, 3000)]
    return sweep + ties + pages


def test_vendor_tile_grid_matches_tile_grid(checkout):
    """The vendor's own dynamic_preprocess picks the grid opdoc's tile_grid picks, for every size."""
    from opdoc.models.deepseek_ocr.preprocessing import tile_grid

    python = UPSTREAM_VENV / "bin" / "python"
    if not python.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("no .venv-upstream: `make test` sets it up")
        pytest.skip("no .venv-upstream (run `make check-upstream`)")
    sizes = _page_sizes()
    result = subprocess.run([str(python), "-c", _VENDOR_GRIDS, str(checkout), json.dumps(sizes)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout)
    assert len(rows) == len(sizes)
    differ = [(w, h, (c_w, c_h), tile_grid(w, h)) for w, h, c_w, c_h, _, _ in rows if tile_grid(w, h) != (c_w, c_h)]
    assert differ == []
    assert all(n == c_w * c_h and sized for _, _, c_w, c_h, n, sized in rows)
    # the sweep reaches every grid shape with ties on both sides of the area rule
    assert {(c_w, c_h) for _, _, c_w, c_h, _, _ in rows} >= {(2, 2), (3, 3), (2, 1), (4, 2), (3, 2), (1, 4)}


# ------------------------------------------------------------------------------ the whole OCR model


def _upstream_python() -> Path:
    python = UPSTREAM_VENV / "bin" / "python"
    if not python.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("no .venv-upstream: `make test` sets it up")
        pytest.skip("no .venv-upstream (run `make check-upstream`)")
    return python


# The vendor's DeepseekOCRForCausalLM built on the meta device from the checkout's config.json, as the
# upstream builder builds it; prints its parameter names and element count.
_VENDOR_OCR_PARAMETERS = """
import json, sys
from pathlib import Path
import torch
from opdoc.models.deepseek_ocr.upstream import load_checkout, ocr_module
vendor = load_checkout(Path(sys.argv[1]))
module = ocr_module(vendor)
config = module.DeepseekOCRConfig(**{k: v for k, v in vendor.config_json.items() if not k.startswith("_")})
config._attn_implementation_internal, config._attn_implementation_autoset = "eager", True
torch.set_default_dtype(torch.bfloat16)
with torch.device("meta"):
    model = module.DeepseekOCRForCausalLM(config)
params = dict(model.named_parameters())
print(json.dumps({"names": sorted(params), "elements": sum(p.numel() for p in params.values()),
                  "bytes": sum(p.numel() * p.element_size() for p in params.values())}))
"""


def test_vendor_ocr_parameter_names_are_the_checkpoint_names(checkout):
    """The vendor class the upstream check measures holds exactly the released checkpoint's tensors."""
    from opdoc_testing import WEIGHT_INDEX

    result = subprocess.run([str(_upstream_python()), "-c", _VENDOR_OCR_PARAMETERS, str(checkout)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    vendor = json.loads(result.stdout.splitlines()[-1])
    index = json.loads(WEIGHT_INDEX.read_text())
    assert set(vendor["names"]) == set(index["weight_map"])
    # The index's total_size is the bf16 checkpoint in bytes: 6,672,212,480 = 2 bytes x 3,336,106,240.
    assert vendor["bytes"] == index["metadata"]["total_size"] == 6_672_212_480
    assert vendor["elements"] == 3_336_106_240


def test_vendor_ocr_model_runs_in_the_upstream_environment(checkout, tmp_path):
    """The vendor's DeepseekOCRForCausalLM (its DeepseekOCRModel inside) at the quick check points, all
    three variants: every quantity equals the formulas, and the notes say how each obstacle was met."""
    python = _upstream_python()
    report = tmp_path / "report.json"
    result = subprocess.run([str(python), "-m", "opdoc", "check", "--upstream", str(checkout),
                             "DeepseekOCRForCausalLM", "--quick", "--report", str(report)],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    data = json.loads(report.read_text())
    rows = [r for r in data["rows"] if r["op"] == "DeepseekOCRForCausalLM"]
    assert rows and all(r["status"] == "pass" for r in rows), result.stdout[-3000:]
    assert {r["variant"] for r in rows} == {"request", "prefill", "decode"}
    notes = " ".join(r["note"] for r in rows)
    # tiny: n_g = 512 / 64 = 8, S_v = 8 * (8 + 1) + 1 = 73, T = 12: an 85-position prompt, read whole at
    # prefill; decode at N_out = 3 attends to 85 + 3 - 2 = 86 cached positions plus its own: 87 keys.
    assert "flash kernel stand-in got q (1, 85, 10, 128), k (1, 85, 10, 128)" in notes
    assert "flash kernel stand-in got q (1, 1, 10, 128), k (1, 87, 10, 128)" in notes
    # gundam_2x1: n_g = 16, n_t = 640 / 64 = 10; S_v = 16 * 17 + 1 + (10 * 2 + 1) * 10 * 1 = 483; + 12 = 495
    assert "flash kernel stand-in got q (1, 495, 10, 128)" in notes
    assert "global view holds pixels, tiles blank (no crop)" in notes  # tiny: the blank placeholder
    assert "global view holds pixels, tiles holds pixels" in notes  # gundam_2x1: two tiles
    assert "DynamicCache seeded with a zero-length key and value per layer" in notes
    assert "DynamicCache seeded with 86 positions per layer" in notes
    assert "greedy loop (3 forwards)" in notes


def test_pixel_sums_answer_only_the_scripted_reads():
    """On fake tensors .item() hands out the scripted verdicts in order, refuses one read more, leaves
    real tensors alone, and is restored afterwards."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    from opdoc.models.deepseek_ocr.upstream import PixelSums, UpstreamError

    original = torch.Tensor.item
    sums = PixelSums([True, False])
    with FakeTensorMode():
        view = torch.empty(1, 3, 8, 8)
    with sums.active():
        assert view.sum().item() != 0
        assert view.sum().item() == 0
        assert torch.tensor([2.0, 3.0]).sum().item() == 5.0  # a real tensor: its real sum
        with pytest.raises(UpstreamError, match="beyond the OCR forward's pixel sums"):
            view.sum().item()
    assert torch.Tensor.item is original
    assert sums.answered == [True, False]
    assert sums.notes() == [".item() of the pixel sums answered without data as the reference does: "
                            "global view holds pixels, tiles blank (no crop)"]


class _Recorder:
    """Stands in for a causal LM: records each call; the last position's logits peak at the call's number."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __call__(self, input_ids, past_key_values=None, use_cache=False, **kwargs):
        import torch

        self.calls.append((tuple(input_ids.shape), sorted(k for k in kwargs if k != "return_dict"),
                           past_key_values, use_cache))
        logits = torch.zeros(input_ids.shape[0], input_ids.shape[1], 8)
        logits[:, -1, len(self.calls)] = 1.0
        return logits, f"cache after call {len(self.calls)}"


def test_vendor_request_loop_is_the_reference_generate():
    """The loop that drives the vendor's forward for the request variant makes the calls the reference's
    generate makes: the prompt with its images on the seeded cache, then single tokens on the returned cache."""
    import torch

    from opdoc.models.deepseek_ocr.ocr import DeepseekOCRForCausalLM
    from opdoc.models.deepseek_ocr.upstream import _greedy

    ids = torch.zeros(1, 5, dtype=torch.long)
    images = {"images": [], "images_seq_mask": None, "images_spatial_crop": [(1, 1)]}
    reference, vendor = _Recorder(), _Recorder()
    held: dict = {}
    tokens = DeepseekOCRForCausalLM.generate(reference, ids, 4, cache=held, past_key_values="seeded", **images)
    out = _greedy(vendor, ids, 4, "seeded", images)
    assert vendor.calls == reference.calls
    assert vendor.calls[0] == ((1, 5), ["images", "images_seq_mask", "images_spatial_crop"], "seeded", True)
    assert vendor.calls[1:] == [((1, 1), [], f"cache after call {n}", True) for n in (1, 2, 3)]
    assert out["tokens"].tolist() == tokens.tolist() == [[1, 2, 3, 4]]  # call n's logits peak at n
    assert out["cache"] == held["cache"] == "cache after call 4"
