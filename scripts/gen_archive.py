#!/usr/bin/env python3
"""Writes a reproducible S3-layout CloudTrail archive for benchmarks.

    scripts/gen_archive.py OUT_DIR [--records N] [--seed S]

Records are built from the real CloudTrail records bundled in fixtures/samples/ (the
Invictus hour and the Stratus Red Team detonations): each generated record is a real record
with a new eventTime, eventID, requestID, account, region, principal and source IP, so record
sizes, field shapes and the mix of API calls stay realistic (~1.3 KB per record). Several
accounts and regions; one gzip file per account, region and 5-minute delivery window, named
and laid out as CloudTrail writes them to S3:

    AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<id>.json.gz

Records inside a file are shuffled, and a few percent are delivered one window late, as
CloudTrail does. Same seed, same archive.
"""

import argparse
import copy
import datetime as dt
import glob
import gzip
import json
import os
import random
import sys
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCOUNTS = ["111122223333", "222233334444", "333344445555", "444455556666", "555566667777"]
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2"]
WINDOW = dt.timedelta(minutes=5)


def load_templates():
    recs = []
    for f in sorted(glob.glob(os.path.join(ROOT, "fixtures/samples/AWSLogs/**/*.json.gz"), recursive=True)):
        recs.extend(json.load(gzip.open(f))["Records"])
    for f in sorted(glob.glob(os.path.join(ROOT, "fixtures/samples/stratus-red-team/*.json"))):
        recs.extend(json.load(open(f)))
    # Keep records that look like real API calls.
    return [r for r in recs if isinstance(r, dict) and "eventName" in r and "eventSource" in r]


def retarget(rec, rng, when, account, region, users):
    r = copy.deepcopy(rec)
    r["eventTime"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    r["eventID"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    r["requestID"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    r["recipientAccountId"] = account
    r["awsRegion"] = region
    ui = r.get("userIdentity")
    if isinstance(ui, dict) and ui.get("type") in ("IAMUser", "AssumedRole"):
        user = rng.choice(users)
        ui["accountId"] = account
        if ui.get("type") == "IAMUser":
            ui["arn"] = f"arn:aws:iam::{account}:user/{user}"
            ui["userName"] = user
        else:
            ui["arn"] = f"arn:aws:sts::{account}:assumed-role/{user}-role/session-{rng.randrange(100)}"
            sc = ui.get("sessionContext", {}).get("sessionIssuer")
            if isinstance(sc, dict):
                sc["arn"] = f"arn:aws:iam::{account}:role/{user}-role"
                sc["accountId"] = account
    if isinstance(r.get("sourceIPAddress"), str) and r["sourceIPAddress"][:1].isdigit():
        r["sourceIPAddress"] = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--start", default="2024-03-04T00:00:00Z")
    ap.add_argument("--per-file", type=int, default=100, help="average records per file")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    templates = load_templates()
    if not templates:
        sys.exit("gen_archive: no template records found under fixtures/samples/")
    users = [f"user{i:03d}" for i in range(60)] + ["deploy-bot", "ci-runner", "backup"]
    start = dt.datetime.fromisoformat(args.start.replace("Z", "+00:00"))
    streams = [(a, r) for a in ACCOUNTS for r in REGIONS]
    files_needed = max(1, args.records // args.per_file)
    windows = max(1, files_needed // len(streams))
    per_file = args.records / (windows * len(streams))

    written = 0
    late = {}  # (account, region, window) -> records delivered one window late
    for w in range(windows):
        t0 = start + w * WINDOW
        for account, region in streams:
            target = int(round(per_file * (w + 1))) - int(round(per_file * w))
            recs = late.pop((account, region, w), [])
            for _ in range(target):
                when = t0 + dt.timedelta(seconds=rng.uniform(0, WINDOW.total_seconds()))
                rec = retarget(rng.choice(templates), rng, when, account, region, users)
                if rng.random() < 0.03:
                    late.setdefault((account, region, w + 1), []).append(rec)
                else:
                    recs.append(rec)
            rng.shuffle(recs)
            if not recs:
                continue
            stamp = (t0 + WINDOW).strftime("%Y%m%dT%H%MZ")
            day = t0.strftime("%Y/%m/%d")
            d = os.path.join(args.out, "AWSLogs", account, "CloudTrail", region, day)
            os.makedirs(d, exist_ok=True)
            name = f"{account}_CloudTrail_{region}_{stamp}_{rng.getrandbits(64):016x}.json.gz"
            with gzip.open(os.path.join(d, name), "wt", compresslevel=6) as fh:
                json.dump({"Records": recs}, fh, separators=(",", ":"))
            written += len(recs)
        if w % 50 == 0:
            print(f"gen_archive: {written} records written", file=sys.stderr)
    print(f"gen_archive: {written} records in {windows * len(streams)} files under {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
