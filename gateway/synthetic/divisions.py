"""Real, public administrative divisions (GB/T 2260) the synthetic data is placed in.

ID numbers and USCCs carry a six-digit division code whose first two digits
name the province, and that prefix is how the gateway routes a key to its
home region. Using real codes keeps the data honest to the standard; the
people and enterprises placed in them are invented.

Every synthetic address starts with the division's full name (province, city,
district), so a masking rule that keeps "the province/city/district part" has a
well-formed prefix to keep: ``江苏省南京市玄武区中山路123号4幢502室``. Shanghai is a
municipality, so its prefix has no separate city: ``上海市徐汇区…``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gateway.core.types import RegionCode


@dataclass(frozen=True, slots=True)
class Division:
    """A county-level division: its code and the names an address starts with.

    Attributes:
        code: the six-digit GB/T 2260 code (``310104``).
        province: ``上海市`` / ``江苏省`` / ``浙江省`` / ``安徽省``.
        city: the prefecture-level city, empty for a municipality's districts.
        district: the district, county or county-level city.
    """

    code: str
    province: str
    city: str
    district: str
    #: Province + city + district, the part of an address a mask keeps.
    full_name: str = field(init=False)
    #: The city that issues city-level decisions (the province for Shanghai).
    city_name: str = field(init=False)
    #: The short place name enterprise names start with (``南京``, ``上海``).
    place_name: str = field(init=False)

    def __post_init__(self) -> None:
        # Stored rather than computed on access: every synthetic address reads them.
        city_name = self.city or self.province
        object.__setattr__(self, "full_name", f"{self.province}{self.city}{self.district}")
        object.__setattr__(self, "city_name", city_name)
        object.__setattr__(self, "place_name", city_name.removesuffix("市"))


def _divisions(province: str, rows: str) -> tuple[Division, ...]:
    result = []
    for line in rows.strip().splitlines():
        code, *names = line.split()
        city, district = ("", names[0]) if len(names) == 1 else names
        result.append(Division(code, province, city, district))
    return tuple(result)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: Every division the data can be placed in, by province; a region takes those its
#: prefixes cover (``divisions_for``), in this order.
DIVISION_TABLE: tuple[Division, ...] = (
    *_divisions(
        "上海市",
        """
        310101 黄浦区
        310104 徐汇区
        310105 长宁区
        310106 静安区
        310107 普陀区
        310109 虹口区
        310110 杨浦区
        310112 闵行区
        310113 宝山区
        310115 浦东新区
        310117 松江区
        """,
    ),
    *_divisions(
        "江苏省",
        """
        320102 南京市 玄武区
        320104 南京市 秦淮区
        320106 南京市 鼓楼区
        320211 无锡市 滨湖区
        320311 徐州市 泉山区
        320402 常州市 天宁区
        320508 苏州市 姑苏区
        320583 苏州市 昆山市
        320602 南通市 崇川区
        321002 扬州市 广陵区
        """,
    ),
    *_divisions(
        "浙江省",
        """
        330102 杭州市 上城区
        330106 杭州市 西湖区
        330108 杭州市 滨江区
        330110 杭州市 余杭区
        330203 宁波市 海曙区
        330212 宁波市 鄞州区
        330302 温州市 鹿城区
        330402 嘉兴市 南湖区
        330602 绍兴市 越城区
        330782 金华市 义乌市
        331002 台州市 椒江区
        """,
    ),
    *_divisions(
        "安徽省",
        """
        340102 合肥市 瑶海区
        340103 合肥市 庐阳区
        340104 合肥市 蜀山区
        340111 合肥市 包河区
        340202 芜湖市 镜湖区
        340302 蚌埠市 龙子湖区
        340403 淮南市 田家庵区
        340503 马鞍山市 花山区
        340802 安庆市 迎江区
        341002 黄山市 屯溪区
        341102 滁州市 琅琊区
        """,
    ),
)


#: A few real street names per province (not tied to a district: the data is invented).
PROVINCE_STREETS: Mapping[str, tuple[str, ...]] = {
    "31": _words(
        "漕溪北路 南京西路 淮海中路 四川北路 长宁路 武宁路 世纪大道 张杨路 中山北路 虹桥路"
    ),
    "32": _words("中山路 北京西路 汉中路 中山北路 人民路 干将路 解放路 延陵路 建设路 文昌路"),
    "33": _words("延安路 文三路 解放路 中山路 天目山路 江南大道 人民路 中河路 钱江路 学院路"),
    "34": _words("长江中路 长江西路 徽州大道 金寨路 芜湖路 淮河路 黄山路 中山路 九华路 人民路"),
}

#: The one-character abbreviation of a province used in document numbers (沪苏浙皖).
PROVINCE_ABBREVIATIONS: Mapping[str, str] = {"31": "沪", "32": "苏", "33": "浙", "34": "皖"}

#: The four provinces' admin-division prefixes, the regions the data has by default.
#: (Until regions are configuration, the generator takes a region's prefixes from here
#: or from its caller.)
DEFAULT_PREFIXES: Mapping[RegionCode, tuple[str, ...]] = {
    "SH": ("31",),
    "JS": ("32",),
    "ZJ": ("33",),
    "AH": ("34",),
}


def divisions_for(prefixes: Sequence[str]) -> tuple[Division, ...]:
    """Every division whose code starts with one of ``prefixes``, in table order.

    A province takes its two-digit prefix (``32``: all of Jiangsu), a city
    platform a longer one (``3201``: Nanjing's districts).
    """
    found = tuple(d for d in DIVISION_TABLE if d.code.startswith(tuple(prefixes)))
    if not found:
        raise ValueError(f"no division starts with {', '.join(prefixes) or '(no prefix)'}")
    return found


def streets_for(prefixes: Sequence[str]) -> tuple[str, ...]:
    """The street names of the provinces ``prefixes`` lie in."""
    streets: list[str] = []
    for province in dict.fromkeys(p[:2] for p in prefixes):
        streets.extend(s for s in PROVINCE_STREETS[province] if s not in streets)
    return tuple(streets)


def abbreviation_for(prefixes: Sequence[str]) -> str:
    """The document-number abbreviation of the province of the first prefix."""
    return PROVINCE_ABBREVIATIONS[prefixes[0][:2]]


#: The default regions' divisions, streets and abbreviations.
DIVISIONS: Mapping[RegionCode, tuple[Division, ...]] = {
    region: divisions_for(prefixes) for region, prefixes in DEFAULT_PREFIXES.items()
}
STREETS: Mapping[RegionCode, tuple[str, ...]] = {
    region: streets_for(prefixes) for region, prefixes in DEFAULT_PREFIXES.items()
}
ABBREVIATIONS: Mapping[RegionCode, str] = {
    region: abbreviation_for(prefixes) for region, prefixes in DEFAULT_PREFIXES.items()
}
