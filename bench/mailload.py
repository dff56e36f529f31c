#!/usr/bin/env python3
"""Mail load generator of bench/mail.sh: ~4 KiB messages over several SMTP connections, counted
as they appear over IMAP.

Every message carries an `X-Bench-Id`; one IMAP poller per mailbox notes the moment each id
first shows up. Measured: accepted/s (SMTP 250 after DATA), delivered/s (first seen over IMAP),
submit→delivered latency (p50/p95/max; resolution: the poll interval), refusals and messages
accepted but never delivered ("lost"). `load` prints one JSON object; `report` turns the
results of bench/mail.sh into the "mail" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import imaplib
import json
import os
import random
import re
import smtplib
import ssl
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

WORDS = [
    *("meeting", "agenda", "quarterly", "report", "budget", "review", "project", "schedule"),
    *("team", "update", "customer", "invoice", "delivery", "contract", "draft", "minutes"),
    *("office", "travel", "plan", "summary", "proposal", "figures", "department", "training"),
    *("release", "notes", "support", "request", "ticket", "archive", "calendar", "colleague"),
]
ID_RE = re.compile(rb"X-Bench-Id:\s*(\S+)", re.I)


@dataclass
class Stats:
    """What the senders and pollers record, shared between threads."""

    submitted: dict[str, float] = field(default_factory=dict)
    accepted: dict[str, float] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_message(msg_id: str, sender: str, rcpt: str, rng: random.Random) -> bytes:
    """An ordinary ~4 KiB business mail: ~2 KiB of text and a 1 KiB attachment (so that
    Rspamd's antivirus module hands a part to ClamAV; random bytes, so clamd's cache never hits)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = rcpt
    msg["Subject"] = " ".join(rng.choice(WORDS) for _ in range(5)).capitalize()
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=sender.split("@")[1])
    msg["X-Bench-Id"] = msg_id
    lines = []
    while sum(len(line) + 1 for line in lines) < 2000:
        lines.append(" ".join(rng.choice(WORDS) for _ in range(11)).capitalize() + ".")
    msg.set_content("Hello,\n\n" + "\n".join(lines) + "\n\nRegards,\nBench\n")
    msg.add_attachment(
        rng.randbytes(1024), maintype="application", subtype="octet-stream", filename="data.bin"
    )
    return msg.as_bytes()


def send_worker(
    args: argparse.Namespace, jobs: list[tuple[str, str]], stats: Stats, seed: int
) -> None:
    """One SMTP connection sending its share of the messages, reconnecting after errors."""
    rng = random.Random(seed)
    host, port = args.smtp.rsplit(":", 1)
    client: smtplib.SMTP | None = None
    for msg_id, rcpt in jobs:
        data = make_message(msg_id, args.sender, rcpt, rng)
        started = time.monotonic()
        with stats.lock:
            stats.submitted[msg_id] = started
        try:
            if client is None:
                client = smtplib.SMTP(host, int(port), local_hostname=args.helo, timeout=120)
                client.ehlo()
            client.sendmail(args.sender, [rcpt], data)
            with stats.lock:
                stats.accepted[msg_id] = time.monotonic()
        except (smtplib.SMTPException, OSError) as err:
            with stats.lock:
                stats.refused[msg_id] = str(err)[:200]
            if client is not None:
                try:
                    client.close()
                finally:
                    client = None
    if client is not None:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()


def imap_login(args: argparse.Namespace, user: str) -> imaplib.IMAP4:
    """An IMAP session of a mailbox (STARTTLS when asked; test certificates are not checked)."""
    host, port = args.imap.rsplit(":", 1)
    conn = imaplib.IMAP4(host, int(port))
    if args.starttls:
        conn.starttls(ssl_context=ssl._create_unverified_context())  # test certificate
    conn.login(user, args.password)
    return conn


def empty_mailbox(args: argparse.Namespace, user: str) -> None:
    """Remove what earlier runs left, so that a poll only reads this run's mail."""
    conn = imap_login(args, user)
    conn.select("INBOX")
    conn.uid("STORE", "1:*", "+FLAGS.SILENT", r"(\Deleted)")
    conn.expunge()
    conn.logout()


