#!/usr/bin/python3
"""bench/charts.py RESULT.json PREFIX: bench/run's charts as PNG.

  PREFIX-rps.png       req/s per scenario, ringfpm vs php-fpm, TCP and unix
  PREFIX-p99.png       p99 per scenario, the same layout
  PREFIX-cdf.png       latency percentiles of the connections >> workers
                       scenarios (conn64/256/1024), requests that never got
                       an answer counted as never done
  PREFIX-overload.png  the overload phase: p99 and errors per window
  PREFIX-pm.png        the pm phase: p99 per 100 ms window and executors

Runs under Debian's python3 (python3-matplotlib); prints each file it wrote.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

COL = {"rf": "#1f77b4", "fpm": "#ff7f0e"}
NAME = {"rf": "ringfpm", "fpm": "php-fpm"}
DPI = 110


def fmt_rate(x, _pos=None):
    if x >= 1000:
        return "%gk" % (x / 1000)
    return "%g" % x


def fmt_ms(x, _pos=None):
    if x >= 1000:
        return "%.3gs" % (x / 1000)
    return "%.3gms" % x if x >= 1 else "%.3gµs" % (x * 1000)


def log_axis(axis, fmt):
    """Major ticks labelled with fmt, minor ticks at 2 and 5 labelled too."""
    axis.set_major_formatter(FuncFormatter(fmt))

    def minor(x, pos):
        lo, hi = sorted(axis.get_view_interval())
        m = "%.0e" % x
        # Less than a decade in view: every minor tick, else 2× and 5×.
        return fmt(x) if (hi < 10 * lo and m[0] in "2345678") or m[0] in "25" else ""
    axis.set_minor_formatter(FuncFormatter(minor))


def label_of(row):
    s = row["scenario"]
    if row.get("fpm_from") and row["fpm_from"] != s:
        s += "\n(php-fpm: its %s run)" % row["fpm_from"]
    starved = []
    for side in ("rf", "fpm"):
        d = row["sides"].get(side)
        sv = d and d.get("served_conns")
        if sv and d.get("conns") and sv["median"] < d["conns"]:
            starved.append("%s served %d/%d conns" % (NAME[side], sv["median"], d["conns"]))
    if starved:
        s += "\n(" + "; ".join(starved) + ")"
    return s


def bars(res, key, title, xlabel, path, fmt, scale=1.0):
    rows = res["summary"]["rows"]
    socks = [s for s in ("tcp", "unix") if any(r["socket"] == s for r in rows)]
    if not socks:
        return None
    scen = []
    for r in rows:
        if r["scenario"] not in scen:
            scen.append(r["scenario"])
    n = len(scen)
    fig, axes = plt.subplots(1, len(socks), figsize=(7.5 * len(socks), 1.0 + 0.42 * n),
                             squeeze=False, sharey=True)
    for ax, sock in zip(axes[0], socks):
        by = {r["scenario"]: r for r in rows if r["socket"] == sock}
        h = 0.38
        vals = []
        for i, sc in enumerate(scen):
            r = by.get(sc)
            for j, side in enumerate(("rf", "fpm")):
                d = r and r["sides"].get(side)
                m = d and d.get(key)
                if not m:
                    continue
                v = m["median"] * scale
                vals.append(v)
                y = i + (j - 0.5) * h
                ax.barh(y, v, height=h, color=COL[side], label=NAME[side] if i == 0 else None)
                lo, hi = m["min"] * scale, m["max"] * scale
                if hi > lo:
                    ax.plot([lo, hi], [y, y], color="black", lw=0.8)
            if r and key == "rps" and r.get("ratio"):
                ax.text(1.01, i, "%.2f×" % r["ratio"], transform=ax.get_yaxis_transform(),
                        va="center", fontsize=8,
                        color="#1f5f1f" if r["ratio"] >= 1 else "#9f1f1f")
            if r and key == "p99_us" and r.get("p99_ratio"):
                # >1: ringfpm's p99 is lower (better)
                pr = r["p99_ratio"]
                ax.text(1.01, i, ("%.0f×" if pr >= 10 else "%.2f×") % pr,
                        transform=ax.get_yaxis_transform(),
                        va="center", fontsize=8,
                        color="#1f5f1f" if pr >= 1 else "#9f1f1f")
        ax.set_xscale("log")
        if vals:
            ax.set_xlim(min(vals) / 1.6, max(vals) * 1.6)
        log_axis(ax.xaxis, fmt)
        ax.set_yticks(range(n))
        ax.set_yticklabels([label_of(by[sc]) if sc in by else sc for sc in scen], fontsize=7.5)
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.set_title("%s (%s)" % (title, sock), fontsize=10)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.tick_params(axis="x", which="both", labelsize=7)
    axes[0][0].set_ylim(n - 0.5, -0.5)   # first scenario on top (shared y: once)
    h, l = axes[0][0].get_legend_handles_labels()
    fig.legend(h, l, loc="upper right", ncol=2, fontsize=8)
    m = res["meta"]
    fig.suptitle("ringfpm vs php-fpm 8.2, %d workers, %s, %d round(s) × %g s; medians, whiskers "
                 "min–max; right: %s" % (m["workers"], m["host"], m["rounds"], m["duration"],
                                         "ratio ringfpm/php-fpm" if key == "rps" else
                                         "php-fpm p99 ÷ ringfpm p99 (>1: ringfpm lower)"),
                 fontsize=9, x=0.42)
    fig.tight_layout(rect=(0, 0, 0.97, 0.965))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def cdf(res, path):
    rows = [r for r in res["summary"]["rows"] if r["scenario"].startswith("conn")]
    if not rows:
        return None
    socks = [s for s in ("tcp", "unix") if any(r["socket"] == s for r in rows)]
    scen = []
    for r in rows:
        if r["scenario"] not in scen:
            scen.append(r["scenario"])
    fig, axes = plt.subplots(len(scen), len(socks), figsize=(6.2 * len(socks), 3.3 * len(scen)),
                             squeeze=False)
    qs = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)]
    for i, sc in enumerate(scen):
        for k, sock in enumerate(socks):
            ax = axes[i][k]
            r = next((x for x in rows if x["scenario"] == sc and x["socket"] == sock), None)
            notes = []
            for side in ("rf", "fpm"):
                d = r and r["sides"].get(side)
                lat = d and d.get("latency_median_run")
                if not lat:
                    continue
                ok, tmo = lat["requests"], lat.get("timeouts", 0)
                frac = ok / (ok + tmo) if ok + tmo else 1.0
                xs = [lat[q] / 1000.0 for q, _ in qs if lat.get(q)]
                ys = [p * frac for q, p in qs if lat.get(q)]
                ax.plot(xs, ys, "o-", color=COL[side], label="%s (max %s)" % (
                    NAME[side], fmt_ms(lat["max"] / 1000.0)))
                if tmo:
                    ax.axhline(frac, color=COL[side], ls="--", lw=1)
                    notes.append("%s: %d of %d connections never answered (%d requests, "
                                 "%.2f%%): curve tops out at %.2f%%" % (
                                     NAME[side], tmo, d.get("conns", 0), tmo,
                                     100.0 * tmo / (ok + tmo), 100 * frac))
            ax.set_xscale("log")
            ax.set_yscale("logit")
            ax.set_ylim(0.3, 0.9995)
            ax.set_yticks([0.5, 0.9, 0.99, 0.999])
            ax.set_yticklabels(["50%", "90%", "99%", "99.9%"])
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda *_: ""))
            log_axis(ax.xaxis, fmt_ms)
            ax.grid(which="both", alpha=0.3)
            ax.set_title("%s: %s keep-conn connections, 4 workers (%s)" % (
                sc, sc[4:], sock), fontsize=9)
            ax.set_xlabel("latency (log)", fontsize=8)
            ax.set_ylabel("requests answered within", fontsize=8)
            ax.tick_params(which="both", labelsize=7)
            ax.legend(loc="upper left", fontsize=7)
            if notes:
                ax.text(0.99, 0.03, "\n".join(notes), transform=ax.transAxes, fontsize=6.5,
                        ha="right", va="bottom",
                        bbox=dict(facecolor="white", alpha=0.85, edgecolor="#cccccc"))
    fig.suptitle("Latency percentiles (rf-load's p50/p90/p99/p99.9 of the median round), "
                 "connections ≫ workers", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def overload(res, path):
    ov = res.get("overload") or []
    if not ov:
        return None
    socks = [s for s in ("tcp", "unix") if any(x["socket"] == s for x in ov)]
    o = res["meta"]["overload"]
    fig, axes = plt.subplots(2, len(socks), figsize=(7 * len(socks), 6.4), squeeze=False,
                             sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for k, sock in enumerate(socks):
        ax, ax2 = axes[0][k], axes[1][k]
        for x in sorted([x for x in ov if x["socket"] == sock], key=lambda x: x["side"] != "rf"):
            ws = x["timeline"].get("windows") or []
            if not ws:
                continue
            side = x["side"]
            t = [w["t"] + x["timeline"]["window"] / 2 for w in ws]
            p99 = [w["p99_us"] / 1000.0 if w["p99_us"] is not None else float("nan") for w in ws]
            ax.plot(t, p99, "-", color=COL[side], marker=".", label=NAME[side])
            win = x["timeline"]["window"]
            err = [w["errors"] / win for w in ws]
            ax2.plot(t, err, "-", color=COL[side], label=NAME[side])
            rec = x["summary"].get("recovery_s")
            if rec is not None:
                ax.axvline(o["base_s"] + o["over_s"] + rec, color=COL[side], ls=":", lw=1.2)
        for a in (ax, ax2):
            a.axvspan(o["base_s"], o["base_s"] + o["over_s"], color="#d62728", alpha=0.08)
            a.grid(alpha=0.3)
            a.tick_params(which="both", labelsize=7)
        ax.set_yscale("log")
        log_axis(ax.yaxis, fmt_ms)
        ax.set_title("overload (%s): %g s at 0.5×, %g s at 4× capacity (shaded), %g s at 0.5×"
                     % (sock, o["base_s"], o["over_s"], o["after_s"]), fontsize=9)
        ax.set_ylabel("p99 of OK answers per %g s window\n(by due time)" % o["window"],
                      fontsize=8)
        ax.legend(fontsize=8, loc="upper right")
        ax2.set_ylabel("errors/s (503, connect,\ntimeout) by due time", fontsize=8)
        ax2.set_xlabel("seconds (dotted: recovered)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def pm(res, path):
    pms = res.get("pm") or []
    if not pms:
        return None
    socks = [s for s in ("tcp", "unix") if any(x["socket"] == s for x in pms)]
    modes = []
    for x in pms:
        if x["pm"] not in modes:
            modes.append(x["pm"])
    fig, axes = plt.subplots(len(modes), len(socks), figsize=(7 * len(socks), 3.4 * len(modes)),
                             squeeze=False, sharex=True)
    for i, mode in enumerate(modes):
        for k, sock in enumerate(socks):
            ax = axes[i][k]
            ax2 = ax.twinx()
            for x in sorted([x for x in pms if x["pm"] == mode and x["socket"] == sock],
                            key=lambda x: x["side"] != "rf"):
                ws = x["timeline"].get("windows") or []
                side = x["side"]
                win = x["timeline"]["window"]
                t = [w["t"] + win / 2 for w in ws]
                p99 = [w["p99_us"] / 1000.0 if w["p99_us"] is not None else float("nan")
                       for w in ws]
                st = x["summary"].get("settle_s")
                ax.plot(t, p99, "-", color=COL[side], lw=1.2, label="%s p99 (settled %s)" % (
                    NAME[side], "%.1f s" % st if st is not None else "never"))
                if st is not None:
                    ax.axvline(st, color=COL[side], ls=":", lw=1.2)
                steady = x["summary"].get("steady_p99_us")
                if steady:
                    ax.axhline(2 * steady / 1000.0, color=COL[side], ls="-.", lw=0.8, alpha=0.7)
                smp = x["timeline"].get("samples") or []
                if smp:
                    ax2.step([s[0] for s in smp], [s[1] for s in smp], where="post",
                             color=COL[side], alpha=0.45, lw=1, ls="--")
            ax.set_yscale("log")
            log_axis(ax.yaxis, fmt_ms)
            ax2.set_ylim(0, max(4, res["meta"]["workers"]) + 0.5)
            ax2.set_ylabel("executors (dashed)", fontsize=8)
            ax.grid(alpha=0.3)
            ax.tick_params(which="both", labelsize=7)
            ax2.tick_params(labelsize=7)
            ax.set_title("pm = %s (%s): idle, then %d req/s of 5 ms requests" % (
                mode, sock, res["meta"]["workers"] * 1000 / res["meta"]["sleep_ms"]
                * res["meta"]["pm_burst"]["frac"]), fontsize=9)
            ax.set_ylabel("p99 per 100 ms window", fontsize=8)
            ax.legend(fontsize=7, loc="upper right")
            if i == len(modes) - 1:
                ax.set_xlabel("seconds from the first request (dotted: settled; dash-dot: 2× "
                              "the static pool's p99)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: bench/charts.py RESULT.json PREFIX\n")
        return 2
    with open(argv[0]) as f:
        res = json.load(f)
    prefix = argv[1]
    out = [
        bars(res, "rps", "requests/s", "req/s (log)", prefix + "-rps.png", fmt_rate),
        bars(res, "p99_us", "p99 latency", "p99 (log)", prefix + "-p99.png", fmt_ms, 1e-3),
        cdf(res, prefix + "-cdf.png"),
        overload(res, prefix + "-overload.png"),
        pm(res, prefix + "-pm.png"),
    ]
    for p in out:
        if p:
            print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
