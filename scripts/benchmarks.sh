#!/usr/bin/env bash
# Runs the criterion benches and writes BENCHMARKS.md: one table per criterion group (from
# criterion's estimates of this run) and the paired ratios the `retry` and `pool` benches
# print, headed by the date, the machine, rustc and the git commit.
#
#   scripts/benchmarks.sh                 # every bench, their own settings: about 15 minutes
#   scripts/benchmarks.sh --quick pool    # short warm-up and measurement: checks the script
#
# Options:
#   --quick        criterion's --warm-up-time 0.5 --measurement-time 1 --sample-size 10 (groups
#                  that set their own times keep them); the file then says it is a quick run
#   --runs N       how many times the paired groups are measured (default 3, quick 1): the
#                  whole bench once, then `cargo bench --bench X -- paired` N-1 more times;
#                  each run is a process with its own address layout, which moves a pair's
#                  ratio of overheads too (as it does the interleaved lines), so the file
#                  shows every run's and their median
#   --processes N  how many processes run the interleaved bench (default 5, quick 2): each
#                  has its own address layout, which moves its `http::Request` lines, so the
#                  file shows each line's median across the processes and their spread
#                  (`scripts/interleaved-merge.py`); the calls are split between them, so the
#                  bench takes about as long whatever N (7 or 9 narrow the medians further);
#                  FORTIFY_BENCH_ROUNDS, FORTIFY_BENCH_CALLS, FORTIFY_BENCH_SCALING_MS and
#                  FORTIFY_BENCH_SCALING_ROUNDS set one process's budget (as with --quick)
#   --output FILE  where to write (default BENCHMARKS.md at the repository root)
#   BENCH...       which benches (default: stack e2e circuit_breaker pool adaptive retry hedge
#                  classify tls interleaved)
#
# Needs cargo, git, jq, awk and python3. Run it on an otherwise idle machine: the figures of a
# loaded one say little (the file records the load average before the run).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

all_benches=(stack e2e circuit_breaker pool adaptive retry hedge classify tls interleaved)
quick=false
runs=
processes=
output="$root/BENCHMARKS.md"
benches=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=true ;;
    --runs) runs=$2; shift ;;
    --processes) processes=$2; shift ;;
    --output) output=$2; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) benches+=("$1") ;;
  esac
  shift
