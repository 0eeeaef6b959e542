#!/usr/bin/python3
"""Trains latentfarm's demo model from scratch: a tiny Stable Diffusion (CLIP
text encoder + BPE tokenizer, UNet2DConditionModel, AutoencoderKL, SD's
scaled-linear noise schedule and epsilon objective) on synthetic 32x32
pictures of coloured shapes, and writes it as a diffusers folder with float16
safetensors. Deterministic from --seed on the same machine and thread count.

See README.md in this folder for the command that made models/demo.
"""

import argparse
import json
import math
import os
import sys
import time

# Under a shared, loaded CPU, spinning OpenMP workers cost more than they
# save (a 10-30x slowdown was seen here); must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import data  # noqa: E402
import export  # noqa: E402
from models import AutoencoderKL, CLIPTextModel, UNet2DConditionModel  # noqa: E402

VAE = dict(in_channels=3, out_channels=3, block_out_channels=[16, 32, 64], layers_per_block=1,
           latent_channels=4, norm_num_groups=8, sample_size=32)
UNET = dict(in_channels=4, out_channels=4, block_out_channels=[48, 96], layers_per_block=1,
            norm_num_groups=16, norm_eps=1e-5, attention_head_dim=4, cross_attention_dim=64,
            down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"], sample_size=8)
TEXT = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, layer_norm_eps=1e-5)
CHECK_STEP = 100  # parameters are hashed here so a short re-run can be compared

SHEET_PROMPTS = [f"a {c} {s} on a {bg} background" for c, s, bg in [
    ("red", "circle", "blue"), ("green", "square", "yellow"), ("blue", "triangle", "white"),
    ("yellow", "diamond", "black"), ("white", "circle", "red"), ("black", "square", "green"),
    ("red", "triangle", "yellow"), ("blue", "diamond", "green"), ("green", "circle", "black"),
    ("yellow", "square", "blue"), ("white", "triangle", "black"), ("black", "diamond", "white")]] + [
    "a small red circle on a white background", "a large blue square on a yellow background",
    "a small green triangle on a black background", "a large yellow diamond on a red background",
    "a red circle left of a blue square on a white background",
    "a red circle right of a blue square on a white background",
    "a yellow triangle left of a green diamond on a black background",
    "a white square right of a black circle on a blue background"]


class Log:
    def __init__(self, path):
        self.f = open(path, "w")
        self.t0 = time.time()

    def __call__(self, msg):
        line = f"[{time.time() - self.t0:8.1f}s] {msg}"
        print(line, flush=True)
        self.f.write(line + "\n")
        self.f.flush()


def alphas_cumprod():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


def lr_at(step, base, warmup, total=0):
    """Linear warmup, then constant, or cosine down to 10% when total is set."""
    lr = base * min(1.0, (step + 1) / warmup)
    if total and step >= warmup:
        lr *= 0.55 + 0.45 * math.cos(math.pi * (step - warmup) / max(1, total - warmup))
    return lr


def train_vae(args, imgs, log, gen):
    vae = AutoencoderKL(VAE)
    opt = torch.optim.Adam(vae.parameters(), lr=args.vae_lr)
    x_all = torch.from_numpy(imgs).float() / 127.5 - 1
    run = 0.0
    for step in range(args.vae_steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.vae_lr, 100, args.vae_steps)
        idx = torch.randint(0, len(x_all), (args.vae_batch,), generator=gen)
        x = x_all[idx]
        mean, logvar = vae.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=gen)
        rec = F.mse_loss(vae.decode(z), x)
        kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).mean()
        loss = rec + args.kl_weight * kl
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        run += rec.item()
        if (step + 1) % 50 == 0:
            log(f"vae step {step + 1} rec_mse {run / 50:.5f} kl {kl.item():.3f}")
            run = 0.0
        if step + 1 == CHECK_STEP:
            log(f"hash vae@{CHECK_STEP} {export.params_hash(vae)}")
        if step + 1 == args.stop_after:
            break
    log(f"hash vae@end {export.params_hash(vae)}")
    return vae


@torch.no_grad()
def encode_all(vae, imgs):
    means, stds = [], []
    for i in range(0, len(imgs), 256):
        x = torch.from_numpy(imgs[i:i + 256]).float() / 127.5 - 1
        m, lv = vae.encode(x)
        means.append(m)
        stds.append(torch.exp(0.5 * lv))
    return torch.cat(means), torch.cat(stds)


