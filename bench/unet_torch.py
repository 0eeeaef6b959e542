#!/usr/bin/python3
"""PyTorch reference for `make bench`: an SD1.5-shaped UNet forward on the CPU.

The model is diffusers' UNet2DConditionModel with the runwayml/stable-diffusion-v1-5
unet/config.json, written here in plain PyTorch (no diffusers on this machine) with
the same layers, shapes and parameter count as diffusion/unet (859,520,964), and
attention computed the way diffusers' classic AttnProcessor does for torch < 2
(baddbmm, softmax, bmm). Weights are random with the same distribution as
unet.RandomValues (uniform, variance 1/fan_in; biases +-0.02; norm scales 1+-0.1).

It times one forward of batch 2 at 64x64 latents with a [2, 77, 768] context in
float32 after a warm-up, and prints one RESULT line that scripts/bench.sh reads:

    RESULT engine=torch batch=2 best_s=... mean_s=... peak_rss_gib=... params=...
"""

import argparse
import math
import resource
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

SD15_PARAMS = 859_520_964


class Resnet(nn.Module):
    """diffusers ResnetBlock2D: GN-SiLU-conv, + time projection, GN-SiLU-conv, + shortcut."""

    def __init__(self, cin, cout, temb=1280, groups=32, eps=1e-5):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb_act):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(temb_act)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class Attention(nn.Module):
    """diffusers Attention with the classic processor (torch < 2)."""

    def __init__(self, dim, ctx_dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(ctx_dim, dim, bias=False)
        self.to_v = nn.Linear(ctx_dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])

    def split(self, t):
        b, n, c = t.shape
        h = self.heads
        return t.reshape(b, n, h, c // h).permute(0, 2, 1, 3).reshape(b * h, n, c // h)

    def forward(self, x, ctx):
        b, n, c = x.shape
        q, k, v = self.split(self.to_q(x)), self.split(self.to_k(ctx)), self.split(self.to_v(ctx))
        scores = torch.baddbmm(
            torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype),
            q, k.transpose(-1, -2), beta=0, alpha=self.scale)
        probs = scores.softmax(dim=-1)
        del scores
        o = torch.bmm(probs, v)
        del probs
        o = o.reshape(b, self.heads, n, c // self.heads).permute(0, 2, 1, 3).reshape(b, n, c)
        return self.to_out[0](o)


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * inner)

    def forward(self, x):
        h, g = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(g)


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        # Same layout and names as diffusers: net.0 GEGLU, net.1 dropout, net.2 out.
        self.net = nn.ModuleList([GEGLU(dim, 4 * dim), nn.Identity(), nn.Linear(4 * dim, dim)])

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class TransformerBlock(nn.Module):
    """diffusers BasicTransformerBlock: self-attention, cross-attention, GEGLU FF."""

    def __init__(self, dim, ctx_dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, ctx_dim, heads)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, ctx):
        n = self.norm1(x)
        x = self.attn1(n, n) + x
        x = self.attn2(self.norm2(x), ctx) + x
        return self.ff(self.norm3(x)) + x


class Transformer2D(nn.Module):
    """diffusers Transformer2DModel (SD1.x: 1x1 conv projections, one block)."""

    def __init__(self, ch, ctx_dim=768, heads=8, groups=32):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch, eps=1e-6)
        self.proj_in = nn.Conv2d(ch, ch, 1)
        self.transformer_blocks = nn.ModuleList([TransformerBlock(ch, ctx_dim, heads)])
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x, ctx):
        b, c, h, w = x.shape
        t = self.proj_in(self.norm(x))
        t = t.permute(0, 2, 3, 1).reshape(b, h * w, c)
        for blk in self.transformer_blocks:
            t = blk(t, ctx)
        t = t.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
        return self.proj_out(t) + x


class Down(nn.Module):
    def __init__(self, cin, cout, attn, downsample):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(cin, cout), Resnet(cout, cout)])
        self.attentions = nn.ModuleList([Transformer2D(cout) for _ in range(2)]) if attn else None
        self.downsamplers = nn.ModuleList([nn.Conv2d(cout, cout, 3, stride=2, padding=1)]) if downsample else None

    def forward(self, x, temb, ctx):
        states = []
        for j, r in enumerate(self.resnets):
            x = r(x, temb)
            if self.attentions is not None:
                x = self.attentions[j](x, ctx)
            states.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            states.append(x)
        return x, states