done
[ ${#benches[@]} -gt 0 ] || benches=("${all_benches[@]}")
for bench in "${benches[@]}"; do
  [ -f "benches/$bench.rs" ] || { echo "no bench benches/$bench.rs" >&2; exit 2; }
done
if [ -z "$runs" ]; then
  if $quick; then runs=1; else runs=3; fi
fi
if [ -z "$processes" ]; then
  if $quick; then processes=2; else processes=5; fi
fi
[[ "$processes" =~ ^[1-9][0-9]*$ ]] || { echo "--processes takes a positive number" >&2; exit 2; }
for tool in cargo git jq awk python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 2; }
done

criterion_args=()
if $quick; then
  criterion_args=(--warm-up-time 0.5 --measurement-time 1 --sample-size 10)
fi

target=$(cargo metadata --no-deps --format-version 1 | jq -r .target_directory)
criterion_dir=${CRITERION_HOME:-$target/criterion}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "==> building the benches" >&2
bench_flags=()
for bench in "${benches[@]}"; do bench_flags+=(--bench "$bench"); done
cargo bench --no-run "${bench_flags[@]}"

# ===== the run's facts, taken after the build, before the benches load the machine =====

date_utc=$(date -u '+%Y-%m-%d %H:%M UTC')
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
[ -n "$cpu" ] || cpu=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo 2>/dev/null | head -n 1)
[ -n "$cpu" ] || cpu=unknown
cpus=$(nproc 2>/dev/null || echo '?')
load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
aslr=$(cat /proc/sys/kernel/randomize_va_space 2>/dev/null || echo '?')
rustc_version=$(rustc --version)
commit=$(git rev-parse --short=12 HEAD)
# The output file does not count as a change (git refuses to exclude a path outside the tree).
status_paths=(.)
output_rel=$(realpath -m --relative-to="$root" "$output")
case "$output_rel" in ../*) ;; *) status_paths+=(":(exclude)$output_rel") ;; esac
if [ -n "$(git status --porcelain -- "${status_paths[@]}")" ]; then
  tree="with uncommitted changes (dirty)"
else
  tree="clean"
fi

# ===== running =====

# Criterion's estimates written since `$1` (a marker file), in the order they were measured:
# group, function, ns per iteration, elements per iteration (0 without a throughput).
estimates_since() {
  find "$criterion_dir" -path '*/new/estimates.json' -newer "$1" -printf '%T@\t%h\n' |
    sort -n | cut -f2 |
    while IFS= read -r dir; do
      jq -r --slurpfile est "$dir/estimates.json" '
        [ .group_id,
          (.function_id // ""),
          (($est[0].slope.point_estimate // $est[0].mean.point_estimate) | tostring),
          ((.throughput.Elements // 0) | tostring) ] | @tsv' "$dir/benchmark.json"
    done
}

# The paired summary of a bench's output (`print_ratios` in benches/support/paired.rs: pair,
# ours, baseline, ratio, bare, overhead ratio, calls each): pair, ours ns, baseline ns, ratio,
# calls each, ratio of overheads over bare ("-" when the pair timed no bare side).
paired_rows() {
  awk '
    /^paired \(both sides/ { on = 1; header = 1; next }
    on && header { header = 0; next }
    on && NF == 0 { on = 0; next }
    on && NF >= 7 {
      name = $1
      for (i = 2; i <= NF - 6; i++) name = name " " $i
      printf "%s\t%s\t%s\t%s\t%s\t%s\n", name, $(NF - 5), $(NF - 4), $(NF - 3), $NF, $(NF - 1)
    }' "$1"
}

# The per-pair medians of a bench's output (the `paired, per pair` section of
# `print_ratios`: pair, median, q1, q3, pairs): pair, median, q1, q3, pairs (the paired
# table shows the median).
per_pair_rows() {
  awk '
    /^paired, per pair/ { on = 1; header = 1; next }
    on && header { header = 0; next }
    on && NF == 0 { on = 0; next }
    on && NF >= 5 && $(NF - 3) ~ /^[0-9.]+$/ && $NF ~ /^[0-9]+$/ {
      name = $1
      for (i = 2; i <= NF - 4; i++) name = name " " $i
      printf "%s\t%s\t%s\t%s\t%s\n", name, $(NF - 3), $(NF - 2), $(NF - 1), $NF
    }' "$1"
}

for bench in "${benches[@]}"; do
  if [ "$bench" = interleaved ]; then
    # Not criterion: each process writes its figures (FORTIFY_BENCH_TSV, see
    # benches/interleaved/report.rs) and scripts/interleaved-merge.py takes their medians.
    # The budget of one process run alone (9 rounds of 400,000 calls per variant; 5 scaling
    # samples of 2 windows of 500 ms) is split between the processes: 5 rounds each, the
    # calls divided by the number of processes, and so are the scaling windows down to
    # 100 ms, then the samples (at least one per process).
    interleaved_env=()
    if $quick; then
      interleaved_env=(FORTIFY_BENCH_QUICK=1)
    else
      rounds=${FORTIFY_BENCH_ROUNDS:-5}
      if ((processes <= 5)); then
        window=$((500 / processes)) samples=5
      else
        window=100 samples=$(((25 + processes - 1) / processes))
      fi
      interleaved_env=(
        FORTIFY_BENCH_ROUNDS="$rounds"
        FORTIFY_BENCH_CALLS="${FORTIFY_BENCH_CALLS:-$((3600000 / (rounds * processes)))}"
        FORTIFY_BENCH_SCALING_MS="${FORTIFY_BENCH_SCALING_MS:-$window}"
        FORTIFY_BENCH_SCALING_ROUNDS="${FORTIFY_BENCH_SCALING_ROUNDS:-$samples}"
      )
    fi
    for ((process = 1; process <= processes; process++)); do
      echo "==> cargo bench --bench interleaved (process $process of $processes: ${interleaved_env[*]})" >&2
      env "${interleaved_env[@]}" FORTIFY_BENCH_TSV="$work/$bench.$process.tsv" \
        cargo bench --bench interleaved 2>&1 | tee "$work/$bench.$process.log"
    done
    python3 scripts/interleaved-merge.py "$work/$bench".*.tsv >"$work/$bench.merged"
    continue
  fi
  marker="$work/$bench.marker"
  touch "$marker"
  sleep 1 # estimates written in the same second as the marker still count as newer
  echo "==> cargo bench --bench $bench -- ${criterion_args[*]}" >&2
  cargo bench --bench "$bench" -- "${criterion_args[@]}" 2>&1 | tee "$work/$bench.1.log"
  estimates_since "$marker" >"$work/$bench.estimates"
  paired_rows "$work/$bench.1.log" >"$work/$bench.1.paired"
  per_pair_rows "$work/$bench.1.log" >"$work/$bench.1.per_pair"
  if [ -s "$work/$bench.1.paired" ]; then
    for ((run = 2; run <= runs; run++)); do
      echo "==> cargo bench --bench $bench -- paired ${criterion_args[*]} (run $run of $runs)" >&2
      cargo bench --bench "$bench" -- paired "${criterion_args[@]}" 2>&1 | tee "$work/$bench.$run.log"
      paired_rows "$work/$bench.$run.log" >"$work/$bench.$run.paired"
      per_pair_rows "$work/$bench.$run.log" >"$work/$bench.$run.per_pair"
    done
  fi
done

# ===== writing =====

describe() {
  case "$1" in
    stack) echo "Each layer of the preset client stack and the whole stack, beside their tower and tower-resilience equivalents; a trivial service answering at once, every call a clone of one GET with three headers (in every figure, \`bare\` included). \"÷ ours\" divides by the group's \`fortify_\` variant." ;;
    e2e) echo "A hyper-util client against a hyper server on 127.0.0.1 (keep-alive), bare and inside the preset stack; each iteration sends its requests from 64 tasks at once. Server and clients share the machine: the ratio says more than either figure. \`e2e/loopback\` times each client on its own, one after the other; \`e2e/paired\` alternates one batch of each (which goes first alternating) and takes the median of the pairs' ratios, in time (the fortified client's throughput over the bare client's is its inverse, in the throughput column), with a control pair of two bare clients." ;;
    circuit_breaker) echo "The breaker's closed path on a trivial service, beside tower-resilience's breaker. \`closed/2_threads\`: two threads share one breaker, ns per call of their combined throughput." ;;
    pool) echo "The pool limit's uncontended path on a trivial service (no group: each variant is its own criterion function), beside tower's \`ConcurrencyLimit\` and tower-resilience's bulkhead." ;;
    adaptive) echo "The pool limit in adaptive mode (\`AdaptiveLimit::gradient()\`) beside the same pool with a fixed limit, one pool and per host, on the uncontended path (a trivial service, one call at a time): a timed call (two clock reads) in a share that follows the call rate, from every call to one in 64." ;;
    retry) echo "The retry layer's success path, beside tower's \`Retry\` (with a policy that copies every field of the request, alone and with \`TpsBudget\`), each copy alone, and tower-resilience's retry; every call a clone of one GET with three headers." ;;
    hedge) echo "The hedge layer on a call answered before its hedge delay (a trivial service answering at once), beside the bare service and the retry layer (which keeps the same request copy); \`hedge_warm\` keeps the copy a hedge would be sent from, \`hedge_cold\` (no delay yet) and \`hedge_post\` (never hedged) do not; every call a clone of one request with three headers." ;;
    tls) echo "The HTTPS client in one call (\`ClientConfig::https\`) against a bare hyper-util + hyper-rustls client with the same roots, over loopback TLS: keep-alive requests, and a new connection per request (the handshake and the connection-phase telemetry)." ;;
    interleaved) echo "The plain view beside the paired one: no criterion, no pairing; every variant once per round, medians of the rounds; requests built in every call; \`u64\` and \`http::Request\` requests; one shared instance on two threads. One process's \`http::Request\` lines depend on its address layout (enough to pass or fail a target by chance), so the bench runs in $processes processes (ASLR: \`kernel.randomize_va_space\` = $aslr$(if [ "$aslr" = 0 ]; then echo ", off: every process has the same layout and the spread shows only noise"; fi)) and these tables are their merge (\`scripts/interleaved-merge.py\`)." ;;
    classify) echo "\`ErrorClassify\` on a service that answers at once, beside tower's \`MapErr\` boxing the error, on the success and the error path." ;;
  esac
}

