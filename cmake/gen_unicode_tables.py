#!/usr/bin/env python3
"""Generates include/tinfer/tokenizer/unicode_tables.hpp from the Unicode Character Database.

The GPT-2 pre-tokenizer needs \\p{L} (letters), \\p{N} (numbers) and \\s (whitespace) exactly as
the regex engines behind tiktoken (Rust regex) and Hugging Face tokenizers (Oniguruma) define
them: general categories L* and N*, and the White_Space property. White_Space is derived here
from the general categories Zs/Zl/Zp plus U+0009..U+000D and U+0085, and checked against
PropList.txt when that file is present.

Usage (Debian: apt-get install unicode-data):
    python3 cmake/gen_unicode_tables.py /usr/share/unicode > include/tinfer/tokenizer/unicode_tables.hpp
"""
import os
import re
import sys


def read_categories(path):
    """Yields (first, last, category) for every assigned code point range in UnicodeData.txt."""
    pending_first = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split(";")
            if len(fields) < 3:
                continue
            cp, name, cat = int(fields[0], 16), fields[1], fields[2]
            # Large blocks (CJK, Hangul, ...) are given as a <..., First> / <..., Last> pair.
            if name.endswith(", First>"):
                pending_first = cp
                continue
            if name.endswith(", Last>"):
                yield pending_first, cp, cat
                pending_first = None
                continue
            yield cp, cp, cat


def merge(points):
    """Sorted code points -> list of inclusive (first, last) ranges."""
    ranges = []
    for cp in sorted(points):
        if ranges and ranges[-1][1] + 1 == cp:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return ranges


def unicode_version(ucd_dir):
    readme = os.path.join(ucd_dir, "ReadMe.txt")
    if os.path.exists(readme):
        m = re.search(r"Version (\d+\.\d+\.\d+)", open(readme, encoding="utf-8").read())
        if m:
            return m.group(1)
    return "unknown"


def emit(name, ranges, out):
    out.write(f"inline constexpr CodepointRange {name}[] = {{\n")
    items = [f"{{0x{a:X}, 0x{b:X}}}" for a, b in ranges]
    for i in range(0, len(items), 6):
        out.write("    " + ", ".join(items[i:i + 6]) + ",\n")
    out.write("};\n\n")


def main():
    ucd_dir = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/unicode"
    letters, numbers, spaces = set(), set(), {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x85}
    for first, last, cat in read_categories(os.path.join(ucd_dir, "UnicodeData.txt")):
        target = None
        if cat.startswith("L"):
            target = letters
        elif cat.startswith("N"):
            target = numbers
        elif cat in ("Zs", "Zl", "Zp"):
            target = spaces
        if target is not None:
            target.update(range(first, last + 1))

    proplist = os.path.join(ucd_dir, "PropList.txt")
    if os.path.exists(proplist):
        ws = set()
        for line in open(proplist, encoding="utf-8"):
            m = re.match(r"([0-9A-F]+)(?:\.\.([0-9A-F]+))?\s*;\s*White_Space\b", line)
            if m:
                a = int(m.group(1), 16)
                ws.update(range(a, int(m.group(2) or m.group(1), 16) + 1))
        if ws != spaces:
            sys.exit("White_Space derived from UnicodeData.txt differs from PropList.txt")

    out = sys.stdout
    out.write(f"""// tinfer/tokenizer/unicode_tables.hpp: Unicode letter, number and whitespace code point ranges.
//
// GENERATED FILE, do not edit. Unicode {unicode_version(ucd_dir)}, made by
//   python3 cmake/gen_unicode_tables.py /usr/share/unicode > include/tinfer/tokenizer/unicode_tables.hpp
// from Debian's unicode-data package. Letters are general category L*, numbers N*, whitespace
// the White_Space property (what \\p{{L}}, \\p{{N}} and \\s mean in the regex engines of tiktoken
// and Hugging Face tokenizers). Ranges are inclusive and sorted.
#pragma once

#include <cstdint>

namespace tinfer::unicode_tables {{

struct CodepointRange {{
  std::uint32_t first;
  std::uint32_t last;
}};

""")
    emit("kLetter", merge(letters), out)
    emit("kNumber", merge(numbers), out)
    emit("kWhitespace", merge(spaces), out)
    out.write("}  // namespace tinfer::unicode_tables\n")


if __name__ == "__main__":
    main()
