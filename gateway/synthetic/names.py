"""Word lists the synthetic records are drawn from: names, codes, titles.

The values here are the *unified* values a row carries (Chinese names of
insurance types, enterprise statuses, entity types). Each region's native
module maps them to its own codes, and each mapping file maps them back; so a
list changed here must be changed in both.
"""

from __future__ import annotations

from collections.abc import Mapping


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: Common surnames with rough relative frequencies (per ten thousand people).
SURNAMES: tuple[tuple[str, int], ...] = tuple(
    (name, int(weight))
    for name, weight in (
        pair.split(":")
        for pair in _words(
            """
        王:710 李:700 张:670 刘:540 陈:450 杨:310 黄:220 赵:200 吴:200 周:190 徐:150 孙:150
        马:140 朱:130 胡:130 郭:120 何:120 高:110 林:110 罗:90 郑:90 梁:80 谢:80 宋:70
        唐:70 许:70 韩:60 冯:60 邓:60 曹:60 彭:50 曾:50 肖:50 田:50 董:50 袁:50 潘:40
        于:40 蒋:40 蔡:40 余:40 杜:40 叶:40 程:40 苏:30 魏:30 吕:30 丁:30 任:30 沈:30
        姚:30 卢:30 姜:30 崔:30 钟:30 谭:30 陆:30 汪:30 范:30 金:30 石:30 廖:30 贾:30
        夏:20 韦:20 方:20 白:20 邹:20 孟:20 熊:20 秦:20 邱:20 江:20 尹:20 薛:20 闫:20
        段:20 雷:20 侯:20 龙:20 史:20 陶:20 黎:20 贺:20 顾:20 毛:20 郝:20 龚:20 邵:20
        万:20 钱:20 严:20 欧阳:5 诸葛:1 司马:1 上官:1
        """
        )
    )
)

#: Characters given names are built from (one or two of them).
GIVEN_NAME_CHARS: tuple[str, ...] = tuple(
    dict.fromkeys(
        "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红鹏辉建文斌宇浩凯健俊帆帅旭宁"
        "龙林欣佳怡雪婷晨琳晶悦子梓涵轩博思雨诗嘉一睿泽铭昊天瑞志国海峰东波亮飞云兰梅莉凤春"
        "燕琴慧颖倩洁蕾薇彤璐瑶昕妍晓鑫淑振家永荣成德福清宏新立金卫忠良兴安和喜祥蓉冰露月晴"
        "阳光"
    )
)

#: Ethnicities with rough relative weights and their GB 3304-91 codes.
ETHNICITIES: tuple[tuple[str, int, str], ...] = (
    ("汉族", 9100, "01"),
    ("回族", 80, "03"),
    ("满族", 60, "11"),
    ("壮族", 50, "08"),
    ("畲族", 30, "22"),
    ("蒙古族", 30, "02"),
    ("苗族", 30, "06"),
    ("土家族", 30, "15"),
    ("朝鲜族", 20, "10"),
)

#: Mobile number prefixes (13x, 15x, 17x, 18x, 19x networks).
PHONE_PREFIXES: tuple[str, ...] = _words(
    "130 131 132 133 135 136 137 138 139 150 151 152 155 157 158 159 "
    "170 173 176 177 180 181 182 185 186 187 188 189 191 199"
)

#: Social insurance schemes (unified value) and the national scheme code (险种代码).
INSURANCE_TYPES: tuple[tuple[str, str], ...] = (
    ("企业职工基本养老保险", "110"),
    ("职工基本医疗保险", "310"),
    ("失业保险", "210"),
    ("工伤保险", "410"),
    ("生育保险", "510"),
    ("城乡居民基本养老保险", "170"),
    ("城乡居民基本医疗保险", "390"),
)

#: Insurance statuses (unified value) with rough weights.
INSURANCE_STATUSES: tuple[tuple[str, int], ...] = (
    ("参保缴费", 80),
    ("暂停缴费", 12),
    ("终止参保", 8),
)

#: Entity types (unified value), weights, and how a name of that type ends.
ENTITY_TYPES: tuple[tuple[str, int, str], ...] = (
    ("有限责任公司", 70, "有限公司"),
    ("股份有限公司", 8, "股份有限公司"),
    ("个人独资企业", 12, "经营部"),
    ("合伙企业", 10, "合伙企业（有限合伙）"),
)

#: Registration statuses (unified value) with rough weights.
ENTERPRISE_STATUSES: tuple[tuple[str, int], ...] = (
    ("存续", 70),
    ("在业", 15),
    ("注销", 8),
    ("吊销", 4),
    ("迁出", 3),
)