# One table per group of a bench's estimates (paired groups are in the ratio table).
estimate_tables() {
  awk -F'\t' -v bench="$1" '
    function unit(ns) {
      if (ns < 1e3) return sprintf("%.1f ns", ns)
      if (ns < 1e6) return sprintf("%.2f µs", ns / 1e3)
      return sprintf("%.2f ms", ns / 1e6)
    }
    function thousands(x,   s, out) {
      s = sprintf("%.0f", x); out = ""
      while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
      return s out
    }
    $1 ~ /\/paired$/ { next }
    {
      # A function outside any group (criterion `bench_function` on `Criterion`).
      if ($2 == "") { group = "(" bench ")"; fn = $1 } else { group = $1; fn = $2 }
      if (!(group in seen)) { seen[group] = 1; order[++groups] = group }
      n = ++count[group]; name[group, n] = fn; ns[group, n] = $3; elements[group, n] = $4
      if (fn == "bare") bare[group] = n
      if (fn ~ /^fortify_/) ours[group] = n
    }
    END {
      for (g = 1; g <= groups; g++) {
        group = order[g]
        base = (group in bare) ? bare[group] : 1
        printf "\n### `%s`\n\n", group
        if (elements[group, 1] > 0) {
          printf "| variant | requests per second | per request | over `%s` per request | throughput / `%s` |\n|---|---|---|---|---|\n", name[group, base], name[group, base]
          for (i = 1; i <= count[group]; i++) {
            e = elements[group, i]; per = ns[group, i] / e; bper = ns[group, base] / elements[group, base]
            over = (i == base) ? "" : sprintf("%+.2f µs", (per - bper) / 1e3)
            ratio = (i == base) ? "" : sprintf("%.3f", bper / per)
            printf "| `%s` | %s | %s | %s | %s |\n", name[group, i], thousands(1e9 / per), unit(per), over, ratio
          }
        } else {
          has_ours = (group in ours)
          printf "| variant | per call | over `%s` |%s\n|---|---|---|%s\n", name[group, base], has_ours ? " ÷ ours |" : "", has_ours ? "---|" : ""
          for (i = 1; i <= count[group]; i++) {
            over = (i == base) ? "" : sprintf("%+.1f ns", ns[group, i] - ns[group, base])
            printf "| `%s` | %s | %s |", name[group, i], unit(ns[group, i]), over
            if (has_ours) printf " %.2fx |", ns[group, i] / ns[group, ours[group]]
            printf "\n"
          }
        }
      }
    }' "$work/$1.estimates"
}

