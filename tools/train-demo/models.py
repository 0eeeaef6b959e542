"""Small Stable Diffusion parts with exactly the diffusers / transformers
module structure, so that state_dict() keys are the weight names the Go
engine loads (CLIPTextModel, UNet2DConditionModel, AutoencoderKL).

Written for this project from the published architecture; only the subset the
demo model uses is implemented (no linear projections, no upcasting, default
resnet time shift, sinusoidal time embedding with flip_sin_to_cos).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


# ---------------------------------------------------------------- text encoder

class CLIPAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x, mask):
        b, n, d = x.shape
        h = self.heads
        q = self.q_proj(x).view(b, n, h, d // h).transpose(1, 2)
        k = self.k_proj(x).view(b, n, h, d // h).transpose(1, 2)
        v = self.v_proj(x).view(b, n, h, d // h).transpose(1, 2)
        w = (q @ k.transpose(-1, -2)) * (d // h) ** -0.5 + mask
        out = w.softmax(-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class CLIPMLP(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.fc1 = nn.Linear(dim, inner)
        self.fc2 = nn.Linear(inner, dim)

    def forward(self, x):
        x = self.fc1(x)
        x = x * torch.sigmoid(1.702 * x)  # quick_gelu
        return self.fc2(x)


class CLIPEncoderLayer(nn.Module):
    def __init__(self, dim, heads, inner, eps):
        super().__init__()
        self.self_attn = CLIPAttention(dim, heads)
        self.layer_norm1 = nn.LayerNorm(dim, eps=eps)
        self.mlp = CLIPMLP(dim, inner)
        self.layer_norm2 = nn.LayerNorm(dim, eps=eps)

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEmbeddings(nn.Module):
    def __init__(self, vocab, dim, positions):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, dim)
        self.position_embedding = nn.Embedding(positions, dim)


class CLIPEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList(
            CLIPEncoderLayer(cfg["hidden_size"], cfg["num_attention_heads"],
                             cfg["intermediate_size"], cfg["layer_norm_eps"])
            for _ in range(cfg["num_hidden_layers"]))


class CLIPTextTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["hidden_size"]
        self.embeddings = CLIPEmbeddings(cfg["vocab_size"], d, cfg["max_position_embeddings"])
        self.encoder = CLIPEncoder(cfg)
        self.final_layer_norm = nn.LayerNorm(d, eps=cfg["layer_norm_eps"])


class CLIPTextModel(nn.Module):
    """transformers.CLIPTextModel: returns last_hidden_state (SD's prompt embedding)."""

    def __init__(self, cfg):
        super().__init__()
        self.text_model = CLIPTextTransformer(cfg)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear):
                    nn.init.zeros_(m.bias)

    def forward(self, ids):
        t = self.text_model
        n = ids.shape[1]
        x = t.embeddings.token_embedding(ids) + t.embeddings.position_embedding.weight[:n]
        mask = torch.full((n, n), float("-inf")).triu(1)  # causal
        for layer in t.encoder.layers:
            x = layer(x, mask)
        return t.final_layer_norm(x)


# ------------------------------------------------------------------ shared

class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, groups, eps, temb=None):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        if temb is not None:
            self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.conv_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if hasattr(self, "conv_shortcut"):
            x = self.conv_shortcut(x)
        return x + h


