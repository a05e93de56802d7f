#!/usr/bin/env python3
"""Lines of code per Rust file: fails if a file holds more than the limit (issue 14).

    python3 scripts/lines-of-code.py          # check every tracked .rs file; exit 1 if one is over
    python3 scripts/lines-of-code.py --top 10 # also list the ten largest

A line of code is a line that is neither blank nor a `//` comment (doc comments included),
as `grep -cvE '^\\s*(//.*)?$' FILE` counts them. Files are the tracked ones (`git ls-files`),
so the library, its tests, examples, benches and the test-support crate alike. A file over
the limit is split along its seams (tests into a `mod tests;` file, a folder of modules).
"""

import re
import subprocess
import sys
import os

LIMIT = 600
NOT_CODE = re.compile(r"^\s*(//.*)?$")


def main():
    args = sys.argv[1:]
    top = int(args[args.index("--top") + 1]) if "--top" in args else 0
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    files = subprocess.run(["git", "ls-files", "*.rs"], cwd=root, check=True,
                           capture_output=True, text=True).stdout.split()
    counts = []
    for f in files:
        with open(os.path.join(root, f), encoding="utf-8") as fh:
            counts.append((sum(1 for line in fh if not NOT_CODE.match(line)), f))
    counts.sort(reverse=True)
    for n, f in counts[:top]:
        print(f"{n:6} {f}")
    over = [(n, f) for n, f in counts if n > LIMIT]
    for n, f in over:
        print(f"{f}: {n} lines of code (at most {LIMIT}): split it along its seams")
    if over:
        return 1
    print(f"{len(counts)} Rust files, the largest {counts[0][0]} lines of code (at most {LIMIT})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
