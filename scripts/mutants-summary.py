#!/usr/bin/env python3
"""Summarises the cargo-mutants results under mutants.out/ (see scripts/mutants.sh).

For each file, the latest outcome of every mutant wins: a run with `MUTANTS_ITERATE=1`
re-tests only the mutants not caught before, and cargo-mutants keeps the run before it in
`mutants.out.old` (and `mutants.out-first/`, if present, holds the first full run).
A missed mutant that `scripts/mutants-loom.sh` lists as killed (a race-only mutant that a loom
model fails on) counts as detected, in its own column.
Prints one Markdown row per file, then every mutant not caught.
"""
import json
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "mutants.out")
KINDS = {"CaughtMutant": "caught", "MissedMutant": "missed", "Timeout": "timeout", "Unviable": "unviable"}
LOOM = set(
    re.findall(
        r'"killed;([^;]+);',
        (pathlib.Path(__file__).parent / "mutants-loom.sh").read_text(),
    )
)


def runs(dir_):
    # Oldest first: the first full run, the run before the last, the last.
    candidates = [
        root.parent / "mutants.out-first" / dir_.name / "mutants.out",
        dir_ / "mutants.out.old",
        dir_ / "mutants.out",
    ]
    for c in candidates:
        f = c / "outcomes.json"
        if f.exists():
            yield json.loads(f.read_text())


rows, left = [], []
for dir_ in sorted(p for p in root.iterdir() if p.is_dir()):
    latest, file = {}, None
    for run in runs(dir_):
        for o in run["outcomes"]:
            m = o["scenario"]
            if not isinstance(m, dict) or "Mutant" not in m:
                continue
            m = m["Mutant"]
            if any(t in m["name"] for t in (" in loom::", "with_a_limiter::", "model_clock::")):
                continue  # test code (scripts/mutants.sh excludes it)
            file = m["file"]
            latest[m["name"]] = KINDS.get(o["summary"], o["summary"])
    if not latest:
        continue
    count = {k: sum(1 for v in latest.values() if v == k) for k in KINDS.values()}
    loom = sum(1 for n, v in latest.items() if v == "missed" and n in LOOM)
    detected = count["caught"] + count["timeout"] + loom
    tested = count["caught"] + count["timeout"] + count["missed"]
    score = 100.0 * detected / tested if tested else 100.0
    rows.append((file, len(latest), count, loom, score))
    left += [(file, n) for n, v in latest.items() if v == "missed" and n not in LOOM]

print("| file | mutants | caught | missed | of which killed by loom | timeouts | unviable | score |")
print("|---|---|---|---|---|---|---|---|")
for file, n, c, loom, score in rows:
    print(
        f"| `{file}` | {n} | {c['caught']} | {c['missed']} | {loom} | {c['timeout']} "
        f"| {c['unviable']} | {score:.1f}% |"
    )
print()
for file, name in left:
    print(f"missed: {name}")
