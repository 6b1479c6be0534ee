"""DeepSeek-OCR's closed-form answers: questions sympy answers from the proven formulas, on their pages.

Registered with `opdoc.roofline.answers_for` when the roofline stage imports the model package's
`answers` module.
"""

from __future__ import annotations

import sympy

from opdoc.formula import engineering, plain_text

from opdoc.roofline import Answer, BANDWIDTH, BLOCK, CAPACITY, PEAK, Roofline, along, answers_for, first_integer, positive_root, relax, solve_for


@answers_for("DeepseekV2MoE")
def moe_decode_stops_bandwidth_bound(r: Roofline) -> list[Answer]:
    op, m = "DeepseekV2MoE", r.model
    B, S, E_run, E = (m.symbols[n] for n in ("B", "S", "E_run", "E"))
    w = r.work(op, None)
    # Relaxed: one new token per sequence (S = 1) and every expert running (E_run = E, true once B·k >= E).
    tensor = relax(w.executed_tensor, {S: 1, E_run: E})
    memory = relax(w.fused_bytes, {S: 1, E_run: E})
    gpu0 = r.hardware.gpus[0]
    sample = {**m.binding(op, "decode"), PEAK: gpu0.tensor_flops, BANDWIDTH: gpu0.bandwidth}
    closed = positive_root(tensor / PEAK - memory / BANDWIDTH, B, sample)
    rows, values = [], {}
    work_at = along(m, op, "decode", "B", w.executed_tensor, w.executed_cuda, w.fused_bytes)
    for gpu in r.hardware.gpus:
        fixed = {k: v for k, v in m.binding(op, "decode").items() if k is not B}
        guess = float(closed.xreplace({**fixed, PEAK: gpu.tensor_flops, BANDWIDTH: gpu.bandwidth}))

        def shares(n: int, gpu=gpu) -> tuple[sympy.Expr, sympy.Expr, sympy.Expr]:
            tensor_flops, cuda_flops, fused = work_at(n)
            return tensor_flops / gpu.tensor_flops, cuda_flops / gpu.cuda_flops, fused / gpu.bandwidth

        def compute_binds(n: int) -> bool:
            tensor_s, cuda_s, memory_s = shares(n)
            return max(tensor_s, cuda_s) > memory_s

        n = first_integer(compute_binds, guess)
        values[(gpu.name, "B")] = n
        before, after = shares(n - 1), shares(n)
        rows.append([gpu.title, f"{n:,}", f"{float(before[0] / before[2]):.5f}", f"{float(after[0] / after[2]):.5f}"])
    return [Answer(
        question="At what batch size does an MoE decode step stop being bandwidth-bound?",
        setting="one new token per sequence (S = 1), executed FLOPs and fused lower-bound bytes; the smallest "
                "B whose tensor-core time exceeds its memory time",
        closed_forms=[("every expert running (B·k ≥ E)", f"B* = {plain_text(closed)}")],
        columns=["GPU", "B*", "tensor time / memory time at B* − 1", "at B*"],
        rows=rows, values=values,
        note="Below B = E/k not every expert runs and the weights read grow with B too; the exact threshold "
             "is searched on the unrelaxed formulas (E_run = min(E, B·S·k)), so it holds on both sides.")]


