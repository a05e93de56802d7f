#!/usr/bin/env bash
# Mutation testing of the decision code (issue 16, item 3) with cargo-mutants.
#
#   cargo install cargo-mutants --version 27.1.0 --locked
#   scripts/mutants.sh            # every group below
#   scripts/mutants.sh retry      # one group: retry, call, breaker, pool, shared, gate,
#                                 # hedge, adaptive, internal, keys, clock, explain,
#                                 # diagnose, edges, classify, pool_layer, breaker_layer or
#                                 # assembly, rest_layers or rest_calls
#   scripts/mutants.sh src/circuit_breaker/window.rs   # one file of a group
#   MUTANTS_ITERATE=1 scripts/mutants.sh retry   # only the mutants not caught last time
#   MUTANTS_RE='transitions.rs:(97:36|157:63):' scripts/mutants.sh src/circuit_breaker/transitions.rs
#                                 # only the mutants whose names match (cargo-mutants --re)
#   python3 scripts/mutants-summary.py            # the table of MUTANTS.md, from mutants.out/
#
# Each file runs with only the test targets that cover it (the library's unit tests, the
# integration suite of its layer, and for the retry decision the allocation tests of its fast
# path), one mutant at a time, in place (`--in-place`: the tree is mutated and restored, so
# build nothing else in it while it runs; it reuses ./target instead of copying it). A test
# run taking over 20 s counts as a timeout (`MUTANTS_TIMEOUT`): the suites take a few seconds, and a mutant that
# loops (a retry that never stops) is caught that way. Results go to mutants.out/<file>/
# (git-ignored); MUTANTS.md summarises them. The loom models (`mod loom`, test code built only
# with `--cfg fortify_loom`) are left out: `--exclude-re` drops their functions, and the
# summary the field deletions in their struct literals (which `--exclude-re` does not match);
# so are `sampling.rs`' test module `with_a_limiter` (its `cfg` is not `cfg(test)` alone, which
# cargo-mutants skips by itself) and `internal/sync.rs`' `model_clock`, the loom models' clock.
# CI does not run this: a full run takes hours on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

want_version="27.1.0"
have_version="$(cargo mutants --version 2>/dev/null | awk '{print $2}')"
if [ "$have_version" != "$want_version" ]; then
    echo "cargo-mutants $want_version expected, found '${have_version:-none}':" >&2
    echo "  cargo install cargo-mutants --version $want_version --locked" >&2
    exit 1
fi

# The unit tests of other modules that take seconds (proptests, stress loops) and cannot
# catch a mutant of these files are skipped.
skip_for_retry="--skip retry::budget --skip circuit_breaker:: --skip internal:: --skip pool::"
skip_for_breaker="--skip retry:: --skip classify:: --skip internal:: --skip pool:: --skip key::"
# The window's model tests take seconds and drive only the window.
skip_for_breaker_core="$skip_for_breaker --skip circuit_breaker::window"
skip_for_pool="--skip retry:: --skip classify:: --skip circuit_breaker:: --skip internal::"

