"""Threadline beside DuckDB, chDB (embedded ClickHouse) and stock DataFusion on the same
generated telemetry, the same questions and the same machine, in one run.

Run through `benches/peers/run`, which builds Threadline and the Python environment.
Steps: generate the rows once (`threadline generate --out`), ingest them into Threadline
over HTTP (`--replay`), load the same rows into each peer, then ask every system each
question: one cold run in a fresh process, then five warm runs. Answers are compared
across systems; timings, disk bytes and peak RSS go to results.md, results.json and
chart.png in the results folder.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

SYSTEMS = ["threadline", "chdb", "duckdb", "datafusion"]
WARM_RUNS = 5
NEEDLE = "deadlock detected"
REGEX = "timed? out|refused"
# Requests per simulated second; each is about six spans and six log lines.
RATE = 1000


def questions(trace_id, start_s, end_s):
    """Each question as every system asks it. Threadline answers through its own APIs
    (LogQL over the Loki API, SQL, the trace document), the peers through SQL."""
    window = f"{end_s - start_s + 60}s"
    like_needle = f"body LIKE '%{NEEDLE}%'"
    return [
        {
            "id": "needle",
            "title": f'needle substring count ("{NEEDLE}")',
            "threadline": ("logql", f'sum(count_over_time({{}} |= "{NEEDLE}" [{window}]))'),
            "sql": f"SELECT count(*) FROM logs WHERE {like_needle}",
        },
        {
            "id": "regex",
            "title": f"case-insensitive regex count (/{REGEX}/i)",
            "threadline": ("logql", f'sum(count_over_time({{}} |~ "(?i){REGEX}" [{window}]))'),
            "sql": {
                "duckdb": f"SELECT count(*) FROM logs WHERE regexp_matches(body, '(?i){REGEX}')",
                "chdb": f"SELECT count(*) FROM logs WHERE match(body, '(?i){REGEX}')",
                "datafusion": f"SELECT count(*) FROM logs WHERE body ~* '{REGEX}'",
            },
        },
        {
            "id": "latest",
            "title": 'latest 100 lines containing "error"',
            "threadline": ("lines", '{} |= "error"'),
            "sql": "SELECT time, body FROM logs WHERE body LIKE '%error%' ORDER BY time DESC LIMIT 100",
        },
        {
            "id": "label_grep",
            "title": 'label-selected grep ({service_name="checkout"} |= "failed")',
            "threadline": (
                "logql",
                f'sum(count_over_time({{service_name="checkout"}} |= "failed" [{window}]))',
            ),
            "sql": "SELECT count(*) FROM logs WHERE service_name = 'checkout' AND body LIKE '%failed%'",
        },
        {
            "id": "trace",
            "title": "trace lookup, all signals, no time range",
            "threadline": ("trace", trace_id),
            "sql": [
                f"SELECT * FROM spans WHERE trace_id = '{trace_id}'",
                f"SELECT * FROM logs WHERE trace_id = '{trace_id}'",
            ],
        },
        {
            "id": "top_errors",
            "title": "top 10 services by error count",
            "threadline": (
                "sql",
                "SELECT service_name, count(*) AS errors FROM spans WHERE status_code = 'error' "
                "GROUP BY service_name ORDER BY errors DESC, service_name LIMIT 10",
            ),
            "sql": "SELECT service_name, count(*) AS errors FROM spans WHERE status_code = 'error' "
            "GROUP BY service_name ORDER BY errors DESC, service_name LIMIT 10",
        },
        {
            "id": "p99",
            "title": "p99 span duration per service",
            "threadline": (
                "sql",
                "SELECT service_name, approx_percentile_cont(duration_ns, 0.99) AS p99 "
                "FROM spans GROUP BY service_name ORDER BY service_name",
            ),
            "sql": {
                "duckdb": "SELECT service_name, quantile_cont(duration_ns, 0.99) AS p99 "
                "FROM spans GROUP BY service_name ORDER BY service_name",
                "chdb": "SELECT service_name, quantile(0.99)(duration_ns) AS p99 "
                "FROM spans GROUP BY service_name ORDER BY service_name",
                "datafusion": "SELECT service_name, approx_percentile_cont(duration_ns, 0.99) AS p99 "
                "FROM spans GROUP BY service_name ORDER BY service_name",
            },
        },
    ]


def sql_for(question, system):
    sql = question["sql"]
    if isinstance(sql, dict):
        sql = sql[system]
    return sql if isinstance(sql, list) else [sql]


# --- peers, each in its own process -------------------------------------------------


def open_peer(system, work):
    """A connection object with .query(sql) -> list of rows."""
    if system == "duckdb":
        import duckdb

        con = duckdb.connect(str(work / "duckdb" / "db.duckdb"), read_only=True)
        return lambda sql: con.execute(sql).fetchall()
    if system == "chdb":
        from chdb import session

        sess = session.Session(str(work / "chdb"))
        return lambda sql: json.loads(str(sess.query(sql, "JSONCompact")) or "{}").get("data", [])
    if system == "datafusion":
        import datafusion

        ctx = datafusion.SessionContext()
        gen = work / "generated"
        ctx.register_parquet("logs", str(gen / "logs.parquet"))
        ctx.register_parquet("spans", str(gen / "spans.parquet"))
        return lambda sql: [tuple(r.values()) for r in ctx.sql(sql).to_pylist()]
    raise ValueError(system)


def load_peer(system, work):
    """Loads the generated Parquet into the peer's own storage; returns its bytes."""
    gen = work / "generated"
    if system == "duckdb":
        import duckdb

        path = work / "duckdb" / "db.duckdb"
        path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path))
        for table in ("logs", "spans"):
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM '{gen / (table + '.parquet')}'")
        con.execute("CHECKPOINT")
        con.close()
        return {"logs": None, "total": path.stat().st_size}
    if system == "chdb":
        from chdb import session

        sess = session.Session(str(work / "chdb"))
        sess.query(
            """CREATE TABLE logs (
                time DateTime64(9, 'UTC') CODEC(ZSTD), service_name LowCardinality(String) CODEC(ZSTD),
                instance LowCardinality(String) CODEC(ZSTD), severity LowCardinality(String) CODEC(ZSTD),
                trace_id Nullable(String) CODEC(ZSTD), span_id Nullable(String) CODEC(ZSTD),
                body String CODEC(ZSTD)
            ) ENGINE = MergeTree ORDER BY (service_name, time)"""
        )
        sess.query(
            """CREATE TABLE spans (
                trace_id String CODEC(ZSTD), span_id String CODEC(ZSTD),
                parent_span_id Nullable(String) CODEC(ZSTD), service_name LowCardinality(String) CODEC(ZSTD),
                instance LowCardinality(String) CODEC(ZSTD), name LowCardinality(String) CODEC(ZSTD),
                kind LowCardinality(String) CODEC(ZSTD), start_time DateTime64(9, 'UTC') CODEC(ZSTD),
                duration_ns Int64 CODEC(ZSTD), status_code LowCardinality(String) CODEC(ZSTD),
                status_message Nullable(String) CODEC(ZSTD), http_status_code Nullable(UInt16) CODEC(ZSTD)
            ) ENGINE = MergeTree ORDER BY (service_name, start_time)"""
        )
        for table in ("logs", "spans"):
            sess.query(f"INSERT INTO {table} SELECT * FROM file('{gen / (table + '.parquet')}', Parquet)")
            sess.query(f"OPTIMIZE TABLE {table} FINAL")
        sizes = sess.query(
            "SELECT table, sum(bytes_on_disk) FROM system.parts WHERE active AND database = currentDatabase() "
            "GROUP BY table",
            "JSONCompact",
        )
        sizes = {t: int(b) for t, b in json.loads(str(sizes))["data"]}
        return {"logs": sizes.get("logs"), "total": sum(sizes.values())}
    if system == "datafusion":
        logs = (gen / "logs.parquet").stat().st_size
        return {"logs": logs, "total": logs + (gen / "spans.parquet").stat().st_size}
    raise ValueError(system)


