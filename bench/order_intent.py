"""Precision and recall of the order-status patterns (bot/commerce/intent.py) on public data.

    python bench/order_intent.py [--split dev|test] [--misses]

Positives: CLINC150's `order_status` utterances. Negatives: every other CLINC150 intent and
its out-of-scope set (which hold "order a pizza", "order more checks", "track my flight"),
all of Banking77 (where "my card hasn't arrived" must not read as a shop order), and the
demo shop's FAQ questions and alternates (order *policy* questions: cancel, change address).
The patterns were written on `dev` (CLINC150 train + val, Banking77 train); `test`
(CLINC150 test + oos_test, Banking77 test) is only reported.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.commerce.intent import order_question  # noqa: E402
from bot.knowledge.files import parse_faq  # noqa: E402

DATA = Path("/work/shared/data")
POSITIVE = "order_status"


def load(split: str, data: Path) -> tuple[list[str], list[str]]:
    clinc = json.loads((data / "clinc150" / "data_full.json").read_text())
    parts = ["train", "val", "oos_train", "oos_val"] if split == "dev" else ["test", "oos_test"]
    rows = [(t, label) for part in parts for t, label in clinc[part]]
    banking = data / "banking77" / ("train.csv" if split == "dev" else "test.csv")
    with banking.open(newline="") as handle:
        rows += [(r["text"], "banking:" + r["category"]) for r in csv.DictReader(handle)]
    if split == "dev":
        demo = ROOT / "examples" / "demo-shop" / "faq.yaml"
        for entry in parse_faq(demo.read_bytes(), demo.name):
            # The demo FAQ's tracking entry is the generic answer a connector replaces.
            label = POSITIVE if entry.id == "order-tracking" else "faq:" + entry.id
            rows += [(q, label) for q in (entry.question, *entry.alternates)]
    positives = [t for t, label in rows if label == POSITIVE]
    negatives = [t for t, label in rows if label != POSITIVE]
    return positives, negatives


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["dev", "test"], default="dev")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--misses", action="store_true", help="print what was missed or "
                        "wrongly claimed")
    args = parser.parse_args()
    positives, negatives = load(args.split, args.data)
    hits = [t for t in positives if order_question(t)]
    false = [t for t in negatives if order_question(t)]
    recall = len(hits) / len(positives)
    precision = len(hits) / max(1, len(hits) + len(false))
    print(json.dumps({"split": args.split, "positives": len(positives),
                      "negatives": len(negatives), "recall": round(recall, 3),
                      "precision": round(precision, 3), "false_positives": len(false)}))
    if args.misses:
        for text in positives:
            if not order_question(text):
                print("missed:", text)
        for text in false:
            print("claimed:", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