# file | cargo test targets | test binary arguments
retry=(
    "src/retry/backoff.rs|--lib --test retry|$skip_for_retry"
    "src/classify/retry_after.rs|--lib --test retry|$skip_for_retry"
    "src/retry/decision.rs|--lib --test retry --test alloc|$skip_for_retry"
    "src/retry/policy.rs|--lib --test retry --test alloc|$skip_for_retry"
)
# The retry layer's call: its service (the request copy), its future (the attempts, the
# deadline, the sleeps, the classification the preset gives it) and the body copies; the
# retry suite, the preset's and the allocation pins. (`future/classified.rs` is test code
# under a `cfg` that is not `cfg(test)` alone, which cargo-mutants would mutate.)
call_tests="--lib --test retry --test retry_body --test stack --test alloc|$skip_for_retry --skip diagnose:: --skip hedge::"
call=(
    "src/retry/service.rs|$call_tests"
    "src/retry/future.rs|$call_tests"
    "src/retry/body.rs|$call_tests"
)
breaker=(
    "src/circuit_breaker/transitions.rs|--lib --test circuit_breaker|$skip_for_breaker_core"
    "src/circuit_breaker/state.rs|--lib --test circuit_breaker|$skip_for_breaker_core"
    "src/circuit_breaker/window.rs|--lib --test circuit_breaker|$skip_for_breaker"
    "src/circuit_breaker/admission.rs|--lib --test circuit_breaker|$skip_for_breaker_core"
    "src/circuit_breaker/lanes.rs|--lib --test circuit_breaker|$skip_for_breaker_core"
)
pool=(
    "src/pool/semaphore.rs|--lib --test pool|$skip_for_pool"
    "src/pool/semaphore/lease.rs|--lib --test pool|$skip_for_pool"
    "src/pool/permit.rs|--lib --test pool|$skip_for_pool"
)
# The shared structures every call of the preset writes: the retry budget (its unit tests
# hold it to a sliding-window model), the threads' places in them, the ticker that holds the
# deadlines of the attempt timeouts, the retries' sleeps and the hedges' delays.
shared=(
    "src/retry/budget.rs|--lib|retry::budget"
    "src/internal/thread_index.rs|--lib|pool::semaphore::lease retry::budget internal::ticker"
    "src/internal/ticker.rs|--lib --test retry --test stack --test hedge|"
)
skip_for_preset="--skip retry:: --skip classify:: --skip circuit_breaker:: --skip internal:: --skip pool:: --skip key:: --skip diagnose::"
# The preset's own parts: the per-host gate (one host lookup for breaker and pool) and the
# attempt timeout; the preset's suite and its allocation pins drive them.
gate_tests="--lib --test stack --test alloc|$skip_for_preset"
gate=(
    "src/stack/gate.rs|$gate_tests"
    "src/stack/gate/future.rs|$gate_tests"
    "src/stack/timeout.rs|$gate_tests"
)
# The hedge layer: its percentile tracker, its future (the race, the budget, the breaker),
# the service and the host cache; its own suite and the hedged preset's.
hedge_tests="--lib --test hedge --test stack|$skip_for_preset --skip stack::"
hedge=(
    "src/hedge/future.rs|$hedge_tests"
    "src/hedge/service.rs|$hedge_tests"
    "src/hedge/layer.rs|$hedge_tests"
    "src/hedge/host_cache.rs|$hedge_tests"
    "src/hedge/tracker.rs|$hedge_tests"
)
# The adaptive pool's estimator (the gradient), its limiter and sampling, and the pool's
# adaptive mode: their unit tests and the pool's suite (paused time and real sockets).
adaptive_tests="--lib --test pool|$skip_for_pool --skip key:: --skip diagnose:: --skip hedge:: --skip stack:: --skip pool::semaphore"
adaptive=(
    "src/pool/adaptive/limiter.rs|$adaptive_tests"
    "src/pool/adaptive/gradient.rs|$adaptive_tests"
    "src/pool/adaptive/sampling.rs|$adaptive_tests"
    "src/pool/adaptive/mod.rs|$adaptive_tests"
)
skip_for_internal="--skip retry:: --skip classify:: --skip diagnose:: --skip internal::ticker --skip hedge::"
# The maps every per-host breaker and pool lives in, and the thread's last host that skips
# them: the library's unit tests (the maps', the keyed breakers' and pools', the gate's)
# and the pool's suite or the preset's.
internal=(
    "src/internal/lru.rs|--lib --test pool|$skip_for_internal"
    "src/internal/recent.rs|--lib --test stack|$skip_for_internal"
    "src/internal/host.rs|--lib --test pool|$skip_for_internal"
)
# The key every per-host pool and breaker is found by, the breaker's ticket (a call's
# result recorded), and the pool's permit ages (leak detection): their unit tests and the
# suites of the two layers and the preset.
keys_tests="--lib --test pool --test circuit_breaker --test stack|--skip retry:: --skip classify:: --skip diagnose:: --skip hedge:: --skip internal::ticker --skip circuit_breaker::window"
keys=(
    "src/key.rs|$keys_tests"
    "src/circuit_breaker/ticket.rs|$keys_tests"
    "src/pool/tracker.rs|$keys_tests"
)
# The clock the preset's layers share, the latency buckets and the random draws.
clock_tests="--lib --test retry --test stack --test hedge --test pool|--skip diagnose:: --skip classify::"
clock=(
    "src/internal/clock.rs|$clock_tests"
    "src/internal/buckets.rs|$clock_tests"
    "src/internal/draw.rs|$clock_tests"
)