class Downsample2D(nn.Module):
    """Stride-2 conv; the VAE encoder pads (0,1,0,1) and uses padding 0."""

    def __init__(self, ch, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def attention(q, k, v, heads):
    b, n, c = q.shape
    m = k.shape[1]
    q = q.view(b, n, heads, c // heads).transpose(1, 2)
    k = k.view(b, m, heads, c // heads).transpose(1, 2)
    v = v.view(b, m, heads, c // heads).transpose(1, 2)
    w = (q @ k.transpose(-1, -2)) * (c // heads) ** -0.5
    return (w.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)


# ------------------------------------------------------------------ UNet

class Attention(nn.Module):
    """diffusers Attention as used in BasicTransformerBlock (no q/k/v bias)."""

    def __init__(self, dim, heads, context_dim=None):
        super().__init__()
        self.heads = heads
        cd = context_dim or dim
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(cd, dim, bias=False)
        self.to_v = nn.Linear(cd, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])

    def forward(self, x, context=None):
        c = x if context is None else context
        return self.to_out[0](attention(self.to_q(x), self.to_k(c), self.to_v(c), self.heads))


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, 4 * dim), nn.Identity(), nn.Linear(4 * dim, dim)])

    def forward(self, x):
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, context_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, context):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class Transformer2DModel(nn.Module):
    def __init__(self, ch, heads, context_dim, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch, eps=1e-6)
        self.proj_in = nn.Conv2d(ch, ch, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(ch, heads, context_dim)])
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x, context):
        b, c, hh, ww = x.shape
        h = self.proj_in(self.norm(x))
        h = h.permute(0, 2, 3, 1).reshape(b, hh * ww, c)
        for blk in self.transformer_blocks:
            h = blk(h, context)
        h = h.reshape(b, hh, ww, c).permute(0, 3, 1, 2)
        return self.proj_out(h) + x


class Block(nn.Module):
    """Holds resnets / attentions / down- or upsamplers under diffusers' names."""


