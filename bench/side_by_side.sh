#!/usr/bin/env bash
# Side by side with llama.cpp: tinfer-bench and llama-bench (-lm none: weights in memory) on the
# issue's benchmark models, the two tools alternating per (model, threads) row so background
# load hits both alike (bench/compare_llama_bench.py does the runs and the join), then a
# markdown table with both tok/s, the ratio tinfer / llama.cpp, and for decode (tg) each tool's
# share of the memory-bandwidth bound: (bytes of weights read per token) / (read bandwidth
# measured by bench/bench_bandwidth.cpp, anonymous huge-page memory, same thread count, before
# and after the runs; the higher of the two).
#
# usage: bench/side_by_side.sh LLAMA_BIN_DIR MODELS_DIR [THREADS]
#   LLAMA_BIN_DIR  folder with llama-bench (e.g. /work/peers/llama.cpp/build/bin)
#   MODELS_DIR     folder with tinyllama-1.1b-{f16,q8_0,q4_0,q4_k_m}.gguf, gpt2-124m-{f32,q8_0}.gguf
#   THREADS        comma-separated thread counts (default 1,2)
# Environment: PP (prompt length, default 128), TG (generated tokens, default 64), REPS
# (repetitions per test, default 3), ROUNDS (default 1: each round runs every row once with each
# tool, the tool going first swapping per round; with several, the table gives the median of the
# per-round ratios and their range, since one burst of host load can move a single run by 20-30%
# on these VMs), BUILD (tinfer build folder, default ./build next to this
# script's repository), MODELS (space-separated file names to override the list), OUT (folder
# for the JSON and the table, default a new temporary folder).
# Needs: BUILD/examples/tinfer-bench and BUILD/bench/tinfer_bench (the Google Benchmark binary
#   with bench_bandwidth.cpp; BW_BIN overrides): cmake --build build --target tinfer-bench tinfer_bench
# Time on the 2-core machine with the defaults: about 12 minutes (most of it the F16 and Q8_0
# TinyLlama rows at 1 thread).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '9,17p' "$0" >&2
  exit 2
fi
LLAMA_BIN=$1
MODELS_DIR=$2
THREADS=${3:-1,2}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
BUILD=${BUILD:-$REPO/build}
PP=${PP:-128}
TG=${TG:-64}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-1}
MODELS=${MODELS:-"tinyllama-1.1b-f16.gguf tinyllama-1.1b-q8_0.gguf tinyllama-1.1b-q4_0.gguf tinyllama-1.1b-q4_k_m.gguf gpt2-124m-f32.gguf gpt2-124m-q8_0.gguf"}
OUT=${OUT:-$(mktemp -d /tmp/side_by_side.XXXXXX)}
mkdir -p "$OUT"

TB=$BUILD/examples/tinfer-bench
BW=${BW_BIN:-$BUILD/bench/tinfer_bench}
LB=$LLAMA_BIN/llama-bench
for f in "$TB" "$BW" "$LB"; do
  [[ -x $f ]] || { echo "error: $f not found or not executable" >&2; exit 1; }
done
paths=()
for m in $MODELS; do
  [[ -f $MODELS_DIR/$m ]] || { echo "error: model $MODELS_DIR/$m not found" >&2; exit 1; }
  paths+=("$MODELS_DIR/$m")
done

echo "results in $OUT; load average now: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
date -u +"start %H:%M:%S UTC" >&2

# 1. Read bandwidth at each thread count (1 GiB anonymous huge-page memory, as tinfer's loader
# uses), before and after the runs: the host's load moves it by up to 2x within an hour, and the
# bound takes the higher of the two, so a slow moment cannot inflate the shares.
filter="BM_ReadBandwidthAnon/hugepage/threads:($(echo "$THREADS" | tr ',' '|'))/"
measure_bandwidth() {
  "$BW" --benchmark_filter="$filter" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_format=json > "$1"
}
measure_bandwidth "$OUT/bandwidth.json"

# 2. Both tools, alternating per row.
python3 "$HERE/compare_llama_bench.py" --llama-bench "$LB" --tinfer-bench "$TB" -t "$THREADS" -p "$PP" -n "$TG" \
  -r "$REPS" --rounds "$ROUNDS" --json "$OUT/compare.json" "${paths[@]}" > "$OUT/compare.md"
measure_bandwidth "$OUT/bandwidth_end.json"

# 3. The table with the bandwidth bound.
MODELS_ORDER="$MODELS" python3 - "$OUT" "$MODELS_DIR" <<'EOF' | tee "$OUT/table.md"
import json, os, re, struct, sys
out, models_dir = sys.argv[1], sys.argv[2]

