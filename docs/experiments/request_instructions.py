#!/usr/bin/env python3
"""Instructions the server executes per `GET /iocd/v1/match`, counted by valgrind's callgrind.

Throughput on a shared 2-core machine moves by a third between runs (docs/benchmarks.md);
an instruction count does not: the same binary and requests give the same count within a
fraction of a percent, so two builds can be compared one after the other.

    cargo build --release -p iocd
    python3 docs/experiments/request_instructions.py [--binary target/release/iocd] [--requests 1000]

Needs valgrind (Debian's `valgrind`) and Python's `requests`. The script starts the server on a
fresh SQLite store, imports 2,000 domains, restarts it under callgrind, takes a token, sends 200
requests to warm the caches, then counts the server's user-space instructions over `--requests`
more (half matching, half not), one after another on one keep-alive connection. The kernel's
share (the socket) is not counted. With `--top N` it also prints the N costliest functions,
inclusive. Nothing here is part of the test suite.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import requests

PORT = 18181
BASE = f"http://127.0.0.1:{PORT}"


def start(binary, db, log, under_callgrind=None):
    command = [binary, "serve", "--listen", f"127.0.0.1:{PORT}", "--database", f"sqlite://{db}"]
    if under_callgrind:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={under_callgrind}"] + command
    env = dict(os.environ, IOCD_RATE_LIMITS="off")
    env.pop("RUST_LOG", None)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    for _ in range(600):
        try:
            requests.get(BASE + "/health", timeout=1)
            return process
        except requests.RequestException:
            if process.poll() is not None:
                sys.exit("the server exited; see its log")
            time.sleep(0.2)
    sys.exit("the server did not answer /health")


def token(session, credentials):
    tenant, client, secret = credentials
    answer = session.post(
        f"{BASE}/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client,
            "client_secret": secret,
            "scope": "https://api.securitycenter.microsoft.com/.default",
        },
        timeout=300,
    )
    answer.raise_for_status()
    return {"Authorization": "Bearer " + answer.json()["access_token"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default="target/release/iocd")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--top", type=int, default=0)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="iocd-instructions-")
    db = os.path.join(work, "iocd.db")
    with open(os.path.join(work, "first.log"), "w+") as log:
        server = start(args.binary, db, log)
        session = requests.Session()
        log.flush()
        log.seek(0)
        text = log.read()
        credentials = [
            re.search(rf"{name}:\s+(\S+)", text).group(1)
            for name in ("tenant id", "client id", "client secret")
        ]
        headers = token(session, credentials)
        items = [
            {
                "indicatorValue": f"host{i}.evil{i % 50}.example",
                "indicatorType": "DomainName",
                "action": "Block",
                "title": f"t{i}",
            }
            for i in range(2000)
        ]
        for start_at in range(0, len(items), 500):
            answer = session.post(
                BASE + "/api/indicators/import",
                json={"Indicators": items[start_at : start_at + 500]},
                headers=headers,
                timeout=60,
            )
            answer.raise_for_status()
        server.send_signal(signal.SIGTERM)
        server.wait()

    out = os.path.join(work, "callgrind.out")
    with open(os.path.join(work, "callgrind.log"), "w") as log:
        server = start(args.binary, db, log, under_callgrind=out)
        try:
            session = requests.Session()
            headers = token(session, credentials)
            paths = [
                f"/iocd/v1/match?domain=a.host{i * 7 % 2000}.evil{i * 7 % 2000 % 50}.example"
                if i % 2 == 0
                else f"/iocd/v1/match?domain=miss{i}.example"
                for i in range(args.requests)
            ]
            for path in paths[:200]:
                session.get(BASE + path, headers=headers, timeout=60).raise_for_status()
            subprocess.run(["callgrind_control", "--zero", str(server.pid)], check=True, capture_output=True)
            for path in paths:
                session.get(BASE + path, headers=headers, timeout=60).raise_for_status()
            subprocess.run(
                ["callgrind_control", "--dump=measured", str(server.pid)], check=True, capture_output=True
            )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait()

    dumps = sorted(f for f in os.listdir(work) if f.startswith("callgrind.out."))
    measured = os.path.join(work, dumps[0])
    totals = next(
        line for line in open(measured) if line.startswith("summary:") or line.startswith("totals:")
    )
    instructions = int(totals.split()[1])
    print(f"{instructions / args.requests:,.0f} instructions per GET /iocd/v1/match ({measured})")
    if args.top:
        report = subprocess.run(
            ["callgrind_annotate", "--inclusive=yes", measured], capture_output=True, text=True
        ).stdout
        # Recursive entries ("poll'2") count their cycle more than once: left out.
        rows = [
            line
            for line in report.splitlines()
            if re.match(r"^\s*[\d,]+ \(", line) and "'2" not in line
        ]
        for line in rows[: args.top]:
            print(line[:200])


if __name__ == "__main__":
    main()