@answers_for("DeepseekV2DecoderLayer")
def attention_overtakes_feed_forward(r: Roofline) -> list[Answer]:
    op, m = "DeepseekV2DecoderLayer", r.model
    S, E_run, E = (m.symbols[n] for n in ("S", "E_run", "E"))
    rows, values, forms = [], {}, []
    for variant in m.variants(op):
        children = {c.name: c for c in m.children(op, variant)}
        attn, ffn = children["self_attn"], children["mlp"]
        fixed = {k: v for k, v in m.binding(op, "prefill").items() if k is not S}

        def tensor(child, executed: bool) -> sympy.Expr:
            w = r.work(child.op, child.variant)
            return (w.executed_tensor if executed else w.counted_tensor).xreplace(child.binding)

        results = []
        for executed in (False, True):
            difference = tensor(attn, executed) - tensor(ffn, executed)
            relaxed = relax(difference, {E_run: E}).xreplace({k: v for k, v in fixed.items()
                                                              if k.name in ("B", "P")})
            closed = positive_root(sympy.expand(relaxed), S, {**fixed, BLOCK: sympy.Integer(r.block or 1)},
                                   factored=False)  # printed expanded
            guess = float(closed.xreplace({**fixed, BLOCK: r.block or 1}))

            at = along(m, op, "prefill", "S", difference.xreplace({BLOCK: sympy.Integer(r.block or 1)}))

            def overtakes(n: int, at=at) -> bool:
                return at(n)[0] > 0

            n = first_integer(overtakes, guess)
            values[(variant, "executed" if executed else "counted")] = n
            results.append(n)
            label = f"{variant}, {'executed (causal tiles)' if executed else 'counted (proven)'}"
            forms.append((label, f"S* = {plain_text(sympy.expand(closed))}"))
        rows.append([f"{variant}: {ffn.op}", f"{results[0]:,}", f"{results[1]:,}"])
    return [Answer(
        question="At what sequence length do attention's FLOPs overtake the feed-forward block's?",
        setting="prefill, B = 1, P = 0; tensor-core FLOPs of self_attn against those of mlp in one layer; the "
                "smallest S where attention's are larger",
        closed_forms=forms,
        columns=["variant", "counted (proven) FLOPs", f"executed FLOPs (causal tiles, b = {r.block})"],
        rows=rows, values=values,
        note="The counted attention products grow with S²; the causal kernel executes about half of them, which "
             "moves the crossover out by roughly a factor of two.")]


@answers_for("DeepseekV2ForCausalLM")
def largest_batch_that_fits(r: Roofline) -> list[Answer]:
    op, m = "DeepseekV2ForCausalLM", r.model
    B = m.symbols["B"]
    q = m.counted(op, None)
    weights, kv, peak = q["parameter_bytes"], q["kv_cache_bytes"], q["peak"]
    W = sympy.Symbol("W", positive=True)  # the weights' bytes, printed as one name
    closed = solve_for(W + kv - CAPACITY, B)[0]
    rows, values = [], {}
    need = along(m, op, "decode", "B", weights, kv, peak)
    for gpu in r.hardware.gpus:
        decode = m.binding(op, "decode")
        guess = float(closed.xreplace({**decode, W: weights.xreplace(decode), CAPACITY: gpu.capacity}))

        kv_only = first_integer(lambda n, gpu=gpu: sum(need(n)[:2]) > gpu.capacity, guess + 1) - 1
        with_peak = first_integer(lambda n, gpu=gpu: need(n)[0] + need(n)[2] > gpu.capacity, guess + 1) - 1
        values[(gpu.name, "kv")] = kv_only
        values[(gpu.name, "peak")] = with_peak
        rows.append([gpu.title, engineering(gpu.capacity, "bytes"), f"{kv_only:,}", f"{with_peak:,}"])
    return [Answer(
        question="What is the largest batch whose KV cache fits one GPU at S = 8192?",
        setting="all weights resident plus the KV cache of B sequences holding 8192 positions (P + S at the "
                "decode example); the last column also keeps the decode step's peak live activations",
        closed_forms=[("weights W (the parameter bytes above) + KV cache = capacity C_mem",
                       f"B_max = floor({plain_text(sympy.factor(closed))})")],
        columns=["GPU", "capacity (datasheet)", "B_max (weights + KV cache)", "B_max (weights + decode peak)"],
        rows=rows, values=values,
        note="Capacity is the datasheet figure; the CUDA context and the allocator's reserve lower the usable "
             "part a little, so treat B_max as an upper limit.")]


# ============================================================================ page view
