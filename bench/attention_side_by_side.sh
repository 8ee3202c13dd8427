#!/usr/bin/env bash
# Attention side by side (issue 6): tinfer-bench vs llama.cpp's llama-bench with flash attention
# off (-fa 0) and on (-fa 1): decode tok/s at KV-cache depths 0, 512, 2048, 4096 (tg at -d) and
# prompt processing of 512 and 2048 tokens, per thread count, on the 4-layer TinyLlama-shaped
# model. Prints one markdown table (t/s of each tool and tinfer's ratio to each llama.cpp mode).
#
# usage: bench/attention_side_by_side.sh LLAMA_BIN_DIR MODELS_DIR [THREADS]
#   LLAMA_BIN_DIR  folder with llama-bench (e.g. /work/peers/llama.cpp/build/bin)
#   MODELS_DIR     folder with tinyllama-shape-4l-ctx8k-<TYPE>.gguf (e.g. /work/models)
#   THREADS        comma-separated thread counts (default 1,2)
# Environment (defaults sized for about 10 minutes on a quiet 2-core machine):
#   TYPE=q8_0|f16        model weights (default q8_0)
#   CTK=f16              KV cache type of both tools (llama-bench's default f16)
#   DEPTHS=0,512,2048,4096  NGEN=32  TG_REPS=2     decode tests
#   PP=512,2048          PP_REPS=1                 prompt tests
#   TINFER_BENCH=build/examples/tinfer-bench      OUT=folder for the raw JSON (default: a temp dir)
#
# Both tools hold the weights in memory (llama-bench -lm none; tinfer reads them by default) and
# use the same KV cache type. Tools alternate (prompt cells: llama.cpp first in even cells,
# tinfer first in odd ones; decode: llama.cpp runs once per depth, since each of its runs computes
# its depth afresh, and tinfer-bench once for all depths, placed in the middle of them, since it
# grows one cache through the depths) so load drifts hit both. Each figure is the BEST repetition (highest t/s) of
# that tool in that cell, the same rule for both tools, which filters interference on a shared
# machine. Prompt tests skip warm-up runs in both tools (--no-warmup) to fit the time budget; a
# decode test warms up with one token. Depth tokens are computed untimed (llama-bench keeps a
# saved state per depth, tinfer-bench keeps them in its session).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,13p' "$0" >&2
  exit 2
fi
LLAMA_BIN=$1
MODELS=$2
THREADS=${3:-1,2}
TYPE=${TYPE:-q8_0}
CTK=${CTK:-f16}
DEPTHS=${DEPTHS:-0,512,2048,4096}
NGEN=${NGEN:-32}
TG_REPS=${TG_REPS:-2}
PP=${PP:-512,2048}
PP_REPS=${PP_REPS:-1}
HERE=$(cd "$(dirname "$0")/.." && pwd)
TINFER_BENCH=${TINFER_BENCH:-$HERE/build/examples/tinfer-bench}
MODEL=$MODELS/tinyllama-shape-4l-ctx8k-$TYPE.gguf
OUT=${OUT:-$(mktemp -d /tmp/attn_side_by_side.XXXXXX)}
mkdir -p "$OUT"

for f in "$LLAMA_BIN/llama-bench" "$TINFER_BENCH" "$MODEL"; do
  [[ -e $f ]] || { echo "missing: $f" >&2; exit 1; }
done
# llama-bench: thread counts in descending order, so each fa mode's depth run (done by its first
# instance) uses the most threads.
THREADS_DESC=$(tr ',' '\n' <<<"$THREADS" | sort -rn | paste -sd, -)
start=$(date +%s)
log() { echo "[$(($(date +%s) - start)) s] $*" >&2; }

