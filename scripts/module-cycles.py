#!/usr/bin/env python3
"""Module cycles of the crate: sibling modules that use each other.

    python3 scripts/module-cycles.py            # report; exit 1 on a cycle not allowed below
    python3 scripts/module-cycles.py --edges    # also print every sibling edge, with its source
    python3 scripts/module-cycles.py DIR        # another crate's `src` (DIR/lib.rs)

Modules are the crate's files and `mod` blocks, found from `src/lib.rs` by following `mod x;`
(`x.rs`, `x/mod.rs`) and `mod x { ... }`, whatever their `cfg`. A module's uses are the paths
it names: `use` trees and paths in code, starting with `crate::`, `super::`, `self::`, a child
module, or a name the module imported. A path is followed through modules and through the
imports and re-exports of the module it reaches (`pub use semaphore::Semaphore` in a `mod.rs`
leads on to `semaphore`), and ends at the module that defines its last name (or the last
module it can reach). Comments, strings and doc tests are not read.

The rule: an edge from module A to module B counts between the two children of their lowest
common ancestor that contain A and B. If A is an ancestor or descendant of B (a module using
its parent's items, or its own parts), the edge does not count: a module and its parts are
one unit, seen from outside. So within every module, its children must form no cycle: a
cycle among the children of `crate::pool` names the files (or folders) that use each other,
and a cycle at the crate root the top-level modules. Test-only modules (declared under
`#[cfg(test)]` or `#[cfg(all(.., test, ..))]`: unit tests, loom models) are left out: they
use what they test and nothing in the library uses them, so they are the graph's leaves;
a loom model in `pool/adaptive/` that drives `pool::permit` is not a dependency of the
limiter on the permit.

Allowed: a layer's `service` and `future` using each other (tower's idiom: the future is the
service's, the service returns it), as the exact pair. Exceptions known when this check was
added are listed in `KNOWN` with the reason; a cycle that is neither fails the run, as does a
known one that grew. A known exception that no longer occurs is reported (remove it).
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "src")

# A layer's service and future may use each other.
ALLOWED_PAIRS = [frozenset({"service", "future"})]

# Cycles present when this check was added, in modules other work was changing at the time:
# (parent module, members) -> why it is tolerated. Remove an entry once its cycle is gone.
KNOWN = {}


# ===== reading files =====

CHAR = re.compile(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'\n])'")


def strip(text):
    """The text with comments, strings and char literals blanked (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + len(hashes) + 2)
            j = n if end < 0 else end + 1 + len(hashes)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            m = CHAR.match(text, i)
            if m:
                out.append(" " * (m.end() - i))
                i = m.end()
            else:  # a lifetime
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(code, open_at):
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code)


# ===== the module tree =====


class Module:
    def __init__(self, path, file, code, start, end):
        self.path = path  # tuple of names, () for the crate root
        self.file = file
        self.code = code  # the stripped text of the whole file
        self.start, self.end = start, end  # the span of this module in `code`
        self.children = {}  # name -> Module
        self.imports = {}  # name -> (module path where declared, segments)
        self.globs = []  # segments of `use x::*`
        self.defined = set()
        self.test_only = False  # declared under `#[cfg(test)]` (or inside such a module)


MODULES = {}


def rel(file):
    return os.path.relpath(file, ROOT)


def load(path, file, inline_dir, tests=False):
    """Loads the module `path` from `file`; `inline_dir` is where its `mod x;` files live."""
    code = strip(open(file, encoding="utf-8").read())
    module = Module(path, file, code, 0, len(code))
    module.test_only = tests
    MODULES[path] = module
    scan(module, inline_dir)
    return module


MOD_DECL = re.compile(r"\bmod\s+(\w+)\s*(;|\{)")
ATTRS = re.compile(r"((?:#\[[^\]]*\]\s*)*)(?:pub(?:\([^)]*\))?\s+)?$")
TEST_CFG = re.compile(r"#\[cfg\((?:test|all\((?:[^()]|\([^()]*\))*\btest\b(?:[^()]|\([^()]*\))*\))\)\]")


def test_only(code, at):
    """Whether the `mod` at `at` is under `#[cfg(test)]` or `#[cfg(all(.., test, ..))]`."""
    attrs = ATTRS.search(code[max(0, at - 400):at]).group(1)
    return bool(TEST_CFG.search(attrs))


