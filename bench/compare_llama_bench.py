#!/usr/bin/env python3
"""Side by side: runs llama-bench and tinfer-bench on the same GGUF files, alternating the two
tools per (model, threads) so background load hits both alike, joins the JSON results on
(model file, n_threads, n_prompt, n_gen) and prints a markdown table with the ratio
tinfer / llama.cpp.

usage: compare_llama_bench.py --llama-bench PATH --tinfer-bench PATH [-t 1,2] [-p 128] [-n 32]
                              [-r 3] [--rounds 1] [--llama-args "--poll 0"] [--json OUT] MODEL...
Each round runs every model and thread count once with each tool; with several rounds the
per-round averages are averaged again (and their spread shown).
"""
import argparse, json, os, subprocess, statistics, sys

def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-2000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return json.loads(p.stdout)

def loadavg():
    with open('/proc/loadavg') as f:
        return float(f.read().split()[0])

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--llama-bench', required=True)
    ap.add_argument('--tinfer-bench', required=True)
    ap.add_argument('-t', default='1,2'); ap.add_argument('-p', default='128'); ap.add_argument('-n', default='32')
    ap.add_argument('-r', default='3'); ap.add_argument('--rounds', type=int, default=1)
    ap.add_argument('--llama-args', default='', help='extra llama-bench arguments, e.g. "--poll 0"')
    ap.add_argument('--json'); ap.add_argument('models', nargs='+')
    a = ap.parse_args()
    rows = {}  # key -> {'llama': [ts...], 'tinfer': [ts...]}
    loads = []
    for rnd in range(a.rounds):
        for m in a.models:
            for t in a.t.split(','):
                order = [('llama', a.llama_bench), ('tinfer', a.tinfer_bench)]
                if rnd % 2 == 1: order.reverse()
                for tool, exe in order:
                    cmd = [exe, '-m', m, '-t', t, '-p', a.p, '-n', a.n, '-r', a.r, '-o', 'json']
                    if tool == 'llama': cmd[1:1] = ['-lm', 'none'] + a.llama_args.split()
                    loads.append(loadavg())
                    for res in run(cmd):
                        key = (os.path.basename(res['model_filename']), int(res['n_threads']), int(res['n_prompt']), int(res['n_gen']))
                        rows.setdefault(key, {'llama': [], 'tinfer': []})[tool].append(float(res['avg_ts']))
                    print(f"round {rnd} {os.path.basename(m)} t={t} {tool} done (load {loads[-1]:.1f})", file=sys.stderr)
                    if a.json:  # partial results after every run, in case of interruption
                        with open(a.json + '.partial', 'w') as f:
                            json.dump({'rows': [[list(k), v] for k, v in rows.items()], 'loadavg': loads}, f)
    print(f"load average during the runs: min {min(loads):.1f}, mean {statistics.mean(loads):.1f}, max {max(loads):.1f} (2 cores)\n")
    print("| model | threads | test | llama.cpp t/s | tinfer t/s | tinfer / llama.cpp |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    out = []
    for key in sorted(rows):
        r = rows[key]
        if not r['llama'] or not r['tinfer']: continue
        l, t = statistics.mean(r['llama']), statistics.mean(r['tinfer'])
        test = f"pp{key[2]}" if key[2] > 0 else f"tg{key[3]}"
        spread = lambda v: f" (±{statistics.stdev(v):.1f})" if len(v) > 1 else ""
        print(f"| {key[0]} | {key[1]} | {test} | {l:.2f}{spread(r['llama'])} | {t:.2f}{spread(r['tinfer'])} | {t / l:.2f} |")
        out.append({'model': key[0], 'n_threads': key[1], 'n_prompt': key[2], 'n_gen': key[3], 'llama_ts': r['llama'],
                    'tinfer_ts': r['tinfer'], 'ratio': t / l})
    if a.json:
        with open(a.json, 'w') as f: json.dump({'rows': out, 'loadavg': loads}, f, indent=1)

if __name__ == '__main__':
    main()