# The failures that explain themselves: the one-line explanation and the walk of an
# error's chain; and the doctor's reading of certificates, its verdicts and its report.
# The classification suite (real sockets, real TLS peers), the one-call client's (whose
# failures name their peer), reqwest's and the doctor's (an `openssl s_server` among them).
explain_tests="--lib --test classify --test client --test reqwest --test diagnose --features reqwest|--skip retry:: --skip circuit_breaker:: --skip pool:: --skip hedge:: --skip internal:: --skip stack::"
explain=(
    "src/classify/explain.rs|$explain_tests"
    "src/classify/chain.rs|$explain_tests"
)
diagnose=(
    "src/diagnose/cert.rs|$explain_tests"
    "src/diagnose/verdict.rs|$explain_tests"
    "src/diagnose/report.rs|$explain_tests"
)
# The rest of the doctor and the client's edges: the probe and its options, the one-call
# client's module and TLS set-up, the reqwest adapter, the configuration error.
edges=(
    "src/diagnose/probe.rs|$explain_tests"
    "src/diagnose/options.rs|$explain_tests"
    "src/client/mod.rs|$explain_tests"
    "src/client/tls.rs|$explain_tests"
    "src/reqwest.rs|$explain_tests"
    "src/config.rs|$explain_tests"
)

# The layers' own code around their decision cores: classification (the kinds, the
# response statuses, the future and the service that classify), the pool's layer, service,
# future, body and per-host maps, the breaker's layer-side code (its builder and settings,
# the keyed breakers, the handle's snapshots), and the preset's and the one-call client's
# assembly. Each with its layer's suite and allocation pins.
classify_tests="--lib --test classify|--skip retry:: --skip circuit_breaker:: --skip pool:: --skip hedge:: --skip internal:: --skip diagnose:: --skip stack::"
classify=(
    "src/classify/kind.rs|$classify_tests"
    "src/classify/response.rs|$classify_tests"
    "src/classify/future.rs|$classify_tests"
    "src/classify/service.rs|$classify_tests"
)
# The pool's and the breaker's per-host maps serve the preset's gate too (the thread's last
# host, the map's identity): the preset's suite and its unit tests run with theirs.
pool_layer_tests="--lib --test pool --test pool_alloc --test stack|$skip_for_pool --skip key:: --skip diagnose:: --skip hedge::"
pool_layer=(
    "src/pool/service.rs|$pool_layer_tests"
    "src/pool/future.rs|$pool_layer_tests"
    "src/pool/body.rs|$pool_layer_tests"
    "src/pool/keyed.rs|$pool_layer_tests"
    "src/pool/reserve.rs|$pool_layer_tests"
    "src/pool/layer.rs|$pool_layer_tests"
)
breaker_layer_tests="--lib --test circuit_breaker --test circuit_breaker_alloc --test stack|$skip_for_breaker --skip diagnose:: --skip hedge::"
breaker_layer=(
    "src/circuit_breaker/breaker.rs|$breaker_layer_tests"
    "src/circuit_breaker/keyed.rs|$breaker_layer_tests"
    "src/circuit_breaker/handle.rs|$breaker_layer_tests"
    "src/circuit_breaker/config.rs|$breaker_layer_tests"
    "src/circuit_breaker/builder.rs|$breaker_layer_tests"
)
assembly_tests="--lib --test stack --test client --test alloc --features http2|--skip retry:: --skip circuit_breaker:: --skip pool:: --skip hedge:: --skip internal:: --skip diagnose:: --skip classify:: --skip key::"
assembly=(
    "src/stack/mod.rs|$assembly_tests"
    "src/builder.rs|$assembly_tests"
    "src/client/config.rs|$assembly_tests"
    "src/client/connector.rs|$assembly_tests"
    "src/client/shared.rs|$assembly_tests"
    "src/client/metrics.rs|$assembly_tests"
)