cell=0
run_llama() {  # name, args...
  local name=$1; shift
  log "llama-bench $*"
  "$LLAMA_BIN/llama-bench" -m "$MODEL" -lm none -fa 0,1 -t "$THREADS_DESC" -ctk "$CTK" -ctv "$CTK" -o json "$@" \
    >"$OUT/llama_$name.json" 2>"$OUT/llama_$name.err" || { echo "llama-bench failed, see $OUT/llama_$name.err" >&2; exit 1; }
}
run_tinfer() {  # name, args...
  local name=$1; shift
  log "tinfer-bench $*"
  "$TINFER_BENCH" -m "$MODEL" -t "$THREADS" -ctk "$CTK" -ctv "$CTK" -o json "$@" \
    >"$OUT/tinfer_$name.json" 2>"$OUT/tinfer_$name.err" || { echo "tinfer-bench failed, see $OUT/tinfer_$name.err" >&2; exit 1; }
}
run_pair() {  # name, args... (same args for both tools)
  if ((cell % 2 == 0)); then run_llama "$@"; run_tinfer "$@"; else run_tinfer "$@"; run_llama "$@"; fi
  cell=$((cell + 1))
}

depths=(${DEPTHS//,/ })
half=$(((${#depths[@]} + 1) / 2))
for i in "${!depths[@]}"; do
  ((i == half)) && run_tinfer tg -p 0 -n "$NGEN" -d "$DEPTHS" -r "$TG_REPS"
  run_llama "tg_d${depths[$i]}" -p 0 -n "$NGEN" -d "${depths[$i]}" -r "$TG_REPS"
done
((half >= ${#depths[@]})) && run_tinfer tg -p 0 -n "$NGEN" -d "$DEPTHS" -r "$TG_REPS"
cell=0
for p in ${PP//,/ }; do
  run_pair "pp$p" -p "$p" -n 0 -r "$PP_REPS" --no-warmup
done
log "done"

/usr/bin/python3 - "$OUT" "$TYPE" "$CTK" "$(($(date +%s) - start))" <<'EOF'
import glob, json, os, sys
out, wtype, ctk, secs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
best = {}  # (tool, test, threads) -> best t/s
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    tool = "tinfer" if os.path.basename(path).startswith("tinfer") else "llama"
    with open(path) as f:
        text = f.read().strip()
    if not text:
        continue
    for r in json.loads(text):
        if tool == "llama":
            name = "fa%d" % int(r["flash_attn"])
        else:
            name = "tinfer"
        if r["n_prompt"] > 0:
            test = "pp%d" % r["n_prompt"]
        else:
            test = "tg%d @ d%d" % (r["n_gen"], r["n_depth"])
        key = (name, test, int(r["n_threads"]))
        ts = max(r["samples_ts"]) if r.get("samples_ts") else r["avg_ts"]
        best[key] = max(best.get(key, 0.0), ts)
tests = sorted({k[1] for k in best}, key=lambda t: (t.startswith("pp"), int(t.split("d")[-1]) if "@" in t else int(t[2:])))
threads = sorted({k[2] for k in best})
print("Model: tinyllama-shape-4l-ctx8k-%s.gguf (TinyLlama-1.1B shapes: dim 2048, 32 heads, 4 KV heads, head dim 64, "
      "FFN 5632; 4 layers, context 8192), KV cache %s for both tools; best of the repetitions, t/s." % (wtype, ctk))
print()
print("| test | threads | tinfer t/s | llama.cpp fa0 t/s | tinfer / fa0 | llama.cpp fa1 t/s | tinfer / fa1 |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
def fmt(x):
    return "%.2f" % x if x else "-"
def ratio(a, b):
    return "%.2fx" % (a / b) if a and b else "-"
for test in tests:
    for t in threads:
        ti = best.get(("tinfer", test, t), 0.0)
        f0 = best.get(("fa0", test, t), 0.0)
        f1 = best.get(("fa1", test, t), 0.0)
        print("| %s | %d | %s | %s | %s | %s | %s |" % (test, t, fmt(ti), fmt(f0), ratio(ti, f0), fmt(f1), ratio(ti, f1)))
print()
# KV cache bytes per position (keys + values, all layers) for this model and for TinyLlama-1.1B
# (22 layers): layers x 2 x kv_dim (4 x 64 = 256) elements; q8_0 stores 34 bytes per 32 elements.
per = {"f32": 4 * 256, "f16": 2 * 256, "q8_0": 34 * 256 // 32}
print("KV cache bytes per token (K+V, all layers): " + ", ".join(
    "%s %s (TinyLlama-1.1B: %s)" % (k, format(4 * 2 * v, ","), format(22 * 2 * v, ",")) for k, v in per.items()))
print()
print("Wall time of the runs: %s s; raw JSON: %s" % (secs, out))
EOF
