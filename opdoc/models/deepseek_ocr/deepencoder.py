"""Reference PyTorch modules of DeepSeek-OCR's vision side (SAM-B, CLIP-L, projector), mirroring deepencoder.py.

A view goes through SAM-B's `ImageEncoderViT` (windowed ViT, neck, two stride-2 convolutions) to a
(B, 1024, H/64, W/64) grid; CLIP-L's `VitModel` takes that grid as its patch embeddings; SAM and CLIP
features are concatenated (2048 channels) and `MlpProjector` maps them to the language model's width.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ClipConfig, ProjectorConfig, SamConfig


# ---------------------------------------------------------------- SAM-B (ImageEncoderViT)


class PatchEmbed(nn.Module):
    """Image to patch embeddings: one strided convolution, output channels-last (B, H_p, W_p, h)."""

    def __init__(
        self,
        kernel_size: tuple[int, int] = (16, 16),
        stride: tuple[int, int] = (16, 16),
        padding: tuple[int, int] = (0, 0),
        in_chans: int = 3,
        embed_dim: int = 768,
    ) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # SAM's blocks work channels-last


class MLPBlock(nn.Module):
    """Transformer MLP: lin2(act(lin1(x)))."""

    def __init__(self, embedding_dim: int, mlp_dim: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = act()

    def forward(self, x: Tensor) -> Tensor:
        return self.lin2(self.act(self.lin1(x)))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis (dim 1) of a channels-first feature map, with per-channel weight and bias."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def get_abs_pos_sam(abs_pos: Tensor, tgt_size: int) -> Tensor:
    """Resize SAM's (1, 64, 64, C) absolute position table bicubically to a (1, tgt, tgt, C) grid when sizes differ."""
    if abs_pos.shape[1] == tgt_size:
        return abs_pos
    # The fp32 copy stays referenced until the function returns, as upstream's does.
    table32 = abs_pos.permute(0, 3, 1, 2).to(torch.float32)
    resized = F.interpolate(table32, size=(tgt_size, tgt_size), mode="bicubic", antialias=True,
                            align_corners=False).to(abs_pos.dtype)
    return resized.permute(0, 2, 3, 1)


def get_rel_pos(q_size: int, k_size: int, rel_pos: Tensor) -> Tensor:
    """The table row of every (query, key) pair's offset along one axis; the table is resized when it does not fit."""
    max_rel_dist = int(2 * max(q_size, k_size) - 1)
    if rel_pos.shape[0] != max_rel_dist:  # global blocks on a grid other than 64x64 (e.g. a 640 px tile)
        dtype = rel_pos.dtype
        rel_pos = rel_pos.to(torch.float32)  # this fp32 copy stays referenced until the function returns
        table = F.interpolate(rel_pos.reshape(1, rel_pos.shape[0], -1).permute(0, 2, 1),  # (1, C, L)
                              size=max_rel_dist, mode="linear").to(dtype)
        table = table.reshape(-1, max_rel_dist).permute(1, 0)  # (max_rel_dist, C), a view
    else:
        table = rel_pos
    # Coordinates scaled to the longer side when query and key sizes differ (they never do in SAM).
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    relative = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return table[relative.long()]


def add_decomposed_rel_pos(
    q: Tensor, rel_pos_h: Tensor, rel_pos_w: Tensor, q_size: tuple[int, int], k_size: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    """Row and column terms of the decomposed relative-position bias, q·R_h and q·R_w, shaped to broadcast:
    (B*H, S, H_p, 1) and (B*H, S, 1, W_p) for an H_p x W_p grid. Their sum is the (S, S) bias of each head."""
    (q_h, q_w), (k_h, k_w) = q_size, k_size
    Rh, Rw = get_rel_pos(q_h, k_h, rel_pos_h), get_rel_pos(q_w, k_w, rel_pos_w)
    batch, _, dim = q.shape
    r_q = q.reshape(batch, q_h, q_w, dim)
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, Rh)  # (B*H, H_p, W_p, H_p)
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, Rw)  # (B*H, H_p, W_p, W_p)
    rel_h = rel_h.unsqueeze(-1).reshape(batch, q_h * q_w, k_h, 1)
    rel_w = rel_w.unsqueeze(-2).reshape(batch, q_h * q_w, 1, k_w)
    return rel_h, rel_w


