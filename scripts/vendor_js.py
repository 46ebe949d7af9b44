"""Check, or refresh from the npm registry, the JavaScript the leaderboard page inlines.

``ubench report`` writes ``index.html`` with Vega, Vega-Lite and vega-embed inlined (the page
opens from the file system, with no network). Their minified builds and licences are shipped in
the package under ``ubench/report/web/vendor/``; ``vendor.json`` there records, for each, the npm
package and version, the tarball's npm integrity hash, the file's sha256 and its licence.

    python scripts/vendor_js.py             # check the shipped files against vendor.json
    python scripts/vendor_js.py --update    # re-fetch the pinned versions with `npm pack`,
                                            # verify and rewrite files + vendor.json

To move to a new version, edit its ``version`` in ``vendor.json``, drop its ``integrity``
(it is then recorded from the registry) and run ``--update``; regenerate the leaderboard after.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "ubench" / "report" / "web" / "vendor"
MANIFEST = VENDOR / "vendor.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check() -> list[str]:
    """Problems with the shipped files (empty when every file matches ``vendor.json``)."""
    problems = []
    for entry in json.loads(MANIFEST.read_text())["packages"]:
        for key in ("file", "license_file"):
            path = VENDOR / entry[key]
            if not path.is_file():
                problems.append(f"{path} is missing")
        js = VENDOR / entry["file"]
        if js.is_file():
            if sha256(js) != entry["sha256"]:
                problems.append(f"{js} does not match its sha256 in {MANIFEST}")
            if b"</script" in js.read_bytes().lower():
                problems.append(f"{js} contains '</script' and cannot be inlined")
    return problems


def update() -> None:
    manifest = json.loads(MANIFEST.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        for entry in manifest["packages"]:
            spec = f"{entry['package']}@{entry['version']}"
            out = subprocess.run(["npm", "pack", spec, "--json", "--pack-destination", tmp],
                                 capture_output=True, text=True, check=True, cwd=tmp)
            info = json.loads(out.stdout)[0]
            if entry.get("integrity") and info["integrity"] != entry["integrity"]:
                raise SystemExit(f"{spec}: the registry's integrity {info['integrity']} differs "
                                 f"from the pinned {entry['integrity']}")
            entry["integrity"] = info["integrity"]
            with tarfile.open(Path(tmp) / info["filename"]) as tar:
                for member, target in ((entry["source"], entry["file"]),
                                       ("package/LICENSE", entry["license_file"])):
                    data = tar.extractfile(member)
                    assert data is not None, member
                    (VENDOR / target).write_bytes(data.read())
            entry["sha256"] = sha256(VENDOR / entry["file"])
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


def main() -> int:
    if "--update" in sys.argv:
        update()
    problems = check()
    for p in problems:
        sys.stderr.write(p + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
