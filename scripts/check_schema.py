"""Fail when ``ubench/record.schema.json`` is not the schema generated from ``ubench/record.py``.

    python scripts/check_schema.py            # check
    python scripts/check_schema.py --write    # regenerate
"""

from __future__ import annotations

import json
import sys

from ubench.record import SCHEMA_FILE, generate_schema


def main() -> int:
    want = json.dumps(generate_schema(), indent=2, sort_keys=True) + "\n"
    if "--write" in sys.argv:
        SCHEMA_FILE.write_text(want)
        return 0
    if SCHEMA_FILE.read_text() != want:
        sys.stderr.write(f"{SCHEMA_FILE} is stale: run python scripts/check_schema.py --write\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