# The smaller files no group above had: the breaker's service, layer, future, result
# classifier, metrics and errors, the classification layer and its failure type, and the
# hedge's shared state and metrics, each with its layer's suite (and the preset's, which
# assembles them); the metrics code is driven by the suites' `observability` tests, which
# install a recorder.
rest_layers=(
    "src/circuit_breaker/service.rs|$breaker_layer_tests"
    "src/circuit_breaker/layer.rs|$breaker_layer_tests"
    "src/circuit_breaker/future.rs|$breaker_layer_tests"
    "src/circuit_breaker/classify.rs|$breaker_layer_tests"
    "src/circuit_breaker/metrics.rs|$breaker_layer_tests"
    "src/circuit_breaker/local.rs|$breaker_layer_tests"
    "src/circuit_breaker/error.rs|$breaker_layer_tests"
    "src/circuit_breaker/settings.rs|$breaker_layer_tests"
    "src/classify/layer.rs|$classify_tests"
    "src/classify/failure.rs|--lib --test classify --test stack|--skip retry:: --skip circuit_breaker:: --skip pool:: --skip hedge:: --skip internal:: --skip diagnose::"
    "src/classify/stage.rs|$classify_tests"
    "src/classify/metrics.rs|$classify_tests"
    "src/classify/mod.rs|$classify_tests"
    "src/classify/error.rs|$classify_tests"
    "src/hedge/shared.rs|$hedge_tests"
    "src/hedge/metrics.rs|$hedge_tests"
    "src/stack/hedge.rs|--lib --test hedge --test stack|$skip_for_preset"
)
# The retry layer's layer, errors, history and metrics, the pool's handle, metrics, errors
# and acquisition, the one-call client's resolver and roots, and the small internal helpers.
rest_calls=(
    "src/retry/layer.rs|$call_tests"
    "src/retry/error.rs|$call_tests"
    "src/retry/history.rs|$call_tests"
    "src/retry/metrics.rs|$call_tests"
    "src/pool/metrics.rs|$pool_layer_tests"
    "src/pool/handle.rs|$pool_layer_tests"
    "src/pool/acquire.rs|$pool_layer_tests"
    "src/pool/error.rs|$pool_layer_tests"
    "src/stack/https/resolve.rs|$assembly_tests"
    "src/stack/https/roots.rs|--lib --test client --features native-roots|--skip retry:: --skip circuit_breaker:: --skip pool:: --skip hedge:: --skip internal:: --skip diagnose:: --skip classify:: --skip key::"
    "src/internal/spare.rs|--lib --test pool --test stack --test classify|$skip_for_internal"
    "src/internal/template.rs|$call_tests"
    "src/internal/lazy.rs|--lib --test classify --test pool|--skip diagnose::"
    "src/internal/sync.rs|--lib --test stack|--skip diagnose::"
    "src/internal/padded.rs|--lib --test stack|--skip diagnose::"
)

run() {
    local file args test_args
    IFS='|' read -r file args test_args <<<"$1"
    local out="mutants.out/$(basename "$(dirname "$file")")-$(basename "$file" .rs)"
    mkdir -p "$out"
    echo "== $file (cargo test $args -- $test_args) -> $out"
    # Exit codes 2 (some mutants missed) and 3 (some timed out) are results, not failures.
    local rc=0 cargo_args="" arg
    # `--cargo-arg`, not `-- args`: the build phase (`cargo test --no-run`) then builds only
    # these targets too, not every test target of the crate.
    for arg in $args; do cargo_args="$cargo_args --cargo-arg=$arg"; done
    # shellcheck disable=SC2086
    cargo mutants --in-place --baseline skip ${MUTANTS_ITERATE:+--iterate} ${MUTANTS_RE:+--re "$MUTANTS_RE"} \
        --timeout "${MUTANTS_TIMEOUT:-20}" --build-timeout "${MUTANTS_BUILD_TIMEOUT:-300}" \
        --exclude-re 'loom::|with_a_limiter::|model_clock::' --file "$file" --output "$out" $cargo_args -- -- $test_args || rc=$?
    case "$rc" in 0 | 2 | 3) ;; *) exit "$rc" ;; esac
}

groups=(retry call breaker pool shared gate hedge adaptive internal keys clock explain diagnose edges classify pool_layer breaker_layer assembly rest_layers rest_calls)
[ $# -gt 0 ] || set -- "${groups[@]}"
# Each argument is a group (all its files) or one file of a group.
for arg in "$@"; do
    found=""
    for group in "${groups[@]}"; do
        declare -n entries="$group"
        for f in "${entries[@]}"; do
            if [ "$arg" = "$group" ] || [ "${f%%|*}" = "$arg" ]; then run "$f"; found=1; fi
        done
        unset -n entries
    done
    [ -n "$found" ] || { echo "unknown group or file $arg (${groups[*]}, or one file such as src/retry/backoff.rs)" >&2; exit 1; }
done