def scan(module, dir_):
    """Finds `module`'s children in its span, and loads them."""
    code, i = module.code, module.start
    while True:
        m = MOD_DECL.search(code, i, module.end)
        if not m:
            break
        name = m.group(1)
        tests = module.test_only or test_only(code, m.start())
        if m.group(2) == ";":
            for cand in (os.path.join(dir_, name + ".rs"), os.path.join(dir_, name, "mod.rs")):
                if os.path.exists(cand):
                    module.children[name] = load(module.path + (name,), cand, os.path.join(dir_, name),
                                                 tests)
                    break
            else:
                sys.exit(f"{rel(module.file)}: `mod {name};` but no file for it under {rel(dir_)}")
            i = m.end()
        else:
            close = matching_brace(code, m.end() - 1)
            child = Module(module.path + (name,), module.file, code, m.end(), close)
            child.test_only = tests
            MODULES[child.path] = child
            module.children[name] = child
            scan(child, os.path.join(dir_, name))
            i = close + 1


def own_spans(module):
    """`module`'s span without its inline children's."""
    spans, at = [], module.start
    for child in sorted(module.children.values(), key=lambda c: c.start):
        if child.file == module.file and child.start >= module.start and child.end <= module.end:
            spans.append((at, child.start))
            at = child.end
    spans.append((at, module.end))
    return spans


# ===== use trees =====

TOKEN = re.compile(r"\$?\w+|::|[{},*]")


def use_tree(text):
    """`a::{b, c::d as e, f::*}` -> [(segments, alias)], alias '*' for a glob."""
    tokens = TOKEN.findall(text)
    pos = 0

    def tree(prefix):
        nonlocal pos
        out, segs = [], list(prefix)
        while pos < len(tokens):
            t = tokens[pos]
            if t == "{":
                pos += 1
                while pos < len(tokens) and tokens[pos] != "}":
                    out += tree(segs)
                    if pos < len(tokens) and tokens[pos] == ",":
                        pos += 1
                pos += 1
                return out
            if t == "*":
                pos += 1
                return out + [(segs, "*")]
            if t == "::":
                pos += 1
                continue
            if t in (",", "}"):
                break
            if t == "as":
                alias = tokens[pos + 1]
                pos += 2
                return out + [(segs, alias)]
            segs.append(t)
            pos += 1
        if segs and segs != list(prefix):
            name = segs[-1] if segs[-1] != "self" else segs[-2] if len(segs) > 1 else None
            if segs[-1] == "self":
                segs = segs[:-1]
            out.append((segs, name))
        return out

    return tree([])


USE = re.compile(r"(?m)^[ \t]*(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);")
DEF = re.compile(
    r"\b(?:struct|enum|union|trait|type|fn|const|static|macro_rules!)\s+(\w+)")
PATH = re.compile(r"(?<![\w:$])(\$?\w+)((?:\s*::\s*\w+)+)")


def collect_names():
    for module in MODULES.values():
        for a, b in own_spans(module):
            for m in USE.finditer(module.code, a, b):
                for segs, alias in use_tree(m.group(1)):
                    if alias == "*":
                        module.globs.append(segs)
                    elif alias and alias != "_":
                        module.imports[alias] = segs
            for m in DEF.finditer(module.code, a, b):
                module.defined.add(m.group(1))


# ===== resolution =====


def start(module, first):
    """The module a path's first segment names, seen from `module`, and whether it was
    consumed; None if it is outside the crate (another crate, a type, a local)."""
    if first in ("crate", "$crate"):
        return MODULES[()]
    if first == "self":
        return module
    if first == "super":
        return MODULES.get(module.path[:-1])
    if first in module.children:
        return module.children[first]
    return None


def resolve(module, segs, depth=0):
    """The module a path ends in, from `module`; None outside the crate."""
    if depth > 16 or not segs:
        return None
    first, rest = segs[0], segs[1:]
    at = start(module, first)
    if at is None:
        if first in module.imports and module.imports[first] != segs[:1]:
            return resolve(module, module.imports[first] + rest, depth + 1)
        for glob in module.globs:  # `use super::*` and the like
            source = resolve(module, glob, depth + 1)
            if source is not None and source is not module and (
                    first in source.defined or first in source.children or first in source.imports):
                return follow(source, segs, depth + 1)
        return None
    while rest and rest[0] == "super":
        at, rest = MODULES.get(at.path[:-1]), rest[1:]
        if at is None:
            return None
    return follow(at, rest, depth)


