"""Regenerate shipper/ecs_fields.json from Elastic's published ECS field definitions.

The npm package `@elastic/ecs` (github.com/elastic/ecs-typescript) is generated from the ECS
repository's `generated/ecs/ecs_flat.yml` and exports it as `EcsFlat` (flat field name -> definition)
with the `EcsVersion` it was made from. This script installs the package into a throw-away directory, reads those
two exports with node, and keeps per field only what a mapping needs -- the same attributes ECS's own
template generator copies into its Elasticsearch templates (scripts/generators/es_template.py in
elastic/ecs): type, ignore_above (keyword), scaling_factor, index/doc_values when disabled, and the
multi-fields. Nothing is retyped by hand.

    python tools/ecs_fields.py [--package-version 8.11.1]   (or: make ecs-fields)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PACKAGE = "@elastic/ecs"
# the 8.11 line of the package: its EcsVersion is 8.11.0, the ECS version the product claims
DEFAULT_PACKAGE_VERSION = "8.11.1"
OUT = Path(__file__).resolve().parent.parent / "shipper" / "ecs_fields.json"

# the package's main module (its compiled build/); its generated/*.js sources of 8.11.1 were regenerated
# from a later ECS (EcsVersion 8.12.0-dev, with the volume.* fields), so they are not used
_DUMP = ("const m = require(process.argv[1]); "
         "process.stdout.write(JSON.stringify({version: m.EcsVersion, flat: m.EcsFlat}));")


def compact(field: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": field["type"]}
    if field["type"] == "keyword" and "ignore_above" in field:
        out["ignore_above"] = field["ignore_above"]
    if field["type"] == "scaled_float":
        out["scaling_factor"] = field["scaling_factor"]
    for key in ("index", "doc_values"):
        if field.get(key) is False:
            out[key] = False
    multi = {}
    for mf in field.get("multi_fields") or []:
        entry = {"type": mf["type"]}
        entry.update({k: mf[k] for k in ("ignore_above", "normalizer") if k in mf and mf["type"] == "keyword"})
        multi[mf["name"]] = entry
    if multi:
        out["fields"] = multi
    return out


def generate(package_version: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ecs-fields-") as tmp:
        subprocess.run(["npm", "install", "--prefix", tmp, "--no-save", "--ignore-scripts", "--no-audit",
                        "--no-fund", f"{PACKAGE}@{package_version}"], check=True, stdout=subprocess.DEVNULL)
        module = Path(tmp) / "node_modules" / PACKAGE
        dumped = json.loads(subprocess.run(["node", "-e", _DUMP, str(module)], check=True, capture_output=True,
                                           text=True).stdout)
    fields = {name: compact(spec) for name, spec in sorted(dumped["flat"].items())}
    return {"source": f"npm {PACKAGE}@{package_version}", "ecs_version": dumped["version"], "fields": fields}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-version", default=DEFAULT_PACKAGE_VERSION)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    data = generate(args.package_version)
    args.out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"{args.out}: {len(data['fields'])} fields of ECS {data['ecs_version']} from {data['source']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