def poll_worker(args: argparse.Namespace, user: str, stats: Stats, stop: threading.Event) -> None:
    """Note when each message first appears in the mailbox."""
    conn = imap_login(args, user)
    conn.select("INBOX")
    next_uid = 1
    while not stop.is_set():
        conn.noop()
        typ, data = conn.uid(
            "FETCH", f"{next_uid}:*", "(UID BODY.PEEK[HEADER.FIELDS (X-Bench-Id)])"
        )
        now = time.monotonic()
        found: list[str] = []
        for item in data if typ == "OK" else []:
            if not isinstance(item, tuple):
                continue
            uid = re.search(rb"UID (\d+)", item[0])
            if uid is None or int(uid.group(1)) < next_uid:
                continue  # "n:*" returns the last message even when its UID is below n
            next_uid = int(uid.group(1)) + 1
            match = ID_RE.search(item[1])
            if match:
                found.append(match.group(1).decode())
        if found:
            with stats.lock:
                for msg_id in found:
                    stats.seen.setdefault(msg_id, now)
        stop.wait(args.poll)
    conn.logout()


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def probe(args: argparse.Namespace) -> dict[str, float]:
    """Median time of each SMTP step for messages sent one after another on one connection:
    RCPT shows the recipient lookups, the end of DATA the milter (scan and round trips)."""
    rng = random.Random(1)
    host, port = args.smtp.rsplit(":", 1)
    rcpt = args.users.split(",")[0]
    steps: dict[str, list[float]] = {"mail": [], "rcpt": [], "data": []}
    client = smtplib.SMTP(host, int(port), local_hostname=args.helo, timeout=120)
    client.ehlo()
    for n in range(args.messages):
        data = make_message(f"probe-{n}", args.sender, rcpt, rng)
        for step, call in (
            ("mail", lambda: client.mail(args.sender)),
            ("rcpt", lambda: client.rcpt(rcpt)),
            ("data", lambda d=data: client.data(d)),
        ):
            started = time.perf_counter()
            call()
            steps[step].append((time.perf_counter() - started) * 1000)
    client.quit()
    return {f"{step}_ms": round(percentile(v, 50), 1) for step, v in steps.items()}


def run(args: argparse.Namespace) -> dict[str, object]:
    """Send the load, wait for the deliveries, and summarise."""
    users = args.users.split(",")
    for user in users:
        empty_mailbox(args, user)
    stats = Stats()
    stop = threading.Event()
    pollers = [
        threading.Thread(target=poll_worker, args=(args, user, stats, stop), daemon=True)
        for user in users
    ]
    for thread in pollers:
        thread.start()
    run_id = uuid.uuid4().hex[:8]
    shares: list[list[tuple[str, str]]] = [[] for _ in range(args.connections)]
    for n in range(args.messages):
        shares[n % args.connections].append((f"{run_id}-{n}", users[n % len(users)]))
    senders = [
        threading.Thread(target=send_worker, args=(args, share, stats, i))
        for i, share in enumerate(shares)
    ]
    start = time.monotonic()
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    sent_s = time.monotonic() - start
    # Wait for every accepted message; give up after --timeout without progress.
    last_count, last_progress = -1, time.monotonic()
    while True:
        with stats.lock:
            count = len(stats.seen.keys() & stats.accepted.keys())
        if count >= len(stats.accepted):
            break
        if count != last_count:
            last_count, last_progress = count, time.monotonic()
        elif time.monotonic() - last_progress > args.timeout:
            break
        time.sleep(args.poll)
    stop.set()
    for thread in pollers:
        thread.join(timeout=30)

    accepted = stats.accepted
    delivered = {k: v for k, v in stats.seen.items() if k in accepted}
    latencies = [delivered[k] - stats.submitted[k] for k in delivered]
    last_accept = max(accepted.values(), default=start)
    last_seen = max(delivered.values(), default=start)
    return {
        "messages": args.messages,
        "connections": args.connections,
        "mailboxes": len(users),
        "message_bytes": len(make_message("x", args.sender, users[0], random.Random(0))),
        "accepted": len(accepted),
        "refused": len(stats.refused),
        "refusal_sample": sorted(set(stats.refused.values()))[:3],
        "delivered": len(delivered),
        "lost": len(accepted) - len(delivered),
        "send_s": round(sent_s, 2),
        "accepted_per_s": round(len(accepted) / max(last_accept - start, 1e-6), 1),
        "delivered_per_s": round(len(delivered) / max(last_seen - start, 1e-6), 1),
        "latency_p50_s": round(percentile(latencies, 50), 2),
        "latency_p95_s": round(percentile(latencies, 95), 2),
        "latency_max_s": round(max(latencies, default=0.0), 2),
        "poll_s": args.poll,
    }


