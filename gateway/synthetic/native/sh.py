"""Shanghai's native schema: pinyin-abbreviation tables, DATE columns, 万元.

Tables follow the naming habit of many municipal systems: ``rk_`` for the
population database (人口), ``sb_`` social insurance (社保), ``fr_`` legal
persons (法人), ``xy_`` credit (信用), column names abbreviating the Chinese
field (``gmsfhm`` 公民身份号码, ``csrq`` 出生日期). Gender and ethnicity are
national code values (GB/T 2261.1, GB 3304), insurance schemes their 险种 codes,
and credit information is split by kind into one table per 双公示 catalogue.
The catalogues share the platform's record template, so every credit table has
an amount column (``fkje`` 罚款金额 for penalties, ``je`` 金额 elsewhere), empty
outside penalties.
"""

from __future__ import annotations

from gateway.core.types import Row
from gateway.synthetic.names import ETHNICITIES, INSURANCE_TYPES
from gateway.synthetic.native.table import NativeTable, to_date

REGION = "SH"

GENDER = {"MALE": "1", "FEMALE": "2"}
ETHNICITY = {name: code for name, _, code in ETHNICITIES}
SCHEME = dict(INSURANCE_TYPES)
INSURANCE_STATUS = {"参保缴费": "1", "暂停缴费": "2", "终止参保": "3"}
SUBJECT = {"LEGAL_PERSON": "法人及非法人组织", "NATURAL_PERSON": "自然人"}


def _person(row: Row) -> tuple[object, ...]:
    return (
        row["id_number"],
        row["name"],
        GENDER[row["gender"]],
        to_date(row["birth_date"]),
        ETHNICITY[row["ethnicity"]],
        row["household_address"],
        row["phone"],
    )


def _residence(row: Row) -> tuple[object, ...]:
    return (row["person_id"], row["address"], to_date(row["since"]))


def _insurance(row: Row) -> tuple[object, ...]:
    return (
        row["person_id"],
        SCHEME[row["insurance_type"]],
        INSURANCE_STATUS[row["status"]],
        to_date(row["since"]),
    )


def _enterprise(row: Row) -> tuple[object, ...]:
    return (
        row["uscc"],
        row["name"],
        row["entity_type"],
        row["status"],
        row["registered_capital"],
        to_date(row["established_on"]),
        row["registration_authority"],
        row["address"],
        row["business_scope"],
        row["legal_rep_id"],
    )


def _credit(row: Row) -> tuple[object, ...]:
    """Columns shared by the four credit tables, in their order."""
    head = (
        row["id"],
        row["subject_id"],
        SUBJECT[row["subject_type"]],
        row["title"],
        row["document_number"],
        row["authority"],
        to_date(row["decided_on"]),
        to_date(row["valid_until"]),
    )
    return (*head, row["amount"], row["detail"])


