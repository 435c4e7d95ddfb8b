#!/usr/bin/env python3
"""Lists C++/CUDA functions longer than N lines (default 120), longest first.

Usage: scripts/long_functions.py [--max N] [PATH ...]   (default paths: src cli)
Exit status 1 when a function is over the limit, so it can gate a check.

A function is a brace block opened outside any other function whose header (the text since the previous
';', '{' or '}') ends in a parameter list; lambdas and local classes count toward the function around them.
Comments, strings and preprocessor lines are skipped. Standard library only.
"""
import argparse
import os
import re
import sys

EXTENSIONS = (".cpp", ".cc", ".h", ".hpp", ".cu", ".cuh")
SCOPE_WORDS = re.compile(r"\b(namespace|class|struct|union|enum)\b")
CONTROL_WORDS = re.compile(r"^\s*(if|for|while|switch|catch|do|else|return)\b")


def strip_code(text):
    """Blanks comments, string/char literals and preprocessor lines, keeping newlines."""
    out = []
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c == "#":
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    out.append("\n")
                    i += 2
                    continue
                i += 1
            continue
        if c == "/" and text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append("\n" * text.count("\n", i, end))
            i = end
            continue
        if c == "R" and text.startswith('R"', i):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            if m:
                close = ")" + m.group(1) + '"'
                end = text.find(close, i + m.end())
                end = n if end < 0 else end + len(close)
                out.append('""' + "\n" * text.count("\n", i, end))
                i = end
                continue
        if c in "\"'":
            quote, j = c, i + 1
            while j < n and text[j] != quote and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(quote + quote)
            i = j + 1
            continue
        out.append(c)
        if c == "\n":
            at_line_start = True
        elif not c.isspace():
            at_line_start = False
        i += 1
    return "".join(out)


def header_is_function(header):
    h = " ".join(header.split())
    if not h.endswith(")") and not re.search(r"\)\s*(const|noexcept|override|final|mutable|->[^()]*|"
                                               r"\s*:.*)*$", h):
        return False
    if CONTROL_WORDS.match(h) or SCOPE_WORDS.search(h.split("(")[0]):
        return False
    if "=" in h.split("(")[0]:  # a variable initialised by a lambda or braces
        return False
    return "(" in h


def functions(path):
    text = strip_code(open(path, encoding="utf-8", errors="replace").read())
    stack = []  # (kind, start_line, name)
    header_start, line = 0, 1
    found = []
    for i, c in enumerate(text):
        if c == "\n":
            line += 1
        elif c == "{":
            header = text[header_start:i]
            in_function = any(kind == "function" for kind, _, _ in stack)
            if not in_function and header_is_function(header):
                bare = re.sub(r"__launch_bounds__\s*\([^)]*\)", "", header)
                name = " ".join(bare.split("(")[0].split()[-1:])
                stack.append(("function", line, name))
            else:
                stack.append(("block", line, ""))
            header_start = i + 1
        elif c == "}":
            if stack:
                kind, start, name = stack.pop()
                if kind == "function":
                    found.append((line - start + 1, path, start, name))
            header_start = i + 1
        elif c == ";":
            header_start = i + 1
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=120, help="longest allowed function, in lines")
    parser.add_argument("paths", nargs="*", default=["src", "cli"])
    args = parser.parse_args()
    found = []
    for root in args.paths:
        files = [root] if os.path.isfile(root) else [
            os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(EXTENSIONS)]
        for path in sorted(files):
            found += functions(path)
    over = sorted((f for f in found if f[0] > args.max), reverse=True)
    for length, path, start, name in over:
        print(f"{length:5d}  {path}:{start}  {name}")
    print(f"{len(over)} function(s) over {args.max} lines ({len(found)} read)", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
