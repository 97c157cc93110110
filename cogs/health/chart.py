"""The /health chart: latency and availability of one target over 24 h, as a PNG (Pillow).

Pillow is a few MB and draws exactly this; matplotlib would be tens of MB and a font cache
for two panels of lines and bars.
"""

from __future__ import annotations

import io
from datetime import timedelta

from PIL import Image, ImageDraw, ImageFont

from bot.domain.baselines import RTT_MS
from bot.domain.uptime import ChartSeries

WIDTH, HEIGHT = 960, 420
LEFT, RIGHT, TOP = 70, 20, 40
LATENCY_BOTTOM = 300
AVAIL_TOP, AVAIL_BOTTOM = 330, 370
BG = (255, 255, 255)
AXIS = (90, 90, 90)
GRID = (225, 225, 225)
LINE = (40, 90, 200)
BASELINE = (220, 120, 0)
UP = (60, 170, 80)
WARN = (230, 180, 40)
DOWN = (210, 50, 50)
NODATA = (235, 235, 235)


def render_chart(series: ChartSeries) -> bytes:
    image = Image.new("RGB", (WIDTH, HEIGHT), BG)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    span = (series.end - series.start).total_seconds() or 1.0
    plot_w = WIDTH - LEFT - RIGHT

    def x_of(seconds: float) -> int:
        return LEFT + int(plot_w * min(max(seconds / span, 0.0), 1.0))

    latencies = [p[1] for p in series.points if p[1] is not None]
    top_ms = max([RTT_MS * 1.2, *(v * 1.1 for v in latencies)])

    def y_of(ms: float) -> int:
        height = LATENCY_BOTTOM - TOP
        return LATENCY_BOTTOM - int(height * min(ms / top_ms, 1.0))

    draw.text((LEFT, 10), f"{series.target}: latency (ms) and availability, last 24 h", AXIS, font)
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(top_ms * fraction)
        draw.line([(LEFT, y), (WIDTH - RIGHT, y)], GRID)
        draw.text((5, y - 6), f"{top_ms * fraction:.0f}", AXIS, font)
    for hour in range(0, 25, 3):
        x = x_of(hour * 3600)
        draw.line([(x, TOP), (x, AVAIL_BOTTOM)], GRID)
        label = (series.start + timedelta(hours=hour)).strftime("%H:%M")
        draw.text((x - 14, AVAIL_BOTTOM + 8), label, AXIS, font)
    baseline = y_of(RTT_MS)
    for x in range(LEFT, WIDTH - RIGHT, 12):
        draw.line([(x, baseline), (x + 6, baseline)], BASELINE)
    draw.text((WIDTH - RIGHT - 120, baseline - 14), f"RTT baseline {RTT_MS:.0f} ms", BASELINE, font)

    draw.rectangle([(LEFT, AVAIL_TOP), (WIDTH - RIGHT, AVAIL_BOTTOM)], fill=NODATA)
    previous: tuple[int, int] | None = None
    step = max(plot_w / (24 * 60), 1.0)
    for at, latency, availability in series.points:
        seconds = (at - series.start).total_seconds()
        x = x_of(seconds)
        colour = UP if availability >= 0.999 else WARN if availability > 0 else DOWN
        draw.rectangle([(x, AVAIL_TOP), (x + int(step), AVAIL_BOTTOM)], fill=colour)
        if latency is None:
            previous = None
            continue
        point = (x, y_of(latency))
        if previous is not None and point[0] - previous[0] <= 3 * step + 1:
            draw.line([previous, point], LINE, width=2)
        else:
            draw.point(point, LINE)
        previous = point
    draw.line([(LEFT, TOP), (LEFT, LATENCY_BOTTOM)], AXIS)
    draw.line([(LEFT, LATENCY_BOTTOM), (WIDTH - RIGHT, LATENCY_BOTTOM)], AXIS)
    draw.text((5, AVAIL_TOP + 12), "avail.", AXIS, font)
    if not series.points:
        draw.text((LEFT + 20, TOP + 40), "no data stored for the last 24 h yet", AXIS, font)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
