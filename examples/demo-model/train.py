#!/usr/bin/python3
"""tinfer demo model recipe: a small GPT-2-family model trained on the King James Bible.

Everything needed is in Debian:
    apt-get install -y bible-kjv bible-kjv-text python3-torch python3-numpy python3-regex

Steps (each is a sub-command; `all` runs them in order):
    data     dump the KJV text with Debian's `bible` program, split it into books
    bpe      learn a GPT-2-style byte-level BPE vocabulary from the training books
    train    train the model with AdamW + cosine LR decay, checkpointing periodically
    export   write tinfer-demo-kjv.gguf (llama.cpp `gpt2` conventions) with our own
             GGUF v3 writer, write reference.json, print samples

Work files (text, token ids, checkpoints) go to --work (default ./work, not committed).
See README.md for the exact commands, hyperparameters and results.
"""
import os
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")  # before numpy/torch load OpenBLAS (2-core machine)

import argparse
import heapq
import json
import math
import re
import struct
import subprocess
import sys
import time
from collections import Counter, defaultdict

import numpy as np
import regex
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
EOT = "<|endoftext|>"
GPT2_PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# Held-out data: the last books of the New Testament (1 John .. Revelation, ~2% of the text).
HELDOUT_FIRST_BOOK = "1Jn"

# Model / training hyperparameters (the defaults are the committed model's).
DEFAULTS = dict(
    vocab_size=2048, n_ctx=256, n_embd=256, n_layer=4, n_head=4, n_ff=1024,
    batch_size=8, steps=650, lr=1e-3, min_lr=1e-4, warmup=50, weight_decay=0.1,
    beta1=0.9, beta2=0.95, grad_clip=1.0, seed=1234, eval_every=150, ckpt_every=50,
    ln_eps=1e-5,
)


# ----------------------------------------------------------------------------- data

def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character mapping (encoder.py)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) \
        + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def cmd_data(args):
    """Dump the whole KJV (Genesis 1:1 .. Revelation 22:21) and split it into books.

    `bible -f` turns pretty-printing off: one verse per line, "Ge1:1 In the beginning ...".
    Each book becomes one document: its verses without references, one verse per line.
    """
    os.makedirs(args.work, exist_ok=True)
    raw = subprocess.run(["bible", "-f", "gen1:1-rev22:21"], check=True, capture_output=True,
                         text=True, cwd=args.work).stdout
    books = []  # [name, [verses]]
    for line in raw.split("\n"):
        if not line:
            continue
        m = re.match(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$", line)
        assert m, line
        if not books or books[-1][0] != m.group(1):
            books.append([m.group(1), []])
        books[-1][1].append(m.group(4).strip())
    assert len(books) == 66, len(books)
    docs = [{"book": b, "text": "\n".join(v) + "\n"} for b, v in books]
    names = [d["book"] for d in docs]
    split = names.index(HELDOUT_FIRST_BOOK)
    for d in docs[:split]:
        d["split"] = "train"
    for d in docs[split:]:
        d["split"] = "heldout"
    with open(os.path.join(args.work, "kjv_books.json"), "w") as f:
        json.dump(docs, f)
    # The same splits as plain text (books concatenated): the held-out file is what the README's
    # perplexity figures are computed over (`tinfer-perplexity -f work/heldout.txt -c 256`).
    for split_name, part in (("train", docs[:split]), ("heldout", docs[split:])):
        with open(os.path.join(args.work, f"{split_name}.txt"), "w") as f:
            f.write("".join(d["text"] for d in part))
    ntr = sum(len(d["text"]) for d in docs[:split])
    nho = sum(len(d["text"]) for d in docs[split:])
    print(f"data: {len(docs)} books, {ntr} train chars, {nho} held-out chars "
          f"({100.0 * nho / (ntr + nho):.2f}%), held-out books: {names[split:]}")


def load_docs(work):
    with open(os.path.join(work, "kjv_books.json")) as f:
        return json.load(f)


# ----------------------------------------------------------------------------- BPE

def train_bpe(texts, vocab_size):
    """Byte-level BPE in the GPT-2 style, learned from `texts`.

    Vocabulary: the 256 byte symbols (in bytes_to_unicode order), then one token per merge,
    then <|endoftext|> as the last id.  Ties between equally frequent pairs are broken by the
    lexicographically smallest (left, right) pair so that the result is deterministic.
    """
    b2u = bytes_to_unicode()
    pat = regex.compile(GPT2_PAT)
    word_counts = Counter()
    for t in texts:
        for w in pat.findall(t):
            word_counts["".join(b2u[b] for b in w.encode("utf-8"))] += 1
    words = [list(w) for w in word_counts]
    freqs = [word_counts[w] for w in word_counts]

    pair_counts = defaultdict(int)
    where = defaultdict(set)  # pair -> indices of words containing it
    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_counts[(a, b)] += freqs[i]
            where[(a, b)].add(i)
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)

    vocab = list(b2u.values())
    vocab_set = set(vocab)
    merges = []
    n_target = vocab_size - 1  # the last id is <|endoftext|>
    while len(vocab) < n_target and heap:
        negc, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -negc or negc == 0:
            continue  # stale heap entry
        a, b = pair
        new = a + b
        merges.append(pair)
        if new not in vocab_set:
            vocab.append(new)
            vocab_set.add(new)
        changed = set()
        for i in list(where[pair]):
            w = words[i]
            f = freqs[i]
            # remove this word's old pair contributions
            for p in zip(w, w[1:]):
                pair_counts[p] -= f
                changed.add(p)
            nw = []
            j = 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    nw.append(new)
                    j += 2
                else:
                    nw.append(w[j])
                    j += 1
            words[i] = nw
            for p in zip(w, w[1:]):
                where[p].discard(i)
            for p in zip(nw, nw[1:]):
                pair_counts[p] += f
                where[p].add(i)
                changed.add(p)
        for p in changed:
            c = pair_counts[p]
            if c <= 0:
                pair_counts.pop(p, None)
                where.pop(p, None)
            else:
                heapq.heappush(heap, (-c, p))
    vocab.append(EOT)
    return vocab, merges


