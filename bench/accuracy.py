"""Accuracy against Timeloop on every reference record: energy and cycle errors, exact counts.

    python bench/accuracy.py [--reference ../shared/reference/timeloop]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from accelmap.model.reference import check_records

OUT = Path(__file__).parent / "results" / "accuracy.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", default=str(Path(__file__).resolve().parents[2] / "shared/reference/timeloop"))
    ap.add_argument("--device", default="cpu", help="cpu, or cuda to check the tensor model on a GPU")
    args = ap.parse_args()
    rows = []
    print(f"{'arch':<16}{'backend':<8}{'records':>8}{'energy mean':>13}{'worst':>10}{'cycles mean':>13}"
          f"{'worst':>10}{'exact counts':>14}")
    for arch in ("eyeriss_like", "simple_pe16x16"):
        for backend in (("torch", "kernel") if args.device == "cpu" else ("torch",)):
            checked = check_records(args.reference, arch, backend, args.device)
            e = [abs(c.energy_error) for c in checked]
            cy = [abs(c.cycles_error) for c in checked]
            exact = sum(1 for c in checked if not c.count_mismatches())
            row = {"arch": arch, "backend": backend, "device": args.device, "records": len(checked), "energy_mean": sum(e) / len(e),
                   "energy_worst": max(e), "cycles_mean": sum(cy) / len(cy), "cycles_worst": max(cy),
                   "exact_count_records": exact}
            rows.append(row)
            print(f"{arch:<16}{backend:<8}{len(checked):>8}{row['energy_mean']:>13.2e}{row['energy_worst']:>10.2e}"
                  f"{row['cycles_mean']:>13.2e}{row['cycles_worst']:>10.2e}{exact:>10}/{len(checked)}")
    out = OUT if args.device == "cpu" else OUT.with_name(f"accuracy_{args.device.replace(':', '')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
