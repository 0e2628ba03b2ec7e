#!/usr/bin/env python3
"""Turns bench/run.sh's raw CSV into one table: per workload x allocator the median, the speed
ratio against mimalloc, and the median peak RSS. Prints it and writes it as markdown.

Usage: report.py RESULTS.CSV REPORT.MD --order a,b,c [--missing name=hint,...] [--header TEXT]

CSV columns: rep,workload,allocator,metric,value,peak_rss_kb,secs,status
(status "ok" or a failure word; value empty on failure). Standard library only.
"""
import argparse
import csv
import statistics
import sys
from collections import OrderedDict, defaultdict

# metric name -> (label, higher_is_better)
METRICS = {
    "ns_per_pair": ("ns per pair", False),
    "mops": ("M ops/s", True),
    "mfrees": ("M frees/s", True),
    "seconds": ("seconds", False),
}


def fmt_num(v):
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("md")
    ap.add_argument("--order", required=True)
    ap.add_argument("--missing", default="")
    ap.add_argument("--header", default="")
    a = ap.parse_args()

    order = [x for x in a.order.split(",") if x]
    missing = {}
    for item in a.missing.split(","):
        if "=" in item:
            k, v = item.split("=", 1)
            missing[k] = v

    vals = defaultdict(list)    # (workload, alloc) -> [value]
    rss = defaultdict(list)     # (workload, alloc) -> [kb]
    fails = defaultdict(list)   # (workload, alloc) -> [status]
    metric_of = {}
    workloads = OrderedDict()
    with open(a.csv, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["workload"], row["allocator"])
            workloads[row["workload"]] = True
            if row["status"] != "ok" or row["value"] == "":
                fails[key].append(row["status"])
                continue
            metric_of[row["workload"]] = row["metric"]
            vals[key].append(float(row["value"]))
            if row["peak_rss_kb"]:
                rss[key].append(float(row["peak_rss_kb"]))

    cols = order + [m for m in missing if m not in order]
    header = ["workload", "figure"] + cols
    rows = []
    costs = {}  # hakmem variant/mode column -> time ratios against the hakmem column, per workload
    n_fail = 0
    for wl in workloads:
        metric = metric_of.get(wl, "mops")
        label, higher = METRICS.get(metric, (metric, True))
        med = {}
        spread = {}
        for al in cols:
            v = vals.get((wl, al))
            if v:
                med[al] = statistics.median(v)
                spread[al] = (max(v) - min(v)) / 2 / med[al] * 100 if med[al] > 0 else 0.0
        base = med.get("mimalloc")
        r_val = [wl, label + (" (higher is better)" if higher else " (lower is better)")]
        r_rat = ["", "speed vs mimalloc (>1 = faster)"]
        r_rss = ["", "peak RSS, MiB (median)"]
        r_cost = ["", "time vs hakmem (<1.15 = within 15%)"]
        own = med.get("hakmem")
        for al in cols:
            if al in missing:
                na = "n/a (install %s)" % missing[al]
                r_val.append(na)
                r_rat.append("n/a")
                r_rss.append("n/a")
                continue
            f = fails.get((wl, al), [])
            n_fail += len(f)
            if al not in med:
                txt = "FAIL (%s)" % ",".join(sorted(set(f))) if f else "-"
                r_val.append(txt)
                r_rat.append("-")
                r_rss.append("-")
                continue
            cell = "%s ±%.0f%%" % (fmt_num(med[al]), spread[al])
            if f:
                cell += " (%d FAIL)" % len(f)
            r_val.append(cell)
            if base:
                ratio = med[al] / base if higher else base / med[al]
                r_rat.append("%.2fx" % ratio)
            else:
                r_rat.append("n/a")
            if own and al.startswith("hakmem") and al != "hakmem":
                cost = own / med[al] if higher else med[al] / own
                r_cost.append("%.2fx" % cost)
                costs.setdefault(al, []).append((wl, cost))
            else:
                r_cost.append("")
            k = rss.get((wl, al))
            r_rss.append("%.1f" % (statistics.median(k) / 1024.0) if k else "-")
        rows += [r_val, r_rat] + ([r_cost] if any(r_cost[2:]) else []) + [r_rss]

    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]

    def line(r):
        return "| " + " | ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)) + " |"

    out = []
    if a.header:
        out.append(a.header)
        out.append("")
    out.append(line(header))
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out += [line(r) for r in rows]
    out.append("")
    if costs:
        # Two groups, never mixed into one median: the allocation loops (the allocator is most of
        # their time) and the program rows (prog_*: whole programs, where it is a part).
        groups = [("allocation loops", lambda w: not w.startswith("prog_")),
                  ("programs", lambda w: w.startswith("prog_"))]
        out.append("Time against the hakmem column (median time ratio of each workload; then the median and the "
                   "largest over the workloads of each group):")
        for gname, member in groups:
            lines = []
            for al in cols:
                c = [(w, x) for w, x in costs.get(al, []) if member(w)]
                if c:
                    xs = [x for _, x in c]
                    lines.append("- %s: median %.2fx, max %.2fx (%s)" % (al, statistics.median(xs), max(xs), ", ".join(
                        "%s %.2fx" % (w, x) for w, x in c)))
            if lines:
                out.append("")
                out.append("%s:" % gname.capitalize())
                out += lines
        out.append("")
    out.append("Medians over interleaved runs; ±x% is half the min-max range relative to the median. "
               "Compare only within one report: the machine is shared and noise is 10-30%.")
    if n_fail:
        out.append("%d run(s) failed; logs in build/bench/logs/." % n_fail)
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    with open(a.md, "w") as f:
        f.write(text)
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
