"""DeepSeek-OCR's whole model, written from its architecture: the vision path per view feeding the decoder.

A request's image arrives as two tensors: the global view (B, 3, D_g, D_g) and the tiles of the crop grid
(c_w·c_h, 3, D_t, D_t), or one blank D_g-sided placeholder when the image is not cropped. Each view goes
through SAM-B, CLIP-L (which reads SAM's features as its patches) and the linear projector; the projected
tokens are laid out row by row, each row closed by the learned newline embedding, tiles first as one
mosaic, then the global view, then one view separator. They replace the embeddings of the image
placeholder tokens, and the decoder runs on the result.

Memory follows the released code: every tensor the vision path makes stays referenced until the
decoder returns (they are locals of the same forward), so they sit under the decoder's own peak. The
vision path runs only for a prompt (more than one position); a decode step is the decoder alone.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from opdoc.models.deepseek_ocr.config import ClipConfig, DeepseekV2Config, ProjectorConfig, SamConfig
from opdoc.models.deepseek_ocr.deepencoder import MlpProjector, VitModel, build_sam_vit_b
from opdoc.models.deepseek_ocr.deepseek_v2 import DeepseekV2Model, _has_data


def holds_image(pixels: Tensor, fallback: bool) -> bool:
    """The released code's test for an image: the pixels' sum read on the host (one reduction, one sync).
    Without data (meta, fake tensors) the sum still runs and `fallback` gives the verdict."""
    total = pixels.sum()
    return bool(total.item() != 0) if _has_data(total) else fallback


class DeepseekOCRModel(DeepseekV2Model):
    """The decoder stack with SAM-B, CLIP-L, the projector and the two layout embeddings."""

    def __init__(self, config: DeepseekV2Config, sam: SamConfig, clip: ClipConfig, projector: ProjectorConfig) -> None:
        super().__init__(config)
        self.sam_model = build_sam_vit_b(sam)
        self.vision_model = VitModel(clip)
        self.projector = MlpProjector(projector)
        width = projector.n_embed
        self.image_newline = nn.Parameter(torch.randn(width) / width ** 0.5)
        self.view_seperator = nn.Parameter(torch.randn(width) / width ** 0.5)  # the checkpoint's spelling

    def encode(self, view: Tensor) -> Tensor:
        """One batch of views to (views, tokens, n_embed): CLIP's tokens (class token dropped) beside SAM's."""
        sam = self.sam_model(view)
        clip = self.vision_model(view, sam)
        self._kept += [sam, clip]  # referenced until the forward returns, as the released code's locals are
        return self.projector(torch.cat((clip[:, 1:], sam.flatten(2).transpose(1, 2)), dim=-1))

    def forward(
        self,
        input_ids: Tensor,
        images: list[tuple[Tensor, Tensor]] | None = None,
        images_seq_mask: Tensor | None = None,
        images_spatial_crop: list[tuple[int, int]] | None = None,
        past_key_values: Any = None,
        position_ids: Tensor | None = None,
        use_cache: bool = False,
    ) -> tuple[Tensor, Any]:
        """`images`: per sequence (tiles, global view); `images_spatial_crop`: per sequence (c_w, c_h),
        (1, 1) when not cropped; `images_seq_mask`: (B, S), true at the image's positions."""
        inputs_embeds = self.embed_tokens(input_ids)
        self._kept: list[Tensor] = []
        if images is not None and input_ids.shape[1] != 1 and holds_image(images[0][1], fallback=True):
            for index, ((tiles, view), (across, down)) in enumerate(zip(images, images_spatial_crop)):
                cropped = holds_image(tiles, fallback=across * down > 1)
                # Tiles and global view are encoded first, then laid out: the same order (and so the same
                # tensors alive at each step) as the released code.
                if cropped:
                    local = self.encode(tiles)
                glob = self.encode(view)
                width = glob.shape[-1]
                side = int(round(glob.shape[1] ** 0.5))
                glob = torch.cat([glob.view(side, side, width), self.image_newline[None, None, :].expand(side, 1, width)],
                                 dim=1).view(-1, width)
                parts = [glob, self.view_seperator[None, :]]
                if cropped:  # one mosaic of the tiles: their rows side by side, then a newline per row
                    side = int(round(local.shape[1] ** 0.5))
                    local = local.view(down, across, side, side, width).transpose(1, 2).reshape(
                        down * side, across * side, width)
                    local = torch.cat([local, self.image_newline[None, None, :].expand(down * side, 1, width)],
                                      dim=1).view(-1, width)
                    parts.insert(0, local)
                layout = torch.cat(parts, dim=0)
                batch = torch.cat([layout], dim=0)  # the released code concatenates a list of one layout
                self._kept += [*parts[:-1], layout, batch]
                inputs_embeds[index].masked_scatter_(images_seq_mask[index].unsqueeze(-1), batch)
        try:
            return super().forward(None, None, position_ids, past_key_values, inputs_embeds, use_cache)
        finally:
            self._kept = []


class DeepseekOCRForCausalLM(nn.Module):
    """The whole model with its head: fp32 logits over the vocabulary for every position."""

    def __init__(self, config: DeepseekV2Config, sam: SamConfig, clip: ClipConfig, projector: ProjectorConfig) -> None:
        super().__init__()
        self.config = config
        self.model = DeepseekOCRModel(config, sam, clip, projector)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(self, input_ids: Tensor, images=None, images_seq_mask=None, images_spatial_crop=None,
                past_key_values: Any = None, position_ids: Tensor | None = None,
                use_cache: bool = False) -> tuple[Tensor, Any]:
        hidden, cache = self.model(input_ids, images, images_seq_mask, images_spatial_crop, past_key_values,
                                   position_ids, use_cache)
        return self.lm_head(hidden).float(), cache

    def generate(self, input_ids: Tensor, new_tokens: int, cache: dict | None = None, past_key_values: Any = None,
                 **image_inputs: Any) -> Tensor:
        """Greedy generation as a request runs it: a prefill, then one single-token step per further token,
        keeping only the cache and the chosen token between steps. Returns the generated ids; `cache`, when
        given, receives the KV cache under "cache"."""
        logits, kv = self(input_ids, **image_inputs, past_key_values=past_key_values, use_cache=True)
        token = logits[:, -1:].argmax(-1)
        chosen = [token]
        del logits
        for _ in range(new_tokens - 1):
            logits, kv = self(token, past_key_values=kv, use_cache=True)
            token = logits[:, -1:].argmax(-1)
            chosen.append(token)
            del logits
        if cache is not None:
            cache["cache"] = kv
        return torch.cat(chosen, dim=1)
