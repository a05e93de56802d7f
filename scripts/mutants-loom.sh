#!/usr/bin/env bash
# The race-only mutants of MUTANTS.md against the loom models (issue 16, item 3).
#
#   scripts/mutants-loom.sh           # every case below
#   scripts/mutants-loom.sh 55:34     # the cases whose mutant name contains this
#
# cargo-mutants' own test runs (scripts/mutants.sh) cannot reach these mutants: each differs
# from the original only when another thread moves the breaker, the window, the semaphore,
# the hedge's tracker or the pool's permit ages at one precise moment. This script applies
# each mutant with cargo-mutants' own diff (`cargo mutants --list --diff`), runs the loom
# models named for it (a release build with `--cfg fortify_loom`, as `.ci/run` does, in
# target/loom), and restores the file. A mutant listed as `killed` must make a model fail;
# one listed as `equivalent` must pass them all (MUTANTS.md says why no model can fail).
# The tree is changed while it runs: build nothing else in it meanwhile. About three
# minutes a case on 2 cores (one release build each).
# CI does not run this.
set -euo pipefail
cd "$(dirname "$0")/.."

tl="circuit_breaker::transitions::loom"
wl="circuit_breaker::window_loom"
sl="pool::semaphore::loom"
# The leases' own models and the pool's models on a leased pool.
ll="pool::semaphore::lease::loom pool::loom_tests::loom_pool_with_leases"
hl="hedge::tracker::loom"
pl="pool::tracker::loom"
# expected ; mutant (as cargo-mutants names it) ; loom models (cargo test filters)
cases=(
    "killed;src/circuit_breaker/transitions.rs:55:34: replace && with || in Breaker::evaluate;$tl"
    "equivalent;src/circuit_breaker/transitions.rs:79:34: replace && with || in Breaker::enter_half_open;$tl"
    "killed;src/circuit_breaker/transitions.rs:79:64: replace && with || in Breaker::enter_half_open;$tl"
    "equivalent;src/circuit_breaker/transitions.rs:81:48: replace && with || in Breaker::enter_half_open;$tl"
    "killed;src/circuit_breaker/transitions.rs:111:42: replace && with || in Breaker::probe_result;$tl"
    "killed;src/circuit_breaker/transitions.rs:148:39: replace < with > in Breaker::probe_failed;$tl"
    "killed;src/circuit_breaker/transitions.rs:149:17: replace || with && in Breaker::probe_failed;$tl"
    "killed;src/circuit_breaker/admission.rs:140:34: replace == with != in Shared::admit_cold;$tl"
    "killed;src/circuit_breaker/admission.rs:169:49: replace && with || in Shared::admit_cold;$tl"
    "equivalent;src/circuit_breaker/window.rs:216:44: replace & with | in assign;$wl"
    "killed;src/circuit_breaker/window.rs:217:52: replace & with | in assign;$wl"
    "killed;src/pool/semaphore.rs:166:46: replace + with - in Semaphore::poll_acquire;$sl"
    "equivalent;src/pool/semaphore.rs:166:46: replace + with * in Semaphore::poll_acquire;$sl"
    "killed;src/pool/semaphore/lease.rs:130:9: replace Leases::sweep -> usize with 0;$ll"
    "killed;src/circuit_breaker/ticket.rs:240:26: replace < with <= in Breaker::record_success;$wl"
    "killed;src/circuit_breaker/ticket.rs:240:26: replace < with == in Breaker::record_success;$wl"
    "equivalent;src/circuit_breaker/ticket.rs:240:26: replace < with > in Breaker::record_success;$wl"
    "killed;src/circuit_breaker/ticket.rs:240:45: replace - with + in Breaker::record_success;$wl"
    "killed;src/circuit_breaker/ticket.rs:240:45: replace - with / in Breaker::record_success;$wl"
    "killed;src/circuit_breaker/breaker.rs:245:26: replace < with <= in Breaker::flush_lane;$wl"
    "killed;src/circuit_breaker/breaker.rs:245:26: replace < with == in Breaker::flush_lane;$wl"
    "equivalent;src/circuit_breaker/breaker.rs:245:26: replace < with > in Breaker::flush_lane;$wl"
    "killed;src/circuit_breaker/breaker.rs:245:45: replace - with + in Breaker::flush_lane;$wl"
    "killed;src/circuit_breaker/breaker.rs:245:45: replace - with / in Breaker::flush_lane;$wl"
    "killed;src/pool/tracker.rs:76:34: replace << with >> in Tracker::claim;$pl"
    "killed;src/pool/tracker.rs:82:33: replace | with & in Tracker::claim;$pl"
    "killed;src/pool/tracker.rs:82:33: replace | with ^ in Tracker::claim;$pl"
    "equivalent;src/pool/tracker.rs:82:38: replace << with >> in Tracker::claim;$pl"
    "killed;src/hedge/tracker.rs:187:31: replace match guard t == tag with true in Tracker::slot_of;$hl"
    "killed;src/hedge/tracker.rs:187:31: replace match guard t == tag with false in Tracker::slot_of;$hl"
    "killed;src/hedge/tracker.rs:187:33: replace == with != in Tracker::slot_of;$hl"
)

restore=""
trap '[ -z "$restore" ] || git checkout -- "$restore"' EXIT

failed=0
for case in "${cases[@]}"; do
    IFS=';' read -r expected name models <<<"$case"
    if [ $# -gt 0 ] && [[ "$name" != *"$1"* ]]; then continue; fi
    file="${name%%:*}"
    if ! git diff --quiet -- "$file"; then
        echo "$file has uncommitted changes: commit them first" >&2
        exit 1
    fi
    # The one mutant's diff: its block of the listing, from its name to the next name.
    diff="$(cargo mutants --list --diff --file "$file" --exclude-re 'loom::' |
        awk -v name="$name" '$0 == name { on = 1; next } /^src\/.*:[0-9]+:[0-9]+: / { on = 0 } on')"
    if [ -z "$diff" ]; then
        echo "no mutant named: $name" >&2
        exit 1
    fi
    restore="$file"
    patch --quiet --no-backup-if-mismatch "$file" <<<"$diff"
    log="target/loom-mutant.log"
    mkdir -p target
    # shellcheck disable=SC2086
    if RUSTFLAGS="--cfg fortify_loom" LOOM_MAX_PREEMPTIONS=2 \
        cargo test --release --lib --target-dir target/loom -- $models >"$log" 2>&1; then
        outcome="survived"
    elif grep -q 'Running unittests' "$log"; then
        outcome="killed by $(grep -oE "^thread '[^']*loom[^']*' .*panicked" "$log" | cut -d"'" -f2 | sort -u | tr '\n' ' ')"
    else
        echo "build failed for $name: see $log" >&2
        exit 1
    fi
    git checkout -- "$file"
    restore=""
    case "$expected:$outcome" in
        killed:killed*) verdict="ok" ;;
        equivalent:survived) verdict="ok" ;;
        *) verdict="UNEXPECTED (expected $expected)"; failed=1 ;;
    esac
    echo "$name: $outcome [$verdict]"
done
exit "$failed"
