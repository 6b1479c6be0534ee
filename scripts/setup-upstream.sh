#!/usr/bin/env bash
# The upstream check's own environment, .venv-upstream. DeepSeek-OCR's vendor code targets
# transformers 4.46.3 (it imports LlamaFlashAttention2, removed in 4.48), while opdoc's .venv has a
# newer transformers for its independent comparisons, so `opdoc check --upstream` runs here.
# Installs what the vendor files import, at versions that work together (modeling_deepseekocr.py
# imports addict, PIL, requests, tqdm and numpy at module level); flash_attn (no CPU build) and
# torchvision are replaced by stand-ins at run time. torchvision 0.28.0 is the release that matches
# torch 2.13.0, but its only wheel here is PyPI's, built against CUDA torch: installed with --no-deps
# beside the CPU torch, `import torchvision` fails ("operator torchvision::nms does not exist"), and
# installing it with its dependencies would replace the CPU torch with a CUDA one. The stand-in lets
# modeling_deepseekocr.py import; BasicImageTransform (the one class that calls torchvision) is then
# listed as not compared (opdoc/models/deepseek_ocr/upstream.py, not_comparable).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-upstream
STAMP=$VENV/.ready
if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt scripts/setup-upstream.sh ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
pip_install() { "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; }
pip_install --upgrade pip
# torch is the 2.13.0 CPU build, as in .venv: an unpinned torch would pull several GB of CUDA packages.
pip_install torch==2.13.0
pip_install transformers==4.46.3 tokenizers==0.20.3 einops==0.8.2 easydict==1.14 addict==2.4.0 \
  pillow==13.0.0 requests==2.34.2 tqdm==4.70.1 numpy==2.4.6
pip_install -e '.[test]'
touch "$STAMP"
