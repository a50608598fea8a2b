"""Demo data: realistic, in Chinese with English fallbacks, built through the real services.

Idempotent: each organizer is seeded once (keyed by its slug); a second run changes nothing.
Dates are relative to the day of the first run, so a fresh demo always has weeks ahead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import TextIO

from django.db import transaction
from django.utils import timezone

from piaowu.accounts.models import Organizer, Role, User
from piaowu.accounts.services import membership_grant
from piaowu.catalog.models import Audience, CapacityMode, Category, Event, EventKind, Hall, Venue
from piaowu.catalog.seatmaps import RectBlock, generate_rectangular
from piaowu.catalog.services import (
    TierSpec,
    event_create,
    hall_create,
    organizer_create,
    seat_map_create,
    session_create,
    sessions_create_recurring,
    venue_create,
)

DEMO_PASSWORD = "piaowu-demo"  # noqa: S105  (printed by `piaowu demo`; demo only)


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str
    description: str
    organizer_slug: str = ""
    role: str = ""
    superuser: bool = False


DEMO_LOGINS = (
    DemoLogin(
        "operator@piaowu.demo", DEMO_PASSWORD, "platform operator (superuser)", superuser=True
    ),
    DemoLogin(
        "cinema-admin@piaowu.demo",
        DEMO_PASSWORD,
        "admin, 星光影城 Starlight Cinemas",
        "starlight",
        Role.ADMIN,
    ),
    DemoLogin(
        "live-admin@piaowu.demo", DEMO_PASSWORD, "admin, 华音演艺 Huayin Live", "huayin", Role.ADMIN
    ),
    DemoLogin(
        "seller@piaowu.demo", DEMO_PASSWORD, "box-office seller, 星光影城", "starlight", Role.SELLER
    ),
    DemoLogin(
        "checker@piaowu.demo", DEMO_PASSWORD, "gate checker, 华音演艺", "huayin", Role.CHECKER
    ),
    DemoLogin("audience@piaowu.demo", DEMO_PASSWORD, "customer"),
)

CATEGORIES = [
    ("film", "电影", "Films"),
    ("concert", "演唱会", "Concerts"),
    ("classical", "音乐会", "Classical"),
    ("drama", "话剧歌剧", "Theatre"),
    ("sport", "体育赛事", "Sports"),
    ("scenic", "景区门票", "Scenic areas"),
    ("travel", "机票出行", "Travel"),
]


def _tier(code: str, name: str, name_en: str, price: str, **kw: object) -> TierSpec:
    return TierSpec(code=code, name=name, name_en=name_en, price=Decimal(price), **kw)  # type: ignore[arg-type]


def _local(venue: Venue, day: dt.date, at: str) -> dt.datetime:
    hour, minute = (int(part) for part in at.split(":"))
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=venue.tzinfo)


def _anchor_day() -> dt.date:
    return timezone.localdate() + dt.timedelta(days=1)


def seed_categories() -> dict[str, Category]:
    found = {}
    for order, (slug, name, name_en) in enumerate(CATEGORIES):
        category, _ = Category.objects.get_or_create(
            slug=slug, defaults={"name": name, "name_en": name_en, "sort_order": order}
        )
        found[slug] = category
    return found


# --- Cinema -----------------------------------------------------------------------------------


def seed_cinema(categories: dict[str, Category]) -> Organizer:
    organizer = organizer_create(slug="starlight", name="星光影城", name_en="Starlight Cinemas")
    venue = venue_create(
        organizer=organizer,
        name="星光影城·国贸店",
        name_en="Starlight Cinema Guomao",
        city="北京",
        city_en="Beijing",
        district="朝阳区",
        address="朝阳区建国门外大街 1 号国贸商城 B1",
        address_en="B1 China World Mall, 1 Jianguomenwai Ave, Chaoyang",
        transport_info="地铁 1 号线、10 号线国贸站 A 口步行 3 分钟；"
        "商场地下停车场，凭票根免费停车 3 小时。",
        transport_info_en="Metro lines 1 and 10, Guomao station exit A, 3 minutes' walk; "
        "3 hours' free parking with a ticket stub.",
        services=["metro", "parking", "imax", "3d_glasses", "food", "accessible"],
        phone="010-6505 0000",
    )
    imax = hall_create(venue=venue, name="1号厅 IMAX", name_en="Hall 1 IMAX", sort_order=1)
    seat_map_create(
        hall=imax,
        spec=generate_rectangular(
            [
                RectBlock(
                    section="M",
                    name="中场",
                    name_en="Main",
                    rows=12,
                    seats_per_row=20,
                    aisles_after=(5, 15),
                    vip_rows=(6, 7, 8),
                    accessible_seats=((12, 1), (12, 2)),
                    blocked_seats=((1, 10), (1, 11)),
                    entrance="1号厅入口",
                )
            ],
            stage="IMAX 银幕",
        ),
        source="generator",
    )
    hall2 = hall_create(venue=venue, name="2号厅", name_en="Hall 2", sort_order=2)
    seat_map_create(
        hall=hall2,
        spec=generate_rectangular(
            [
                RectBlock(
                    section="M",
                    name="中场",
                    name_en="Main",
                    rows=8,
                    seats_per_row=14,
                    aisles_after=(7,),
                    vip_rows=(5,),
                    entrance="2号厅入口",
                )
            ],
            stage="银幕",
        ),
        source="generator",
    )
    couple_hall = hall_create(
        venue=venue, name="3号厅 情侣厅", name_en="Hall 3 Couples", sort_order=3
    )
    seat_map_create(
        hall=couple_hall,
        spec=generate_rectangular(
            [
                RectBlock(
                    section="M",
                    name="中场",
                    name_en="Main",
                    rows=8,
                    seats_per_row=12,
                    aisles_after=(6,),
                    couple_rows=(7, 8),
                    entrance="3号厅入口",
                )
            ],
            stage="银幕",
        ),
        source="generator",
    )
    films = [
        event_create(
            organizer=organizer,
            kind=EventKind.FILM,
            code="wandering-galaxy",
            title="流浪星河",
            title_en="The Wandering Galaxy",
            category=categories["film"],
            subtitle="人类文明的最后一次远航",
            performers="吴京, 李雪健, 赵今麦",
            duration_minutes=138,
            age_advice="12+",
            poster_color="#1e3a8a",
            popularity=980,
            description="太阳急速膨胀，人类带着地球逃离太阳系。一段跨越两千五百年的旅程开始了。",
            description_en="The sun is swelling; humanity pushes the Earth out of the "
            "solar system.",
            details={
                "director": "郭帆",
                "language": "国语",
                "formats": "2D, IMAX",
                "score": Decimal("9.2"),
                "original_title": "流浪星河",
            },
        ),
        event_create(
            organizer=organizer,
            kind=EventKind.FILM,
            code="tea-horse-road",
            title="茶马古道",
            title_en="The Tea Horse Road",
            category=categories["film"],
            performers="易烊千玺, 周冬雨",
            duration_minutes=112,
            age_advice="全年龄",
            poster_color="#166534",
            popularity=720,
            description="滇藏交界的马帮少年，一次关于承诺的远行。",
            description_en="A young muleteer on the old trade road keeps a promise.",
            details={
                "director": "陈凯歌",
                "language": "国语",
                "formats": "2D",
                "score": Decimal("8.6"),
            },
        ),
        event_create(
            organizer=organizer,
            kind=EventKind.FILM,
            code="neon-detective",
            title="霓虹侦探",
            title_en="Neon Detective",
            category=categories["film"],
            performers="梁朝伟, 张曼玉",
            duration_minutes=124,
            age_advice="16+",
            poster_color="#7e22ce",
            popularity=640,
            description="九龙的雨夜，一桩旧案被重新翻开。",
            description_en="On a rainy night in Kowloon, an old case reopens.",
            details={
                "director": "王家卫",
                "language": "粤语（国语字幕）",
                "formats": "2D, 3D",
                "score": Decimal("8.9"),
            },
        ),
    ]
    showtimes = ["10:00", "13:30", "16:40", "19:30", "22:10"]
    plan = [(imax, films[0]), (hall2, films[1]), (couple_hall, films[2])]
    first = _anchor_day()
    for offset in range(14):
        day = first + dt.timedelta(days=offset)
        for index, at in enumerate(showtimes):
            for hall_index, (hall, film) in enumerate(plan):
                # Rotate films across halls in the evening so every film gets the IMAX hall.
                if index >= 3:
                    film = plan[(hall_index + offset) % len(plan)][1]
                starts = _local(venue, day, at)
                imax_hall = hall is imax
                base = "75" if imax_hall else "45"
                session_create(
                    event=film,
                    venue=venue,
                    hall=hall,
                    starts_at=starts,
                    sales_open_at=starts - dt.timedelta(days=21),
                    sales_close_at=starts + dt.timedelta(minutes=15),
                    language_note="IMAX 2D 国语" if imax_hall else "2D 国语",
                    tiers=[
                        _tier(
                            "standard",
                            "普通座",
                            "Standard",
                            base,
                            seat_type="standard",
                            color="#2563eb",
                        ),
                        _tier(
                            "vip",
                            "VIP 座",
                            "VIP",
                            str(int(base) + 20),
                            seat_type="vip",
                            color="#d97706",
                        ),
                        _tier(
                            "couple",
                            "情侣座（单人）",
                            "Couple seat (each)",
                            str(int(base) + 10),
                            seat_type="couple",
                            color="#db2777",
                        ),
                        _tier(
                            "accessible",
                            "无障碍座",
                            "Accessible",
                            base,
                            seat_type="accessible",
                            color="#059669",
                        ),
                        _tier(
                            "student",
                            "学生票",
                            "Student",
                            str(int(base) - 15),
                            audience=Audience.STUDENT,
                            seat_type="standard",
                            color="#0891b2",
                            description="入场时出示学生证",
                        ),
                    ],
                )
    return organizer


# --- Concert hall and stadium -----------------------------------------------------------------


def _concert_hall_blocks() -> list[RectBlock]:
    return [
        RectBlock(
            section="STALLS",
            name="池座",
            name_en="Stalls",
            rows=25,
            seats_per_row=40,
            aisles_after=(10, 30),
            vip_rows=(1, 2, 3, 4, 5),
            entrance="1层 A/B 门",
            accessible_seats=((25, 1), (25, 2), (25, 39), (25, 40)),
        ),
        RectBlock(
            section="CIRCLE",
            name="一层楼座",
            name_en="Circle",
            rows=15,
            seats_per_row=40,
            aisles_after=(10, 30),
            origin_y=420,
            entrance="2层 C/D 门",
        ),
        RectBlock(
            section="BALCONY",
            name="二层楼座",
            name_en="Balcony",
            rows=10,
            seats_per_row=40,
            aisles_after=(10, 30),
            origin_y=680,
            entrance="3层 E 门",
        ),
    ]


def _stadium_blocks() -> list[RectBlock]:
    blocks = []
    # Two tiers of stands on the north and south sides; 40 sections of 25 × 40 = 40,000 seats.
    bands = [
        ("N2", "北看台上层", "North upper", 0, False),
        ("N1", "北看台下层", "North lower", 420, True),
        ("S1", "南看台下层", "South lower", 1840, True),
        ("S2", "南看台上层", "South upper", 2260, False),
    ]
    for prefix, name, name_en, y, lower in bands:
        for n in range(1, 11):
            blocks.append(
                RectBlock(
                    section=f"{prefix}{n:02d}",
                    name=f"{name} {n} 区",
                    name_en=f"{name_en} {n}",
                    rows=25,
                    seats_per_row=40,
                    origin_x=(n - 1) * 520,
                    origin_y=y,
                    vip_rows=(1, 2, 3) if lower and 4 <= n <= 7 else (),
                    entrance=f"{'北' if prefix.startswith('N') else '南'}{n}号入口",
                )
            )
    return blocks


def seed_live(categories: dict[str, Category]) -> Organizer:
    organizer = organizer_create(slug="huayin", name="华音演艺", name_en="Huayin Live")
    concert_hall = venue_create(
        organizer=organizer,
        name="华音音乐厅",
        name_en="Huayin Concert Hall",
        city="上海",
        city_en="Shanghai",
        district="浦东新区",
        address="浦东新区世纪大道 1288 号",
        address_en="1288 Century Avenue, Pudong",
        transport_info="地铁 2 号线、4 号线世纪大道站 6 号口；"
        "演出日 21:30 后有接驳巴士至人民广场。",
        transport_info_en="Metro lines 2 and 4, Century Avenue station exit 6; shuttle buses "
        "to People's Square after 21:30 on performance days.",
        services=["metro", "parking", "food", "accessible", "lockers"],
    )
    main_hall = hall_create(venue=concert_hall, name="主厅", name_en="Main Hall")
    seat_map_create(
        hall=main_hall,
        spec=generate_rectangular(_concert_hall_blocks(), stage="舞台"),
        source="generator",
    )
    stadium = venue_create(
        organizer=organizer,
        name="奥体中心体育场",
        name_en="Olympic Sports Centre Stadium",
        city="广州",
        city_en="Guangzhou",
        district="天河区",
        address="天河区天河路 299 号",
        address_en="299 Tianhe Road, Tianhe",
        transport_info="地铁 3 号线、1 号线体育西路站；散场后地铁延长运营至 24:00。",
        transport_info_en="Metro lines 1 and 3, Tiyu Xilu station; the metro runs until midnight "
        "after events.",
        services=["metro", "food", "accessible", "lockers"],
    )
    bowl = hall_create(venue=stadium, name="体育场", name_en="Stadium bowl")
    seat_map_create(
        hall=bowl,
        spec=generate_rectangular(_stadium_blocks(), stage="球场 / 舞台"),
        source="generator",
    )

    first = _anchor_day()
    tour = event_create(
        organizer=organizer,
        kind=EventKind.PERFORMANCE,
        code="andy-lau-2026",
        title="刘德华「今天就是现在」2026 巡回演唱会 广州站",
        title_en="Andy Lau 'Now Is Today' 2026 Tour — Guangzhou",
        category=categories["concert"],
        performers="刘德华",
        duration_minutes=180,
        poster_color="#b91c1c",
        popularity=2000,
        tags="华语, 流行, 巡演",
        description="天王刘德华全新巡回演唱会，经典金曲与全新编曲，一晚听尽三十年。",
        description_en="Andy Lau's new tour: three decades of hits in one night.",
    )
    lower_stands = ",".join(f"{side}1{n:02d}" for side in "NS" for n in range(1, 11))
    concert_tiers = [
        _tier(
            "vip",
            "VIP 前排",
            "VIP front rows",
            "1880",
            seat_type="vip",
            color="#b45309",
            max_per_order=4,
        ),
        _tier(
            "lower",
            "下层看台",
            "Lower stands",
            "1280",
            section_codes=lower_stands,
            color="#dc2626",
            max_per_order=4,
        ),
        _tier("upper", "上层看台", "Upper stands", "680", color="#2563eb", max_per_order=4),
    ]
    for offset in (10, 11):
        starts = _local(stadium, first + dt.timedelta(days=offset), "19:30")
        session_create(
            event=tour,
            venue=stadium,
            hall=bowl,
            starts_at=starts,
            sales_open_at=timezone.now(),
            sales_close_at=starts,
            tiers=concert_tiers,
        )

    match = event_create(
        organizer=organizer,
        kind=EventKind.SPORT,
        code="lions-vs-dragons",
        title="中超联赛 第 28 轮 广州雄狮 vs 上海飞龙",
        title_en="CSL Round 28: Guangzhou Lions vs Shanghai Dragons",
        category=categories["sport"],
        duration_minutes=120,
        poster_color="#15803d",
        popularity=900,
        details={"league": "中超联赛", "home_team": "广州雄狮", "away_team": "上海飞龙"},
        description="赛季收官阶段的关键战，主队冲击亚冠资格。",
        description_en="A decisive late-season match: the home side chases a continental spot.",
    )
    starts = _local(stadium, first + dt.timedelta(days=5), "19:35")
    session_create(
        event=match,
        venue=stadium,
        hall=bowl,
        starts_at=starts,
        sales_open_at=timezone.now(),
        sales_close_at=starts + dt.timedelta(minutes=45),
        tiers=[
            _tier("vip", "贵宾席", "VIP", "580", seat_type="vip", color="#b45309"),
            _tier("stand", "看台", "Stands", "180", color="#2563eb"),
            _tier(
                "child",
                "儿童票（1.2–1.5 米）",
                "Child (1.2–1.5 m)",
                "60",
                audience=Audience.CHILD,
                color="#059669",
            ),
        ],
    )

    symphony = event_create(
        organizer=organizer,
        kind=EventKind.PERFORMANCE,
        code="new-year-symphony",
        title="新年音乐会：德沃夏克《自新大陆》",
        title_en="New Year Concert: Dvořák 'From the New World'",
        category=categories["classical"],
        performers="上海爱乐乐团, 余隆",
        duration_minutes=110,
        poster_color="#0f766e",
        popularity=450,
        age_advice="6+",
        description="上海爱乐乐团携手指挥家余隆，演绎德沃夏克第九交响曲。",
        description_en="The Shanghai Philharmonic under Long Yu plays Dvořák's Ninth.",
    )
    drama = event_create(
        organizer=organizer,
        kind=EventKind.PERFORMANCE,
        code="teahouse-2026",
        title="话剧《茶馆》",
        title_en="Teahouse (play)",
        category=categories["drama"],
        performers="北京人民艺术剧院",
        duration_minutes=150,
        poster_color="#92400e",
        popularity=520,
        description="老舍经典，三幕五十年，一座茶馆里的中国。",
        description_en="Lao She's classic: fifty years of China in one teahouse.",
    )
    hall_tiers = [
        _tier("vip", "VIP", "VIP", "880", seat_type="vip", color="#b45309"),
        _tier("stalls", "池座", "Stalls", "580", section_codes="STALLS", color="#dc2626"),
        _tier("circle", "一层楼座", "Circle", "380", section_codes="CIRCLE", color="#7c3aed"),
        _tier("balcony", "二层楼座", "Balcony", "180", section_codes="BALCONY", color="#2563eb"),
        _tier(
            "student",
            "学生票（二层）",
            "Student (balcony)",
            "90",
            section_codes="BALCONY",
            audience=Audience.STUDENT,
            color="#0891b2",
            max_per_order=1,
        ),
        _tier(
            "accessible", "无障碍座", "Accessible", "180", seat_type="accessible", color="#059669"
        ),
    ]
    for event, offsets, at in ((symphony, (7, 8), "19:30"), (drama, (3, 4, 12, 13), "19:15")):
        for offset in offsets:
            starts = _local(concert_hall, first + dt.timedelta(days=offset), at)
            session_create(
                event=event,
                venue=concert_hall,
                hall=main_hall,
                starts_at=starts,
                sales_open_at=timezone.now(),
                sales_close_at=starts,
                tiers=hall_tiers,
            )
    return organizer


# --- Scenic area and flights ------------------------------------------------------------------


def seed_scenic(categories: dict[str, Category]) -> Organizer:
    organizer = organizer_create(slug="qingshan", name="青山风景区", name_en="Qingshan Scenic Area")
    park = venue_create(
        organizer=organizer,
        name="青山风景区",
        name_en="Qingshan Scenic Area",
        city="杭州",
        city_en="Hangzhou",
        district="西湖区",
        address="西湖区龙井路 1 号",
        address_en="1 Longjing Road, Xihu District",
        transport_info="公交 27 路、龙井专线至青山北门；自驾导航“青山风景区北门停车场”。",
        transport_info_en="Bus 27 or the Longjing line to the north gate; "
        "parking at the north gate.",
        services=["parking", "food", "child_friendly", "accessible"],
    )
    event = event_create(
        organizer=organizer,
        kind=EventKind.SCENIC,
        code="day-ticket",
        title="青山风景区 日票",
        title_en="Qingshan Scenic Area — day ticket",
        category=categories["scenic"],
        poster_color="#047857",
        popularity=300,
        description="茶园、竹海与瀑布。当日有效，一票一人一次入园。",
        description_en="Tea terraces, bamboo forest and waterfalls. Valid on the chosen day, "
        "one entry per ticket.",
        details={
            "opening_hours": "08:00–17:30（17:00 停止入园）",
            "entry_notes": "1.2 米以下儿童免票，需成人陪同。",
        },
    )
    first = _anchor_day()
    for offset in range(28):
        day = first + dt.timedelta(days=offset)
        session_create(
            event=event,
            venue=park,
            starts_at=_local(park, day, "08:00"),
            ends_at=_local(park, day, "17:30"),
            capacity_mode=CapacityMode.DAILY,
            capacity=8000,
            sales_open_at=timezone.now(),
            sales_close_at=_local(park, day, "17:00"),
            tiers=[
                _tier("adult", "成人票", "Adult", "120", audience=Audience.ADULT),
                _tier(
                    "child",
                    "儿童票（1.2–1.5 米）",
                    "Child (1.2–1.5 m)",
                    "60",
                    audience=Audience.CHILD,
                    color="#059669",
                ),
                _tier(
                    "senior",
                    "老人票（60 岁以上）",
                    "Senior (60+)",
                    "60",
                    audience=Audience.SENIOR,
                    color="#7c3aed",
                ),
                _tier(
                    "student", "学生票", "Student", "80", audience=Audience.STUDENT, color="#0891b2"
                ),
                _tier(
                    "group",
                    "团体票（10 人起）",
                    "Group (10+)",
                    "90",
                    audience=Audience.GROUP,
                    min_per_order=10,
                    max_per_order=50,
                    color="#b45309",
                ),
            ],
        )
    return organizer


def seed_airline(categories: dict[str, Category]) -> Organizer:
    organizer = organizer_create(slug="petrel-air", name="海燕航空", name_en="Petrel Air")
    routes = [
        (
            "PW1234",
            "北京首都",
            "PEK",
            "Beijing Capital",
            "上海虹桥",
            "SHA",
            "Shanghai Hongqiao",
            "08:00",
            135,
            "北京",
            "Beijing",
            "北京首都国际机场 T3",
            "Beijing Capital T3",
            "顺义区首都机场路",
        ),
        (
            "PW1235",
            "上海虹桥",
            "SHA",
            "Shanghai Hongqiao",
            "北京首都",
            "PEK",
            "Beijing Capital",
            "18:30",
            140,
            "上海",
            "Shanghai",
            "上海虹桥国际机场 T2",
            "Shanghai Hongqiao T2",
            "闵行区申达一路",
        ),
    ]
    first = _anchor_day()
    for (
        number,
        origin,
        origin_code,
        origin_en,
        dest,
        dest_code,
        dest_en,
        at,
        minutes,
        city,
        city_en,
        airport,
        airport_en,
        address,
    ) in routes:
        airport_venue = venue_create(
            organizer=organizer,
            name=airport,
            name_en=airport_en,
            city=city,
            city_en=city_en,
            address=address,
            services=["metro", "food", "accessible"],
        )
        event = event_create(
            organizer=organizer,
            kind=EventKind.TRIP,
            code=number.lower(),
            title=f"{origin} → {dest} {number}",
            title_en=f"{origin_en} → {dest_en} {number}",
            category=categories["travel"],
            duration_minutes=minutes,
            poster_color="#0369a1",
            popularity=200,
            details={
                "mode": "flight",
                "carrier": "海燕航空",
                "route_code": number,
                "origin": origin,
                "origin_code": origin_code,
                "destination": dest,
                "destination_code": dest_code,
            },
        )
        departure = dt.time.fromisoformat(at)
        sessions_create_recurring(
            event=event,
            venue=airport_venue,
            first_date=first,
            last_date=first + dt.timedelta(days=20),
            times=[departure],
            capacity_mode=CapacityMode.GENERAL,
            capacity=162,
            sales_close_minutes_before=45,
            tiers=[
                _tier(
                    "economy",
                    "经济舱",
                    "Economy",
                    "880",
                    capacity=150,
                    max_per_order=9,
                    color="#2563eb",
                ),
                _tier(
                    "business",
                    "公务舱",
                    "Business",
                    "2680",
                    capacity=12,
                    max_per_order=4,
                    color="#b45309",
                ),
            ],
        )
    return organizer


SEEDERS = {
    "starlight": seed_cinema,
    "huayin": seed_live,
    "qingshan": seed_scenic,
    "petrel-air": seed_airline,
}


def seed_logins() -> int:
    created = 0
    for login in DEMO_LOGINS:
        user = User.objects.filter(email=login.email).first()
        if user is None:
            factory = User.objects.create_superuser if login.superuser else User.objects.create_user
            user = factory(
                email=login.email, password=login.password, display_name=login.email.split("@")[0]
            )
            created += 1
        if login.organizer_slug:
            organizer = Organizer.objects.get(slug=login.organizer_slug)
            if not user.memberships.filter(organizer=organizer, role=login.role).exists():
                membership_grant(user=user, organizer=organizer, role=login.role)
    return created


def seed_admission() -> list[str]:
    """Gates at the Huayin concert hall, an open rehearsal with doors open now, the demo
    customer's paid tickets for it (one static QR, one session with rotating codes) and a
    redemption batch. Returns the redemption codes to print. Runs once (keyed by the event)."""
    from piaowu.catalog.models import Seat
    from piaowu.catalog.selectors import sales_channel_for
    from piaowu.checkin.services import gate_create
    from piaowu.inventory.services import hold_quantity, hold_seats
    from piaowu.orders.services import order_checkout, order_mark_paid
    from piaowu.tickets.models import RedemptionBatch
    from piaowu.tickets.services import redemption_batch_create

    organizer = Organizer.objects.get(slug="huayin")
    if Event.objects.filter(organizer=organizer, code="open-rehearsal").exists():
        batch = RedemptionBatch.objects.filter(organizer=organizer).first()
        return [c.code for c in batch.codes.filter(redeemed_at__isnull=True)[:3]] if batch else []
    hall = Venue.objects.get(organizer=organizer, name="华音音乐厅")
    for name, entrances in (
        ("A 门 Gate A", "1层 A/B 门"),
        ("C 门 Gate C", "2层 C/D 门"),
        ("E 门 Gate E", "3层 E 门"),
        ("贵宾通道 VIP lane", ""),
    ):
        gate_create(venue=hall, name=name, entrances=entrances)
    rehearsal = event_create(
        organizer=organizer,
        kind=EventKind.PERFORMANCE,
        code="open-rehearsal",
        title="开放排练：华音青年交响乐团",
        title_en="Open rehearsal: Huayin Youth Symphony",
        category=Category.objects.get(slug="classical"),
        duration_minutes=90,
    )
    starts = timezone.now() + dt.timedelta(hours=1)
    main_hall = Hall.objects.get(venue=hall, name="主厅")
    seated = session_create(
        event=rehearsal,
        venue=hall,
        hall=main_hall,
        starts_at=starts,
        sales_open_at=timezone.now() - dt.timedelta(days=1),
        sales_close_at=starts,
        tiers=[_tier("std", "观摩票", "Rehearsal seat", "20")],
    )
    standing = session_create(
        event=rehearsal,
        code="standing",
        venue=hall,
        starts_at=starts + dt.timedelta(minutes=5),
        capacity_mode=CapacityMode.GENERAL,
        capacity=200,
        sales_open_at=timezone.now() - dt.timedelta(days=1),
        sales_close_at=starts,
        tiers=[_tier("ga", "站票", "Standing", "10")],
        rotating_qr=True,
        reentry_allowed=True,
    )
    audience = User.objects.get(email="audience@piaowu.demo")
    holder = f"user:{audience.pk}"
    seat_codes = list(
        Seat.objects.filter(seat_map=seated.seat_map, section__code="STALLS", row_label="8")
        .order_by("x")
        .values_list("code", flat=True)[19:21]
    )
    for session, hold in (
        (seated, hold_seats(session=seated, seat_codes=seat_codes, holder_key=holder)),
        (standing, hold_quantity(session=standing, tier_code="ga", quantity=2, holder_key=holder)),
    ):
        order = order_checkout(
            hold=hold,
            channel=sales_channel_for(session),
            holder_key=holder,
            customer=audience,
            contact_phone="13800138000",
        )
        order_mark_paid(order=order)
    batch = redemption_batch_create(
        organizer=organizer,
        event=rehearsal,
        tier_code="ga",
        name="企业团购 Corporate batch (demo)",
        size=20,
        valid_until=starts,
        actor=None,
    )
    return [c.code for c in batch.codes.all()[:3]]


DEMO_FAQ = (
    (
        "怎么退票？",
        "打开订单页，选择要退的票：确认前页面会显示适用的退票规则和可退金额。"
        "款项按原支付方式退回，进度可在订单页查看。",
        "How do I get a refund?",
        "Open your order and choose the tickets to refund: before you confirm, the page shows "
        "the refund rule that applies and the exact amount. The money goes back the way you "
        "paid; the order page shows its progress.",
    ),
    (
        "电子票在哪里？怎么入场？",
        "付款后在“我的订单”中打开订单，点“查看电子票”，入场时出示二维码即可。"
        "游客购票可用订单号和下单手机号查询订单。",
        "Where are my e-tickets, and how do I get in?",
        "Once paid, open the order in “My orders” and tap “Show my tickets”; show the QR code "
        "at the gate. Bought as a guest? Find the order with its code and your phone number.",
    ),
    (
        "演出取消或改期了怎么办？",
        "主办方取消场次时，订单会自动全额退款并通知您；改期时我们会通知您，"
        "并在一段时间内提供免手续费退票。",
        "What if a show is cancelled or moved?",
        "When the organizer cancels a session, every order is refunded in full and you are "
        "told. When it moves, we tell you and you may refund without a fee for a while.",
    ),
    (
        "如何联系客服？",
        "在“帮助”页点“联系客服”提交问题，可选择相关订单。投诉和退款争议一般在 8 小时内首次答复，"
        "其他问题在 24 小时内答复；答复会通过邮件或短信通知您。",
        "How do I contact customer service?",
        "On the Help page, choose “Contact customer service” and pick the order it is about. "
        "Complaints and refund disputes get a first answer within 8 hours, other questions "
        "within 24; we tell you by e-mail or SMS when we answer.",
    ),
)


def seed_faq() -> int:
    """The help page's FAQ in Chinese and English, each entry once (keyed by its Chinese
    question). Returns how many were created."""
    from piaowu.aftersales.models import FaqEntry

    created = 0
    for position, (question, answer, question_en, answer_en) in enumerate(DEMO_FAQ, start=1):
        _entry, made = FaqEntry.objects.get_or_create(
            question=question,
            defaults={
                "answer": answer,
                "question_en": question_en,
                "answer_en": answer_en,
                "position": position * 10,
            },
        )
        created += int(made)
    return created


#: The demo's refund rule for every event: ≥ 48 h free, ≥ 24 h 10 %, ≥ 2 h 20 %, at least ¥2.
DEMO_REFUND_TIERS = ((48, "0"), (24, "10"), (2, "20"))
DEMO_REFUND_MINIMUM_FEE = "2"


def seed_refund_rules() -> int:
    """A refund rule for every event that has none yet, so the demo can refund. Returns how
    many were created."""
    from piaowu.aftersales.models import RefundPolicy, RefundTier

    created = 0
    for event in Event.objects.exclude(
        pk__in=RefundPolicy.objects.filter(session__isnull=True).values("event_id")
    ):
        with transaction.atomic():
            policy = RefundPolicy.objects.create(
                event=event, minimum_fee=Decimal(DEMO_REFUND_MINIMUM_FEE)
            )
            RefundTier.objects.bulk_create(
                RefundTier(policy=policy, hours_before=hours, fee_percent=Decimal(percent))
                for hours, percent in DEMO_REFUND_TIERS
            )
        created += 1
    return created


def seed_aftersales() -> None:
    """Transfers allowed on every demo session, and a sold-out chamber concert three days out
    with a prepaid waitlist: the demo customer holds both of its tickets (refundable for free
    under the demo rule), so another account can join the waitlist and get the seat when the
    customer refunds one. Runs once (keyed by the session)."""
    from piaowu.catalog.models import Session
    from piaowu.catalog.selectors import sales_channel_for
    from piaowu.inventory.services import hold_quantity
    from piaowu.orders.services import order_checkout, order_mark_paid

    rehearsal = Event.objects.filter(code="open-rehearsal").first()
    if rehearsal is None or Session.objects.filter(event=rehearsal, code="chamber").exists():
        return
    Session.objects.filter(status=Session.Status.SCHEDULED).update(transfers_allowed=True)
    hall = Venue.objects.get(organizer=rehearsal.organizer, name="华音音乐厅")
    starts = timezone.now() + dt.timedelta(days=3)
    chamber = session_create(
        event=rehearsal,
        code="chamber",
        venue=hall,
        starts_at=starts,
        capacity_mode=CapacityMode.GENERAL,
        capacity=2,
        sales_open_at=timezone.now() - dt.timedelta(days=1),
        sales_close_at=starts,
        tiers=[_tier("ga", "室内乐", "Chamber", "30")],
    )
    Session.objects.filter(pk=chamber.pk).update(waitlist_mode="prepaid", transfers_allowed=True)
    audience = User.objects.get(email="audience@piaowu.demo")
    holder = f"user:{audience.pk}"
    hold = hold_quantity(session=chamber, tier_code="ga", quantity=2, holder_key=holder)
    order = order_checkout(
        hold=hold,
        channel=sales_channel_for(chamber),
        holder_key=holder,
        customer=audience,
        contact_phone="13800138000",
    )
    order_mark_paid(order=order)


def seed_demo(stdout: TextIO | None = None) -> str:
    """Seed whatever is missing; return a one-line summary of what exists."""
    categories = seed_categories()
    for slug, seeder in SEEDERS.items():
        if Organizer.objects.filter(slug=slug).exists():
            continue
        if stdout is not None:
            print(f"    {slug} …", file=stdout, flush=True)
        with transaction.atomic():
            seeder(categories)
    seed_logins()
    seed_faq()
    with transaction.atomic():
        codes = seed_admission()
    seed_refund_rules()
    with transaction.atomic():
        seed_aftersales()
    from piaowu.catalog.models import Seat, Session

    return (
        f"    {Organizer.objects.count()} organizers, {Venue.objects.count()} venues, "
        f"{Hall.objects.count()} halls, {Seat.objects.count():,} seats, "
        f"{Event.objects.count()} events, {Session.objects.count()} sessions\n"
        f"    redemption codes to try at /redeem/: {', '.join(codes)}"
    )
