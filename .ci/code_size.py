#!/usr/bin/env python3
"""The size check: no production source file of the three shipped crates holds more than 500 lines of code.

A line of code is a line that still has something on it once comments, blank lines and the file's tests are
taken away: everything from `#[cfg(test)] mod tests` on, and files that are test modules themselves
(`tests.rs`, or a module its parent declares under `#[cfg(test)]`, such as a fake engine). Long functions are
clippy's side of the same rule (`too_many_lines`, at most 80 lines, clippy.toml); this script only does what
clippy cannot, the files.

    python3 .ci/code_size.py              # check, print the five largest files
    python3 .ci/code_size.py --all        # print every file's count
    python3 .ci/code_size.py --self-test  # prove the counter on made-up sources
"""

import os
import re
import sys

CRATES = ("shared", "status-api", "status-controller")
LIMIT = 500

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from import_depth import strip_code  # noqa: E402  (the same comment/string/test stripping as the layering check)


def code_lines(text):
    """Lines of production code in one source file's text."""
    return sum(1 for line in strip_code(text).splitlines() if line.strip())


def test_only_files(src):
    """Files under `src` that only tests compile: `tests.rs`, and modules declared `#[cfg(test)] mod name;`."""
    skip = set()
    for folder, _, files in os.walk(src):
        for file in files:
            if not file.endswith(".rs"):
                continue
            path = os.path.join(folder, file)
            if file == "tests.rs":
                skip.add(path)
                continue
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            # A module file's children live beside it (mod.rs, lib.rs, main.rs) or in a folder of its name.
            base = folder if file in ("mod.rs", "lib.rs", "main.rs") else os.path.join(folder, file[:-3])
            for name in re.findall(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text):
                skip.add(os.path.join(base, name + ".rs"))
                skip.add(os.path.join(base, name, "mod.rs"))
    return skip


def measure(root):
    """(path, code lines) for every production file of every crate under `root`, largest first."""
    sizes = []
    for crate in CRATES:
        src = os.path.join(root, crate, "src")
        skip = test_only_files(src)
        for folder, _, files in os.walk(src):
            for file in files:
                path = os.path.join(folder, file)
                if file.endswith(".rs") and path not in skip:
                    with open(path, encoding="utf-8") as handle:
                        sizes.append((os.path.relpath(path, root), code_lines(handle.read())))
    return sorted(sizes, key=lambda item: -item[1])


def self_test():
    import tempfile

    source = (
        "//! docs\n\n"
        "use std::fmt; // trailing\n"
        "/* a block\n comment */\n"
        'const S: &str = "a\n\nb";\n'
        "fn f() {}\n"
        "#[cfg(test)]\nmod tests {\n    fn t() {}\n}\n"
    )
    # `use`, `const S … "` (the string's lines collapse into one), `fn f`.
    assert code_lines(source) == 3, code_lines(source)
    with tempfile.TemporaryDirectory() as root:
        src = os.path.join(root, "shared", "src")
        os.makedirs(os.path.join(src, "a"))
        for crate in CRATES[1:]:
            os.makedirs(os.path.join(root, crate, "src"))
        with open(os.path.join(src, "lib.rs"), "w") as f:
            f.write("pub mod a;\n#[cfg(test)]\nmod fake;\n")
        with open(os.path.join(src, "fake.rs"), "w") as f:
            f.write("fn x() {}\n" * (LIMIT + 1))
        with open(os.path.join(src, "a", "mod.rs"), "w") as f:
            f.write("#[cfg(test)]\nmod tests;\n" + "fn y() {}\n" * (LIMIT + 1))
        with open(os.path.join(src, "a", "tests.rs"), "w") as f:
            f.write("fn z() {}\n" * (LIMIT + 1))
        sizes = dict(measure(root))
        assert os.path.join("shared", "src", "fake.rs") not in sizes, sizes
        assert os.path.join("shared", "src", "a", "tests.rs") not in sizes, sizes
        assert sizes[os.path.join("shared", "src", "a", "mod.rs")] == LIMIT + 1, sizes  # the `mod tests;` line is no code, what follows it is
    print("code_size self-test: ok")


def main(argv):
    if "--self-test" in argv:
        self_test()
        return 0
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    sizes = measure(root)
    for path, count in sizes if "--all" in argv else sizes[:5]:
        print(f"{count:5}  {path}")
    over = [(path, count) for path, count in sizes if count > LIMIT]
    for path, count in over:
        print(f"error: {path} has {count} lines of code (at most {LIMIT}): split it by concept", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
