"""Data for `bench/browse`: 100,000 events and one 40,000-seat stadium, created once.

Events, sessions and tiers are bulk-inserted (the services would take hours for 100k), but each
event's `search_text` is built with the same `build_search_text` the services use, and the
stadium goes through the real services (`seat_map_create`, `session_create`). Call after
`django.setup()`.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from decimal import Decimal
from functools import lru_cache

from django.db import transaction
from django.utils import timezone

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import (
    CapacityMode,
    Category,
    Event,
    EventKind,
    Hall,
    PriceTier,
    Session,
    Venue,
)
from piaowu.catalog.search import build_search_text
from piaowu.catalog.seatmaps import RectBlock, generate_rectangular
from piaowu.catalog.services import (
    TierSpec,
    event_create,
    hall_create,
    organizer_create,
    seat_map_create,
    session_create,
    venue_create,
)

ORGANIZER_SLUG = "bench-browse"
STADIUM_EVENT_CODE = "stadium-2026"
BATCH = 5_000

CITIES = [
    ("北京", "Beijing", "Asia/Shanghai"),
    ("上海", "Shanghai", "Asia/Shanghai"),
    ("广州", "Guangzhou", "Asia/Shanghai"),
    ("深圳", "Shenzhen", "Asia/Shanghai"),
    ("成都", "Chengdu", "Asia/Shanghai"),
    ("杭州", "Hangzhou", "Asia/Shanghai"),
    ("武汉", "Wuhan", "Asia/Shanghai"),
    ("西安", "Xi'an", "Asia/Shanghai"),
    ("南京", "Nanjing", "Asia/Shanghai"),
    ("重庆", "Chongqing", "Asia/Shanghai"),
    ("天津", "Tianjin", "Asia/Shanghai"),
    ("苏州", "Suzhou", "Asia/Shanghai"),
    ("长沙", "Changsha", "Asia/Shanghai"),
    ("厦门", "Xiamen", "Asia/Shanghai"),
    ("青岛", "Qingdao", "Asia/Shanghai"),
    ("香港", "Hong Kong", "Asia/Hong_Kong"),
    ("澳门", "Macau", "Asia/Macau"),
    ("台北", "Taipei", "Asia/Taipei"),
    ("东京", "Tokyo", "Asia/Tokyo"),
    ("新加坡", "Singapore", "Asia/Singapore"),
]
VENUE_KINDS = [
    "体育馆",
    "大剧院",
    "音乐厅",
    "影城",
    "文化中心",
    "livehouse",
    "体育中心",
    "艺术中心",
]
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯"
    "邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰"
    "德伦宇轩浩然子涵欣怡梓萱思远佳琪俊杰雨桐晨曦"
)
FAMOUS = [
    "刘德华",
    "周杰伦",
    "张学友",
    "陈奕迅",
    "王菲",
    "林俊杰",
    "邓紫棋",
    "五月天",
    "薛之谦",
    "李宇春",
]
TITLE_PATTERNS = {
    EventKind.PERFORMANCE: [
        "{p} {y} 巡回演唱会",
        "{p}「{w}」世界巡演 {c}站",
        "{p} 个人音乐会",
        "话剧《{w}》",
        "{p} 脱口秀专场",
        "音乐剧《{w}》中文版",
        "{p} 钢琴独奏音乐会",
    ],
    EventKind.FILM: ["电影《{w}》", "《{w}》IMAX 特别放映", "{w}：终章"],
    EventKind.SPORT: ["{c}队 vs {c2}队 · 中超联赛", "CBA 常规赛 {c} 对 {c2}", "{c}马拉松 {y}"],
    EventKind.SCENIC: ["{c}{w}主题乐园门票", "{w}博物馆特展", "{c}{w}景区日票"],
    EventKind.TRIP: ["{c} → {c2} 航班", "{c}至{c2} 高铁", "{c}-{c2} 游船"],
}
WORDS = [
    "星辰大海",
    "追光者",
    "时光之旅",
    "夜空中最亮的星",
    "长安十二时辰",
    "流浪地球",
    "雷雨",
    "茶馆",
    "红楼梦",
    "西游记",
    "敦煌",
    "山海经",
    "青春",
    "梦想",
    "未来",
    "风起",
    "海上钢琴师",
    "悲惨世界",
    "猫",
    "剧院魅影",
    "冰雪奇缘",
    "熊出没",
    "三体",
    "故宫",
    "兵马俑",
    "黄山",
    "西湖",
    "海洋",
]
CATEGORIES = [
    ("concert", "演唱会", "Concerts", EventKind.PERFORMANCE),
    ("drama", "话剧歌剧", "Drama & opera", EventKind.PERFORMANCE),
    ("film", "电影", "Films", EventKind.FILM),
    ("sport", "体育赛事", "Sport", EventKind.SPORT),
    ("scenic", "景区展览", "Scenic areas", EventKind.SCENIC),
    ("trip", "交通出行", "Trips", EventKind.TRIP),
]


@lru_cache(maxsize=200_000)
def _text_parts(text: str) -> tuple[str, ...]:
    return tuple(part for part in build_search_text([text]).split(" | ") if part)


def search_text_of(texts: list[str]) -> str:
    """`build_search_text(texts)`, the same string, from per-text results cached across events
    (pinyin costs ~10 ms an event; venue, performer and category texts repeat)."""
    return " | ".join(dict.fromkeys(part for text in texts for part in _text_parts(text)))


def _performers(rng: random.Random, count: int) -> list[str]:
    names = set(FAMOUS)
    while len(names) < count:
        names.add(rng.choice(SURNAMES) + "".join(rng.sample(GIVEN, rng.choice((1, 2)))))
    return sorted(names)


def _organizer() -> Organizer:
    existing = Organizer.objects.filter(slug=ORGANIZER_SLUG).first()
    if existing is not None:
        return existing
    return organizer_create(slug=ORGANIZER_SLUG, name="压测票务", name_en="Bench Tickets")


def _venues(organizer: Organizer) -> list[Venue]:
    venues = list(Venue.objects.filter(organizer=organizer).exclude(name="国家体育场"))
    if venues:
        return venues
    for city, city_en, tz in CITIES:
        for kind in VENUE_KINDS[:4]:
            venues.append(
                venue_create(
                    organizer=organizer,
                    name=f"{city}{kind}",
                    name_en=f"{city_en} {kind}",
                    city=city,
                    city_en=city_en,
                    address=f"{city}市中心路 {len(venues) + 1} 号",
                    timezone_name=tz,
                )
            )
    return venues


def _categories() -> dict[str, Category]:
    found: dict[str, Category] = {}
    for index, (slug, name, name_en, kind) in enumerate(CATEGORIES):
        category, _ = Category.objects.get_or_create(
            slug=slug, defaults={"name": name, "name_en": name_en, "sort_order": index}
        )
        found.setdefault(kind, category)
        found[slug] = category
    return found


def ensure_events(target: int, *, seed: int = 20260101, log: bool = True) -> int:
    """Bring the bench organizer's events up to `target` (each with upcoming sessions and
    tiers, 10% also with a past session). Returns how many were created."""
    organizer = _organizer()
    have = Event.objects.filter(organizer=organizer).exclude(code=STADIUM_EVENT_CODE).count()
    if have >= target:
        return 0
    rng = random.Random(seed + have)
    venues = _venues(organizer)
    categories = _categories()
    performers = _performers(rng, 400)
    kinds = (
        [EventKind.PERFORMANCE] * 5
        + [EventKind.FILM] * 2
        + [
            EventKind.SPORT,
            EventKind.SCENIC,
            EventKind.TRIP,
        ]
    )
    now = timezone.now()
    started = time.monotonic()
    created = 0
    while have + created < target:
        n = min(BATCH, target - have - created)
        events: list[Event] = []
        plans: list[list[tuple[Venue, dt.datetime, list[Decimal]]]] = []
        for i in range(n):
            index = have + created + i
            kind = rng.choice(kinds)
            cast = rng.sample(performers, rng.choice((1, 1, 2, 3)))
            city, _city_en, _tz = rng.choice(CITIES)
            city2 = rng.choice(CITIES)[0]
            title = rng.choice(TITLE_PATTERNS[kind]).format(
                p=cast[0], w=rng.choice(WORDS), c=city, c2=city2, y=rng.choice((2026, 2027))
            )
            event_venues = [v for v in venues if v.city == city] or venues
            sessions = []
            for _ in range(rng.choice((1, 1, 2, 3))):
                venue = rng.choice(event_venues)
                starts = now + dt.timedelta(days=rng.randint(1, 180), hours=rng.randint(0, 23))
                prices = sorted(
                    Decimal(rng.choice((80, 120, 180, 280, 380, 580, 880, 1280)))
                    for _ in range(rng.choice((1, 2, 3)))
                )
                sessions.append((venue, starts, prices))
            if rng.random() < 0.1:
                venue = rng.choice(event_venues)
                sessions.append((venue, now - dt.timedelta(days=rng.randint(2, 60)), [Decimal(99)]))
            category = categories[kind]
            if kind == EventKind.PERFORMANCE and "演唱会" not in title and "巡演" not in title:
                category = categories["drama"]
            tags = rng.choice(("热门", "新上", "亲子", "", ""))
            # What event_refresh_search_text reads: own texts, category, venues.
            texts = [title, ", ".join(cast), tags, category.name, category.name_en]
            for venue, _starts, _prices in sessions:
                texts += [venue.name, venue.name_en, venue.city]
            events.append(
                Event(
                    organizer=organizer,
                    code=f"b{index:07d}",
                    kind=kind,
                    category=category,
                    title=title,
                    performers=", ".join(cast),
                    tags=tags,
                    duration_minutes=rng.choice((90, 120, 150)),
                    status=Event.Status.PUBLISHED if rng.random() < 0.97 else Event.Status.DRAFT,
                    popularity=int(rng.paretovariate(1.2) * 10),
                    search_text=search_text_of(texts),
                )
            )
            plans.append(sessions)
        with transaction.atomic():
            Event.objects.bulk_create(events, batch_size=BATCH)
            saved = dict(
                Event.objects.filter(
                    organizer=organizer, code__in=[e.code for e in events]
                ).values_list("code", "pk")
            )
            session_rows: list[Session] = []
            tier_prices: list[list[Decimal]] = []
            for event, sessions in zip(events, plans, strict=True):
                for number, (venue, starts, prices) in enumerate(sessions):
                    ends = starts + dt.timedelta(hours=2)
                    session_rows.append(
                        Session(
                            event_id=saved[event.code],
                            venue=venue,
                            code=f"s{number}",
                            starts_at=starts,
                            ends_at=ends,
                            sales_open_at=min(now, starts) - dt.timedelta(days=30),
                            sales_close_at=starts,
                            capacity_mode=CapacityMode.GENERAL,
                            capacity=rng.choice((200, 500, 1000, 5000)),
                        )
                    )
                    tier_prices.append(prices)
            Session.objects.bulk_create(session_rows, batch_size=BATCH)
            tiers = [
                PriceTier(
                    session=session,
                    code=f"t{position}",
                    name=("看台", "内场", "VIP")[position % 3],
                    price=price,
                    currency="JPY" if session.venue.timezone == "Asia/Tokyo" else "CNY",
                    sort_order=position,
                )
                for session, prices in zip(session_rows, tier_prices, strict=True)
                for position, price in enumerate(prices)
            ]
            PriceTier.objects.bulk_create(tiers, batch_size=BATCH)
        created += n
        if log:
            rate = created / max(time.monotonic() - started, 1e-6)
            print(f"  events: {have + created:,}/{target:,} ({rate:,.0f}/s)", flush=True)
    return created


STADIUM_SECTIONS = 40
STADIUM_ROWS = 25
STADIUM_SEATS_PER_ROW = 40


def ensure_stadium() -> Session:
    """One 40,000-seat stadium hall (40 sections × 1,000 seats) and one upcoming session."""
    organizer = _organizer()
    existing = (
        Session.objects.filter(event__organizer=organizer, event__code=STADIUM_EVENT_CODE)
        .select_related("seat_map")
        .first()
    )
    if existing is not None:
        return existing
    venue = Venue.objects.filter(organizer=organizer, name="国家体育场").first() or venue_create(
        organizer=organizer,
        name="国家体育场",
        name_en="National Stadium",
        city="北京",
        city_en="Beijing",
        address="朝阳区国家体育场南路 1 号",
        services=["parking", "metro", "food", "accessible"],
    )
    hall = Hall.objects.filter(venue=venue).first() or hall_create(venue=venue, name="主场")
    width = (STADIUM_SEATS_PER_ROW + 2) * 12 + 40
    height = STADIUM_ROWS * 15 + 40
    blocks = []
    for index in range(STADIUM_SECTIONS):
        code = f"{index + 101}"
        blocks.append(
            RectBlock(
                section=code,
                name=f"{code}区",
                name_en=f"Block {code}",
                entrance=f"{'ABCD'[index // 10]}口",
                rows=STADIUM_ROWS,
                seats_per_row=STADIUM_SEATS_PER_ROW,
                origin_x=(index % 8) * width,
                origin_y=(index // 8) * height,
                aisles_after=(10, 30),
                vip_rows=(1, 2) if index < 8 else (),
                couple_rows=(STADIUM_ROWS,) if index % 5 == 0 else (),
                accessible_seats=((STADIUM_ROWS - 1, 1), (STADIUM_ROWS - 1, 2)),
                blocked_seats=((3, 20), (3, 21)) if index % 4 == 0 else (),
            )
        )
    spec = generate_rectangular(blocks, name="国家体育场 40k", stage="舞台")
    seat_map = seat_map_create(hall=hall, spec=spec, source="generator")
    event = event_create(
        organizer=organizer,
        kind=EventKind.PERFORMANCE,
        title="周杰伦 2026 嘉年华世界巡回演唱会 北京站",
        code=STADIUM_EVENT_CODE,
        performers="周杰伦",
        popularity=100_000,
    )
    tiers = [
        TierSpec(code="vip", name="VIP", price=Decimal("1880"), seat_type="vip", color="#b91c1c"),
        TierSpec(code="couple", name="情侣座", price=Decimal("1280"), seat_type="couple"),
        TierSpec(code="a", name="A 区", price=Decimal("880"), section_codes="101"),
        TierSpec(code="std", name="看台", price=Decimal("480")),
        TierSpec(code="acc", name="无障碍", price=Decimal("180"), seat_type="accessible"),
    ]
    return session_create(
        event=event,
        venue=venue,
        hall=hall,
        seat_map=seat_map,
        starts_at=timezone.now() + dt.timedelta(days=60),
        tiers=tiers,
        capacity_mode=CapacityMode.RESERVED,
    )