class Attention(nn.Module):
    """SAM multi-head attention on a channels-last token grid: fused qkv, decomposed relative-position bias, SDPA."""

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        use_rel_pos: bool = False,
        rel_pos_zero_init: bool = True,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:  # one table row per relative offset, -(size-1) .. size-1
            assert input_size is not None, "relative positions need the input size"
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))

    def forward(self, x: Tensor) -> Tensor:
        B, H, W, _ = x.shape
        S = H * W
        qkv = self.qkv(x).reshape(B, S, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)  # q, k, v, then B, H, S, d_h
        # Heads folded into the batch axis: a view for one image or window, a copy of qkv for several.
        q, k, v = qkv.reshape(3, B * self.num_heads, S, -1).unbind(0)
        rel_h = rel_w = None
        if self.use_rel_pos:  # from the unscaled q, as in SAM
            rel_h, rel_w = add_decomposed_rel_pos(q, self.rel_pos_h, self.rel_pos_w, (H, W), (H, W))
        q, k, v = (t.view(B, self.num_heads, S, -1) for t in (q, k, v))
        if self.use_rel_pos:  # the bias is materialised densely, (B, H, S, S), and passed as a float mask
            rel_h = rel_h.view(B, self.num_heads, S, rel_h.shape[2], 1)
            rel_w = rel_w.view(B, self.num_heads, S, 1, rel_w.shape[3])
            bias = (rel_h + rel_w).view(B, self.num_heads, S, S)
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            x = F.scaled_dot_product_attention(q, k, v)
        x = x.view(B, self.num_heads, H, W, -1).permute(0, 2, 3, 1, 4).reshape(B, H, W, -1)
        return self.proj(x)


