#!/usr/bin/env python3
"""The layering check: the longest chain of module imports in each program, `main` included.

A module "imports" another when its production code (everything before `#[cfg(test)] mod tests`) names it
through `crate::` (or, in main.rs, through the crate's own name). The deepest chain must stay at most
MAX_DEPTH modules long, and no two modules may import each other through any chain (no cycle), so the folder
keeps showing the architecture: vocabulary at the bottom, the edges and `main` on top.

    python3 .ci/import_depth.py            # check both programs, print each one's deepest chain
    python3 .ci/import_depth.py --graph    # also print who imports whom
"""

import os
import re
import sys

# The controller was re-layered to five levels (issue 8); status-api's chain is held where it stands.
CRATES = {"status-controller": ("status_controller", 5), "status-api": ("status_api", 8)}


def modules(src):
    """Module name -> production source, for every file under src (mod.rs names its folder)."""
    found = {}
    for folder, _, files in os.walk(src):
        for file in files:
            if not file.endswith(".rs"):
                continue
            path = os.path.join(folder, file)
            rel = os.path.relpath(path, src)[:-3].replace(os.sep, "::")
            if rel.endswith("::mod"):
                rel = rel[: -len("::mod")]
            if rel == "lib" or rel.split("::")[-1] == "tests":
                continue
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            production = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
            found[rel] = re.sub(r"//.*", "", production)
    return found


def reexports(src):
    """Names lib.rs re-exports (`pub use startup::Application;`) -> the module they come from."""
    with open(os.path.join(src, "lib.rs"), encoding="utf-8") as handle:
        return dict((item, module) for module, item in re.findall(r"pub use (\w+)::(\w+);", handle.read()))


def imports(name, text, names, crate, aliases):
    """The modules `text` names: the longest known module path after `crate::` (or `<crate>::` in main)."""
    prefix = crate if name == "main" else "crate"
    used = set()
    for match in re.finditer(prefix + r"::((?:\w+::)*\w+)", text):
        parts = match.group(1).split("::")
        for end in range(len(parts), 0, -1):
            candidate = "::".join(parts[:end])
            if candidate in names:
                used.add(candidate)
                break
    # `use crate::{a::X, b::Y}` groups.
    for group in re.finditer(prefix + r"::\{([^;]*)\}", text):
        for part in re.findall(r"(\w+)(?:::|\s*[,}]|$)", group.group(1)):
            if part in names:
                used.add(part)
    if name == "main":
        for item, module in aliases.items():
            if re.search(r"\b" + crate + r"::(?:\{[^;]*\b" + item + r"\b|" + item + r"\b)", text):
                used.add(module)
    # A submodule's parent is not an import of it, nor is a module of itself.
    used.discard(name)
    return {m for m in used if not name.startswith(m + "::")}


def deepest(graph):
    memo = {}

    def chain(node, stack):
        if node in stack:
            raise SystemExit("import cycle: " + " -> ".join(stack[stack.index(node):] + (node,)))
        if node not in memo:
            best = [node]
            for dep in graph[node]:
                longer = [node] + chain(dep, stack + (node,))
                if len(longer) > len(best):
                    best = longer
            memo[node] = best
        return memo[node]

    return max((chain(node, ()) for node in sorted(graph)), key=len)


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    failed = False
    for directory, (crate, limit) in CRATES.items():
        src = os.path.join(root, directory, "src")
        found = modules(src)
        names = set(found)
        aliases = reexports(src)
        graph = {name: imports(name, text, names, crate, aliases) for name, text in found.items()}
        chain = deepest(graph)
        verdict = f"limit {limit}: ok" if len(chain) <= limit else f"deeper than the limit {limit}"
        print(f"{directory}: deepest import chain {len(chain)} modules ({verdict}): {' -> '.join(chain)}")
        if "--graph" in sys.argv:
            for name in sorted(graph):
                print(f"    {name}: {', '.join(sorted(graph[name])) or '-'}")
        failed |= len(chain) > limit
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
