#!/usr/bin/env python3
"""Polls a metrics file while the exporter rewrites it and checks that every
read is one whole version: starts with a HELP line, ends with the
last-write timestamp line and a newline, every HELP has its TYPE. Fails if
the file did not change during polling (nothing was tested then).

usage: poll_atomic.py FILE SECONDS
prints: reads, versions seen, partial reads; exits non-zero on failure.
"""

import sys
import time

LAST = "ummu_exporter_last_write_timestamp_seconds "


def whole(text):
    if not text.startswith("# HELP ") or not text.endswith("\n"):
        return False
    lines = text.split("\n")[:-1]
    if not lines[-1].startswith(LAST):
        return False
    helps = sum(1 for x in lines if x.startswith("# HELP "))
    types = sum(1 for x in lines if x.startswith("# TYPE "))
    return helps == types


def main():
    path, seconds = sys.argv[1], float(sys.argv[2])
    end = time.monotonic() + seconds
    reads = partial = 0
    versions = set()
    while time.monotonic() < end:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        reads += 1
        if whole(text):
            versions.add(text.rsplit("\n", 2)[-2])
        else:
            partial += 1
            if partial <= 3:
                print(f"partial read {reads}: {len(text)} bytes, ends {text[-80:]!r}")
    print(f"{reads} reads, {len(versions)} versions, {partial} partial")
    sys.exit(0 if partial == 0 and len(versions) >= 2 and reads >= 100 else 1)


if __name__ == "__main__":
    main()
