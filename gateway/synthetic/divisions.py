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

from collections.abc import Mapping
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


DIVISIONS: Mapping[RegionCode, tuple[Division, ...]] = {
    "SH": _divisions(
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
    "JS": _divisions(
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
    "ZJ": _divisions(
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
    "AH": _divisions(
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
}

#: A few real street names per region (not tied to a district: the data is invented).
STREETS: Mapping[RegionCode, tuple[str, ...]] = {
    "SH": _words(
        "漕溪北路 南京西路 淮海中路 四川北路 长宁路 武宁路 世纪大道 张杨路 中山北路 虹桥路"
    ),
    "JS": _words("中山路 北京西路 汉中路 中山北路 人民路 干将路 解放路 延陵路 建设路 文昌路"),
    "ZJ": _words("延安路 文三路 解放路 中山路 天目山路 江南大道 人民路 中河路 钱江路 学院路"),
    "AH": _words("长江中路 长江西路 徽州大道 金寨路 芜湖路 淮河路 黄山路 中山路 九华路 人民路"),
}

#: The one-character abbreviation used in document numbers (沪苏浙皖).
ABBREVIATIONS: Mapping[RegionCode, str] = {"SH": "沪", "JS": "苏", "ZJ": "浙", "AH": "皖"}

#: The six-digit province-level code, as some native schemas store a region.
PROVINCE_CODES: Mapping[RegionCode, str] = {
    "SH": "310000",
    "JS": "320000",
    "ZJ": "330000",
    "AH": "340000",
}
