#!/usr/bin/env python3
"""The layering check: the longest chain of module imports in each crate, `main` included, and no cycle.

A module "imports" another when its production code (everything before `#[cfg(test)] mod tests`) names it by
any path Rust resolves: `crate::a::b`, `super::b` (and `super::super::…`), `self::child`, a bare `child::…`
of one of its own submodules, the crate's own name (in main.rs), and an item another module re-exports
(`pub use …`, in lib.rs or any module), which counts as an import of the module the item comes from. A
module naming one of its ancestors is not an import (a submodule may use its parent's items), nor is a
module naming itself. The deepest chain must stay at most the crate's limit, and no two modules may import
each other through any chain (no cycle), so the folder keeps showing the architecture: vocabulary at the
bottom, the edges and `main` on top.

    python3 .ci/import_depth.py              # check every crate, print each one's deepest chain
    python3 .ci/import_depth.py --graph      # also print who imports whom
    python3 .ci/import_depth.py --self-test  # prove the checker finds what it must, on made-up crates
"""

import os
import re
import sys
import tempfile

# directory -> (the crate's name in paths, the deepest chain allowed). The controller was re-layered to five
# levels (issue 8); status-api's and shared's chains are held where they stand.
CRATES = {
    "status-controller": ("status_controller", 5),
    "status-api": ("status_api", 8),
    "shared": ("shared", 4),
}

ROOT = ()


def strip_code(text):
    """The source without comments, string and char literals, and from an inline `#[cfg(test)] mod tests` on."""
    # An inline `mod tests { … }` ends the production code; a `mod tests;` declaration only names a file.
    text = re.split(r"#\[cfg\(test\)\]\s*mod\s+tests\s*\{", text)[0]
    text = re.sub(r"#\[cfg\(test\)\]\s*mod\s+tests\s*;", "", text)
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + len(hashes) + 2)
            i = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            # A char literal ('a', '\n'); a lifetime ('a) has no closing quote.
            i += len(re.match(r"'(\\.|[^\\'])'", text[i:]).group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def modules(src):
    """Module path (a tuple; lib.rs is ROOT) -> production source, for every file under src."""
    found = {}
    for folder, _, files in os.walk(src):
        for file in files:
            if not file.endswith(".rs"):
                continue
            path = os.path.join(folder, file)
            parts = tuple(os.path.relpath(path, src)[:-3].split(os.sep))
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts == ("lib",):
                parts = ROOT
            elif parts[-1] == "tests":
                continue
            with open(path, encoding="utf-8") as handle:
                found[parts] = strip_code(handle.read())
    return found


def use_paths(tree, prefix=()):
    """Expands one `use` tree (`a::{b::C, d::{e, f}}`) into its paths."""
    tree = tree.strip()
    if not tree:
        return []
    # Split on the top-level `::` before a `{`.
    if tree.endswith("}") and "{" in tree:
        head, _, body = tree.partition("{")
        head = [part for part in head.strip().rstrip(":").split("::") if part]
        body = body[:-1]
        paths, depth, start = [], 0, 0
        for i, c in enumerate(body + ","):
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            elif c == "," and depth == 0:
                paths += use_paths(body[start:i], prefix + tuple(head))
                start = i + 1
        return paths
    tree = re.sub(r"\s+as\s+\w+$", "", tree)
    parts = tuple(part.strip() for part in tree.split("::") if part.strip())
    if parts and parts[-1] == "self":
        parts = parts[:-1]
    return [prefix + parts] if prefix + parts else []


def paths_in(text, children):
    """Every path `text` names that starts with crate/super/self, a child module, or (in main) the crate."""
    paths = []
    for match in re.finditer(r"\buse\s+([^;]*);", text):
        paths += [path[:-1] if path[-1] == "*" else path for path in use_paths(match.group(1))]
    starts = ["crate", "super", "self"] + sorted(children)
    pattern = r"(?<![\w:])((?:" + "|".join(map(re.escape, starts)) + r")(?:\s*::\s*\w+)+)"
    for match in re.finditer(pattern, text):
        paths.append(tuple(part.strip() for part in match.group(1).split("::")))
    return paths


def reexports(found):
    """(module, item) -> (the re-exporting module, the path the item comes by), for every `pub use` (and
    `pub(crate) use`); a glob (`pub use model::*`) re-exports every item its module defines."""
    defined = {
        module: set(re.findall(r"\b(?:struct|enum|fn|type|const|static|trait|union|mod)\s+(\w+)", text))
        for module, text in found.items()
    }
    names = set(found)
    table = {}
    for module, text in found.items():
        for match in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]*);", text):
            for path in use_paths(match.group(1)):
                if path[-1] == "*":
                    source = resolve(module, path[:-1], names, None, False)
                    if source and source[1] is None:
                        for item in defined.get(source[0], ()):
                            table.setdefault((module, item), (module, path[:-1]))
                elif len(path) >= 2:
                    table[(module, path[-1])] = (module, path[:-1])
    return table