def window_partition(x: Tensor, window_size: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad a channels-last token grid to whole windows and stack the windows along the batch axis."""
    B, H, W, C = x.shape
    pad_h, pad_w = (window_size - H % window_size) % window_size, (window_size - W % window_size) % window_size
    if pad_h > 0 or pad_w > 0:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))  # zeros at the bottom and right
    Hp, Wp = H + pad_h, W + pad_w
    x = x.view(B, Hp // window_size, window_size, Wp // window_size, window_size, C)
    windows = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size, window_size, C)
    return windows, (Hp, Wp)


def window_unpartition(windows: Tensor, window_size: int, pad_hw: tuple[int, int], hw: tuple[int, int]) -> Tensor:
    """Inverse of window_partition: stitch the windows back and drop the padding."""
    (Hp, Wp), (H, W) = pad_hw, hw
    B = windows.shape[0] // (Hp * Wp // window_size // window_size)
    x = windows.view(B, Hp // window_size, Wp // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, Hp, Wp, -1)
    if Hp > H or Wp > W:
        x = x[:, :H, :W, :].contiguous()
    return x


class Block(nn.Module):
    """SAM transformer block: pre-norm attention (within 14x14 windows, or global) and MLP, both residual."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        act_layer: type[nn.Module] = nn.GELU,
        use_rel_pos: bool = False,
        rel_pos_zero_init: bool = True,
        window_size: int = 0,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        attn_size = input_size if window_size == 0 else (window_size, window_size)
        self.attn = Attention(dim, num_heads, qkv_bias, use_rel_pos, rel_pos_zero_init, attn_size)
        self.norm2 = norm_layer(dim)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio), act_layer)
        self.window_size = window_size

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:  # pad to whole windows and fold them into the batch axis
            H, W = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window_size)
        x = self.attn(x)
        if self.window_size > 0:  # back to the token grid, padding dropped
            x = window_unpartition(x, self.window_size, pad_hw, (H, W))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class ImageEncoderViT(nn.Module):
    """SAM-B encoder: patch embedding, 12 blocks, conv neck to 256 channels, then net_2/net_3 (stride 2) to 1024."""

    def __init__(
        self,
        img_size: int = 1024,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        out_chans: int = 256,
        qkv_bias: bool = True,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        act_layer: type[nn.Module] = nn.GELU,
        use_abs_pos: bool = True,
        use_rel_pos: bool = False,
        rel_pos_zero_init: bool = True,
        window_size: int = 0,
        global_attn_indexes: tuple[int, ...] = (),
        downsample_channels: tuple[int, int] = (512, 1024),  # DeepSeek-OCR's net_2 / net_3 widths
    ) -> None:
        super().__init__()
        grid = img_size // patch_size
        patch = (patch_size, patch_size)
        self.patch_embed = PatchEmbed(patch, patch, in_chans=in_chans, embed_dim=embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, embed_dim)) if use_abs_pos else None
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, norm_layer, act_layer, use_rel_pos, rel_pos_zero_init,
                  window_size=0 if i in global_attn_indexes else window_size, input_size=(grid, grid))
            for i in range(depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )
        c2, c3 = downsample_channels
        self.net_2 = nn.Conv2d(out_chans, c2, kernel_size=3, stride=2, padding=1, bias=False)
        self.net_3 = nn.Conv2d(c2, c3, kernel_size=3, stride=2, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        if self.pos_embed is not None:  # the 64x64 table is resized for views other than 1024 px
            x = x + get_abs_pos_sam(self.pos_embed, x.shape[1])
        for blk in self.blocks:
            x = blk(x)
        x = self.neck(x.permute(0, 3, 1, 2))
        x2 = self.net_2(x)
        return self.net_3(x2.clone())  # the clone is upstream's: one extra copy of net_2's output


def build_sam_vit_b(cfg: SamConfig | None = None) -> ImageEncoderViT:
    """DeepSeek-OCR's SAM-B encoder with the values of model.yaml's `sam` scope."""
    cfg = cfg or SamConfig.from_scope()
    return ImageEncoderViT(
        img_size=cfg.img_size, patch_size=cfg.patch_size, in_chans=cfg.in_chans, embed_dim=cfg.embed_dim,
        depth=cfg.depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, out_chans=cfg.out_chans,
        qkv_bias=cfg.qkv_bias, norm_layer=partial(nn.LayerNorm, eps=cfg.layer_norm_eps), use_rel_pos=cfg.use_rel_pos,
        window_size=cfg.window_size, global_attn_indexes=tuple(cfg.global_attn_indexes),
        downsample_channels=(cfg.net_2_channels, cfg.net_3_channels),
    )


# ---------------------------------------------------------------- CLIP-L (VitModel)


class LayerNormfp32(nn.LayerNorm):
    """LayerNorm on the input upcast to fp32, result cast back to the input dtype. The weight and bias
    are used as they are, so they must be fp32 too (upstream's fp32norm option; OCR does not set it)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.to(torch.float32)).to(x.dtype)


def get_abs_pos(abs_pos: Tensor, tgt_size: int) -> Tensor:
    """Resize CLIP's (1, 1 + 16*16, C) position table to 1 + side² rows: class row kept, grid resized bicubically."""
    dim = abs_pos.shape[-1]
    table = abs_pos.squeeze(0)
    cls_pos, grid_pos = table[:1], table[1:]
    src, tgt = int(math.sqrt(table.shape[0] - 1)), int(math.sqrt(tgt_size))
    if src == tgt:
        return abs_pos
    grid = grid_pos.view(1, src, src, dim).permute(0, 3, 1, 2).contiguous()
    grid = grid.to(torch.float32)  # referenced until the function returns, as upstream's copy is
    resized = F.interpolate(grid, size=(tgt, tgt), mode="bicubic", antialias=True, align_corners=False).to(abs_pos.dtype)
    resized = resized.permute(0, 2, 3, 1).view(tgt * tgt, dim)
    return torch.cat([cls_pos, resized], dim=0).view(1, tgt * tgt + 1, dim)


class CLIPVisionEmbeddings(nn.Module):
    """Class token + patch embeddings (from pixels, or SAM's features passed in) + absolute positions."""

    def __init__(
        self, hidden_size: int = 1024, image_size: int = 224, patch_size: int = 14, num_channels: int = 3
    ) -> None:
        super().__init__()
        self.embed_dim = hidden_size
        self.class_embedding = nn.Parameter(torch.randn(hidden_size))
        self.patch_embedding = nn.Conv2d(num_channels, hidden_size, patch_size, stride=patch_size, bias=False)
        self.num_positions = (image_size // patch_size) ** 2 + 1
        self.position_embedding = nn.Embedding(self.num_positions, hidden_size)
        self.register_buffer("position_ids", torch.arange(self.num_positions)[None], persistent=False)

    def forward(self, pixel_values: Tensor, patch_embeds: Tensor | None) -> Tensor:
        batch = pixel_values.shape[0]
        if patch_embeds is None:  # DeepSeek-OCR always passes SAM's (B, 1024, h, w) output instead
            patch_embeds = self.patch_embedding(pixel_values)
        patch_embeds = patch_embeds.flatten(2).transpose(1, 2)  # (B, h*w, C), a view
        class_embeds = self.class_embedding.expand(batch, 1, -1)
        embeddings = torch.cat([class_embeds, patch_embeds], dim=1)
        return embeddings + get_abs_pos(self.position_embedding(self.position_ids), embeddings.shape[1])


def quick_gelu(x: Tensor) -> Tensor:
    """CLIP's GELU approximation x * sigmoid(1.702 x)."""
    return x * torch.sigmoid(1.702 * x)


class NoTPFeedForward(nn.Module):
    """CLIP MLP: fc2(quick_gelu(fc1(x))), both with bias."""

    def __init__(self, cfg: ClipConfig, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim, bias=True)
        self.fc2 = nn.Linear(hidden_dim, dim, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(quick_gelu(self.fc1(x)))


class NoTPAttention(nn.Module):
    """CLIP self-attention: fused qkv projection, fused SDPA kernel, no mask (every patch sees every patch)."""

    def __init__(self, cfg: ClipConfig) -> None:
        super().__init__()
        self.num_heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.attn_drop = cfg.attention_dropout
        self.qkv_proj = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=True)
        self.out_proj = nn.Linear(cfg.hidden_size, cfg.hidden_size, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        bsz, seqlen, _ = x.shape
        xqkv = self.qkv_proj(x).view(bsz, seqlen, 3, self.num_heads, self.head_dim)
        xq, xk, xv = xqkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, S, d_h)
        out = F.scaled_dot_product_attention(xq, xk, xv, dropout_p=self.attn_drop if self.training else 0.0)
        return self.out_proj(out.permute(0, 2, 1, 3).reshape(bsz, seqlen, -1))


class NoTPTransformerBlock(nn.Module):
    """CLIP pre-LN block: x + attn(ln1(x)), then + mlp(ln2(x))."""

    def __init__(self, cfg: ClipConfig, layer_id: int) -> None:
        super().__init__()
        self.layer_id = layer_id
        self.self_attn = NoTPAttention(cfg)
        self.mlp = NoTPFeedForward(cfg, dim=cfg.hidden_size, hidden_dim=cfg.ffn_hidden_size)
        self.layer_norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layernorm_epsilon)
        self.layer_norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layernorm_epsilon)

    def forward(self, x: Tensor) -> Tensor:
        attended = self.self_attn(self.layer_norm1(x))  # referenced to the end, as upstream's `residual`
        h = x + attended
        return h + self.mlp(self.layer_norm2(h))


