#!/usr/bin/env python3
"""Merges the interleaved bench's records from several processes into Markdown tables.

    FORTIFY_BENCH_TSV=run1.tsv cargo bench --bench interleaved   # once per process
    python3 scripts/interleaved-merge.py run1.tsv run2.tsv ...    # the tables, on stdout

One process's `http::Request` lines depend on its address layout (with ASLR each process
gets another one), enough to pass or fail a target by chance; so `scripts/benchmarks.sh`
runs the bench in several processes and writes these tables into BENCHMARKS.md. Per line:
the median across the processes of each process's figure (itself the median of its rounds)
and the spread of those figures (min-max), which shows the layout effect. The overheads
over bare and the ratios of overheads are computed from the medians; the spread of each
process's own ratio is shown beside. Targets (`claim` and `scaling` records with a bound)
get a verdict from the medians and the count of processes whose own figure meets them.

The records (tab-separated, written by `benches/interleaved/report.rs`):
    plan      rounds  calls  scaling_ms  scaling_rounds
    layout    stack  heap   (offsets within a page: a local of the first frames, an allocation)
    variant   table  name  baseline  median_ns  round_ns,...   (the first of a table: bare)
    claim     table  ours  baseline  at_most
    scaling   name  median  ratio,...  at_least
"""

import statistics
import sys


def read(path):
    """One process's records: plan, tables {title: {name: (baseline, ns)}} in order,
    claims [(table, ours, baseline, at_most)], scaling {name: (median, [ratios], at_least)},
    layout (stack, heap) or None."""
    plan, tables, claims, scaling, layout = None, {}, [], {}, None
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            fields = line.rstrip("\n").split("\t")
            kind = fields[0]
            if kind == "plan":
                plan = tuple(int(x) for x in fields[1:5])
            elif kind == "layout":
                layout = (int(fields[1]), int(fields[2]))
            elif kind == "variant":
                _, table, name, baseline, ns, _rounds = fields
                tables.setdefault(table, {})[name] = (baseline or None, float(ns))
            elif kind == "claim":
                _, table, ours, baseline, at_most = fields
                claims.append((table, ours, baseline, float(at_most)))
            elif kind == "scaling":
                _, name, median, ratios, at_least = fields
                scaling[name] = (float(median), [float(r) for r in ratios.split(",")],
                                 float(at_least) if at_least else None)
            else:
                raise SystemExit(f"{path}: unknown record {kind!r}")
    return plan, tables, claims, scaling, layout


def in_order(lists):
    """The union of `lists`' items, in first-seen order."""
    seen = {}
    for items in lists:
        for item in items:
            seen.setdefault(item, None)
    return list(seen)


def spread(xs, fmt):
    return f"{fmt(min(xs))} to {fmt(max(xs))}"


def median_spread(xs):
    return f"{times(statistics.median(xs))} ({spread(xs, times)})"


def quotient(a, b):
    return times(a / b) if b else "-"


def ns(x):
    return f"{x:.1f}"


def signed(x):
    return f"{x:+.1f}"


def times(x):
    return f"{x:.2f}x"