#: Characters trade names (字号) are built from, two at a time.
TRADE_NAME_CHARS: tuple[str, ...] = tuple(
    dict.fromkeys(
        "恒达华盛鑫源宏远瑞丰中天新泰嘉禾正通永安金诚博雅致远同创联合汇智星辰海纳百川"
        "东方明德信和润泽天成九鼎长青佳美锦程卓越启航凯旋品尚精工融通森茂云帆"
    )
)

#: Industries: the word in the enterprise name and its business scope.
INDUSTRIES: tuple[tuple[str, str], ...] = (
    ("信息科技", "信息技术咨询服务；软件开发；信息系统集成服务"),
    ("网络科技", "互联网信息服务；网络技术服务；数据处理服务"),
    ("贸易", "货物进出口；技术进出口；日用百货销售"),
    ("商贸", "五金产品批发；建筑材料销售；办公用品销售"),
    ("建筑工程", "建设工程施工；建筑装饰材料销售；工程管理服务"),
    ("餐饮管理", "餐饮服务；食品经营；餐饮管理"),
    ("物流", "道路货物运输；国内货物运输代理；仓储服务"),
    ("电子", "电子元器件制造；电子产品销售；集成电路设计"),
    ("机械制造", "通用设备制造；机械零件加工；机械设备销售"),
    ("生物医药", "药品研发；医学研究和试验发展；第二类医疗器械销售"),
    ("新材料", "新材料技术研发；合成材料销售；塑料制品制造"),
    ("文化传媒", "组织文化艺术交流活动；广告设计、代理；会议及展览服务"),
    ("环保科技", "环境保护专用设备制造；污水处理及其再生利用；环保咨询服务"),
    ("咨询", "企业管理咨询；市场调查；社会经济咨询服务"),
    ("食品", "食品生产；食品销售；农产品的生产、销售、加工"),
    ("服饰", "服装制造；服装服饰批发；针纺织品销售"),
    ("汽车服务", "机动车修理和维护；汽车零配件零售；二手车经纪"),
    ("投资管理", "以自有资金从事投资活动；股权投资；投资管理"),
)

#: Credit records, by kind: what a subject of each type is recorded for.
CREDIT_TITLES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "ADMIN_PENALTY": {
        "LEGAL_PERSON": (
            "未按规定公示年度报告",
            "销售不符合食品安全标准的食品",
            "超标排放大气污染物",
            "未依法取得排污许可证排放污染物",
            "未按规定开展安全生产教育和培训",
            "发布虚假广告",
            "未经许可从事经营活动",
            "未按期申报纳税",
        ),
        "NATURAL_PERSON": (
            "未经许可从事经营活动",
            "违规占道经营",
            "违反道路运输管理规定",
            "未按期申报个人所得税",
        ),
    },
    "ADMIN_LICENSE": {
        "LEGAL_PERSON": (
            "食品经营许可证",
            "道路运输经营许可证",
            "排污许可证",
            "建筑业企业资质证书",
            "药品经营许可证",
            "人力资源服务许可证",
        ),
        "NATURAL_PERSON": (
            "医师执业证书",
            "律师执业证书",
            "教师资格证书",
            "导游证",
        ),
    },
    "DISHONEST_EXECUTEE": {
        "LEGAL_PERSON": (
            "有履行能力而拒不履行生效法律文书确定义务",
            "违反财产报告制度",
            "违反限制消费令",
        ),
        "NATURAL_PERSON": (
            "有履行能力而拒不履行生效法律文书确定义务",
            "违反财产报告制度",
            "违反限制消费令",
            "以虚假诉讼、虚假仲裁或者以隐匿、转移财产等方法规避执行",
        ),
    },
    "COMMENDATION": {
        "LEGAL_PERSON": ("守合同重信用企业", "A级纳税人", "诚信示范企业", "安全生产先进单位"),
        "NATURAL_PERSON": ("劳动模范", "优秀志愿者", "见义勇为先进个人", "诚信示范个人"),
    },
}

#: Which authority decides a record of each kind, as a suffix to a city or district.
CREDIT_AUTHORITIES: Mapping[str, tuple[str, ...]] = {
    "ADMIN_PENALTY": (
        "市场监督管理局",
        "生态环境局",
        "应急管理局",
        "城市管理行政执法局",
        "交通运输局",
    ),
    "ADMIN_LICENSE": ("市场监督管理局", "卫生健康委员会", "交通运输局", "住房和城乡建设局"),
    "DISHONEST_EXECUTEE": ("人民法院",),
    "COMMENDATION": ("人民政府", "市场监督管理局"),
}

#: The short form of each authority in a document number (沪徐市监罚〔2021〕12号).
AUTHORITY_SHORT: Mapping[str, str] = {
    "市场监督管理局": "市监",
    "生态环境局": "环",
    "应急管理局": "应急",
    "城市管理行政执法局": "城管",
    "交通运输局": "交",
    "卫生健康委员会": "卫健",
    "住房和城乡建设局": "建",
    "人民法院": "法",
    "人民政府": "府",
}
