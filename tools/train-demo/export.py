"""Writes the trained parts as a diffusers folder: config.json files and
float16 safetensors (8-byte little-endian header length, JSON header, raw
little-endian data), and a PNG writer for sample sheets."""

import hashlib
import json
import os
import struct
import zlib

import numpy as np
import torch


def state_f16(module):
    """state_dict as contiguous little-endian float16 numpy arrays, by name."""
    return {k: v.detach().to(torch.float16).contiguous().numpy().astype("<f2")
            for k, v in sorted(module.state_dict().items())}


def write_safetensors(path, tensors):
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name in sorted(tensors):
        a = tensors[name]
        raw = a.tobytes()
        header[name] = {"dtype": "F16", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def params_hash(*modules):
    """sha256 over every parameter's float32 bytes, in name order."""
    h = hashlib.sha256()
    for m in modules:
        for k, v in sorted(m.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def unet_config(cfg):
    return {
        "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.27.2",
        "act_fn": "silu", "attention_head_dim": cfg["attention_head_dim"],
        "block_out_channels": cfg["block_out_channels"], "center_input_sample": False,
        "cross_attention_dim": cfg["cross_attention_dim"],
        "down_block_types": cfg["down_block_types"], "downsample_padding": 1,
        "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": cfg["in_channels"],
        "layers_per_block": cfg["layers_per_block"], "mid_block_scale_factor": 1,
        "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": cfg["norm_eps"],
        "norm_num_groups": cfg["norm_num_groups"], "out_channels": cfg["out_channels"],
        "sample_size": cfg["sample_size"], "up_block_types": cfg["up_block_types"],
        "upcast_attention": False, "use_linear_projection": False,
    }


def vae_config(cfg, scaling):
    n = len(cfg["block_out_channels"])
    return {
        "_class_name": "AutoencoderKL", "_diffusers_version": "0.27.2", "act_fn": "silu",
        "block_out_channels": cfg["block_out_channels"],
        "down_block_types": ["DownEncoderBlock2D"] * n, "up_block_types": ["UpDecoderBlock2D"] * n,
        "in_channels": 3, "out_channels": 3, "latent_channels": cfg["latent_channels"],
        "layers_per_block": cfg["layers_per_block"], "norm_num_groups": cfg["norm_num_groups"],
        "sample_size": cfg["sample_size"], "scaling_factor": scaling, "force_upcast": True,
    }


def text_config(cfg, bos, eos):
    return {
        "architectures": ["CLIPTextModel"], "model_type": "clip_text_model",
        "attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "quick_gelu",
        "hidden_size": cfg["hidden_size"], "intermediate_size": cfg["intermediate_size"],
        "initializer_factor": 1.0, "initializer_range": 0.02, "layer_norm_eps": cfg["layer_norm_eps"],
        "max_position_embeddings": cfg["max_position_embeddings"],
        "num_attention_heads": cfg["num_attention_heads"], "num_hidden_layers": cfg["num_hidden_layers"],
        "projection_dim": cfg["hidden_size"], "vocab_size": cfg["vocab_size"],
        "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": eos, "torch_dtype": "float16",
    }


SCHEDULER = {
    "_class_name": "PNDMScheduler", "_diffusers_version": "0.27.2",
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000, "prediction_type": "epsilon", "set_alpha_to_one": False,
    "skip_prk_steps": True, "steps_offset": 1, "clip_sample": False, "trained_betas": None,
}

MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.27.2",
    "feature_extractor": [None, None], "requires_safety_checker": False, "safety_checker": [None, None],
    "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def write_png(path, rgb):
    """rgb: uint8 [H, W, 3]."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def sheet(images, cols, pad=2):
    """images: uint8 [N, 3, H, W] -> one uint8 [H', W', 3] grid on grey."""
    n, _, h, w = images.shape
    rows = (n + cols - 1) // cols
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 128, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y:y + h, x:x + w] = images[i].transpose(1, 2, 0)
    return out
