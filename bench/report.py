#!/usr/bin/env python3
"""Turns bench/compare.sh's runs.jsonl into a markdown report (stdout).

Usage: bench/report.py bench/results/STAMP
"""
import json
import os
import statistics
import sys

TITLES = {
    "a": "(a) 1 producer → 1 queue → 1 consumer, 16 B, manual ack, prefetch 1000",
    "b": "(b) as (a) + publisher confirms, 1000 in flight",
    "c": "(c) fanout → 10 queues, a consumer each (deliveries/s)",
    "d": "(d) latency at a fixed 1000 msg/s",
    "e": "(e) persistent 16 B messages into a durable queue, confirms (1000 in flight), a consumer",
    "g": "(g) as (a) into a priority queue of 10 levels",
    "h": "(h) reject → dead-letter loop (deliveries/s)",
    "t": "(t) as (a) over TLS (AMQPS)",
}
TOOL_SATURATED = 85.0  # % of one core: the tool runs on one thread
BUSY_MACHINE = 25.0  # % of one core used by other work during a run


def mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def fmt_rate(v):
    return "-" if v is None else f"{v:,.0f}"


def fmt_us(v):
    """A latency given in µs, in the unit that reads best."""
    if v is None:
        return "-"
    if v >= 1_000_000:
        return f"{v / 1e6:.1f} s"
    if v >= 10_000:
        return f"{v / 1e3:.0f} ms"
    if v >= 1_000:
        return f"{v / 1e3:.1f} ms"
    return f"{v:.0f} µs"


def fmt_cpu(v):
    return "-" if v is None else f"{v:.2f}"


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.{digits}f}×"


def main(out_dir):
    runs = [json.loads(line) for line in open(os.path.join(out_dir, "runs.jsonl")) if line.strip()]
    meta_path = os.path.join(out_dir, "meta.txt")
    meta = open(meta_path).read().strip().splitlines() if os.path.exists(meta_path) else []
    scenarios = []
    for r in runs:
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])

    def agg(scenario, broker):
        rs = [r for r in runs if r["scenario"] == scenario and r["broker"] == broker]
        if not rs:
            return None
        return {
            "n": len(rs),
            "rate": mean(r["receive_rate"] for r in rs),
            "send_rate": mean(r["send_rate"] for r in rs),
            "p50": mean(r["p50_us"] for r in rs),
            "p99": mean(r["p99_us"] for r in rs),
            "cpu": mean(r["broker_cpu_us_per_msg"] for r in rs),
            "tool": max((r["tool_cpu_percent"] or 0) for r in rs),
            "other": max(r["other_cpu_percent"] for r in rs),
            "errors": sum(len(r["errors"]) for r in rs),
        }

    print(f"### Warren vs RabbitMQ ({os.path.basename(out_dir.rstrip('/'))})")
    print()
    for line in meta:
        print(f"- {line}")
    print()
    print("| scenario | Warren msg/s | RabbitMQ msg/s | Warren ÷ RabbitMQ | Warren latency p50 / p99 "
          "| RabbitMQ latency p50 / p99 | Warren CPU µs/msg | RabbitMQ CPU µs/msg "
          "| CPU/msg Warren ÷ RabbitMQ | tool CPU (max) | other CPU (max) |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    warnings = []
    verdicts = []
    for s in scenarios:
        w, r = agg(s, "warren"), agg(s, "rabbitmq")
        if w is None or r is None:
            continue
        print(
            f"| {TITLES.get(s, s)} | {fmt_rate(w['rate'])} | {fmt_rate(r['rate'])} "
            f"| {ratio(w['rate'], r['rate'])} | {fmt_us(w['p50'])} / {fmt_us(w['p99'])} "
            f"| {fmt_us(r['p50'])} / {fmt_us(r['p99'])} | {fmt_cpu(w['cpu'])} | {fmt_cpu(r['cpu'])} "
            f"| {ratio(w['cpu'], r['cpu'])} | {max(w['tool'], r['tool']):.0f}% "
            f"| {max(w['other'], r['other']):.0f}% |"
        )
        for name, a in (("Warren", w), ("RabbitMQ", r)):
            if a["tool"] > TOOL_SATURATED:
                warnings.append(
                    f"({s}) {name}: the load tool used {a['tool']:.0f}% of its core: "
                    "the rate is a lower bound, the tool may be the bottleneck."
                )
            if a["other"] > BUSY_MACHINE:
                warnings.append(
                    f"({s}) {name}: other work on the machine used up to {a['other']:.0f}% of a "
                    "core during a run; treat these numbers with care."
                )
            if a["errors"]:
                warnings.append(f"({s}) {name}: {a['errors']} run error(s), see the logs.")
        if s in ("a", "c") and w["rate"] and r["rate"]:
            x = w["rate"] / r["rate"]
            verdicts.append(f"({s}) throughput ≥ 3× RabbitMQ: {'met' if x >= 3 else 'missed'} ({x:.2f}×)")
        if s in ("a", "b", "c") and w["cpu"] and r["cpu"]:
            x = w["cpu"] / r["cpu"]
            verdicts.append(f"({s}) CPU per message ≤ 1/5 of RabbitMQ's: {'met' if x <= 0.2 else 'missed'} ({x:.2f}×)")
        if s == "d" and w["p99"] is not None:
            verdicts.append(f"(d) p99 < 500 µs at 1000 msg/s: {'met' if w['p99'] < 500 else 'missed'} ({w['p99']:.0f} µs)")
    print()
    print("msg/s is what consumers received (in (c), deliveries summed over the 10 queues); "
          "latency is publish-to-delivery end to end; CPU µs/msg is the broker process's "
          "user+system time over the run divided by messages received; rates and percentiles "
          "are means over the rounds. \"tool CPU\" is the load generator's own share of one core "
          "(it runs on one thread), \"other CPU\" whatever else the machine did meanwhile. "
          "Where producers publish faster than consumers receive (see \"sent\" below), the "
          "latency is mostly time spent waiting in a growing queue.")
    if verdicts:
        print()
        print("Targets: " + "; ".join(verdicts) + ".")
    if warnings:
        print()
        for w in warnings:
            print(f"- ⚠ {w}")
    print()
    print("<details><summary>Every run</summary>")
    print()
    print("| scenario | broker | round | sent msg/s | received msg/s | p50 | p95 | p99 | max "
          "| broker CPU µs/msg | broker CPU % | tool CPU % | other CPU % |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in runs:
        print(
            f"| {r['scenario']} | {r['broker']} | {r['round']} | {fmt_rate(r['send_rate'])} "
            f"| {fmt_rate(r['receive_rate'])} | {fmt_us(r['p50_us'])} | {fmt_us(r['p95_us'])} "
            f"| {fmt_us(r['p99_us'])} | {fmt_us(r['max_us'])} | {fmt_cpu(r['broker_cpu_us_per_msg'])} "
            f"| {r['broker_cpu_percent']:.0f} | {(r['tool_cpu_percent'] or 0):.0f} "
            f"| {r['other_cpu_percent']:.0f} |"
        )
    print()
    print("</details>")


if __name__ == "__main__":
    main(sys.argv[1])
