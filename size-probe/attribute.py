#!/usr/bin/env python3
"""Attributes the .text bytes of a size-probe ELF to source files, by the DWARF line table.

    python3 size-probe/attribute.py size-probe/target/footprint/size-probe-core_http [N]

Each instruction is charged to the source file of its line-table entry (`objdump -d -l`), so code
inlined from `core` (slice and str iterators, integer formatting) is charged to `core`, not to the
caller that inlined it. Needs arm-none-eabi-objdump; the probe is built with debug info for this.
"""
import collections
import os
import re
import subprocess
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def category(path):
    if path.startswith(os.path.join(ROOT, "size-probe")):
        return "size-probe (the probe itself)"
    if path.startswith(os.path.join(ROOT, "src")):
        return "oauth2-devices " + os.path.relpath(path, ROOT)
    m = re.search(r"/registry/src/[^/]+/([A-Za-z0-9_.-]+?)-\d[^/]*/", path)
    if m:
        return "crate " + m.group(1)
    m = re.search(r"/library/([\w-]+)/(?:[\w-]+/)?src/(\w+)", path)
    if m:
        return m.group(1) + "::" + m.group(2)
    return "other: " + path


def main():
    elf = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    out = subprocess.run(
        ["arm-none-eabi-objdump", "-d", "-l", "--no-show-raw-insn", "-j", ".text", elf],
        check=True, capture_output=True, text=True,
    ).stdout
    current, insns = "(no line info)", []
    for line in out.splitlines():
        if not line.startswith(" "):
            m = re.match(r"^(\S+\.rs):\d+", line)
            if m:
                current = m.group(1)
            continue
        m = re.match(r"^\s+([0-9a-f]+):\s", line)
        if m:
            insns.append((int(m.group(1), 16), current))
    insns.sort()
    sizes = collections.Counter()
    for (a, f), (b, _) in zip(insns, insns[1:]):
        if b - a <= 4:  # one Thumb-2 instruction; larger gaps are padding or literal pools
            sizes[category(f)] += b - a
    total = sum(sizes.values())
    print(f".text of {elf} by source ({total} bytes of instructions; literal pools and padding excluded)")
    for name, n in sizes.most_common(top):
        print(f"  {n:7d}  {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