def follow(at, rest, depth):
    """Walks `rest` down from module `at`, through imports and re-exports."""
    while rest:
        name = rest[0]
        if name in at.children:
            at, rest = at.children[name], rest[1:]
            continue
        if name in at.defined:
            return at
        if name in at.imports:
            target = resolve(at, at.imports[name] + rest[1:], depth + 1)
            return target if target is not None else at
        for glob in at.globs:
            source = resolve(at, glob, depth + 1)
            if source is not None and source is not at and (
                    rest[0] in source.defined or rest[0] in source.children or rest[0] in source.imports):
                return follow(source, rest, depth + 1)
        return at
    return at


def uses(module):
    """(target module, line, text) for every path `module` names."""
    out = []
    for a, b in own_spans(module):
        for m in USE.finditer(module.code, a, b):
            for segs, _ in use_tree(m.group(1)):
                target = resolve(module, segs)
                if target is not None:
                    out.append((target, module.code.count("\n", 0, m.start()) + 1, "::".join(segs)))
        used = [(m.start(), m.end()) for m in USE.finditer(module.code, a, b)]
        for m in PATH.finditer(module.code, a, b):
            if any(s <= m.start() < e for s, e in used):
                continue
            segs = [m.group(1)] + re.findall(r"\w+", m.group(2))
            target = resolve(module, segs)
            if target is not None:
                out.append((target, module.code.count("\n", 0, m.start()) + 1, "::".join(segs)))
    return out


# ===== cycles =====


def sibling_edges():
    """parent path -> {(child a, child b): [(file, line, path)]}."""
    edges = {}
    for module in MODULES.values():
        if module.test_only:
            continue
        for target, line, text in uses(module):
            a, b = module.path, target.path
            k = 0
            while k < len(a) and k < len(b) and a[k] == b[k]:
                k += 1
            if k == len(a) or k == len(b):
                continue  # one contains the other
            edges.setdefault(a[:k], {}).setdefault((a[k], b[k]), []).append(
                (rel(module.file), line, text))
    return edges


def components(nodes, edges):
    """Tarjan's strongly connected components of size > 1."""
    index, low, stack, on, out = {}, {}, [], set(), []
    succ = {n: sorted({b for (a, b) in edges if a == n}) for n in nodes}

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    sys.setrecursionlimit(10000)
    for n in sorted(nodes):
        if n not in index:
            visit(n)
    return out


def name(path):
    return "::".join(("crate",) + path)


def main():
    args = sys.argv[1:]
    show_edges = "--edges" in args
    dirs = [a for a in args if not a.startswith("-")]
    src = dirs[0] if dirs else SRC
    load((), os.path.join(src, "lib.rs"), src)
    collect_names()
    edges = sibling_edges()
    bad, allowed, seen_known = [], [], set()
    for parent in sorted(edges):
        pairs = edges[parent]
        nodes = {a for a, _ in pairs} | {b for _, b in pairs}
        if show_edges:
            for (a, b), where in sorted(pairs.items()):
                f, line, text = where[0]
                print(f"{name(parent)}: {a} -> {b}  ({f}:{line} {text}; {len(where)} uses)")
        for comp in components(nodes, pairs):
            key = (name(parent), comp)
            if comp in ALLOWED_PAIRS:
                allowed.append(key)
            elif key in KNOWN:
                seen_known.add(key)
                allowed.append(key)
            else:
                bad.append((parent, comp, pairs))
    for parent_name, comp in allowed:
        members = ", ".join(sorted(comp))
        if (parent_name, comp) in KNOWN:
            print(f"known exception: {parent_name}: {{{members}}}: {KNOWN[(parent_name, comp)]}")
        else:
            print(f"allowed: {parent_name}: {{{members}}} (a layer's service and future)")
    for key in KNOWN:
        grew = any(name(p) == key[0] and key[1] < comp for p, comp, _ in bad)
        if key not in seen_known and not grew:
            print(f"note: the known cycle {key[0]}: {{{', '.join(sorted(key[1]))}}} is gone; "
                  "remove it from KNOWN in scripts/module-cycles.py")
    for parent, comp, pairs in bad:
        print(f"\ncycle in {name(parent)}: {{{', '.join(sorted(comp))}}}")
        for (a, b), where in sorted(pairs.items()):
            if a in comp and b in comp:
                shown = ", ".join(f"{f}:{line} {text}" for f, line, text in where[:3])
                more = f" (+{len(where) - 3} more)" if len(where) > 3 else ""
                print(f"  {a} -> {b}: {shown}{more}")
    count = len(MODULES)
    if bad:
        print(f"\n{len(bad)} module cycle(s) among {count} modules (see the rule in this script's docs)")
        return 1
    print(f"no module cycle among {count} modules but the allowed ones")
    return 0


if __name__ == "__main__":
    sys.exit(main())
