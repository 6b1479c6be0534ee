#!/usr/bin/env bash
# The one prepared GPU run: real bf16 tensors on a CUDA device, timed with CUDA events (warm-up, median of
# repeats) and the allocator's peak, written to site/measured/cuda-report.json for the pages to show
# beside their time bounds. Sized to finish within about 5 minutes on an H100- or H200-class GPU: the
# language model's ops at their documented prefill and decode examples, the vision encoders at the
# 1024 px view, and the projector. flash_attn is not needed: torch's own fused scaled-dot-product
# backends stand in for the fused kernel (the report names the backend that ran).
#
#   bash scripts/gpu-check.sh            # then commit site/measured/cuda-report.json and run `make docs`
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run this on a GPU machine')"
timeout "${GPU_CHECK_SECONDS:-290}" "$PYTHON" -m opdoc check --device cuda \
    DeepseekV2RMSNorm DeepseekV2MLP MoEGate DeepseekV2MoE LlamaAttention LlamaFlashAttention2 \
    DeepseekV2DecoderLayer DeepseekV2Model DeepseekV2ForCausalLM \
    ImageEncoderViT VitModel MlpProjector
echo "wrote site/measured/cuda-report.json"