def _credit_columns(
    id_: str, subject: str, subject_type: str, names: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    title, number, authority, decided, until, *rest = names
    return (
        (id_, "varchar(32) NOT NULL"),
        (subject, "varchar(18) NOT NULL"),
        (subject_type, "varchar(16) NOT NULL"),
        (title, "varchar(200)"),
        (number, "varchar(100)"),
        (authority, "varchar(100)"),
        (decided, "date"),
        (until, "date"),
        *((name, "numeric(18,4)" if name in ("fkje", "je") else "text") for name in rest),
    )


TABLES: tuple[NativeTable, ...] = (
    NativeTable(
        "rk_jbxx",  # 人口基本信息
        "person",
        (
            ("gmsfhm", "varchar(18) NOT NULL"),  # 公民身份号码
            ("xm", "varchar(50) NOT NULL"),  # 姓名
            ("xb", "varchar(1)"),  # 性别 GB/T 2261.1
            ("csrq", "date"),  # 出生日期
            ("mz", "varchar(2)"),  # 民族 GB 3304
            ("hjdz", "varchar(200)"),  # 户籍地址
            ("lxdh", "varchar(20)"),  # 联系电话
        ),
        _person,
        ("CREATE UNIQUE INDEX rk_jbxx_gmsfhm ON rk_jbxx (gmsfhm)",),
    ),
    NativeTable(
        "rk_jzxx",  # 居住信息
        "residence",
        (("gmsfhm", "varchar(18) NOT NULL"), ("jzdz", "varchar(200)"), ("djrq", "date")),
        _residence,
        ("CREATE INDEX rk_jzxx_gmsfhm ON rk_jzxx (gmsfhm)",),
    ),
    NativeTable(
        "sb_cbxx",  # 参保信息
        "social_insurance",
        (
            ("gmsfhm", "varchar(18) NOT NULL"),
            ("xzlx", "varchar(3)"),  # 险种类型
            ("cbzt", "varchar(1)"),  # 参保状态
            ("cbrq", "date"),  # 参保日期
        ),
        _insurance,
        ("CREATE INDEX sb_cbxx_gmsfhm ON sb_cbxx (gmsfhm)",),
    ),
    NativeTable(
        "fr_jbxx",  # 法人基本信息
        "enterprise",
        (
            ("tyshxydm", "varchar(18) NOT NULL"),  # 统一社会信用代码
            ("qymc", "varchar(200) NOT NULL"),  # 企业名称
            ("qylx", "varchar(50)"),  # 企业类型
            ("djzt", "varchar(20)"),  # 登记状态
            ("zczb", "numeric(18,4)"),  # 注册资本（万元）
            ("clrq", "date"),  # 成立日期
            ("djjg", "varchar(100)"),  # 登记机关
            ("zs", "varchar(200)"),  # 住所
            ("jyfw", "text"),  # 经营范围
            ("fddbr_sfzh", "varchar(18)"),  # 法定代表人身份证号
        ),
        _enterprise,
        (
            "CREATE UNIQUE INDEX fr_jbxx_tyshxydm ON fr_jbxx (tyshxydm)",
            "CREATE INDEX fr_jbxx_fddbr_sfzh ON fr_jbxx (fddbr_sfzh)",
            'CREATE INDEX fr_jbxx_qymc ON fr_jbxx (qymc COLLATE "C", tyshxydm COLLATE "C")',
        ),
    ),
    NativeTable(
        "xy_xzcf",  # 行政处罚
        "credit_record",
        # 处罚事由, 处罚决定书文号, 处罚机关, 处罚决定日期, 公示截止期, 罚款金额（万元）, 处罚内容
        _credit_columns(
            "xh", "xdr_dm", "xdr_lb", ("cfsy", "cfjdswh", "cfjg", "cfjdrq", "gsjzq", "fkje", "cfnr")
        ),
        _credit,
        ("CREATE INDEX xy_xzcf_xdr_dm ON xy_xzcf (xdr_dm)",),
        frozenset({"ADMIN_PENALTY"}),
    ),
    NativeTable(
        "xy_xzxk",  # 行政许可
        "credit_record",
        # 许可证书名称, 许可文书号, 许可机关, 许可决定日期, 有效期至, 金额, 许可内容
        _credit_columns(
            "xh", "xdr_dm", "xdr_lb", ("xkzsmc", "xkwsh", "xkjg", "xkjdrq", "yxqz", "je", "xknr")
        ),
        _credit,
        ("CREATE INDEX xy_xzxk_xdr_dm ON xy_xzxk (xdr_dm)",),
        frozenset({"ADMIN_LICENSE"}),
    ),
    NativeTable(
        "xy_sxbzxr",  # 失信被执行人
        "credit_record",
        # 失信情形, 案号, 执行法院, 发布日期, 屏蔽日期, 金额, 生效法律文书确定的义务
        _credit_columns(
            "xh", "bzxr_dm", "bzxr_lb", ("sxqx", "ah", "zxfy", "fbrq", "pbrq", "je", "yw")
        ),
        _credit,
        ("CREATE INDEX xy_sxbzxr_bzxr_dm ON xy_sxbzxr (bzxr_dm)",),
        frozenset({"DISHONEST_EXECUTEE"}),
    ),
    NativeTable(
        "xy_bzjl",  # 表彰奖励
        "credit_record",
        # 荣誉称号, 文号, 授予单位, 授予日期, 有效期至, 金额, 表彰事由
        _credit_columns(
            "xh", "dx_dm", "dx_lb", ("rych", "wh", "sydw", "syrq", "yxqz", "je", "bzsy")
        ),
        _credit,
        ("CREATE INDEX xy_bzjl_dx_dm ON xy_bzjl (dx_dm)",),
        frozenset({"COMMENDATION"}),
    ),
)
