"""A tiny, randomly initialised Music Flamingo pair that llama.cpp's mtmd loads like the real one.

``write_tiny_flamingo(folder)`` writes two GGUF files with the ``gguf`` package:

* ``music-flamingo-tiny.F32.gguf``: a ``qwen2`` language model (Music Flamingo's decoder is
  Qwen2.5-7B) with 2 layers of width 64 and a working byte-level BPE tokenizer (``gpt2`` model,
  ``qwen2`` pre-tokenizer): the 256 byte tokens plus the ChatML specials and ``<sound>``, no
  merges, and a ChatML chat template;
* ``mmproj-music-flamingo-tiny-f32.gguf``: an audio projector of type ``musicflamingo``, the
  layout convert_hf_to_gguf.py writes for AudioFlamingo3 (Whisper-style encoder ``a.*``: two
  conv1d, learned positions for 1500 frames, ``a.blk.N.*`` pre-norm blocks, ``a.post_ln``; the
  two-layer GELU projector ``mm.a.mlp.1/2``), with 128 mel bins and 1 block of width 32.

The tensor names and hyper-parameter keys are those clip.cpp (clip-impl.h, ``load_hparams``,
``load_tensors``) and llama.cpp's qwen2 loader read; shapes are given in PyTorch order and the
gguf writer reverses them into ggml order, as the converter does. Output embeddings are tied to
the input ones; rows of the control tokens and of non-printable bytes are zero, so greedy
decoding of this random model never ends early and prints ASCII (tests compare texts). Both files
together are about 1 MB and are written in well under a second.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

N_EMBD = 64  # text model width == projector output width
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 128

A_EMBD = 32  # audio encoder width
A_HEAD = 2
A_FF = 64
A_LAYER = 1
N_MEL = 128  # Music Flamingo / Whisper large-v3 mel bins
N_AUDIO_POS = 1500  # 30 s of mel frames (3000) after the stride-2 conv

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<sound>")
# A few merges (llama.cpp refuses a BPE vocabulary without any); their results are tokens too.
MERGES = ("Ġ t", "Ġ a", "h e", "i n", "e r")

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map (the byte-level BPE alphabet)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def _vocab() -> tuple[list[str], list[int], np.ndarray]:
    """Tokens, their types and which rows may be predicted (printable ASCII bytes only)."""
    byte_map = _bytes_to_unicode()
    merged = [m.replace(" ", "") for m in MERGES]
    tokens = [byte_map[b] for b in range(256)] + merged + list(SPECIAL_TOKENS)
    types = [gguf.TokenType.NORMAL] * (256 + len(merged))
    types += [gguf.TokenType.CONTROL] * len(SPECIAL_TOKENS)
    predictable = np.zeros(len(tokens), dtype=bool)
    predictable[0x20:0x7F] = True
    return tokens, [int(t) for t in types], predictable


def _normal(rng: np.random.Generator, *shape: int, std: float) -> np.ndarray:
    return (rng.standard_normal(shape) * std).astype(np.float32)


def write_text_model(path: Path, seed: int = 0) -> Path:
    """The tiny qwen2 language model with its tokenizer and chat template."""
    rng = np.random.default_rng(seed)
    tokens, types, predictable = _vocab()
    head_dim = N_EMBD // N_HEAD
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_name("music-flamingo-tiny")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(4096)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(1_000_000.0)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(list(MERGES))
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_pad_token_id(tokens.index("<|endoftext|>"))
    writer.add_bos_token_id(tokens.index("<|endoftext|>"))
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    embd = _normal(rng, len(tokens), N_EMBD, std=1.0)
    embd[~predictable] = 0.0  # never predicted (tied output), so generation stays printable
    writer.add_tensor("token_embd.weight", embd)
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    kv = N_HEAD_KV * head_dim
    for i in range(N_LAYER):
        blk = f"blk.{i}"
        writer.add_tensor(f"{blk}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{blk}.attn_q.weight", _normal(rng, N_EMBD, N_EMBD, std=0.3))
        writer.add_tensor(f"{blk}.attn_q.bias", _normal(rng, N_EMBD, std=0.1))
        writer.add_tensor(f"{blk}.attn_k.weight", _normal(rng, kv, N_EMBD, std=0.3))
        writer.add_tensor(f"{blk}.attn_k.bias", _normal(rng, kv, std=0.1))
        writer.add_tensor(f"{blk}.attn_v.weight", _normal(rng, kv, N_EMBD, std=0.3))
        writer.add_tensor(f"{blk}.attn_v.bias", _normal(rng, kv, std=0.1))
        writer.add_tensor(f"{blk}.attn_output.weight", _normal(rng, N_EMBD, N_EMBD, std=0.3))
        writer.add_tensor(f"{blk}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{blk}.ffn_gate.weight", _normal(rng, N_FF, N_EMBD, std=0.3))
        writer.add_tensor(f"{blk}.ffn_up.weight", _normal(rng, N_FF, N_EMBD, std=0.3))
        writer.add_tensor(f"{blk}.ffn_down.weight", _normal(rng, N_EMBD, N_FF, std=0.3))
    _write(writer)
    return path


def write_audio_projector(path: Path, seed: int = 1, n_embd_text: int = N_EMBD) -> Path:
    """The tiny ``musicflamingo`` mmproj: Whisper-style encoder + 2-layer GELU projector.

    ``n_embd_text`` is the projector's output width; anything but the language model's
    width makes a mismatched pair (for error tests).
    """
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_type(gguf.GGUFType.MMPROJ)
    writer.add_name("music-flamingo-tiny mmproj")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_clip_projector_type(gguf.VisionProjectorType.MUSIC_FLAMINGO)
    writer.add_clip_has_audio_encoder(True)
    writer.add_audio_projection_dim(n_embd_text)
    writer.add_audio_embedding_length(A_EMBD)
    writer.add_audio_feed_forward_length(A_FF)
    writer.add_audio_block_count(A_LAYER)
    writer.add_audio_head_count(A_HEAD)
    writer.add_audio_num_mel_bins(N_MEL)
    writer.add_audio_attention_layernorm_eps(1e-5)

    # conv biases are (C, 1), as the converter unsqueezes them
    writer.add_tensor("a.conv1d.1.weight", _normal(rng, A_EMBD, N_MEL, 3, std=0.2))
    writer.add_tensor("a.conv1d.1.bias", _normal(rng, A_EMBD, 1, std=0.1))
    writer.add_tensor("a.conv1d.2.weight", _normal(rng, A_EMBD, A_EMBD, 3, std=0.3))
    writer.add_tensor("a.conv1d.2.bias", _normal(rng, A_EMBD, 1, std=0.1))
    writer.add_tensor("a.position_embd.weight", _normal(rng, N_AUDIO_POS, A_EMBD, std=0.1))
    for i in range(A_LAYER):
        blk = f"a.blk.{i}"
        writer.add_tensor(f"{blk}.ln1.weight", np.ones(A_EMBD, dtype=np.float32))
        writer.add_tensor(f"{blk}.ln1.bias", np.zeros(A_EMBD, dtype=np.float32))
        writer.add_tensor(f"{blk}.attn_q.weight", _normal(rng, A_EMBD, A_EMBD, std=0.3))
        writer.add_tensor(f"{blk}.attn_q.bias", _normal(rng, A_EMBD, std=0.1))
        writer.add_tensor(f"{blk}.attn_k.weight", _normal(rng, A_EMBD, A_EMBD, std=0.3))  # no bias
        writer.add_tensor(f"{blk}.attn_v.weight", _normal(rng, A_EMBD, A_EMBD, std=0.3))
        writer.add_tensor(f"{blk}.attn_v.bias", _normal(rng, A_EMBD, std=0.1))
        writer.add_tensor(f"{blk}.attn_out.weight", _normal(rng, A_EMBD, A_EMBD, std=0.3))
        writer.add_tensor(f"{blk}.attn_out.bias", _normal(rng, A_EMBD, std=0.1))
        writer.add_tensor(f"{blk}.ln2.weight", np.ones(A_EMBD, dtype=np.float32))
        writer.add_tensor(f"{blk}.ln2.bias", np.zeros(A_EMBD, dtype=np.float32))
        writer.add_tensor(f"{blk}.ffn_up.weight", _normal(rng, A_FF, A_EMBD, std=0.3))
        writer.add_tensor(f"{blk}.ffn_up.bias", _normal(rng, A_FF, std=0.1))
        writer.add_tensor(f"{blk}.ffn_down.weight", _normal(rng, A_EMBD, A_FF, std=0.3))
        writer.add_tensor(f"{blk}.ffn_down.bias", _normal(rng, A_EMBD, std=0.1))
    writer.add_tensor("a.post_ln.weight", np.ones(A_EMBD, dtype=np.float32))
    writer.add_tensor("a.post_ln.bias", np.zeros(A_EMBD, dtype=np.float32))
    out = n_embd_text
    writer.add_tensor("mm.a.mlp.1.weight", _normal(rng, out, A_EMBD, std=0.5))
    writer.add_tensor("mm.a.mlp.1.bias", _normal(rng, out, std=0.1))
    writer.add_tensor("mm.a.mlp.2.weight", _normal(rng, out, out, std=0.5))
    writer.add_tensor("mm.a.mlp.2.bias", _normal(rng, out, std=0.1))
    _write(writer)
    return path


def _write(writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_tiny_flamingo(folder: Path) -> tuple[Path, Path]:
    """Write the language model and its audio projector into ``folder``; return both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = write_text_model(folder / "music-flamingo-tiny.F32.gguf")
    mmproj = write_audio_projector(folder / "mmproj-music-flamingo-tiny-f32.gguf")
    return model, mmproj