# The paired ratios of every run of a bench, one row per pair, with the median of the pairs'
# ratios for the pairs that print one.
paired_table() {
  local files=()
  for ((run = 1; run <= runs; run++)); do
    [ -f "$work/$1.$run.paired" ] && files+=("$work/$1.$run.paired")
    [ -s "$work/$1.$run.per_pair" ] && files+=("$work/$1.$run.per_pair")
  done
  awk -F'\t' '
    function thousands(x,   s, out) {
      s = sprintf("%.0f", x); out = ""
      while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
      return s out
    }
    # The median of v[1..n] (sorts v).
    function median(v, n,   i, j, t) {
      for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
      return (n % 2) ? v[(n + 1) / 2] : sprintf("%.3f", (v[n / 2] + v[n / 2 + 1]) / 2)
    }
    FNR == 1 && FILENAME !~ /per_pair$/ { run++ }
    FILENAME ~ /per_pair$/ { per_pair[$1, run] = $2; any_per_pair = 1; next }
    {
      if (!($1 in seen)) { seen[$1] = 1; order[++pairs] = $1 }
      ratio[$1, run] = $4
      if ($6 != "-") overhead[$1, run] = $6
      if (run == 1) { ours[$1] = $2; baseline[$1] = $3; calls[$1] = $5 }
    }
    END {
      runs = run
      printf "\n### Paired (both sides timed in alternating batches, in the same moments)\n\n"
      printf "| pair | ours / baseline"
      if (runs > 1) printf ", %d runs | median", runs
      if (any_per_pair) printf " | median of the pairs%s | throughput ours / baseline (1 / median)", (runs > 1 ? ", per run; median" : "")
      printf " | ratio of overheads over bare%s | ours, baseline per call (run 1) | calls each (run 1) |\n|---|---|", (runs > 1 ? ", per run; median" : "")
      if (runs > 1) printf "---|"
      if (any_per_pair) printf "---|---|"
      printf "---|---|---|\n"
      for (p = 1; p <= pairs; p++) {
        name = order[p]; n = 0; list = ""
        for (r = 1; r <= runs; r++) if ((name, r) in ratio) { v[++n] = ratio[name, r]; list = list (n > 1 ? ", " : "") ratio[name, r] }
        printf "| %s | %s", name, list
        if (runs > 1) printf " | %s", median(v, n)
        if (any_per_pair) {
          n = 0; list = ""
          for (r = 1; r <= runs; r++) if ((name, r) in per_pair) { v[++n] = per_pair[name, r]; list = list (n > 1 ? ", " : "") per_pair[name, r] }
          if (n == 0) printf " | - | -"
          else if (runs > 1) { m = median(v, n); printf " | %s; %s | %.3f", list, m, 1 / m }
          else printf " | %s | %.3f", list, 1 / list
        }
        m = 0; olist = ""
        for (r = 1; r <= runs; r++) if ((name, r) in overhead) { o[++m] = overhead[name, r]; olist = olist (m > 1 ? ", " : "") overhead[name, r] }
        # Each run is its own process, with its own address layout: the median of the runs.
        printf " | %s", (m == 0 ? "-" : m == 1 ? olist : olist "; " median(o, m))
        printf " | %s ns, %s ns | %s |\n", ours[name], baseline[name], thousands(calls[name])
      }
    }' "${files[@]}"
}

