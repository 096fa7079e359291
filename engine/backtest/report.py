"""The report directory of `tickplane backtest --report DIR`.

Writes `summary.json` (the `--json` object), `trades.csv` (every fill), `equity.png`
(P&L and drawdown), `position.png` (inventory), `price.png` (the mark with the fills),
`queue.png` (size ahead at entry and wait to the first fill of the orders that filled
from the queue) and `index.html`, a summary page showing them. Plots are drawn with matplotlib's Agg
backend and saved without a timestamp, so a report is as reproducible as the results.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path
from typing import Any

from tickplane.engine.backtest.results import BacktestResult

__all__ = ["write_report"]

_PNG_META = {"Software": None}


def _hours(ts: list[int]) -> list[float]:
    return [t / 3.6e12 for t in ts]


def _plots(result: BacktestResult, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = _hours(result.sample_ts)
    xlabel = (
        "hours (data clock)"
        if result.sample_ts and result.sample_ts[0] < 86_400e9
        else "hours since epoch"
    )
    eq = result.equity_curve()
    peak: list[float] = []
    m = float("-inf")
    for e in eq:
        m = max(m, e)
        peak.append(m)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, height_ratios=(3, 1))
    a1.plot(x, eq, lw=1, color="#1f77b4")
    a1.set_ylabel("P&L")
    a1.set_title(f"{result.strategy} on {result.symbol}: equity")
    a1.grid(alpha=0.3)
    a2.fill_between(
        x, [e - p for e, p in zip(eq, peak, strict=True)], 0, color="#d62728", alpha=0.5
    )
    a2.set_ylabel("drawdown")
    a2.set_xlabel(xlabel)
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "equity.png", dpi=100, metadata=_PNG_META)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 3))
    ax.step(x, result.sample_position, where="post", lw=1, color="#2ca02c")
    ax.set_ylabel("position (lots)")
    ax.set_xlabel(xlabel)
    ax.set_title("inventory")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "position.png", dpi=100, metadata=_PNG_META)
    plt.close(fig)

    fig, (q1, q2) = plt.subplots(1, 2, figsize=(9, 3.2))
    if result.queue_ahead:
        q1.hist(result.queue_ahead, bins=30, color="#9467bd")
        q2.hist([w / 1e9 for w in result.queue_waits_ns], bins=30, color="#8c564b")
    q1.set_title("lots ahead when the order joined")
    q1.set_xlabel("lots")
    q2.set_title("wait to the first fill")
    q2.set_xlabel("seconds")
    for a in (q1, q2):
        a.set_ylabel("orders filled from the queue")
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "queue.png", dpi=100, metadata=_PNG_META)
    plt.close(fig)

    sc = result.price_scale
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(x, [v * sc if v else float("nan") for v in result.sample_mid], lw=0.8, color="#555")
    for side, color, marker in (("buy", "#2ca02c", "^"), ("sell", "#d62728", "v")):
        fs = [f for f in result.fills if f.side == side]
        ax.scatter(
            _hours([f.ts for f in fs]),
            [f.price * sc for f in fs],
            s=10,
            c=color,
            marker=marker,
            label=f"{side} fills ({len(fs)})",
        )
    ax.set_ylabel("price")
    ax.set_xlabel(xlabel)
    ax.set_title("mark and fills")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "price.png", dpi=100, metadata=_PNG_META)
    plt.close(fig)


def _rows(summary: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for k, v in summary.items():
        if isinstance(v, dict):
            rows.extend(_rows(v, f"{prefix}{k}."))
        else:
            rows.append((prefix + k, str(v)))
    return rows


def write_report(result: BacktestResult, out: Path) -> Path:
    """Write the report into `out` (created if needed); returns index.html's path."""
    out.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    sc = result.price_scale
    with (out / "trades.csv").open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["ts_ns", "order_id", "symbol", "side", "price", "qty", "fee", "liquidity"])
        for fl in result.fills:
            w.writerow(
                [
                    fl.ts,
                    fl.order_id,
                    fl.symbol,
                    fl.side,
                    f"{fl.price * sc:.4f}",
                    fl.qty,
                    f"{fl.fee * sc:.6f}",
                    fl.liquidity,
                ]
            )
    _plots(result, out)
    table = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _rows(summary)
    )
    logs = "\n".join(html.escape(line) for line in result.logs[-200:])
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Tickplane backtest: {html.escape(result.strategy)} on {html.escape(result.symbol)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 960px; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 2px 12px; border-bottom: 1px solid #ddd; }}
th {{ text-align: left; font-weight: 500; color: #555; }}
td {{ font-variant-numeric: tabular-nums; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(result.strategy)} on {html.escape(result.symbol)}</h1>
<p>Data: {html.escape(result.data)}. P&amp;L in currency;
fills in <a href="trades.csv">trades.csv</a>,
every figure in <a href="summary.json">summary.json</a>.</p>
<img src="equity.png" alt="equity and drawdown">
<img src="price.png" alt="mark price and fills">
<img src="position.png" alt="inventory">
<img src="queue.png" alt="queue position of the orders that filled from the queue">
<h2>Results</h2>
<table>
{table}
</table>
<h2>Strategy log</h2>
<pre>{logs or "(empty)"}</pre>
</body></html>
"""
    index = out / "index.html"
    index.write_text(page)
    return index