class NoTPTransformer(nn.Module):
    """The stack of CLIP blocks."""

    def __init__(self, cfg: ClipConfig) -> None:
        super().__init__()
        self.num_layers = cfg.num_layers
        self.layers = nn.ModuleList(NoTPTransformerBlock(cfg, layer_id + 1) for layer_id in range(cfg.num_layers))

    def forward(self, hidden_states: Tensor) -> Tensor:
        for layer in self.layers:
            hidden_states = layer(hidden_states)
        return hidden_states


class VitModel(nn.Module):
    """CLIP-L vision transformer: embeddings, pre-LayerNorm, 24 blocks (no post-LayerNorm in the checkpoint)."""

    def __init__(self, cfg: ClipConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or ClipConfig.from_scope()
        self.embeddings = CLIPVisionEmbeddings(cfg.hidden_size, cfg.image_size, cfg.patch_size, cfg.num_channels)
        self.transformer = NoTPTransformer(cfg)
        # Spelling as in the checkpoint; a plain LayerNorm (upstream's fp32norm switch is off for OCR).
        self.pre_layrnorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layernorm_epsilon)

    def forward(self, x: Tensor, patch_embeds: Tensor | None) -> Tensor:
        # Both the embeddings and their normalised copy stay referenced while the blocks run.
        x = self.embeddings(x, patch_embeds)
        hidden_states = self.pre_layrnorm(x)
        return self.transformer(hidden_states)