def weight_bytes_per_token(path):
    """Bytes of tensor data a decode step reads: every tensor, except the token-embedding table
    when the model has a separate output matrix (then only one row of it is read)."""
    with open(path, 'rb') as f:
        data = f.read(64 << 20)  # the header is far smaller
    pos = 0
    def take(fmt):
        nonlocal pos
        v = struct.unpack_from('<' + fmt, data, pos); pos += struct.calcsize('<' + fmt); return v[0]
    def string():
        nonlocal pos
        n = take('Q'); s = data[pos:pos + n].decode('utf-8', 'replace'); pos += n; return s
    sizes = {0: 'B', 1: 'b', 2: 'H', 3: 'h', 4: 'I', 5: 'i', 6: 'f', 7: '?', 10: 'Q', 11: 'q', 12: 'd'}
    def value(t):
        if t == 8: return string()
        if t == 9:
            et = take('I'); n = take('Q'); return [value(et) for _ in range(n)]
        return take(sizes[t])
    assert data[:4] == b'GGUF', path
    pos = 4; take('I'); nt = take('Q'); nkv = take('Q')
    align = 32
    for _ in range(nkv):
        k = string(); t = take('I'); v = value(t)
        if k == 'general.alignment': align = v
    infos = []
    for _ in range(nt):
        name = string(); nd = take('I'); [take('Q') for _ in range(nd)]; take('I'); off = take('Q')
        infos.append((off, name))
    start = (pos + align - 1) // align * align
    total = os.path.getsize(path) - start
    infos.sort()
    size = {}
    for i, (off, name) in enumerate(infos):
        end = infos[i + 1][0] if i + 1 < len(infos) else total
        size[name] = end - off
    b = sum(size.values())
    if 'output.weight' in size and 'token_embd.weight' in size:
        b -= size['token_embd.weight']
    return b

def bandwidth(name):
    got = {}
    for b in json.load(open(os.path.join(out, name)))['benchmarks']:
        if b.get('aggregate_name') != 'median': continue
        m = re.search(r'threads:(\d+)', b['name'])
        got[int(m.group(1))] = b['GB/s'] / 1e9 if b['GB/s'] > 1e6 else b['GB/s']
    return got
bw_start, bw_end = bandwidth('bandwidth.json'), bandwidth('bandwidth_end.json')
bw = {t: max(v, bw_end.get(t, 0)) for t, v in bw_start.items()}
cmp = json.load(open(os.path.join(out, 'compare.json')))
loads = cmp['loadavg']
print("read bandwidth (bench_bandwidth anon/hugepage, median of 3, before / after the runs; the bound uses the higher): " +
      ", ".join(f"{t} thread{'s' if t > 1 else ''} {v:.1f} / {bw_end.get(t, 0):.1f} GB/s" for t, v in sorted(bw_start.items())))
print(f"load average during the runs: min {min(loads):.1f}, mean {sum(loads) / len(loads):.1f}, max {max(loads):.1f}\n")
if len(cmp['rows'][0]['llama_ts']) > 1:
    print(f"{len(cmp['rows'][0]['llama_ts'])} rounds: tok/s are means over the rounds; the ratio is the median of the per-round ratios (range in brackets)\n")
print("| model | threads | test | llama.cpp t/s | tinfer t/s | tinfer / llama.cpp | MB/token | llama.cpp % of BW bound | tinfer % of BW bound |")
print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
order = {os.path.basename(p): i for i, p in enumerate(os.environ.get('MODELS_ORDER', '').split())}
mb = {}
for r in sorted(cmp['rows'], key=lambda r: (order.get(r['model'], 99), r['model'], r['n_gen'] > 0, r['n_threads'])):
    l = sum(r['llama_ts']) / len(r['llama_ts']); t = sum(r['tinfer_ts']) / len(r['tinfer_ts'])
    ratios = sorted(b / a for a, b in zip(r['llama_ts'], r['tinfer_ts']))  # per round
    med = ratios[len(ratios) // 2] if len(ratios) % 2 else (ratios[len(ratios) // 2 - 1] + ratios[len(ratios) // 2]) / 2
    ratio = f"{med:.2f}" + (f" ({ratios[0]:.2f}-{ratios[-1]:.2f})" if len(ratios) > 1 else "")
    test = f"pp{r['n_prompt']}" if r['n_prompt'] > 0 else f"tg{r['n_gen']}"
    extra = " | | "
    if r['n_gen'] > 0:
        if r['model'] not in mb: mb[r['model']] = weight_bytes_per_token(os.path.join(models_dir, r['model']))
        bound = bw[r['n_threads']] * 1e9 / mb[r['model']] if r['n_threads'] in bw else 0
        extra = f"{mb[r['model']] / 1e6:.0f} | " + (f"{100 * l / bound:.0f}% | {100 * t / bound:.0f}%" if bound else "- | -")
    print(f"| {r['model']} | {r['n_threads']} | {test} | {l:.2f} | {t:.2f} | {ratio} | {extra} |")
EOF
date -u +"end %H:%M:%S UTC" >&2
