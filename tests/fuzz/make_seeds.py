#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus: tiny, valid files of each format, made from scratch.

Run from the repository root: python3 tests/fuzz/make_seeds.py
"""
import json
import os
import random
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
rng = random.Random(1234)


def floats(n, scale=0.5):
    return [rng.uniform(-scale, scale) for _ in range(n)]


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- GGUF v3 ----
def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_kv(key, vtype, value):
    out = gguf_string(key) + struct.pack("<I", vtype)
    if vtype == 4:
        out += struct.pack("<I", value)
    elif vtype == 6:
        out += struct.pack("<f", value)
    elif vtype == 7:
        out += struct.pack("<?", value)
    elif vtype == 8:
        out += gguf_string(value)
    elif vtype == 9:
        etype, items = value
        out += struct.pack("<IQ", etype, len(items))
        for it in items:
            out += gguf_string(it) if etype == 8 else struct.pack({4: "<I", 5: "<i", 6: "<f"}[etype], it)
    return out


def gguf(kvs, tensors):
    align = 32
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for k in kvs:
        head += gguf_kv(*k)
    data = b""
    infos = b""
    for name, dims, values in tensors:
        while len(data) % align:
            data += b"\0"
        infos += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", 0, len(data))
        data += struct.pack(f"<{len(values)}f", *values)
    blob = head + infos
    while len(blob) % align:
        blob += b"\0"
    return blob + data


dim, hid, ctx, vocab = 8, 16, 4, 8
pieces = ["<unk>", "<s>", "</s>", "\u2581a", "b", "\u2581", "ab", "c"]
llama = gguf(
    [("general.architecture", 8, "llama"), ("llama.context_length", 4, ctx), ("llama.embedding_length", 4, dim),
     ("llama.block_count", 4, 1), ("llama.feed_forward_length", 4, hid), ("llama.attention.head_count", 4, 2),
     ("llama.attention.head_count_kv", 4, 1), ("llama.attention.layer_norm_rms_epsilon", 6, 1e-5),
     ("tokenizer.ggml.model", 8, "llama"), ("tokenizer.ggml.tokens", 9, (8, pieces)),
     ("tokenizer.ggml.scores", 9, (6, [0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -4.0, -5.0])),
     ("tokenizer.ggml.token_type", 9, (5, [2, 3, 3, 1, 1, 1, 1, 1])), ("tokenizer.ggml.bos_token_id", 4, 1),
     ("tokenizer.ggml.eos_token_id", 4, 2)],
    [("token_embd.weight", [dim, vocab], floats(dim * vocab)), ("output_norm.weight", [dim], [1.0] * dim),
     ("blk.0.attn_norm.weight", [dim], [1.0] * dim), ("blk.0.attn_q.weight", [dim, dim], floats(dim * dim)),
     ("blk.0.attn_k.weight", [dim, dim // 2], floats(dim * dim // 2)), ("blk.0.attn_v.weight", [dim, dim // 2], floats(dim * dim // 2)),
     ("blk.0.attn_output.weight", [dim, dim], floats(dim * dim)), ("blk.0.ffn_norm.weight", [dim], [1.0] * dim),
     ("blk.0.ffn_gate.weight", [dim, hid], floats(dim * hid)), ("blk.0.ffn_down.weight", [hid, dim], floats(dim * hid)),
     ("blk.0.ffn_up.weight", [dim, hid], floats(dim * hid))])
write("gguf", "tiny-llama.gguf", llama)
gtoks = ["a", "b", "c", "\u0120", "ab", "\u0120a", "abc", "<|endoftext|>"]
gpt2 = gguf(
    [("general.architecture", 8, "gpt2"), ("gpt2.context_length", 4, ctx), ("gpt2.embedding_length", 4, dim),
     ("gpt2.block_count", 4, 1), ("gpt2.feed_forward_length", 4, hid), ("gpt2.attention.head_count", 4, 2),
     ("gpt2.attention.layer_norm_epsilon", 6, 1e-5), ("tokenizer.ggml.model", 8, "gpt2"),
     ("tokenizer.ggml.tokens", 9, (8, gtoks)), ("tokenizer.ggml.token_type", 9, (5, [1] * 7 + [3])),
     ("tokenizer.ggml.merges", 9, (8, ["a b", "\u0120 a", "ab c"])), ("tokenizer.ggml.bos_token_id", 4, 7),
     ("tokenizer.ggml.eos_token_id", 4, 7)],
    [("token_embd.weight", [dim, vocab], floats(dim * vocab)), ("position_embd.weight", [dim, ctx], floats(dim * ctx)),
     ("output_norm.weight", [dim], [1.0] * dim), ("output_norm.bias", [dim], [0.0] * dim),
     ("blk.0.attn_norm.weight", [dim], [1.0] * dim), ("blk.0.attn_norm.bias", [dim], [0.0] * dim),
     ("blk.0.attn_qkv.weight", [dim, 3 * dim], floats(3 * dim * dim)), ("blk.0.attn_qkv.bias", [3 * dim], [0.0] * (3 * dim)),
     ("blk.0.attn_output.weight", [dim, dim], floats(dim * dim)), ("blk.0.attn_output.bias", [dim], [0.0] * dim),
     ("blk.0.ffn_norm.weight", [dim], [1.0] * dim), ("blk.0.ffn_norm.bias", [dim], [0.0] * dim),
     ("blk.0.ffn_up.weight", [dim, hid], floats(dim * hid)), ("blk.0.ffn_up.bias", [hid], [0.0] * hid),
     ("blk.0.ffn_down.weight", [hid, dim], floats(dim * hid)), ("blk.0.ffn_down.bias", [dim], [0.0] * dim)])
write("gguf", "tiny-gpt2.gguf", gpt2)

# ---- safetensors ----
def safetensors(tensors):
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


write("safetensors", "two.safetensors", safetensors([
    ("a.weight", "F32", [2, 3], struct.pack("<6f", *floats(6))),
    ("b.bias", "F16", [4], struct.pack("<4e", 1.0, -2.0, 0.5, 0.25)),
    ("c", "BF16", [1, 2], b"\x80\x3f\x00\x40")]))

# ---- config.json ----
write("config_json", "llama.json", json.dumps({
    "model_type": "llama", "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5,
    "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512, "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
    "rope_scaling": {"type": "linear", "factor": 2.0}, "bos_token_id": 1, "eos_token_id": [2, 3]}))
write("config_json", "gpt2.json", json.dumps({
    "model_type": "gpt2", "vocab_size": 1281, "n_embd": 256, "n_layer": 2, "n_head": 4, "n_positions": 256,
    "n_inner": None, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new", "tie_word_embeddings": True}))

# ---- llama2.c checkpoint and tokenizer ----
hs = dim // 2
n_floats = (vocab * dim + dim + dim * dim + 2 * (dim // 2) * dim + dim * dim + dim + 3 * hid * dim + dim + ctx * hs)
write("llama2c", "tiny.bin", struct.pack("<7i", dim, hid, 1, 2, 1, vocab, ctx) + struct.pack(f"<{n_floats}f", *floats(n_floats)))
tok = struct.pack("<i", 8)
for i, p in enumerate(["<unk>", "\n<s>\n", "\n</s>\n", " a", "b", " ", "ab", "c"]):
    b = p.encode()
    tok += struct.pack("<fi", -float(i), len(b)) + b
write("llama2c", "tokenizer.bin", tok)
# ---- tokenizer.json (Hugging Face): GPT-2 byte-level layout and Llama SentencePiece layout ----
byte_vocab = {"a": 0, "b": 1, "c": 2, "\u0120": 3, "ab": 4, "\u0120a": 5, "abc": 6, "<|endoftext|>": 7}
write("tokenizer_json", "gpt2.json", json.dumps({
    "version": "1.0", "added_tokens": [{"id": 7, "content": "<|endoftext|>", "special": True}],
    "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
    "post_processor": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": byte_vocab, "merges": ["a b", "\u0120 a", "ab c"]}}))
spm_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x41>": 3, "<0x0A>": 4, "\u2581": 5, "a": 6, "b": 7, "\u2581a": 8, "ab": 9}
write("tokenizer_json", "llama.json", json.dumps({
    "version": "1.0", "added_tokens": [{"id": 0, "content": "<unk>", "special": True},
                                        {"id": 1, "content": "<s>", "special": True}, {"id": 2, "content": "</s>", "special": True}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                         {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "pre_tokenizer": None,
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                                 {"Sequence": {"id": "A", "type_id": 0}}]},
    "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]},
    "model": {"type": "BPE", "vocab": spm_vocab, "merges": ["\u2581 a", "a b"], "unk_token": "<unk>", "byte_fallback": True}}))
write("tokenizer_json", "metaspace.json", json.dumps({
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first"},
    "model": {"type": "BPE", "vocab": spm_vocab, "merges": [["\u2581", "a"], ["a", "b"]], "unk_token": "<unk>"}}))


# ---- tokenizer.model (SentencePiece ModelProto, protobuf) ----
def varint(v):
    out = b""
    v &= (1 << 64) - 1
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, wire, payload):
    key = varint((num << 3) | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 5:
        return key + struct.pack("<f", payload)
    return key + varint(len(payload)) + payload


def sp_model(pieces, unk_surface=None, dummy_prefix=True, extra_ws=False):
    out = b""
    for text, score, ptype in pieces:
        out += field(1, 2, field(1, 2, text.encode()) + field(2, 5, score) + field(3, 0, ptype))
    trainer = field(3, 0, 2) + field(40, 0, 0) + field(41, 0, 1) + field(42, 0, 2)
    if unk_surface is not None:
        trainer += field(44, 2, unk_surface.encode())
    out += field(2, 2, trainer)
    out += field(3, 2, field(1, 2, b"identity") + field(3, 0, int(dummy_prefix)) + field(4, 0, int(extra_ws)))
    return out


sp_pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)] + [("<0x%02X>" % b, 0.0, 6) for b in (0x0A, 0x41, 0xC3, 0xA9)]
sp_pieces += [("\u2581", -1.0, 1), ("a", -2.0, 1), ("b", -3.0, 1), ("\u2581a", -4.0, 1), ("ab", -5.0, 1), ("<tag>", 0.0, 4)]
write("tokenizer_model", "bpe.model", sp_model(sp_pieces))
write("tokenizer_model", "no_prefix.model", sp_model(sp_pieces[:9], unk_surface=" ?? ", dummy_prefix=False, extra_ws=True))

# ---- encode/decode on arbitrary bytes: first byte = option flags, the rest = text ----
texts = ["Hello, world! The quick brown fox.", "  leading and trailing  ", "caf\u00e9 \u65e5\u672c\u8a9e \U0001F600 \u0645\u0631\u062d\u0628\u0627",
         "<|endoftext|>The<s> end</s>\n\n\ttabs", "it's 1234567 don't   we'll"]
for target in ("tokenize_bpe", "tokenize_spm"):
    for i, t in enumerate(texts):
        write(target, "text%d" % i, bytes([[0, 1, 3, 5, 17][i]]) + t.encode())
    write(target, "invalid_utf8", b"\x00" + b"\xff\xfe\xc3(\xe2\x82 \xf0\x9f\x98")
    write(target, "ids_mod", bytes([16]) + bytes(range(1, 64)))

# ---- command lines: arguments separated by NUL bytes ----
arg_lines = [["-m", "model.gguf", "-f", "wiki.txt", "-c", "128", "-t", "4", "--chunks", "3"],
             ["-m", "x", "-f", "y", "-c", "99999999999"], ["--outtype", "bf16", "-z", "tok", "in", "out.gguf"],
             ["i", "17", "n", "-5", "u", "18446744073709551615", "f", "0.5", "v", "x"],
             ["-t", "100000", "-c", "-1", "-m"], ["f", "nan", "f", "1e-50", "i", "+3", "i", "0x10"],
             ["-m", "x.gguf", "-n", "-1", "--top-k", "40", "--logit-bias", "15043-inf", "-l", "2+1.5", "-ctk", "q8_0",
              "--keep", "-1", "-c", "64", "-s", "-1", "--min-p", "0.05", "--repeat-penalty", "1.1", "-r", "User:"],
             ["-np", "4", "-md", "draft.gguf", "--draft", "8", "-cnv", "--typical", "0.9", "--presence-penalty", "-2"]]
for i, a in enumerate(arg_lines):
    write("args", "cmdline%d" % i, b"\0".join(x.encode() for x in a))
print("seeds written to", ROOT)