# ---------------------------------------------------------------- projector


class MlpProjector(nn.Module):
    """Vision-to-language projector. DeepSeek-OCR uses the `linear` type, one Linear(2048, 1280); the
    identity, mlp_gelu and downsample_mlp_gelu types are implemented as documented variants, the
    feature-splitting types and the token-pooling and fusion switches are not."""

    def __init__(self, cfg: ProjectorConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or ProjectorConfig.from_scope()
        self.projector_type = cfg.projector_type
        self.downsample_ratio = cfg.downsample_ratio
        if cfg.projector_type == "identity":
            self.layers: nn.Module = nn.Identity()
        elif cfg.projector_type == "linear":
            self.layers = nn.Linear(cfg.input_dim, cfg.n_embed)
        elif cfg.projector_type == "mlp_gelu":  # Linear, then (GELU, Linear) for every further level of depth
            stack: list[nn.Module] = [nn.Linear(cfg.input_dim, cfg.n_embed)]
            for _ in range(1, cfg.depth):
                stack += [nn.GELU(), nn.Linear(cfg.n_embed, cfg.n_embed)]
            self.layers = nn.Sequential(*stack)
        elif cfg.projector_type == "downsample_mlp_gelu":  # r x r neighbouring tokens merged into one first
            merged, hidden = cfg.input_dim * cfg.downsample_ratio ** 2, cfg.n_embed * cfg.mlp_ratio
            stack = [nn.Linear(merged, hidden)]
            for _ in range(1, cfg.depth - 1):
                stack += [nn.GELU(), nn.Linear(hidden, hidden)]
            stack += [nn.GELU(), nn.Linear(hidden, cfg.n_embed)]
            self.layers = nn.Sequential(*stack)
        else:
            raise NotImplementedError(f"projector_type {cfg.projector_type!r} (DeepSeek-OCR uses 'linear')")

    def forward(self, x: Tensor) -> Tensor:
        if self.projector_type == "downsample_mlp_gelu":
            r = self.downsample_ratio
            batch, tokens, width = x.shape
            side = int(tokens**0.5)
            pad = r - side % r if side % r else 0
            x = x.reshape(batch, side, side, width)
            if pad > 0:  # zeros at the bottom and right, up to a multiple of r
                x = F.pad(x, (0, 0, 0, pad, 0, pad), "constant", 0)
            x = F.unfold(x.permute(0, 3, 1, 2), kernel_size=r, stride=r, padding=0)  # (B, width·r², tokens/r²)
            x = x.permute(0, 2, 1)
        return self.layers(x)