def worker(args):
    """Asks one peer one question: a cold run, then warm runs; prints JSON."""
    work = Path(args.work)
    query = open_peer(args.worker, work)
    question = json.loads(args.question)
    timings, answer = [], None
    for _ in range(1 + WARM_RUNS):
        began = time.perf_counter()
        answer = [query(sql) for sql in question]
        timings.append(time.perf_counter() - began)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"timings": timings, "rss": rss, "answer": normalize(answer)}, default=str))


def normalize(answer):
    """Answers as comparable values: a count; for a few rows, their first column
    sorted (so systems agree on which groups there are); else the number of rows."""
    out = []
    for rows in answer:
        rows = [list(r) for r in rows]
        if len(rows) == 1 and len(rows[0]) == 1:
            out.append(int(float(rows[0][0])))
        elif len(rows) <= 20 and rows and len(rows[0]) == 2:
            out.append(sorted(str(r[0]) for r in rows))
        else:
            out.append(len(rows))
    return out


# --- Threadline, over HTTP ----------------------------------------------------------


class Threadline:
    def __init__(self, binary, data_dir):
        self.binary, self.data_dir = binary, data_dir
        self.process, self.url = None, None

    def start(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        with open(self.data_dir.parent / "threadline.log", "a") as log:
            self.process = subprocess.Popen(
                [self.binary, "serve", "--data-dir", str(self.data_dir), "--listen", f"127.0.0.1:{port}"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        for _ in range(600):
            try:
                urllib.request.urlopen(self.url + "/ready", timeout=1)
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError("threadline did not become ready; see threadline.log")

    def peak_rss(self):
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=600)

    def get(self, path, params=None):
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        with urllib.request.urlopen(url, timeout=600) as r:
            return json.loads(r.read())

    def bytes_fetched(self):
        with urllib.request.urlopen(self.url + "/metrics", timeout=60) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("threadline_object_store_get_bytes_total "):
                    return int(float(line.split()[1]))
        return 0

    def sql(self, sql):
        request = urllib.request.Request(self.url + "/threadline/v1/sql", data=sql.encode())
        with urllib.request.urlopen(request, timeout=600) as r:
            return json.loads(r.read())

    def ask(self, kind, text, start_s, end_s):
        if kind == "logql":
            body = self.get("/loki/api/v1/query", {"query": text, "time": end_s + 60})
            result = body["data"]["result"]
            return [int(float(result[0]["value"][1])) if result else 0]
        if kind == "lines":
            body = self.get(
                "/loki/api/v1/query_range",
                {"query": text, "start": start_s, "end": end_s + 60, "limit": 100, "direction": "backward"},
            )
            return [sum(len(s["values"]) for s in body["data"]["result"])]
        if kind == "trace":
            body = self.get(f"/threadline/v1/traces/{text}")
            return [body["span_count"], body["log_count"]]
        if kind == "sql":
            body = self.sql(text)
            names = [c["name"] for c in body["columns"]]
            return normalize([[tuple(row.get(n) for n in names) for row in body["rows"]]])
        raise ValueError(kind)


def disk_bytes(path, part=None):
    total = 0
    for root, _, files in os.walk(path):
        if part and f"/{part}" not in root + "/":
            continue
        total += sum((Path(root) / f).stat().st_size for f in files)
    return total


def drop_page_cache():
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


# --- the run --------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threadline", required=True, help="the threadline binary")
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans to generate (about as many log lines)")
    parser.add_argument("--results", default="benches/peers/results", help="results folder")
    parser.add_argument("--work", help="scratch folder for the data (default: results/work)")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--question", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    results = Path(args.results)
    work = Path(args.work) if args.work else results / "work"
    systems = args.systems.split(",")
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        sys.exit(f"unknown systems {unknown}; choose from {','.join(SYSTEMS)}")
    marker = work / ".threadline-peers"
    if work.exists() and any(work.iterdir()) and not marker.exists():
        sys.exit(f"{work} is not empty and not a scratch folder of this harness; choose another --work")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    marker.touch()
    report = {
        "spans_requested": args.spans,
        "systems": systems,
        "machine": machine(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }

    # 1. Generate once.
    duration_s = max(60, round(args.spans / (6.05 * RATE)))
    start_s = 1_767_225_600  # 2026-01-01T00:00:00Z
    began = time.perf_counter()
    out = run([args.threadline, "generate", "--out", str(work / "generated"), "--seed", "1",
               "--start", str(start_s), "--duration", f"{duration_s}s", "--rate", str(RATE)])
    trace_id = re.search(r"threadline trace ([0-9a-f]{32})", out).group(1)
    counts = re.search(r"(\d+) log lines, (\d+) spans", out)
    rows = {"logs": int(counts.group(1)), "spans": int(counts.group(2))}
    report.update(rows=rows, trace_id=trace_id, generate_s=time.perf_counter() - began)
    end_s = start_s + duration_s
    print(f"generated {rows['logs']} log lines and {rows['spans']} spans", flush=True)

    # 2. Ingest into Threadline over HTTP.
    systems_report = {}
    threadline = Threadline(args.threadline, work / "threadline")
    if "threadline" in systems:
        threadline.start()
        began = time.perf_counter()
        out = run([args.threadline, "generate", "--replay", str(work / "generated"),
                   "--url", threadline.url, "--concurrency", "4"])
        seconds = time.perf_counter() - began
        sent_mb = float(re.search(r"\(([\d.]+) MB\)", out).group(1))
        ingest_rss = threadline.peak_rss()
        threadline.stop()  # flushes the head into chunks, as the peers' loads finish theirs
        seconds = time.perf_counter() - began
        chunks = work / "threadline" / "chunks"
        systems_report["threadline"] = {
            "load_s": seconds,
            "ingest_mb_per_s": sent_mb / seconds,
            "ingest_rows_per_s": (rows["logs"] + rows["spans"]) / seconds,
            "ingest_peak_rss": ingest_rss,
            "bytes": {"logs": disk_bytes(chunks, "logs"), "total": disk_bytes(chunks)},
        }
        print(f"threadline ingested {sent_mb:.0f} MB in {seconds:.1f} s", flush=True)

    # 3. Load the peers.
    for system in systems:
        if system == "threadline":
            continue
        began = time.perf_counter()
        code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import harness, json; " \
               f"from pathlib import Path; print(json.dumps(harness.load_peer({system!r}, Path({str(work)!r}))))"
        out = run([sys.executable, "-c", code])
        systems_report[system] = {"load_s": time.perf_counter() - began, "bytes": json.loads(out.splitlines()[-1])}
        print(f"{system} loaded in {systems_report[system]['load_s']:.1f} s", flush=True)

    # 4. Ask every question.
    report["questions"] = []
    cold_drops = True
    for question in questions(trace_id, start_s, end_s):
        entry = {"id": question["id"], "title": question["title"], "systems": {}}
        for system in systems:
            cold_drops &= drop_page_cache()
            if system == "threadline":
                threadline.start()
                timings, answer, fetched = [], None, 0
                for _ in range(1 + WARM_RUNS):
                    before = threadline.bytes_fetched()
                    began = time.perf_counter()
                    answer = threadline.ask(*question["threadline"], start_s, end_s)
                    timings.append(time.perf_counter() - began)
                    fetched = threadline.bytes_fetched() - before
                rss = threadline.peak_rss()
                threadline.stop()
                entry["threadline_bytes_read"] = fetched
            else:
                out = run([sys.executable, __file__, "--threadline", args.threadline, "--work", str(work),
                           "--worker", system, "--question", json.dumps(sql_for(question, system))])
                result = json.loads(out.splitlines()[-1])
                timings, rss, answer = result["timings"], result["rss"], result["answer"]
            entry["systems"][system] = {
                "cold_s": timings[0],
                "warm_s": statistics.median(timings[1:]),
                "peak_rss": rss,
                "answer": answer,
            }
            print(f"{question['id']:>11} {system:>10}: cold {timings[0] * 1000:9.1f} ms, "
                  f"warm {statistics.median(timings[1:]) * 1000:9.1f} ms, answer {answer}", flush=True)
        answers = {json.dumps(s["answer"]) for s in entry["systems"].values()}
        entry["answers_agree"] = len(answers) == 1
        report["questions"].append(entry)
    report["cold_means"] = "page cache dropped and a fresh process" if cold_drops else "a fresh process"
    report["load"] = systems_report

    results.mkdir(parents=True, exist_ok=True)
    (results / "results.json").write_text(json.dumps(report, indent=2))
    (results / "results.md").write_text(markdown(report))
    chart(report, results / "chart.png")
    print((results / "results.md").read_text())


def run(command):
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:3])}… failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "unknown")
    return {"cpu": cpu, "cores": os.cpu_count()}