def resolve(module, path, names, crate, is_main):
    """The module a path names (relative to `module`), and the item after it, or None for another crate's."""
    base, rest = None, list(path)
    if rest[0] == "crate" or (is_main and rest[0] == crate):
        base, rest = ROOT, rest[1:]
    elif rest[0] == "super":
        base = module
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    elif rest[0] == "self":
        base, rest = module, rest[1:]
    elif module + (rest[0],) in names:
        base = module
    if base is None:
        return None
    target = base
    while rest and target + (rest[0],) in names:
        target, rest = target + (rest[0],), rest[1:]
    return target, (rest[0] if rest else None)


def imports(module, text, names, table, crate):
    """The modules `module` imports (see the module documentation)."""
    is_main = module == ("main",)
    children = {name[-1] for name in names if name[:-1] == module and len(name) == len(module) + 1}
    used = set()
    for path in paths_in(text, children):
        found = resolve(module, path, names, crate, is_main)
        if found is None:
            continue
        target, item = found
        used.add(target)
        # An item re-exported by `target` comes from another module: follow the re-exports.
        seen = set()
        while item is not None and (target, item) in table and (target, item) not in seen:
            seen.add((target, item))
            origin, source = table[(target, item)]
            again = resolve(origin, source + (item,), names, crate, origin == ("main",))
            if again is None:
                break
            target, item = again
            used.add(target)
    return {
        other
        for other in used
        if other != module and module[: len(other)] != other and other != ROOT
    }


def name(module):
    return "::".join(module) or "lib"


def cycles_in(graph):
    """Every group of modules that import each other through some chain (strongly connected, Tarjan), each
    as one cycle through it, e.g. `[a, b, a]`."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph[node]):
            if dep not in index:
                connect(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(set(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [path_through(graph, group) for group in groups]


def path_through(graph, group):
    """A cycle inside `group`, from its first module back to it."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for dep in sorted(graph[node] & group):
                if dep == start:
                    return paths[node] + [start]
                if dep not in paths:
                    paths[dep] = paths[node] + [dep]
                    following.append(dep)
        frontier = following
    return sorted(group)


def top_level(graph):
    """The graph of top-level modules, each standing for itself and its submodules."""
    tops = {}
    for node, deps in graph.items():
        tops.setdefault(node[:1], set()).update(dep[:1] for dep in deps if dep[:1] != node[:1])
    return tops


def deepest(graph):
    """The longest chain of imports between top-level modules: a module's own submodules are its
    implementation, not layers below it, so an import inside one top-level module (`api::operations` ->
    `api::http`, `notify` -> `notify::sender`) adds no depth; the chain counts again once it leaves."""
    graph = {node: {dep for dep in deps if dep[0] != node[0]} for node, deps in graph.items()}
    memo = {}

    def chain(node):
        if node not in memo:
            best = [node]
            for dep in sorted(graph[node]):
                longer = [node] + chain(dep)
                if len(longer) > len(best):
                    best = longer
            memo[node] = best
        return memo[node]

    return max((chain(node) for node in sorted(graph)), key=len)


def graph_of(src, crate):
    found = modules(src)
    names = set(found)
    table = reexports(found)
    return {
        module: imports(module, text, names, table, crate)
        for module, text in found.items()
        if module != ROOT
    }


