#!/usr/bin/env python3
"""Draws the synthetic bench's growth curves as one SVG (no plotting library needed).

    python3 bench/scripts/plot_synthetic.py [target/bench/results.json] [docs/images/synthetic-growth.svg]

Left: status-api's resident memory against the containers (first start, restarted over its snapshot).
Right: event -> view lag p99 against the containers, one line per event rate (log scale).
"""
import json
import math
import sys

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def panel(x0, title, xlabel, ylabel, series, log_y=False, width=420, height=300):
    """One chart: `series` is [(label, [(x, y), ...])]; x on a log scale (the sizes grow by factors)."""
    left, right, top, bottom = x0 + 60, x0 + width - 10, 40, height - 50
    xs = sorted({x for _, points in series for x, _ in points})
    ys = [y for _, points in series for _, y in points if y is not None and y > 0]
    if not xs or not ys:
        return ""
    fx = lambda x: left + (math.log10(x) - math.log10(xs[0])) / max(1e-9, math.log10(xs[-1]) - math.log10(xs[0])) * (right - left)
    if log_y:
        lo, hi = 10 ** math.floor(math.log10(min(ys))), 10 ** math.ceil(math.log10(max(ys)))
        fy = lambda y: bottom - (math.log10(y) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (bottom - top)
        ticks = [10 ** e for e in range(int(math.log10(lo)), int(math.log10(hi)) + 1)]
    else:
        hi = max(ys) * 1.1
        fy = lambda y: bottom - y / hi * (bottom - top)
        step = 10 ** math.floor(math.log10(hi))
        step = step / 2 if hi / step < 4 else step
        ticks = [step * i for i in range(int(hi / step) + 1)]
    out = [f'<text x="{(left + right) / 2}" y="22" text-anchor="middle" font-weight="bold">{title}</text>',
           f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#333"/>',
           f'<text x="{(left + right) / 2}" y="{height - 12}" text-anchor="middle">{xlabel}</text>',
           f'<text x="{x0 + 14}" y="{(top + bottom) / 2}" text-anchor="middle" transform="rotate(-90 {x0 + 14} {(top + bottom) / 2})">{ylabel}</text>']
    for x in xs:
        out.append(f'<text x="{fx(x):.1f}" y="{bottom + 16}" text-anchor="middle">{x:,}</text>')
    for t in ticks:
        out.append(f'<line x1="{left}" y1="{fy(t):.1f}" x2="{right}" y2="{fy(t):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 4}" y="{fy(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for i, (label, points) in enumerate(series):
        points = [(x, y) for x, y in points if y is not None and y > 0]
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        out += [f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="3" fill="{color}"/>' for x, y in points]
        out.append(f'<text x="{left + 8}" y="{top + 14 + 15 * i}" fill="{color}">{label}</text>')
    return "\n".join(out)


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else "target/bench/results.json"
    target = sys.argv[2] if len(sys.argv) > 2 else "docs/images/synthetic-growth.svg"
    rows = json.load(open(source))["synthetic"]
    sizes = {}
    for row in rows:
        sizes.setdefault(row["containers"], row)
    memory = [
        ("first start", [(n, r["rss_kib"] / 1024) for n, r in sorted(sizes.items())]),
        ("restarted over its snapshot", [(n, (r.get("rss_kib_restart") or 0) / 1024) for n, r in sorted(sizes.items())]),
    ]
    rates = sorted({row["events_per_s"] for row in rows if not row["phase"].get("ramp")})
    lag = [(f"{rate:g} events/s", [(row["containers"], row["lag_p99_ms"]) for row in rows
                                    if row["events_per_s"] == rate and not row["phase"].get("ramp")])
           for rate in rates]
    body = panel(0, "status-api resident memory", "containers", "MiB", memory) + "\n" + panel(
        440, "event → view lag, p99", "containers", "ms (log scale)", lag, log_y=True)
    with open(target, "w") as out:
        out.write('<svg xmlns="http://www.w3.org/2000/svg" width="880" height="300" font-family="sans-serif" '
                  'font-size="12">\n<rect width="880" height="300" fill="white"/>\n' + body + "\n</svg>\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