class Tokenizer:
    """GPT-2 byte-level BPE encoder (rank-based merging within each pre-tokenized word)."""

    def __init__(self, vocab, merges):
        self.vocab = vocab
        self.ids = {t: i for i, t in enumerate(vocab)}
        self.ranks = {tuple(m): r for r, m in enumerate(merges)}
        self.b2u = bytes_to_unicode()
        self.u2b = {u: b for b, u in self.b2u.items()}
        self.pat = regex.compile(GPT2_PAT)
        self.eot = self.ids[EOT]
        self.cache = {}

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best = None
            for k, p in enumerate(zip(parts, parts[1:])):
                r = self.ranks.get(p)
                if r is not None and (best is None or r < best[0]):
                    best = (r, p)
            if best is None:
                break
            a, b = best[1]
            out = []
            j = 0
            while j < len(parts):
                if j + 1 < len(parts) and parts[j] == a and parts[j + 1] == b:
                    out.append(a + b)
                    j += 2
                else:
                    out.append(parts[j])
                    j += 1
            parts = out
        ids = [self.ids[p] for p in parts]
        self.cache[word] = ids
        return ids

    def encode(self, text):
        out = []
        for w in self.pat.findall(text):
            out.extend(self.bpe("".join(self.b2u[b] for b in w.encode("utf-8"))))
        return out

    def decode(self, ids):
        s = "".join(self.vocab[i] if i != self.eot else "" for i in ids)
        return bytes(self.u2b[c] for c in s).decode("utf-8", errors="replace")


def load_tokenizer(work):
    with open(os.path.join(work, "bpe.json")) as f:
        d = json.load(f)
    return Tokenizer(d["vocab"], [tuple(m.split(" ")) for m in d["merges"]])


def cmd_bpe(args):
    docs = load_docs(args.work)
    t0 = time.time()
    vocab, merges = train_bpe([d["text"] for d in docs if d["split"] == "train"], args.vocab_size)
    assert len(vocab) == args.vocab_size, len(vocab)
    with open(os.path.join(args.work, "bpe.json"), "w") as f:
        json.dump({"vocab": vocab, "merges": [a + " " + b for a, b in merges]}, f)
    tok = load_tokenizer(args.work)
    # token streams: each book followed by <|endoftext|>; the stream starts with one too
    streams = {"train": [tok.eot], "heldout": [tok.eot]}
    for d in docs:
        ids = tok.encode(d["text"])
        assert tok.decode(ids) == d["text"]
        streams[d["split"]].extend(ids + [tok.eot])
    for k, v in streams.items():
        np.save(os.path.join(args.work, f"{k}.npy"), np.array(v, dtype=np.int16))
    print(f"bpe: {len(vocab)} tokens, {len(merges)} merges in {time.time() - t0:.1f}s; "
          f"train {len(streams['train'])} tokens, held-out {len(streams['heldout'])} tokens")
    print("last merges:", [a + b for a, b in merges[-10:]])