def main():
    paths = sys.argv[1:]
    if not paths:
        raise SystemExit(__doc__)
    runs = [read(p) for p in paths]
    n = len(runs)
    plans = sorted({r[0] for r in runs if r[0]})
    plan = "; ".join(f"{rounds} rounds of {calls:,} calls per variant and {samples} scaling "
                     f"samples of 2 windows of {ms} ms" for rounds, calls, ms, samples in plans)
    print(f"{n} processes, each {plan}. Each figure: the median across the processes of each "
          "process's figure (the median of its rounds), with the spread of those figures "
          "(min to max; each process has its own address layout). Overheads over bare and "
          "ratios are computed from the medians; \"per process\" is the median and the "
          "spread of each process's own ratio. The last table shows every process's figures.")

    def overhead(run, table, name):
        rows = run[1].get(table)
        if not rows or name not in rows:
            return None
        bare = next(iter(rows.values()))[1]
        return rows[name][1] - bare

    medians = {}  # (table, name) -> median ns
    bares = {}  # table -> the bare row's name
    for table in in_order(r[1].keys() for r in runs):
        names = in_order(r[1][table].keys() for r in runs if table in r[1])
        bare_name = bares[table] = names[0]
        print(f"\n### {table}\n")
        print("| variant | ns per call | processes, min to max | over bare | processes, min to max "
              "| ratio of overheads | per process: median (min to max) |")
        print("|---|---|---|---|---|---|---|")
        for name in names:
            figures = [r[1][table][name][1] for r in runs if name in r[1].get(table, {})]
            medians[table, name] = statistics.median(figures)
        bare = medians[table, bare_name]
        for name in names:
            baseline = next(r[1][table][name][0] for r in runs if name in r[1].get(table, {}))
            figures = [r[1][table][name][1] for r in runs if name in r[1].get(table, {})]
            overs = [o for r in runs if (o := overhead(r, table, name)) is not None]
            over = medians[table, name] - bare
            ratio = per_process = ""
            if baseline and (table, baseline) in medians:
                ratio = f"{quotient(over, medians[table, baseline] - bare)} {baseline}"
                ratios = process_ratios(runs, table, name, baseline, overhead)
                per_process = median_spread(ratios) if ratios else ""
            print(f"| {name} | {ns(medians[table, name])} | {spread(figures, ns)} "
                  f"| {signed(over)} | {'' if name == bare_name else spread(overs, signed)} "
                  f"| {ratio} | {per_process} |")

    scaling_names = in_order(r[3].keys() for r in runs)
    if scaling_names:
        print("\n### One shared instance: calls/s of 2 tasks on 2 workers over 1 task on 1\n")
        print("| shared service | median of the processes | processes' medians | every round |")
        print("|---|---|---|---|")
        for name in scaling_names:
            own = [r[3][name][0] for r in runs if name in r[3]]
            every = [x for r in runs if name in r[3] for x in r[3][name][1]]
            print(f"| {name} | {times(statistics.median(own))} | {spread(own, times)} "
                  f"| {spread(every, times)} |")

    verdicts = []
    for table, ours, baseline, at_most in in_order(r[2] for r in runs):
        if not all((table, x) in medians for x in (ours, baseline)):
            continue
        bare = medians[table, bares[table]]
        if medians[table, baseline] == bare:
            continue
        ratio = (medians[table, ours] - bare) / (medians[table, baseline] - bare)
        ratios = process_ratios(runs, table, ours, baseline, overhead)
        if not ratios:
            continue
        verdicts.append((f"{table.split(' (')[0]}: {ours} / {baseline}", f"<= {times(at_most)}",
                         ratio, ratios, ratio <= at_most, sum(r <= at_most for r in ratios)))
    for name in scaling_names:
        at_least = next(r[3][name][2] for r in runs if name in r[3])
        if at_least is None:
            continue
        own = [r[3][name][0] for r in runs if name in r[3]]
        median = statistics.median(own)
        verdicts.append((f"{name}, 2 threads / 1", f">= {times(at_least)}", median, own,
                         median >= at_least, sum(x >= at_least for x in own)))
    if verdicts:
        print("\n### Targets\n")
        print("| claim | target | from the medians | per process: median (min to max) "
              "| processes meeting it | verdict |")
        print("|---|---|---|---|---|---|")
        for claim, target, ratio, ratios, met, meeting in verdicts:
            print(f"| {claim} | {target} | {times(ratio)} | {median_spread(ratios)} "
                  f"| {meeting} of {len(ratios)} | {'met' if met else '**not met**'} |")

    process_table(runs)


def process_table(runs):
    """Each process's overheads over bare, processes ordered by where their stack starts
    within a page, so that a line that moves with the layout shows it."""
    if len(runs) < 2:
        return
    order = sorted(range(len(runs)), key=lambda i: runs[i][4] or (0, 0))
    heads = [f"{runs[i][4][0]:#05x}" if runs[i][4] else "?" for i in order]
    print("\n### Each process's overhead over bare, ns (processes by their stack's offset "
          "within a page)\n")
    print(f"| variant | {' | '.join(heads)} |")
    print(f"|---|{'---|' * len(order)}")
    for table in in_order(r[1].keys() for r in runs):
        names = in_order(r[1][table].keys() for r in runs if table in r[1])
        cells = []
        for i in order:
            rows = runs[i][1].get(table, {})
            cells.append(ns(rows[names[0]][1]) if names[0] in rows else "")
        print(f"| {table.split(' (')[0]}: {names[0]} (ns per call) | {' | '.join(cells)} |")
        for name in names[1:]:
            cells = []
            for i in order:
                rows = runs[i][1].get(table, {})
                bare = rows.get(names[0])
                cells.append(signed(rows[name][1] - bare[1]) if name in rows and bare else "")
            print(f"| {name} | {' | '.join(cells)} |")


def process_ratios(runs, table, ours, baseline, overhead):
    """Each process's own ratio of overheads, ours over the baseline's."""
    ratios = []
    for run in runs:
        a, b = overhead(run, table, ours), overhead(run, table, baseline)
        if a is not None and b:
            ratios.append(a / b)
    return ratios


if __name__ == "__main__":
    sys.exit(main())
