#!/usr/bin/env python3
"""Public items of the crate whose documentation has no example (a code block).

    python3 scripts/doc-examples.py          # report; exit 1 if any public item lacks one
    python3 scripts/doc-examples.py --all    # also list the items that are left out, and why

The project's rule: every public item is documented with an example that compiles (the
examples are doc tests, so `cargo test` compiles and runs them). Stable rustdoc cannot check
this (its `missing_doc_code_examples` lint is nightly-only), so this reads the sources as text.

An item is a `pub fn`, `struct`, `enum`, `trait`, `type`, `const` or `static` (not `pub(crate)`
or `pub(super)`); fields and variants are documented with their type. It is public when:
- its module is public: every `mod` from `src/lib.rs` down to it is `pub mod`; or
- its name is re-exported by a `pub use` of a public module; or
- it is a method (`pub fn` in an inherent `impl Type`) of a type that is public by the
  two rules above.
Left out: items under `#[doc(hidden)]`, test modules (`#[cfg(test)] mod ... { }` and files
declared under `cfg(test)`), and the items listed in `PRIVATE_PARTS` below (a re-export is
matched by name: a private type that shares its name with a re-exported one is listed there).

Its documentation is the run of `///` lines and attributes just above it (a `doc = "..."`
inside a `cfg_attr` counts as documentation); it has an example when that text holds a
code fence.
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "src")

# Items the name-based check below would count as re-exported, but users never reach: a
# private module's type that shares its name with a re-exported one.
PRIVATE_PARTS = {
    "stack::gate::future::ResponseFuture": "the preset's inner future, in a private module",
}

ITEM = re.compile(
    r"^\s*pub\s+(?:const\s+|async\s+|unsafe\s+)*(fn|struct|enum|trait|type|const|static)\s+(\w+)"
)
MOD_DECL = re.compile(r"^\s*(pub\s+)?mod\s+(\w+)\s*;")
MOD_BLOCK = re.compile(r"^\s*(pub\s+)?mod\s+(\w+)\s*\{")
PUB_USE = re.compile(r"(?m)^\s*pub\s+use\s+([^;]+);")


def module_files():
    """(module path, file, public, test-only) for every module file, from lib.rs down."""
    out = []

    def visit(path, file, public, test):
        out.append((path, file, public, test))
        with open(file) as f:
            lines = f.read().splitlines()
        base = os.path.dirname(file)
        stem = os.path.splitext(os.path.basename(file))[0]
        if stem not in ("lib", "mod"):
            base = os.path.join(base, stem)
        for i, line in enumerate(lines):
            m = MOD_DECL.match(line)
            if not m:
                continue
            above = lines[i - 1].strip() if i > 0 else ""
            is_test = test or bool(re.match(r"#\[cfg\((all\(.*\btest\b.*\)|test)\)\]", above))
            name = m.group(2)
            for candidate in (os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")):
                if os.path.exists(candidate):
                    visit(path + [name], candidate, public and bool(m.group(1)), is_test)
                    break

    visit([], os.path.join(SRC, "lib.rs"), True, False)
    return out


def impl_type(line):
    """The type of an inherent `impl` block's first line, or None for a trait impl."""
    s = line.strip()[len("impl") :]
    if s.startswith("<"):
        depth = 0
        for i, c in enumerate(s):
            depth += c == "<"
            depth -= c == ">"
            if depth == 0:
                s = s[i + 1 :]
                break
    if re.search(r"\bfor\b", s):
        return None
    m = re.match(r"\s*(?:\w+::)*(\w+)", s)
    return m.group(1) if m else None


def scan(file):
    """(line, kind, name, impl type or None, documented with an example, hidden) per item."""
    with open(file) as f:
        lines = f.read().splitlines()
    items = []
    doc = []
    in_attr = 0
    skip_depth = None  # brace depth at which a test module ends
    depth = 0
    impl_stack = []  # (depth at which the impl block ends, type)
    pending_test = False
    for i, line in enumerate(lines):
        s = line.strip()
        opens, closes = line.count("{"), line.count("}")
        if skip_depth is not None:
            depth += opens - closes
            if depth <= skip_depth:
                skip_depth = None
            continue
        if in_attr:
            doc.append(s)
            in_attr += s.count("[") - s.count("]")
            continue
        if s.startswith("#[cfg(test)]") or re.match(r"#\[cfg\(all\(.*\btest\b", s):
            pending_test = True
        if s.startswith("///") or s.startswith("//!"):
            doc.append(s)
        elif s.startswith("#["):
            doc.append(s)
            in_attr = s.count("[") - s.count("]")
        elif s.startswith("//") or s == "":
            if s == "":
                doc = []
        else:
            if pending_test and MOD_BLOCK.match(line):
                skip_depth = depth
                depth += opens - closes
                pending_test = False
                doc = []
                continue
            pending_test = False
            m = ITEM.match(line)
            if m:
                text = "\n".join(doc)
                items.append(
                    (
                        i + 1,
                        m.group(1),
                        m.group(2),
                        impl_stack[-1][1] if impl_stack else None,
                        "```" in text,
                        "doc(hidden)" in text,
                    )
                )
            if s.startswith("impl"):
                impl_stack.append((depth, impl_type(line)))
            doc = []
        depth += opens - closes
        while impl_stack and depth <= impl_stack[-1][0] and closes:
            impl_stack.pop()
    return items


def main():
    show_all = "--all" in sys.argv[1:]
    modules = module_files()
    exported = set()
    for path, file, public, test in modules:
        if not public or test:
            continue
        with open(file) as f:
            text = f.read()
        for m in PUB_USE.finditer(text):
            for name in re.findall(r"\b(\w+)\b", m.group(1)):
                exported.add(name)
    # Types users can name: defined in a public module, or re-exported.
    public_types = set()
    scanned = {}
    for path, file, public, test in modules:
        if test:
            continue
        scanned[file] = scan(file)
        for _, kind, name, owner, _, _ in scanned[file]:
            if owner is None and kind in ("struct", "enum", "trait", "type"):
                if "::".join(path + [name]) not in PRIVATE_PARTS and (public or name in exported):
                    public_types.add(name)
    missing, left_out, checked = [], [], 0
    for path, file, public, test in modules:
        if test:
            continue
        rel = os.path.relpath(file, ROOT)
        items = scanned[file]
        for line, kind, name, owner, example, hidden in items:
            qualified = "::".join(path + [name])
            where = f"{rel}:{line}: {kind} {owner + '::' if owner else ''}{name}"
            if qualified in PRIVATE_PARTS:
                left_out.append(f"{where} ({PRIVATE_PARTS[qualified]})")
                continue
            if hidden:
                left_out.append(f"{where} (doc(hidden))")
                continue
            if owner is None:
                reachable = public or name in exported
            else:
                reachable = owner in public_types
            if not reachable:
                left_out.append(f"{where} (not reachable from outside the crate)")
                continue
            checked += 1
            if not example:
                missing.append(where)
    if show_all:
        print("left out:")
        for line in left_out:
            print("  " + line)
    if missing:
        print(f"{len(missing)} of {checked} public items without an example:")
        for line in missing:
            print("  " + line)
        return 1
    print(f"every public item has an example ({checked} items)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