# ----------------------------------------------------------------------------- model

class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head = c["n_head"]
        d = c["n_embd"]
        self.ln_1 = nn.LayerNorm(d, eps=c["ln_eps"])
        self.c_attn = nn.Linear(d, 3 * d)   # fused Q, K, V (in that order) along the output dim
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d, eps=c["ln_eps"])
        self.c_fc = nn.Linear(d, c["n_ff"])
        self.mlp_proj = nn.Linear(c["n_ff"], d)

    def forward(self, x, mask):
        B, T, D = x.shape
        H = self.n_head
        q, k, v = self.c_attn(self.ln_1(x)).split(D, dim=2)
        q = q.view(B, T, H, D // H).transpose(1, 2)
        k = k.view(B, T, H, D // H).transpose(1, 2)
        v = v.view(B, T, H, D // H).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D // H))
        att = att.masked_fill(mask[:T, :T], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.c_proj(y)
        x = x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
        return x


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.wte = nn.Embedding(c["vocab_size"], c["n_embd"])
        self.wpe = nn.Embedding(c["n_ctx"], c["n_embd"])
        self.blocks = nn.ModuleList([Block(c) for _ in range(c["n_layer"])])
        self.ln_f = nn.LayerNorm(c["n_embd"], eps=c["ln_eps"])
        self.register_buffer("mask", torch.ones(c["n_ctx"], c["n_ctx"], dtype=torch.bool).triu(1),
                             persistent=False)
        self.apply(self._init)
        for n, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if n.endswith("c_proj.weight") or n.endswith("mlp_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c["n_layer"]))

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.blocks:
            x = b(x, self.mask)
        return self.ln_f(x) @ self.wte.weight.t()  # tied output


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- training

def lr_at(step, c):
    if step < c["warmup"]:
        return c["lr"] * (step + 1) / c["warmup"]
    t = (step - c["warmup"]) / max(1, c["steps"] - c["warmup"])
    return c["min_lr"] + 0.5 * (c["lr"] - c["min_lr"]) * (1.0 + math.cos(math.pi * min(1.0, t)))


@torch.no_grad()
def evaluate(model, data, n_ctx, max_windows=None, batch=16):
    """Mean per-token cross-entropy over non-overlapping n_ctx windows of `data`."""
    model.eval()
    n = (len(data) - 1) // n_ctx
    if max_windows:
        n = min(n, max_windows)
    tot, cnt = 0.0, 0
    for s in range(0, n, batch):
        e = min(n, s + batch)
        x = torch.stack([torch.from_numpy(data[i * n_ctx:(i + 1) * n_ctx]) for i in range(s, e)])
        y = torch.stack([torch.from_numpy(data[i * n_ctx + 1:(i + 1) * n_ctx + 1]) for i in range(s, e)])
        logits = model(x)
        tot += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
        cnt += y.numel()
    model.train()
    return tot / cnt


def cmd_train(args):
    c = dict(DEFAULTS)
    for k in DEFAULTS:
        if getattr(args, k, None) is not None:
            c[k] = getattr(args, k)
    torch.set_num_threads(args.threads)
    torch.manual_seed(c["seed"])
    rng = np.random.default_rng(c["seed"])
    train = np.load(os.path.join(args.work, "train.npy")).astype(np.int64)
    held = np.load(os.path.join(args.work, "heldout.npy")).astype(np.int64)
    model = GPT(c)
    print(f"train: {n_params(model)} parameters, {len(train)} train tokens, {len(held)} held-out tokens")
    print("config:", json.dumps(c))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=c["lr"], betas=(c["beta1"], c["beta2"]))
    ckpt_path = os.path.join(args.work, "ckpt.pt")
    best_path = os.path.join(args.work, "best.pt")
    step0, best, elapsed0 = 0, float("inf"), 0.0
    if args.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step0, best, elapsed0 = ck["step"], ck["best"], ck["elapsed"]
        rng = np.random.default_rng(c["seed"] + step0)
        print(f"resumed at step {step0}")
    T, B = c["n_ctx"], c["batch_size"]
    log = open(os.path.join(args.work, "train_log.txt"), "a")
    t0 = time.time() - elapsed0
    ema = None
    for step in range(step0, c["steps"]):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, c)
        starts = rng.integers(0, len(train) - T - 1, size=B)
        x = torch.from_numpy(np.stack([train[s:s + T] for s in starts]))
        y = torch.from_numpy(np.stack([train[s + 1:s + T + 1] for s in starts]))
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c["grad_clip"])
        opt.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        done = step + 1
        if done % 10 == 0 or done == 1:
            el = time.time() - t0
            msg = (f"step {done}/{c['steps']} loss {loss.item():.4f} ema {ema:.4f} lr {lr_at(step, c):.2e} "
                   f"{el:.0f}s ({el / (done - 0):.2f}s/step avg)")
            print(msg, flush=True)
            log.write(msg + "\n")
            log.flush()
        if done % c["eval_every"] == 0 or done == c["steps"]:
            hl = evaluate(model, held, T)
            msg = f"eval step {done}: train-ema {ema:.4f} held-out {hl:.4f} (ppl {math.exp(hl):.2f})"
            print(msg, flush=True)
            log.write(msg + "\n")
            log.flush()
            if hl < best:
                best = hl
                torch.save({"model": model.state_dict(), "config": c, "step": done, "heldout": hl}, best_path)
        if done % c["ckpt_every"] == 0 or done == c["steps"] or done == args.stop_after:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "config": c, "step": done,
                        "best": best, "elapsed": time.time() - t0}, ckpt_path + ".tmp")
            os.replace(ckpt_path + ".tmp", ckpt_path)
            torch.save({"model": model.state_dict(), "config": c, "step": done}, os.path.join(args.work, "last.pt"))
        if args.stop_after and done >= args.stop_after:
            print(f"train: stopping after step {done} (--stop-after)")
            break
    print(f"train: done in {time.time() - t0:.0f}s")