def check(src, crate, limit, label, show_graph=False):
    """Prints the crate's verdict; True when it passes."""
    graph = graph_of(src, crate)
    # Module by module (`api::auth` <-> `api::http`), and top-level module by top-level module, a module's
    # submodules taken as part of it (`model` -> `namespaces::modes`, `namespaces` -> `model`).
    cycles = cycles_in(graph) + cycles_in(top_level(graph))
    for cycle in cycles:
        print(f"{label}: import cycle: {' -> '.join(map(name, cycle))}")
    if cycles:
        return False
    chain = deepest(graph)
    verdict = f"limit {limit}: ok" if len(chain) <= limit else f"deeper than the limit {limit}"
    print(f"{label}: deepest import chain {len(chain)} modules ({verdict}): {' -> '.join(map(name, chain))}")
    if show_graph:
        for module in sorted(graph):
            print(f"    {name(module)}: {', '.join(sorted(map(name, graph[module]))) or '-'}")
    return len(chain) <= limit


def self_test():
    """Made-up crates, each with one way of importing, and the verdict the checker must give."""
    cases = {
        "super sibling cycle": ({
            "lib.rs": "mod api;",
            "api/mod.rs": "mod auth; mod http;",
            "api/auth.rs": "use super::http::respond;",
            "api/http.rs": "pub fn respond() { super::auth::check(); }",
        }, "cycle"),
        "crate cycle through a re-export": ({
            "lib.rs": "mod model; mod namespaces; pub use model::Member;",
            "model.rs": "use crate::namespaces::Owners; pub struct Member;",
            "namespaces.rs": "use crate::Member;",
        }, "cycle"),
        "through a glob re-export": ({
            "lib.rs": "mod model; mod drift; pub use model::*;",
            "model.rs": "use crate::drift::Item; pub struct Member;",
            "drift.rs": "use crate::Member; pub struct Item;",
        }, "cycle"),
        "self and child paths": ({
            "lib.rs": "mod runtime;",
            "runtime/mod.rs": "pub mod engine; pub mod engine_json; pub use self::engine_json::Raw;",
            "runtime/engine.rs": "fn f() { super::Raw::new(); }",
            "runtime/engine_json.rs": "use super::engine::Client;",
        }, "cycle"),
        "a child named without a prefix": ({
            "lib.rs": "mod a; mod b;",
            "a/mod.rs": "mod inner; fn f() { inner::g(); }",
            "a/inner.rs": "use crate::b::X;",
            "b.rs": "use crate::a::Y; // a comment naming crate::a::inner does not count",
        }, "cycle"),
        "tests, comments and strings do not count": ({
            "lib.rs": "mod a; mod b;",
            "a.rs": "use crate::b::X;\n#[cfg(test)]\nmod tests { use crate::a::Z; }",
            "b.rs": "// crate::a::Z\nconst S: &str = \"crate::a::Z\"; /* super::a */",
        }, "ok"),
        "through a submodule of another module": ({
            "lib.rs": "mod model; mod namespaces;",
            "model.rs": "use crate::namespaces::modes::Shared;",
            "namespaces/mod.rs": "mod modes; use crate::model::Member;",
            "namespaces/modes.rs": "pub struct Shared;",
        }, "cycle"),
        "a parent's items are no import": ({
            "lib.rs": "mod inv;",
            "inv/mod.rs": "mod applier; pub struct State; fn f() { applier::apply(); }",
            "inv/applier.rs": "use super::State;",
        }, "ok"),
    }
    failed = False
    for label, (files, expected) in cases.items():
        with tempfile.TemporaryDirectory() as src:
            for path, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(src, path)), exist_ok=True)
                with open(os.path.join(src, path), "w", encoding="utf-8") as handle:
                    handle.write(text)
            graph = graph_of(src, "demo")
            got = "cycle" if cycles_in(graph) or cycles_in(top_level(graph)) else "ok"
        mark = "ok" if got == expected else "WRONG"
        print(f"self-test {label}: expected {expected}, got {got}: {mark}")
        failed |= got != expected
    return not failed


def main():
    if "--self-test" in sys.argv:
        sys.exit(0 if self_test() else 1)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    passed = self_test() if "--no-self-test" not in sys.argv else True
    for directory, (crate, limit) in CRATES.items():
        src = os.path.join(root, directory, "src")
        passed &= check(src, crate, limit, directory, "--graph" in sys.argv)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
