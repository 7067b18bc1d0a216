"""Loss curves of a run as a standalone SVG (no plotting library needed)."""
import math
from html import escape

from nanoframe.errors import DataError


def split_metrics(records):
    """(train, val): sorted (step, loss) pairs of metrics records (Run.read_metrics); a later record
    for the same (kind, step) replaces an earlier one, and non-numeric losses are skipped."""
    train, val = {}, {}
    for rec in records:
        for key, series in (("loss", train), ("val_loss", val)):
            value = rec.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                series[rec["step"]] = float(value)
    return sorted(train.items()), sorted(val.items())


def _smooth(points, weight=0.9):
    out, avg = [], None
    for s, v in points:
        avg = v if avg is None else weight * avg + (1 - weight) * v
        out.append((s, avg))
    return out


def _thin(points, most):
    """At most `most` evenly spaced points (the first and last kept): the SVG stays small."""
    if len(points) <= most:
        return points
    step = (len(points) - 1) / (most - 1)
    return [points[round(i * step)] for i in range(most)]


def loss_curve_svg(train, val, title="loss", width=720, height=400):
    """SVG text plotting (step, loss) series: raw train (faint), smoothed train, and val."""
    series = [p for p in train + val if math.isfinite(p[1])]
    if not series:
        raise DataError("no finite loss values to plot")
    pad_l, pad_r, pad_t, pad_b = 60, 20, 30, 40
    x0, x1 = min(s for s, _ in series), max(s for s, _ in series)
    y0, y1 = min(v for _, v in series), max(v for _, v in series)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def px(s):
        return pad_l + (s - x0) / (x1 - x0) * (width - pad_l - pad_r)

    def py(v):
        return height - pad_b - (v - y0) / (y1 - y0) * (height - pad_t - pad_b)

    def line(points, color, w, opacity=1.0):
        pts = " ".join(f"{px(s):.1f},{py(v):.1f}" for s, v in points if math.isfinite(v))
        return (f'<polyline fill="none" stroke="{color}" stroke-width="{w}" '
                f'stroke-opacity="{opacity}" points="{pts}"/>')

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="18" text-anchor="middle">{escape(title)}</text>']
    for k in range(5):  # horizontal grid with loss labels
        v = y0 + (y1 - y0) * k / 4
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{pad_l - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    for k in range(5):
        s = x0 + (x1 - x0) * k / 4
        parts.append(f'<text x="{px(s):.1f}" y="{height - pad_b + 16}" text-anchor="middle">{s:.0f}</text>')
    parts.append(f'<text x="{width / 2}" y="{height - 6}" text-anchor="middle">step</text>')
    cols = width - pad_l - pad_r                         # a long run draws at most 2 points a pixel column
    if train:
        parts.append(line(_thin(train, 2 * cols), "#1f77b4", 1, 0.25))
        parts.append(line(_thin(_smooth(train), 2 * cols), "#1f77b4", 2))
    if val:
        val = _thin(val, 2 * cols)
        parts.append(line(val, "#d62728", 2))
        parts += [f'<circle cx="{px(s):.1f}" cy="{py(v):.1f}" r="3" fill="#d62728"/>' for s, v in val]
    parts.append(f'<text x="{width - pad_r - 150}" y="{pad_t + 10}" fill="#1f77b4">train (smoothed)</text>')
    parts.append(f'<text x="{width - pad_r - 150}" y="{pad_t + 26}" fill="#d62728">val</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