# ----------------------------------------------------------------------------- GGUF writer

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, \
    T_UINT64, T_INT64, T_FLOAT64 = range(13)
GGML_F32, GGML_F16 = 0, 1
_SCALAR_FMT = {T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h", T_UINT32: "<I", T_INT32: "<i",
               T_FLOAT32: "<f", T_BOOL: "<?", T_UINT64: "<Q", T_INT64: "<q", T_FLOAT64: "<d"}


def _gguf_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _gguf_value(vtype, v):
    if vtype == T_STRING:
        return _gguf_str(v)
    return struct.pack(_SCALAR_FMT[vtype], v)


def write_gguf(path, kvs, tensors, alignment=32):
    """kvs: list of (key, type, value) with value a list for arrays (type = (T_ARRAY, elem_type)).
    tensors: list of (name, numpy array in C order, ggml type). GGUF dims are innermost-first,
    i.e. the reverse of the numpy shape."""
    out = bytearray()
    out += GGUF_MAGIC + struct.pack("<I", GGUF_VERSION)
    out += struct.pack("<QQ", len(tensors), len(kvs))
    for key, vtype, v in kvs:
        out += _gguf_str(key)
        if isinstance(vtype, tuple):
            _, et = vtype
            out += struct.pack("<IIQ", T_ARRAY, et, len(v))
            for e in v:
                out += _gguf_value(et, e)
        else:
            out += struct.pack("<I", vtype) + _gguf_value(vtype, v)
    blobs = []
    off = 0
    for name, arr, gtype in tensors:
        data = np.ascontiguousarray(arr, dtype=np.float16 if gtype == GGML_F16 else np.float32).tobytes()
        out += _gguf_str(name)
        out += struct.pack("<I", arr.ndim)
        for d in reversed(arr.shape):
            out += struct.pack("<Q", d)
        out += struct.pack("<IQ", gtype, off)
        blobs.append((off, data))
        off += len(data)
        off += (-off) % alignment
    out += b"\0" * ((-len(out)) % alignment)
    base = len(out)
    for o, data in blobs:
        out += b"\0" * (base + o - len(out))
        out += data
    with open(path, "wb") as f:
        f.write(out)
    return len(out)