DELAYS_RE = re.compile(r"delays=([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+).*status=sent")
RSPAMD_RE = re.compile(r"\(default: [A-Z] \(([^)]+)\): \[(-?[\d.]+)/.*?time: ([\d.]+)ms")
CASES = {
    "native": "native Debian Postfix + Dovecot",
    "native-filtered": "native Debian + Rspamd milter + clamd",
    "native-filtered-offline": "native Debian + Rspamd (PSN's offline settings) + clamd",
    "psn": "PSN without filters (mail__rspamd_enabled=false)",
    "psn-filtered": "PSN (Rspamd + ClamAV)",
}


def mean_p95(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    """ "mean / p95" of values (times scale), or "-" for none."""
    if not values:
        return "-"
    mean = sum(values) / len(values) * scale
    return f"{mean:.{digits}f} / {percentile(values, 95) * scale:.{digits}f}"


def cpu_per_message(results: Path, case: str, messages: int) -> str:
    """CPU milliseconds per message of the daemons (bench/mail.sh's cgroup deltas), total first."""
    path = results / f"{case}.cpu"
    if not path.exists() or not path.read_text().strip():
        return "-"
    used = {name: int(ms) for name, ms in (line.split() for line in path.read_text().splitlines())}
    parts = ", ".join(f"{name} {ms / messages:.1f}" for name, ms in used.items())
    return f"{sum(used.values()) / messages:.1f} ({parts})"


def where_time_goes(results: Path, case: str) -> list[str]:
    """Postfix's delays=a/b/c/d per delivery and Rspamd's scan time, as table cells."""
    cells: list[str] = []
    postfix = results / f"{case}.postfix.log"
    delays: list[list[float]] = [[], [], [], []]
    if postfix.exists():
        for match in DELAYS_RE.finditer(postfix.read_text("utf-8", "replace")):
            for column, value in zip(delays, match.groups(), strict=True):
                column.append(float(value))
    cells += [mean_p95(column) for column in delays]
    rspamd = results / f"{case}.rspamd.log"
    times: list[float] = []
    actions: dict[str, int] = {}
    if rspamd.exists():
        for match in RSPAMD_RE.finditer(rspamd.read_text("utf-8", "replace")):
            actions[match.group(1)] = actions.get(match.group(1), 0) + 1
            times.append(float(match.group(3)))
    scanned = results / f"{case}.scanned"
    steps = results / f"{case}.probe.json"
    if steps.exists():
        probed = json.loads(steps.read_text())
        cells += [f"{probed['rcpt_ms']} ms", f"{probed['data_ms']} ms"]
    else:
        cells += ["-", "-"]
    cells.append(mean_p95(times, digits=0) + (" ms" if times else ""))
    cells.append(scanned.read_text().strip() if scanned.exists() else "-")
    cells.append(", ".join(f"{k}: {v}" for k, v in sorted(actions.items())) or "-")
    return cells


def rounds_of(results: Path) -> dict[str, list[tuple[str, dict]]]:
    """Case -> its runs as (file stem, result): CASE.json, or CASE@1.json, CASE@2.json, ... when
    bench/mail.sh alternated rounds; in round order."""
    found: dict[str, list[tuple[int, str, dict]]] = {}
    for path in results.glob("*.json"):
        case, _, number = path.stem.partition("@")
        if case in CASES and path.stem.count(".") == 0:
            run = json.loads(path.read_text())
            found.setdefault(case, []).append((int(number or 0), path.stem, run))
    return {
        case: [(stem, run) for _, stem, run in sorted(found[case], key=lambda r: r[0])]
        for case in CASES
        if case in found
    }


def median_round(rounds: list[tuple[str, dict]]) -> tuple[str, dict]:
    """The round with the median delivered/s (the lower middle one of an even number)."""
    ordered = sorted(rounds, key=lambda r: r[1]["delivered_per_s"])
    return ordered[(len(ordered) - 1) // 2]


def load_of(results: Path, stem: str) -> str:
    """The load average bench/mail.sh noted when the run started."""
    return (results / f"{stem}.uptime").read_text().strip().split("load average:")[-1].strip()


def report(results: Path) -> str:
    """The "mail" section of docs/benchmarks.md from a results directory of bench/mail.sh."""
    all_rounds = rounds_of(results)
    if not all_rounds:
        return "no results"
    chosen = {case: median_round(rounds) for case, rounds in all_rounds.items()}
    runs = {case: run for case, (_, run) in chosen.items()}
    first = next(iter(runs.values()))
    rows, breakdown = [], []
    for case, (stem, run) in chosen.items():
        rows.append(
            f"| {CASES[case]} | {run['accepted_per_s']} | {run['delivered_per_s']} | "
            f"{run['latency_p50_s']} | {run['latency_p95_s']} | {run['refused']} | "
            f"{run['lost']} | {load_of(results, stem)} |"
        )
        cells = [*where_time_goes(results, stem), cpu_per_message(results, stem, run["messages"])]
        breakdown.append(f"| {CASES[case]} | " + " | ".join(cells) + " |")
    ratios = []
    for psn, native, target in (
        ("psn", "native", "≥ 0.8"),
        ("psn-filtered", "native-filtered", "≥ 1.0"),
        ("psn-filtered", "native-filtered-offline", "(like with like)"),
    ):
        if psn in runs and native in runs:
            ratio = runs[psn]["delivered_per_s"] / max(runs[native]["delivered_per_s"], 1e-6)
            accepted = runs[psn]["accepted_per_s"] / max(runs[native]["accepted_per_s"], 1e-6)
            pairs = zip(all_rounds[psn], all_rounds[native], strict=False)
            each = ", ".join(
                f"{p['delivered_per_s'] / max(n['delivered_per_s'], 1e-6):.2f}"
                for (_, p), (_, n) in pairs
            )
            ratios.append(
                f"| {CASES[psn]} / {CASES[native]} | {ratio:.2f} | {accepted:.2f} | {each} "
                f"| {target} |"
            )
    if not ratios:
        ratios.append("| (no PSN run to compare) | - | - | - | |")
    several = {case: rounds for case, rounds in all_rounds.items() if len(rounds) > 1}
    alternated = ""
    if several:
        alternated = (
            "Alternated in one window (native, PSN, native, PSN, ...); each row is its side's "
            "median round. Every round's delivered/s (load at its start): "
            + "; ".join(
                f"{CASES[case]}: "
                + ", ".join(f"{run['delivered_per_s']} ({load_of(results, stem).split(',')[0]})"
                            for stem, run in rounds)
                for case, rounds in several.items()
            )
            + "."
        )  # fmt: skip
    refusals = sorted({r for run in runs.values() for r in run["refusal_sample"]})
    about = (
        f"Measured by `bench/mail.sh`: {first['messages']} messages of {first['message_bytes']} "
        f"bytes (text and a 1 KiB attachment) over {first['connections']} SMTP connections into "
        f"port 25, to {first['mailboxes']} mailboxes, delivered by LMTP and counted over IMAP "
        f"(polled every {first['poll_s']} s, the latencies' resolution), after a warm-up load. "
        "Native: Debian 12's Postfix and Dovecot on this machine (bench/native/), filtered with "
        "Debian's Rspamd as milter and clamd (the image tests' signature database); the "
        "offline variant adds PSN's settings that turn off what needs the internet (DNS "
        "blocklists, fuzzy hashes, maps). PSN: an emulated server on the same machine with "
        "every role (the demo's layout), as deployed and, without filters, with its mail role "
        "deployed again with mail__rspamd_enabled=false. Other work ran on the machine at the "
        "same time: "
        "see the load. The load generator's address is private, so Rspamd treats the mail as "
        "local (no SPF/DKIM/DMARC checks) on both sides."
    )
    timing = (
        "Where the time goes, per delivery (mean / p95, seconds): Postfix's `delays=a/b/c/d` "
        "(a: SMTP session to queue, milter included; b: queue manager; c: LMTP connection; "
        "d: LMTP transmission, Dovecot's delivery); the median time of RCPT and of the end of "
        "DATA when messages go one at a time over one connection (recipient lookups; the "
        "milter's round trips and scan), Rspamd's own scan time per message, and the CPU time "
        "the daemons used per message during the load (ms; PSN: per container)."
    )
    lines = [
        "<!-- mail:start -->",
        f"## Mail throughput ({time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} CPUs)",
        "",
        textwrap.fill(about, 100),
        "",
        "| case | accepted/s | delivered/s | p50 latency (s) | p95 latency (s) | refused | lost "
        "| load at start (1/5/15 min) |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        *(["", textwrap.fill(alternated, 100)] if alternated else []),
        "",
        "| ratio (median rounds) | delivered/s | accepted/s | delivered/s, round by round "
        "| target |",
        "|---|---|---|---|---|",
        *ratios,
        "",
        textwrap.fill(timing, 100),
        "",
        "| case | a | b | c | d | RCPT alone | end of DATA alone | Rspamd scan | scanned "
        "| Rspamd actions | CPU per message |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *breakdown,
    ]
    if refusals:
        lines += ["", "Refusals (sample): " + "; ".join(f"`{r}`" for r in refusals)]
    notes = results / "notes"
    if notes.exists():
        lines += ["", textwrap.fill(notes.read_text("utf-8").replace("\n", " "), 100)]
    lines.append("<!-- mail:end -->")
    return "\n".join(lines)


def main() -> int:
    """Command line: `load` sends and counts, `report` writes the markdown section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("load", help="send the messages and count their delivery")
    load.add_argument("--smtp", required=True, help="host:port of the SMTP server (port 25 kind)")
    load.add_argument("--imap", required=True, help="host:port of the IMAP server")
    load.add_argument("--starttls", action="store_true", help="STARTTLS before the IMAP login")
    load.add_argument("--users", required=True, help="comma-separated recipient mailboxes")
    load.add_argument(
        "--password-env",
        default="MAIL_BENCH_PASSWORD",
        help="environment variable holding the mailboxes' IMAP password",
    )
    load.add_argument("--sender", default="loadgen@bench.test")
    load.add_argument("--helo", default="loadgen.bench.test")
    load.add_argument("--messages", type=int, default=3000)
    load.add_argument("--connections", type=int, default=8)
    load.add_argument("--poll", type=float, default=0.2, help="IMAP poll interval, seconds")
    load.add_argument(
        "--timeout", type=float, default=120, help="give up after this long without a delivery"
    )
    one = commands.add_parser("probe", help="time of each SMTP step, one message at a time")
    one.add_argument("--smtp", required=True, help="host:port of the SMTP server (port 25 kind)")
    one.add_argument("--users", required=True, help="the first one receives the messages")
    one.add_argument("--sender", default="loadgen@bench.test")
    one.add_argument("--helo", default="loadgen.bench.test")
    one.add_argument("--messages", type=int, default=30)
    rep = commands.add_parser("report", help="markdown section from bench/mail.sh's results")
    rep.add_argument("--results", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "report":
        print(report(args.results))
        return 0
    if args.command == "probe":
        json.dump(probe(args), sys.stdout)
        print()
        return 0
    args.password = os.environ.get(args.password_env, "")
    if not args.password:
        parser.error(f"set the IMAP password in ${args.password_env}")
    json.dump(run(args), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
