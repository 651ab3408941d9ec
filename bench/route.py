"""Benchmark: routing decisions per second (rules.yaml + member choice), pure and in-process.

    .venv/bin/python bench/route.py [--requests N] [--members M]

10,000 generated ja/en requests routed through the default rules.yaml and assigned over
50 members, next to the bare limit of the same run: scanning each text once for every
skill keyword with ``str.find`` (the least any keyword router must do). Prints a markdown
table and writes bench/out/route.json. Target: well over 10,000 decisions/s on one core.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT)]

from mailflow.assign import MemberLoad, choose_member  # noqa: E402
from mailflow.directory import directory_from_data  # noqa: E402
from mailflow.instance import default_rules_path  # noqa: E402
from mailflow.rules import MailFacts, load_rules, route  # noqa: E402
from mailflow.yamlfile import YamlChecker, parse_yaml  # noqa: E402

OUT = HERE / "out" / "route.json"
SKILLS = ["research", "data_entry", "translation", "writing", "accounting", "design", "scheduling"]
JA = [
    "競合3社の料金を調査してください。",
    "顧客リストをExcelに入力してください。",
    "契約書を英語に翻訳してください。",
    "ブログ記事を3本作成してください。",
    "経費精算の仕訳をお願いします。",
    "バナーのデザインをお願いします。",
    "来週の会議の日程調整をお願いします。",
    "電話で予約をお願いします。",
]
EN = [
    "Please research three competitors.",
    "Please enter these contacts into a sheet.",
    "Please translate the attached contract.",
    "Please write a blog post about us.",
    "Please reconcile last month's expenses.",
    "Please design a banner.",
    "Please schedule a meeting with the team.",
    "Please call the venue.",
]


def people(members: int) -> dict[str, object]:
    chance = random.Random(7)
    return {
        "directors": [{"id": "tanaka", "name": "田中", "email": "tanaka@desk.example"}],
        "members": [
            {
                "id": f"m{i:02d}",
                "name": f"Member {i}",
                "email": f"m{i}@members.example",
                "skills": chance.sample(SKILLS, 3),
                "capacity": 10,
                "languages": ["ja", "en"] if i % 3 == 0 else ["ja"],
            }
            for i in range(members)
        ],
        "clients": [
            {
                "id": "acme",
                "company": "株式会社アクメ",
                "plan": "director",
                "director": "tanaka",
                "contacts": ["y@acme.example"],
                "language": "ja",
            }
        ],
    }


def requests(n: int) -> list[MailFacts]:
    chance = random.Random(11)
    sent = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    facts = []
    for i in range(n):
        texts = JA if i % 3 else EN
        body = "お世話になっております。\n" + chance.choice(texts) + "\nよろしくお願いします。\n"
        facts.append(
            MailFacts(
                subject=chance.choice(texts)[:12],
                text=body * 3,
                has_attachments=i % 10 == 0,
                sender_role="client",
                client_id="acme",
                plan="director",
                sent=sent,
            )
        )
    return facts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=50)
    args = parser.parse_args()
    rules = load_rules(default_rules_path())
    text = yaml.safe_dump(people(args.members), allow_unicode=True)
    directory = directory_from_data(parse_yaml(text, "people.yaml"), YamlChecker("people.yaml"))
    client = directory.clients["acme"]
    workload = {m: MemberLoad(i % 5, (i % 5) * 2.0, i % 3) for i, m in enumerate(directory.members)}
    facts = requests(args.requests)
    keywords = [k.lower() for skill in rules.skills.values() for k in skill.keywords]

    started = time.perf_counter()
    for item in facts:
        text = (item.subject + "\n" + item.text).lower()
        _ = [k for k in keywords if text.find(k) != -1]
    bare = len(facts) / (time.perf_counter() - started)

    started = time.perf_counter()
    routings = [route(item, rules) for item in facts]
    routed = len(facts) / (time.perf_counter() - started)

    today = date(2026, 11, 26)
    started = time.perf_counter()
    for routing in routings:
        choose_member(routing.skills, "ja", client, directory, workload, today)
    chosen = len(facts) / (time.perf_counter() - started)
    both = 1 / (1 / routed + 1 / chosen)

    result = {
        "requests": len(facts),
        "members": args.members,
        "route_per_s": round(routed),
        "choose_member_per_s": round(chosen),
        "route_and_assign_per_s": round(both),
        "bare_keyword_scan_per_s": round(bare),
        "ratio_route_to_bare": round(routed / bare, 3),
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print("| what | per second |\n|---|---:|")
    print(f"| routing decisions (rules.yaml, {len(facts):,} requests) | {routed:,.0f} |")
    print(f"| member choice over {args.members} members | {chosen:,.0f} |")
    print(f"| both, one request after the other | {both:,.0f} |")
    print(f"| bare keyword scan (str.find per keyword) | {bare:,.0f} |")
    print(f"| ratio routing / bare scan | {routed / bare:.2f} |")


if __name__ == "__main__":
    main()