def train_unet(args, vocab, means, stds, ids, empty, scaling, log, gen):
    te = CLIPTextModel(dict(TEXT, vocab_size=vocab))
    unet = UNet2DConditionModel(UNET)
    params = list(te.parameters()) + list(unet.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    ema = [p.detach().clone() for p in params]
    first = 0
    if args.resume:
        # Everything the loop carries, so a resumed run is bit-identical to
        # an uninterrupted one (the learning rate does not depend on the
        # total number of steps).
        ck = torch.load(args.resume)
        te.load_state_dict(ck["te"])
        unet.load_state_dict(ck["unet"])
        opt.load_state_dict(ck["opt"])
        for e, v in zip(ema, ck["ema"]):
            e.copy_(v)
        gen.set_state(ck["gen"])
        first = ck["step"]
        log(f"resumed {args.resume} at step {first}: hash {export.params_hash(te, unet)}")
    acp = alphas_cumprod()
    run = 0.0
    for step in range(first, args.unet_steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.lr, 200)
        idx = torch.randint(0, len(means), (args.batch,), generator=gen)
        z0 = (means[idx] + stds[idx] * torch.randn(means[idx].shape, generator=gen)) * scaling
        tok = ids[idx].clone()
        drop = torch.rand(args.batch, generator=gen) < 0.1  # empty prompts for guidance
        tok[drop] = empty
        t = torch.randint(0, 1000, (args.batch,), generator=gen)
        noise = torch.randn(z0.shape, generator=gen)
        a = acp[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        loss = F.mse_loss(unet(zt, t, te(tok)), noise)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            d = min(args.ema, (1 + step) / (10 + step))
            for e, p in zip(ema, params):
                e.mul_(d).add_(p.detach(), alpha=1 - d)
        run += loss.item()
        if (step + 1) % 50 == 0:
            log(f"unet step {step + 1} loss {run / 50:.5f} lr {opt.param_groups[0]['lr']:.2e}")
            run = 0.0
        if step + 1 == CHECK_STEP:
            log(f"hash unet@{CHECK_STEP} {export.params_hash(te, unet)}")
        if (step + 1) % args.save_every == 0:
            path = os.path.join(args.work, f"unet-{step + 1:05d}.pt")
            torch.save({"te": te.state_dict(), "unet": unet.state_dict(), "opt": opt.state_dict(),
                        "ema": ema, "gen": gen.get_state(), "step": step + 1}, path)
            log(f"hash unet@{step + 1} {export.params_hash(te, unet)} saved {path}")
        if step + 1 == args.stop_after:
            break
    log(f"hash unet@end (raw) {export.params_hash(te, unet)}")
    with torch.no_grad():
        for e, p in zip(ema, params):
            p.copy_(e)
    return te, unet


def finetune_decoder(args, vae, imgs, log):
    """Trains the decoder (and post_quant_conv) alone on latents from the
    frozen encoder, with L1 + MSE: sharper corners, same latent space, so
    the UNet is unaffected (Stable Diffusion's ft-MSE decoder did the same)."""
    gen = torch.Generator().manual_seed(args.seed + 2)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    opt = torch.optim.Adam(params, lr=args.dec_lr)
    x_all = torch.from_numpy(imgs).float() / 127.5 - 1
    run = 0.0
    for step in range(args.dec_steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.dec_lr, 100, args.dec_steps)
        x = x_all[torch.randint(0, len(x_all), (args.vae_batch,), generator=gen)]
        with torch.no_grad():
            mean, logvar = vae.encode(x)
            z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=gen)
        rec = vae.decode(z)
        mse = F.mse_loss(rec, x)
        loss = F.l1_loss(rec, x) + mse
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        run += mse.item()
        if (step + 1) % 50 == 0:
            log(f"decoder step {step + 1} rec_mse {run / 50:.5f}")
            run = 0.0
    log(f"hash decoder@end {export.params_hash(vae)}")


def round_f16(*modules):
    """Rounds weights through float16, as they will be shipped."""
    with torch.no_grad():
        for m in modules:
            for p in m.state_dict().values():
                p.copy_(p.half().float())


@torch.no_grad()
def sample(te, unet, vae, tok, prompts, scaling, seed, steps=20, cfg=5.0):
    """Euler (diffusers EulerDiscreteScheduler, linspace spacing), CFG."""
    acp = alphas_cumprod().double()
    all_sigmas = ((1 - acp) / acp).sqrt()
    ts = np.linspace(0, 999, steps)[::-1].copy()
    sig = np.interp(ts, np.arange(1000), all_sigmas.numpy())
    sig = torch.tensor(np.append(sig, 0.0), dtype=torch.float32)
    n = len(prompts)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, 4, 8, 8), generator=g) * sig[0]
    cond = te(torch.tensor([tok.encode_padded(p) for p in prompts]))
    unc = te(torch.tensor([tok.encode_padded("")] * n))
    for i in range(steps):
        xin = x / (sig[i] ** 2 + 1).sqrt()
        t = torch.full((n,), float(ts[i]))
        e_u, e_c = unet(torch.cat([xin, xin]), torch.cat([t, t]), torch.cat([unc, cond])).chunk(2)
        eps = e_u + cfg * (e_c - e_u)
        x = x + (sig[i + 1] - sig[i]) * eps
    img = vae.decode(x / scaling)
    return ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def write_model(out, te, unet, vae, tok, scaling):
    export.write_json(os.path.join(out, "model_index.json"), export.MODEL_INDEX)
    export.write_json(os.path.join(out, "scheduler", "scheduler_config.json"), export.SCHEDULER)
    bpe.write_files(tok, os.path.join(out, "tokenizer"))
    tcfg = dict(TEXT, vocab_size=len(tok.encoder))
    export.write_json(os.path.join(out, "text_encoder", "config.json"),
                      export.text_config(tcfg, tok.encoder[bpe.BOS], tok.encoder[bpe.EOS]))
    export.write_safetensors(os.path.join(out, "text_encoder", "model.safetensors"), export.state_f16(te))
    export.write_json(os.path.join(out, "unet", "config.json"), export.unet_config(UNET))
    export.write_safetensors(os.path.join(out, "unet", "diffusion_pytorch_model.safetensors"), export.state_f16(unet))
    export.write_json(os.path.join(out, "vae", "config.json"), export.vae_config(VAE, scaling))
    export.write_safetensors(os.path.join(out, "vae", "diffusion_pytorch_model.safetensors"), export.state_f16(vae))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="diffusers folder to write (models/demo)")
    p.add_argument("--work", required=True, help="folder for train.log, vae.pt and samples.png")
    p.add_argument("--seed", type=int, default=20250101)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--images", type=int, default=16000)
    p.add_argument("--pair-fraction", type=float, default=0.2)
    p.add_argument("--vae-steps", type=int, default=1500)
    p.add_argument("--vae-batch", type=int, default=16)
    p.add_argument("--vae-lr", type=float, default=1e-3)
    p.add_argument("--kl-weight", type=float, default=1e-4)
    p.add_argument("--dec-steps", type=int, default=3000)
    p.add_argument("--dec-lr", type=float, default=5e-4)
    p.add_argument("--decoder-checkpoint", help="skip the decoder fine-tune: load this vae-ft.pt")
    p.add_argument("--unet-steps", type=int, default=8000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=8e-4)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--vae-checkpoint", help="skip VAE training: load this vae.pt from an earlier run")
    p.add_argument("--save-every", type=int, default=1000, help="UNet checkpoint interval (steps)")
    p.add_argument("--resume", help="continue the UNet phase from a unet-NNNNN.pt of an earlier run")
    p.add_argument("--stop-after", type=int, default=0,
                   help="stop each phase after N steps (reproducibility check); writes no model")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    os.makedirs(args.work, exist_ok=True)
    log = Log(os.path.join(args.work, "train.log"))
    log(f"args {json.dumps(vars(args), sort_keys=True)} torch {torch.__version__}")

    tok = bpe.build(data.WORDS)
    imgs, caps = data.dataset(args.seed, args.images, args.pair_fraction)
    ids = torch.tensor([tok.encode_padded(c) for c in caps])
    empty = torch.tensor(tok.encode_padded(""))
    log(f"data {len(caps)} images, vocab {len(tok.encoder)}, "
        f"data hash {export.hashlib.sha256(imgs.tobytes() + ids.numpy().tobytes()).hexdigest()[:16]}")
    gen = torch.Generator().manual_seed(args.seed)

    if args.vae_checkpoint:
        vae = AutoencoderKL(VAE)
        vae.load_state_dict(torch.load(args.vae_checkpoint))
        log(f"hash vae@end {export.params_hash(vae)} (loaded {args.vae_checkpoint})")
    else:
        vae = train_vae(args, imgs, log, gen)
        if not args.stop_after:
            torch.save(vae.state_dict(), os.path.join(args.work, "vae.pt"))
    gen = torch.Generator().manual_seed(args.seed + 1)
    round_f16(vae)
    vae.eval()
    means, stds = encode_all(vae, imgs)
    scaling = float(f"{1 / means.std().item():.4g}")
    log(f"latents std {means.std().item():.4f} mean {means.mean().item():.4f} "
        f"posterior std {stds.mean().item():.4f} -> scaling_factor {scaling}")

    te, unet = train_unet(args, len(tok.encoder), means, stds, ids, empty, scaling, log, gen)
    if args.stop_after:
        log("stopped early: no model written")
        return
    if args.decoder_checkpoint:
        vae.load_state_dict(torch.load(args.decoder_checkpoint))
        log(f"hash decoder@end {export.params_hash(vae)} (loaded {args.decoder_checkpoint})")
    else:
        finetune_decoder(args, vae, imgs, log)
        torch.save(vae.state_dict(), os.path.join(args.work, "vae-ft.pt"))
    round_f16(te, unet)
    log(f"hash final (ema, f16) {export.params_hash(te, vae, unet)}")
    write_model(args.out, te, unet, vae, tok, scaling)
    imgs_s = sample(te, unet, vae, tok, SHEET_PROMPTS, scaling, args.seed)
    export.write_png(os.path.join(args.work, "samples.png"), export.sheet(imgs_s, 4).repeat(4, 0).repeat(4, 1))
    with open(os.path.join(args.work, "samples.txt"), "w") as f:
        f.write("\n".join(f"{i}: {p}" for i, p in enumerate(SHEET_PROMPTS)) + "\n")
    log(f"done: model in {args.out}, sample sheet {args.work}/samples.png")


if __name__ == "__main__":
    main()