{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/benchmarks.sh\` (\`--quick\` for a short check, \`--help\` for the"
  echo "options); do not edit by hand. It runs \`cargo bench --bench X\` for each bench below and"
  echo "reads criterion's estimates of that run (\`target/criterion/<group>/<function>/new/estimates.json\`:"
  echo "the slope, else the mean, per iteration); the paired ratios are the ones the bench prints"
  echo "(\`benches/support/paired.rs\`). What each bench measures, variant by variant, is in the"
  echo "doc comment at the top of \`benches/<bench>.rs\`."
  echo
  if $quick; then
    echo "> **Quick run** (\`--quick\`: ${criterion_args[*]}): a check that the script works, not"
    echo "> results. Do not quote these figures."
    echo
  fi
  echo "| | |"
  echo "|---|---|"
  echo "| date | $date_utc |"
  echo "| machine | $cpu, $cpus logical CPUs; load average before the run: $load |"
  echo "| rustc | \`$rustc_version\` |"
  echo "| commit | \`$commit\`, tree $tree |"
  echo "| benches | ${benches[*]} |"
  echo "| criterion | $(if $quick; then echo "quick: ${criterion_args[*]}"; else echo "each bench's own settings"; fi); paired groups measured $runs time(s) |"
  for bench in "${benches[@]}"; do
    echo
    echo "## \`cargo bench --bench $bench\`"
    echo
    describe "$bench"
    if [ "$bench" = interleaved ]; then
      echo
      cat "$work/$bench.merged"
      continue
    fi
    estimate_tables "$bench"
    if [ -s "$work/$bench.1.paired" ]; then
      paired_table "$bench"
    fi
  done
} >"$work/BENCHMARKS.md"

mv "$work/BENCHMARKS.md" "$output"
echo "==> wrote $output" >&2