def gguf_tensors(model):
    """(name, array, type) in llama.cpp gpt2 naming. Matrices F16, norms/biases F32."""
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    t = [("token_embd.weight", sd["wte.weight"], GGML_F16),
         ("position_embd.weight", sd["wpe.weight"], GGML_F16)]
    for i in range(model.c["n_layer"]):
        p = f"blocks.{i}."
        q = f"blk.{i}."
        t += [(q + "attn_norm.weight", sd[p + "ln_1.weight"], GGML_F32),
              (q + "attn_norm.bias", sd[p + "ln_1.bias"], GGML_F32),
              (q + "attn_qkv.weight", sd[p + "c_attn.weight"], GGML_F16),
              (q + "attn_qkv.bias", sd[p + "c_attn.bias"], GGML_F32),
              (q + "attn_output.weight", sd[p + "c_proj.weight"], GGML_F16),
              (q + "attn_output.bias", sd[p + "c_proj.bias"], GGML_F32),
              (q + "ffn_norm.weight", sd[p + "ln_2.weight"], GGML_F32),
              (q + "ffn_norm.bias", sd[p + "ln_2.bias"], GGML_F32),
              (q + "ffn_up.weight", sd[p + "c_fc.weight"], GGML_F16),
              (q + "ffn_up.bias", sd[p + "c_fc.bias"], GGML_F32),
              (q + "ffn_down.weight", sd[p + "mlp_proj.weight"], GGML_F16),
              (q + "ffn_down.bias", sd[p + "mlp_proj.bias"], GGML_F32)]
    t += [("output_norm.weight", sd["ln_f.weight"], GGML_F32),
          ("output_norm.bias", sd["ln_f.bias"], GGML_F32)]
    return t