class TimestepEmbedding(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.linear_1 = nn.Linear(cin, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


def timestep_embedding(t, dim):
    """diffusers get_timestep_embedding with flip_sin_to_cos=True, shift 0."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    e = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(e), torch.sin(e)], dim=-1)


class UNet2DConditionModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        boc = cfg["block_out_channels"]
        g, eps, heads = cfg["norm_num_groups"], cfg["norm_eps"], cfg["attention_head_dim"]
        ctx, layers = cfg["cross_attention_dim"], cfg["layers_per_block"]
        temb = 4 * boc[0]
        self.c0 = boc[0]
        self.conv_in = nn.Conv2d(cfg["in_channels"], boc[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(boc[0], temb)
        self.down_blocks = nn.ModuleList()
        out = boc[0]
        for i, kind in enumerate(cfg["down_block_types"]):
            cin, out = out, boc[i]
            blk = Block()
            blk.resnets = nn.ModuleList(ResnetBlock2D(cin if j == 0 else out, out, g, eps, temb) for j in range(layers))
            if kind == "CrossAttnDownBlock2D":
                blk.attentions = nn.ModuleList(Transformer2DModel(out, heads, ctx, g) for _ in range(layers))
            if i < len(boc) - 1:
                blk.downsamplers = nn.ModuleList([Downsample2D(out, 1)])
            self.down_blocks.append(blk)
        self.mid_block = Block()
        self.mid_block.resnets = nn.ModuleList(ResnetBlock2D(boc[-1], boc[-1], g, eps, temb) for _ in range(2))
        self.mid_block.attentions = nn.ModuleList([Transformer2DModel(boc[-1], heads, ctx, g)])
        self.up_blocks = nn.ModuleList()
        rev = list(reversed(boc))
        out = rev[0]
        for i, kind in enumerate(cfg["up_block_types"]):
            prev, out, cin = out, rev[i], rev[min(i + 1, len(rev) - 1)]
            blk = Block()
            blk.resnets = nn.ModuleList(
                ResnetBlock2D((prev if j == 0 else out) + (cin if j == layers else out), out, g, eps, temb)
                for j in range(layers + 1))
            if kind == "CrossAttnUpBlock2D":
                blk.attentions = nn.ModuleList(Transformer2DModel(out, heads, ctx, g) for _ in range(layers + 1))
            if i < len(boc) - 1:
                blk.upsamplers = nn.ModuleList([Upsample2D(out)])
            self.up_blocks.append(blk)
        self.conv_norm_out = nn.GroupNorm(g, boc[0], eps=eps)
        self.conv_out = nn.Conv2d(boc[0], cfg["out_channels"], 3, padding=1)

    def forward(self, x, t, context):
        temb = self.time_embedding(timestep_embedding(t, self.c0))
        h = self.conv_in(x)
        skips = [h]
        for blk in self.down_blocks:
            for j, res in enumerate(blk.resnets):
                h = res(h, temb)
                if hasattr(blk, "attentions"):
                    h = blk.attentions[j](h, context)
                skips.append(h)
            if hasattr(blk, "downsamplers"):
                h = blk.downsamplers[0](h)
                skips.append(h)
        m = self.mid_block
        h = m.resnets[1](m.attentions[0](m.resnets[0](h, temb), context), temb)
        for blk in self.up_blocks:
            for j, res in enumerate(blk.resnets):
                h = res(torch.cat([h, skips.pop()], dim=1), temb)
                if hasattr(blk, "attentions"):
                    h = blk.attentions[j](h, context)
            if hasattr(blk, "upsamplers"):
                h = blk.upsamplers[0](h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


# ------------------------------------------------------------------ VAE

class VAEAttention(nn.Module):
    """Single-head self-attention of the VAE mid block (q/k/v with bias)."""

    def __init__(self, ch, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, ch, eps=1e-6)
        self.to_q = nn.Linear(ch, ch)
        self.to_k = nn.Linear(ch, ch)
        self.to_v = nn.Linear(ch, ch)
        self.to_out = nn.ModuleList([nn.Linear(ch, ch)])

    def forward(self, x):
        b, c, hh, ww = x.shape
        h = self.group_norm(x).view(b, c, hh * ww).transpose(1, 2)
        h = self.to_out[0](attention(self.to_q(h), self.to_k(h), self.to_v(h), 1))
        return h.transpose(1, 2).reshape(b, c, hh, ww) + x


def vae_mid(ch, groups):
    m = Block()
    m.resnets = nn.ModuleList(ResnetBlock2D(ch, ch, groups, 1e-6) for _ in range(2))
    m.attentions = nn.ModuleList([VAEAttention(ch, groups)])
    return m


def run_mid(m, h):
    return m.resnets[1](m.attentions[0](m.resnets[0](h)))


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        boc, g, layers = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["layers_per_block"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], boc[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        out = boc[0]
        for i in range(len(boc)):
            cin, out = out, boc[i]
            blk = Block()
            blk.resnets = nn.ModuleList(ResnetBlock2D(cin if j == 0 else out, out, g, 1e-6) for j in range(layers))
            if i < len(boc) - 1:
                blk.downsamplers = nn.ModuleList([Downsample2D(out, 0)])
            self.down_blocks.append(blk)
        self.mid_block = vae_mid(boc[-1], g)
        self.conv_norm_out = nn.GroupNorm(g, boc[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(boc[-1], 2 * cfg["latent_channels"], 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for blk in self.down_blocks:
            for res in blk.resnets:
                h = res(h)
            if hasattr(blk, "downsamplers"):
                h = blk.downsamplers[0](h)
        h = run_mid(self.mid_block, h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        boc, g, layers = cfg["block_out_channels"], cfg["norm_num_groups"], cfg["layers_per_block"]
        rev = list(reversed(boc))
        self.conv_in = nn.Conv2d(cfg["latent_channels"], rev[0], 3, padding=1)
        self.mid_block = vae_mid(rev[0], g)
        self.up_blocks = nn.ModuleList()
        out = rev[0]
        for i in range(len(rev)):
            prev, out = out, rev[i]
            blk = Block()
            blk.resnets = nn.ModuleList(ResnetBlock2D(prev if j == 0 else out, out, g, 1e-6) for j in range(layers + 1))
            if i < len(rev) - 1:
                blk.upsamplers = nn.ModuleList([Upsample2D(out)])
            self.up_blocks.append(blk)
        self.conv_norm_out = nn.GroupNorm(g, boc[0], eps=1e-6)
        self.conv_out = nn.Conv2d(boc[0], cfg["out_channels"], 3, padding=1)

    def forward(self, z):
        h = run_mid(self.mid_block, self.conv_in(z))
        for blk in self.up_blocks:
            for res in blk.resnets:
                h = res(h)
            if hasattr(blk, "upsamplers"):
                h = blk.upsamplers[0](h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class AutoencoderKL(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        lc = cfg["latent_channels"]
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(2 * lc, 2 * lc, 1)
        self.post_quant_conv = nn.Conv2d(lc, lc, 1)

    def encode(self, x):
        """Returns (mean, logvar) of the latent distribution, unscaled."""
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))
