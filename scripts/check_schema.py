"""Fail when a generated schema file is stale; ``--write`` regenerates them.

* ``ubench/store/record.schema.json`` — the JSON Schema of a record, from
``ubench/store/record.py``;
* ``ubench/store/attack_record.schema.json`` — the JSON Schema of an attack record, from the same
file;
* ``ubench/catalog/config_schema.json`` — every built-in config's fields and bounds, from the
classes
  (what ``ubench run`` checks ``--set`` against before importing torch).

    python scripts/check_schema.py            # check
    python scripts/check_schema.py --write    # regenerate
"""

from __future__ import annotations

import json
import sys

from ubench.catalog import fastcheck
from ubench.store import record


def main() -> int:
    stale = []
    for path, generate in ((record.SCHEMA_FILE, record.generate_schema),
                           (record.ATTACK_SCHEMA_FILE, record.generate_attack_schema),
                           (fastcheck.SCHEMA_FILE, fastcheck.generate_schema)):
        want = json.dumps(generate(), indent=2, sort_keys=True) + "\n"
        if "--write" in sys.argv:
            path.write_text(want)
        elif not path.is_file() or path.read_text() != want:
            stale.append(path)
    for path in stale:
        sys.stderr.write(f"{path} is stale: run python scripts/check_schema.py --write\n")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
