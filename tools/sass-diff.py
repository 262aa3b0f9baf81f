#!/usr/bin/env python3
"""Compares the SASS of two builds kernel by kernel (run where cuobjdump is, e.g. the GPU host).

Usage: tools/sass-diff.py BEFORE.node AFTER.node [--rename OLD=NEW ...]
Each kernel's SASS (cuobjdump -sass, per architecture) is keyed by its mangled name after the --rename
substitutions (for a namespace move, e.g. 6marlin5dense=6marlin3kit). Prints, per architecture: kernels only in
BEFORE, only in AFTER, and those whose instructions differ (with the count of differing lines); exit 0 when every
kernel of BEFORE exists in AFTER with identical instructions.
"""
import re
import subprocess
import sys


def kernels(path, renames):
    out = subprocess.run(["cuobjdump", "-sass", path], check=True, capture_output=True, text=True).stdout
    result, arch, name, body = {}, "?", None, []
    for line in out.splitlines():
        m = re.match(r"\s*code for (sm_\w+)", line)
        if m:
            arch = m.group(1)
            continue
        m = re.match(r"\s*Function : (\S+)", line)
        if m:
            if name is not None:
                result[(arch, name)] = body
            name, body = m.group(1), []
            for old, new in renames:
                name = name.replace(old, new)
            continue
        if name is not None:
            ins = re.sub(r"/\*[0-9a-f]{4,}\*/", "", line).strip()  # drop addresses and encodings
            ins = re.sub(r"\s+", " ", ins)
            ins = re.sub(r"\.L_x_\d+", ".L_x", ins)  # branch labels are numbered per translation unit
            if ins and not ins.startswith(".") and ins != "/* 0x":
                body.append(ins)
    if name is not None:
        result[(arch, name)] = body
    return result


def main():
    args = sys.argv[1:]
    renames = []
    while "--rename" in args:
        i = args.index("--rename")
        old, new = args[i + 1].split("=", 1)
        renames.append((old, new))
        del args[i : i + 2]
    before, after = kernels(args[0], renames), kernels(args[1], [])
    only_before = sorted(k for k in before if k not in after)
    only_after = sorted(k for k in after if k not in before)
    changed = []
    for k in sorted(before):
        if k in after and before[k] != after[k]:
            diff = sum(1 for a, b in zip(before[k], after[k]) if a != b) + abs(len(before[k]) - len(after[k]))
            changed.append((k, diff, len(before[k]), len(after[k])))
    same = sum(1 for k in before if k in after and before[k] == after[k])
    print(f"kernels: before {len(before)}, after {len(after)}; identical {same}, changed {len(changed)}, "
          f"only before {len(only_before)}, only after {len(only_after)}")
    for k, d, nb, na in changed:
        print(f"  changed {k[0]} {k[1]}: {d} lines differ ({nb} -> {na} instructions)")
    for k in only_before:
        print(f"  only before {k[0]} {k[1]}")
    print("only after (new kernels):", len(only_after))
    return 0 if not changed and not only_before else 1


if __name__ == "__main__":
    sys.exit(main())
