"""Store speed: import N items and M label events into SQLite, then compute every item's current label.

Ours: the materialised ``current_label`` table (kept up to date in each event transaction), read
with its provenance. References in the same run: the window query over all events
(``Store.current_by_window``) and a pandas sort/drop-duplicates over the events read into memory.

    python benchmarks/bench_store.py                 # 1M items, 5M events (target: current < 5 s)
    python benchmarks/bench_store.py --items 100000 --events 500000
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from labelsieve.store import PRECEDENCE, Store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--batch", type=int, default=500_000, help="events per transaction")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        st = Store(Path(tmp) / "bench.db")
        st.set_classes([f"c{k}" for k in range(10)])
        t = time.perf_counter()
        st.add_items(pd.DataFrame({"id": [f"item-{i:07d}" for i in range(args.items)]}))
        t_items = time.perf_counter() - t
        sources = np.array(["auto", "human", "aggregate", "review", "vote"])
        t = time.perf_counter()
        for lo in range(0, args.events, args.batch):
            n = min(args.batch, args.events - lo)
            src = sources[rng.choice(5, n, p=[0.6, 0.1, 0.1, 0.05, 0.15])]
            st.append_events(pd.DataFrame({"item": rng.integers(0, args.items, n), "code": rng.integers(0, 10, n),
                                           "source": src, "who": "bench", "confidence": rng.random(n),
                                           "round": rng.integers(1, 6, n)}))
        t_events = time.perf_counter() - t

        t = time.perf_counter()
        ours = st.current_labels()
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        window = st.current_by_window()
        t_window = time.perf_counter() - t
        t = time.perf_counter()
        con = sqlite3.connect(Path(tmp) / "bench.db")
        ev = pd.read_sql_query("SELECT seq, item, code, precedence FROM events WHERE precedence > 0", con)
        con.close()
        ref = ev.sort_values(["item", "precedence", "seq"]).drop_duplicates("item", keep="last")
        t_pandas = time.perf_counter() - t
        assert ours.equals(window)
        assert np.array_equal(ours["pos"].to_numpy(), ref["item"].to_numpy())
        assert np.array_equal(ours["code"].to_numpy(dtype=np.int64), ref["code"].to_numpy(dtype=np.int64))
        st.close()
    print(f"store benchmark: {args.items:,} items, {args.events:,} events (SQLite, WAL); precedence {PRECEDENCE}")
    print(f"  import items                    {t_items:8.2f} s")
    print(f"  append events (+ current table) {t_events:8.2f} s  ({args.events / t_events:,.0f} events/s)")
    print(f"  current labels of {len(ours):,} items:")
    print(f"    ours: materialised table      {t_ours:8.2f} s   (target < 5 s)")
    print(f"    reference: window query       {t_window:8.2f} s   ratio {t_window / t_ours:5.1f}x")
    print(f"    reference: pandas over events {t_pandas:8.2f} s   ratio {t_pandas / t_ours:5.1f}x")


if __name__ == "__main__":
    main()