class Up(nn.Module):
    def __init__(self, prev, cout, skip_in, attn, upsample):
        super().__init__()
        self.resnets = nn.ModuleList([
            Resnet((prev if j == 0 else cout) + (skip_in if j == 2 else cout), cout) for j in range(3)])
        self.attentions = nn.ModuleList([Transformer2D(cout) for _ in range(3)]) if attn else None
        self.upsamplers = nn.ModuleList([nn.Conv2d(cout, cout, 3, padding=1)]) if upsample else None

    def forward(self, x, skips, temb, ctx):
        for j, r in enumerate(self.resnets):
            x = r(torch.cat([x, skips.pop()], dim=1), temb)
            if self.attentions is not None:
                x = self.attentions[j](x, ctx)
        if self.upsamplers is not None:
            x = self.upsamplers[0](F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return x


class Mid(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(ch, ch), Resnet(ch, ch)])
        self.attentions = nn.ModuleList([Transformer2D(ch)])

    def forward(self, x, temb, ctx):
        x = self.resnets[0](x, temb)
        x = self.attentions[0](x, ctx)
        return self.resnets[1](x, temb)


class TimeEmbedding(nn.Module):
    def __init__(self, cin=320, dim=1280):
        super().__init__()
        self.linear_1 = nn.Linear(cin, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class UNet(nn.Module):
    """UNet2DConditionModel with the SD1.5 config (320/640/1280/1280, 8 heads, context 768)."""

    def __init__(self):
        super().__init__()
        ch = [320, 640, 1280, 1280]
        self.conv_in = nn.Conv2d(4, 320, 3, padding=1)
        self.time_embedding = TimeEmbedding()
        self.down_blocks = nn.ModuleList([
            Down(320 if i == 0 else ch[i - 1], ch[i], attn=i < 3, downsample=i < 3) for i in range(4)])
        self.mid_block = Mid(1280)
        rev = ch[::-1]
        self.up_blocks = nn.ModuleList([
            Up(rev[max(i - 1, 0)], rev[i], rev[min(i + 1, 3)], attn=i > 0, upsample=i < 3)
            for i in range(4)])
        self.conv_norm_out = nn.GroupNorm(32, 320, eps=1e-5)
        self.conv_out = nn.Conv2d(320, 4, 3, padding=1)

    @staticmethod
    def timestep_features(t, dim=320):
        half = dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # flip_sin_to_cos

    def forward(self, x, t, ctx):
        temb = F.silu(self.time_embedding(self.timestep_features(t)))
        h = self.conv_in(x)
        skips = [h]
        for d in self.down_blocks:
            h, s = d(h, temb, ctx)
            skips += s
        h = self.mid_block(h, temb, ctx)
        for u in self.up_blocks:
            h = u(h, skips, temb, ctx)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


def init_random(model, seed):
    """unet.RandomValues' distribution: the scale of activations stays sane."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                half = math.sqrt(3.0 / (p.numel() // p.shape[0]))
                p.uniform_(-half, half, generator=g)
            elif name.endswith(".bias"):
                p.uniform_(-0.02, 0.02, generator=g)
            else:
                p.uniform_(0.9, 1.1, generator=g)


def peak_rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30  # KiB on Linux


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=64, help="latent height and width")
    ap.add_argument("--runs", type=int, default=2, help="timed forwards after the warm-up")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = UNet().eval()
    init_random(model, 1)
    params = sum(p.numel() for p in model.parameters())
    if params != SD15_PARAMS:
        print(f"unet_torch: {params} parameters, want {SD15_PARAMS} (unet.NumParams(unet.SD15()))",
              file=sys.stderr)
        sys.exit(1)
    build_s = time.perf_counter() - t0

    b, s = args.batch, args.size
    x = torch.randn(b, 4, s, s)
    ctx = torch.randn(b, 77, 768)
    t = torch.tensor([999 - 250.5 * i for i in range(b)])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {params} params, "
          f"built in {build_s:.1f} s, peak RSS after build {peak_rss_gib():.2f} GiB", flush=True)

    times = []
    with torch.inference_mode():
        for i in range(args.warmup + args.runs):
            t0 = time.perf_counter()
            out = model(x, t, ctx)
            d = time.perf_counter() - t0
            if not torch.isfinite(out).all():
                print("unet_torch: non-finite output", file=sys.stderr)
                sys.exit(1)
            what = "warm-up" if i < args.warmup else "run"
            print(f"torch forward {i + 1} ({what}): {d:.2f} s", flush=True)
            if i >= args.warmup:
                times.append(d)
    print(f"RESULT engine=torch batch={b} best_s={min(times):.3f} mean_s={sum(times) / len(times):.3f} "
          f"peak_rss_gib={peak_rss_gib():.3f} params={params}", flush=True)


if __name__ == "__main__":
    main()
