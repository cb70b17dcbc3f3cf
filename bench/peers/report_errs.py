#!/usr/bin/env python3
"""report_errs.py REPORT.json [REPORT2.json] - per-linear output errors of a ptqc
compile --report (standard library only; bench/peers, not run by make check).

For each kind of linear (q/k/v/o/gate/up/down): the mean relative output error
on the calibration tokens of the chosen method (err) and of RTN on the same
inputs (err_rtn), their ratio, the layers where GPTQ is worse than RTN, and the
first/last three layers.  With a second report, the ratio err(1) / err(2)
per kind (e.g. default GPTQ against act-order, on each run's own inputs).
"""
import json
import sys

KINDS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def linears(path):
    r = json.load(open(path))
    out = {}
    for L in r["layers"]:
        for lin in L["linears"]:
            kind = lin["name"].split(".")[-2]
            out[(L["layer"], kind)] = lin
    return r, out


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def main():
    r, lin = linears(sys.argv[1])
    s = r["settings"]
    print("%s: %s bits %s group %s act_order %s static %s damp %s, %s x %s tokens; summary %s"
          % (sys.argv[1], s["method"], s["bits"], s["group"], s["act_order"],
             s.get("static_groups"), s["damp"], s["nsamples"], s["seqlen"],
             json.dumps(r.get("summary"))))
    nl = 1 + max(k[0] for k in lin)
    print("| linear | mean err | mean err_rtn | err/err_rtn | layers worse than RTN "
          "| err/err_rtn layers 0-2 | layers %d-%d |" % (nl - 3, nl - 1))
    print("|---|---|---|---|---|---|---|")
    for kind in KINDS:
        rows = [(l, lin[(l, kind)]) for l in range(nl) if (l, kind) in lin]
        if not rows:
            continue
        e = mean(x["err"] for _, x in rows)
        er = mean(x["err_rtn"] for _, x in rows)
        worse = [l for l, x in rows if x["err"] > x["err_rtn"]]
        first = " ".join("%.2f" % (x["err"] / x["err_rtn"]) for _, x in rows[:3])
        last = " ".join("%.2f" % (x["err"] / x["err_rtn"]) for _, x in rows[-3:])
        print("| %s | %.4g | %.4g | %.3f | %s | %s | %s |"
              % (kind, e, er, e / er, ",".join(map(str, worse)) or "none", first, last))
    raises = sum(x.get("damp_raises", 0) for x in lin.values())
    dead = sum(x.get("dead_columns", 0) for x in lin.values())
    print("damp raises %d, dead columns %d" % (raises, dead))
    if len(sys.argv) > 2:
        _, lin2 = linears(sys.argv[2])
        print("\nerr(%s) / err(%s) per kind: " % (sys.argv[1], sys.argv[2]) + ", ".join(
            "%s %.3f" % (k, mean(lin[(l, k)]["err"] for l in range(nl)) /
                         mean(lin2[(l, k)]["err"] for l in range(nl)))
            for k in KINDS if (0, k) in lin and (0, k) in lin2))


if __name__ == "__main__":
    main()