def round_model_to_f16(model):
    """In place: every tensor stored as F16 in the GGUF gets its f16-rounded value."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(p.half().float())


# ----------------------------------------------------------------------------- export

@torch.no_grad()
def generate(model, ids, n, temperature=0.0, gen=None):
    ids = list(ids)
    T = model.c["n_ctx"]
    for _ in range(n):
        x = torch.tensor([ids[-T:]])
        logits = model(x)[0, -1]
        if temperature == 0.0:
            nxt = int(torch.argmax(logits))
        else:
            probs = torch.softmax(logits.double() / temperature, dim=-1)
            nxt = int(torch.multinomial(probs, 1, generator=gen))
        ids.append(nxt)
    return ids


def cmd_export(args):
    torch.set_num_threads(args.threads)
    ck = torch.load(os.path.join(args.work, args.checkpoint))
    c = ck["config"]
    model = GPT(c)
    model.load_state_dict(ck["model"])
    model.eval()
    tok = load_tokenizer(args.work)
    with open(os.path.join(args.work, "bpe.json")) as f:
        bpe = json.load(f)
    vocab, merges = bpe["vocab"], bpe["merges"]
    assert len(vocab) == c["vocab_size"]

    # losses of the exported (f16-rounded) weights
    round_model_to_f16(model)
    train = np.load(os.path.join(args.work, "train.npy")).astype(np.int64)
    held = np.load(os.path.join(args.work, "heldout.npy")).astype(np.int64)
    hl = evaluate(model, held, c["n_ctx"])
    # train loss on a fixed, evenly spaced subset of 256 non-overlapping windows
    nw = (len(train) - 1) // c["n_ctx"]
    sel = np.linspace(0, nw - 1, 256).astype(np.int64)
    tl_tot = 0.0
    for i in sel:
        seg = train[i * c["n_ctx"]:(i + 1) * c["n_ctx"] + 1]
        tl_tot += evaluate(model, seg, c["n_ctx"])
    tl = tl_tot / len(sel)
    print(f"export: checkpoint {args.checkpoint} step {ck['step']}; f16 weights: "
          f"train loss {tl:.4f} (ppl {math.exp(tl):.2f}, 256 windows), "
          f"held-out loss {hl:.4f} (ppl {math.exp(hl):.2f}, all {len(held) - 1} positions)")

    token_type = [1] * len(vocab)
    token_type[tok.eot] = 3
    kvs = [
        ("general.architecture", T_STRING, "gpt2"),
        ("general.name", T_STRING, "tinfer-demo-kjv"),
        ("general.alignment", T_UINT32, 32),
        ("general.file_type", T_UINT32, 1),  # LLAMA_FTYPE_MOSTLY_F16
        ("general.license", T_STRING, "public-domain"),
        ("general.description", T_STRING,
         "tinfer demo model: GPT-2-style, trained on the King James Bible (Debian bible-kjv-text), "
         "recipe in tinfer examples/demo-model/train.py"),
        ("gpt2.context_length", T_UINT32, c["n_ctx"]),
        ("gpt2.embedding_length", T_UINT32, c["n_embd"]),
        ("gpt2.feed_forward_length", T_UINT32, c["n_ff"]),
        ("gpt2.block_count", T_UINT32, c["n_layer"]),
        ("gpt2.attention.head_count", T_UINT32, c["n_head"]),
        ("gpt2.attention.layer_norm_epsilon", T_FLOAT32, c["ln_eps"]),
        ("tokenizer.ggml.model", T_STRING, "gpt2"),
        ("tokenizer.ggml.pre", T_STRING, "gpt-2"),
        ("tokenizer.ggml.tokens", (T_ARRAY, T_STRING), vocab),
        ("tokenizer.ggml.token_type", (T_ARRAY, T_INT32), token_type),
        ("tokenizer.ggml.merges", (T_ARRAY, T_STRING), merges),
        ("tokenizer.ggml.bos_token_id", T_UINT32, tok.eot),
        ("tokenizer.ggml.eos_token_id", T_UINT32, tok.eot),
        ("tokenizer.ggml.add_bos_token", T_BOOL, False),
    ]
    path = os.path.join(args.out, "tinfer-demo-kjv.gguf")
    size = write_gguf(path, kvs, gguf_tensors(model))
    print(f"export: wrote {path} ({size} bytes)")

    # reference: the f16-rounded model evaluated by PyTorch in float64
    m64 = GPT(c).double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    m64.eval()
    prompt = args.prompt
    ids = tok.encode(prompt)
    with torch.no_grad():
        logits = m64(torch.tensor([ids]))[0]
    greedy = generate(m64, ids, 32)[len(ids):]
    # smallest gap between the best and second-best logit along the greedy path
    with torch.no_grad():
        full = m64(torch.tensor([ids + greedy[:-1]]))[0, len(ids) - 1:]
        top2 = torch.topk(full, 2, dim=-1).values
        margin = float((top2[:, 0] - top2[:, 1]).min())
    ref = {
        "model": "tinfer-demo-kjv.gguf",
        "note": "PyTorch float64 forward pass of the GGUF's weights (F16 matrices upcast exactly); "
                "logits[i] are the next-token logits after prompt_ids[0..i]; no BOS is prepended",
        "prompt": prompt,
        "prompt_ids": ids,
        "n_vocab": len(vocab),
        "logits": [[float(f"{v:.6g}") for v in np.asarray(row, dtype=np.float32).tolist()] for row in logits],
        "greedy_ids": greedy,
        "greedy_text": tok.decode(greedy),
        "greedy_min_top2_margin": float(f"{margin:.6g}"),
    }
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    print(f"reference: prompt_ids {ids}, greedy min top-2 margin {margin:.4f}")
    print("greedy:", repr(prompt + tok.decode(greedy)))

    # samples (f32 forward of the f16-rounded weights), fixed seed
    gen = torch.Generator().manual_seed(args.sample_seed)
    for p in args.sample_prompts:
        out = generate(model, tok.encode(p), args.sample_tokens, temperature=0.8, gen=gen)
        print(f"--- sample (T=0.8, seed {args.sample_seed}) prompt {p!r}:\n{tok.decode(out)}")
    out = generate(model, tok.encode("In the beginning"), args.sample_tokens)
    print(f"--- greedy, prompt 'In the beginning':\n{tok.decode(out)}")


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["data", "bpe", "train", "export", "all"])
    ap.add_argument("--work", default=os.path.join(HERE, "work"))
    ap.add_argument("--out", default=HERE, help="export: where the .gguf and reference.json go")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", action="store_true", help="train: continue from work/ckpt.pt")
    ap.add_argument("--stop-after", type=int, default=0, help="train: stop after this step's checkpoint")
    ap.add_argument("--checkpoint", default="best.pt", help="export: best.pt, last.pt")
    ap.add_argument("--prompt", default="In the beginning")
    ap.add_argument("--sample-prompts", nargs="*", default=["And it came to pass", "The LORD is"])
    ap.add_argument("--sample-tokens", type=int, default=80)
    ap.add_argument("--sample-seed", type=int, default=42)
    for k, v in DEFAULTS.items():
        ap.add_argument("--" + k.replace("_", "-"), dest=k, type=type(v), default=None)
    args = ap.parse_args()
    if args.vocab_size is None:
        args.vocab_size = DEFAULTS["vocab_size"]
    if args.cmd in ("data", "all"):
        cmd_data(args)
    if args.cmd in ("bpe", "all"):
        cmd_bpe(args)
    if args.cmd in ("train", "all"):
        cmd_train(args)
    if args.cmd in ("export", "all"):
        cmd_export(args)


if __name__ == "__main__":
    main()