def ms(seconds):
    return f"{seconds * 1000:.1f}" if seconds < 10 else f"{seconds * 1000:.0f}"


def markdown(report):
    systems = report["systems"]
    rows = report["rows"]
    lines = [
        f"{rows['logs']:,} log lines and {rows['spans']:,} spans on {report['machine']['cores']} cores "
        f"({report['machine']['cpu']}), commit {report['commit']}, {report['date']}. "
        f"Median of {WARM_RUNS} warm runs, and one cold run "
        f"({report['cold_means']}), in milliseconds; Threadline's ratio to each peer, warm "
        "(below 1 means Threadline is faster).",
        "",
        "| question | " + " | ".join(f"{s} warm / cold" for s in systems) + " | "
        + " | ".join(f"÷ {s}" for s in systems if s != "threadline") + " | answers agree |",
        "|" + "---|" * (2 + len(systems) + len([s for s in systems if s != "threadline"])),
    ]
    for q in report["questions"]:
        cells = [f"{ms(q['systems'][s]['warm_s'])} / {ms(q['systems'][s]['cold_s'])}" for s in systems]
        ratios = []
        if "threadline" in systems:
            tl = q["systems"]["threadline"]["warm_s"]
            ratios = [f"{tl / q['systems'][s]['warm_s']:.2f}" for s in systems if s != "threadline"]
        title = q["title"].replace("|", "\\|")  # a pipe in a cell would end it
        lines.append(f"| {title} | " + " | ".join(cells + ratios) + f" | {'yes' if q['answers_agree'] else 'NO'} |")
    lines += ["", "| system | load s | bytes per log line | bytes per row, all | peak RSS of queries (MiB) |", "|---|---|---|---|---|"]
    for s in systems:
        load = report["load"][s]
        logs_bytes = load["bytes"]["logs"]
        per_log = f"{logs_bytes / rows['logs']:.1f}" if logs_bytes else "–"
        per_row = load["bytes"]["total"] / (rows["logs"] + rows["spans"])
        rss = max(q["systems"][s]["peak_rss"] for q in report["questions"]) / 2**20
        lines.append(f"| {s} | {load['load_s']:.1f} | {per_log} | {per_row:.1f} | {rss:.0f} |")
    if "threadline" in report["load"]:
        tl = report["load"]["threadline"]
        stored = tl["bytes"]["total"]
        lines += ["", "Bytes Threadline fetched from storage for one warm run (footers cached), "
                  f"of {stored:,} stored:", ""]
        for q in report["questions"]:
            read = q.get("threadline_bytes_read", 0)
            lines.append(f"- {q['title']}: {read:,} ({100 * read / max(stored, 1):.3f}%)")
        lines += ["", "Threadline ingest over HTTP (OTLP protobuf and pprof, 4 connections, each push durable "
                  "before its answer), until the last chunk is written: "
                  f"{tl['ingest_mb_per_s']:.1f} MB/s of request bodies, {tl['ingest_rows_per_s']:,.0f} log lines and spans/s, "
                  f"peak RSS {tl['ingest_peak_rss'] / 2**20:.0f} MiB. Peers load the same rows from Parquet."]
    return "\n".join(lines) + "\n"


def chart(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = report["systems"]
    qs = report["questions"]
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / len(systems)
    for i, s in enumerate(systems):
        ax.bar([j + i * width for j in range(len(qs))], [q["systems"][s]["warm_s"] * 1000 for q in qs],
               width, label=s)
    ax.set_yscale("log")
    ax.set_ylabel("warm median, ms (log scale)")
    ax.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(qs))])
    ax.set_xticklabels([q["id"] for q in qs])
    rows = report["rows"]
    ax.set_title(f"{rows['logs']:,} log lines + {rows['spans']:,} spans")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
