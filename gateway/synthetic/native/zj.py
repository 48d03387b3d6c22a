"""Zhejiang's native schema: ``t_``-prefixed tables, dates as ``YYYYMMDD`` text.

Gender is stored as the Chinese word (``男``/``女``), registered capital and
fines as 万元 written out as text (``"200"``, ``"12.5"``), and every date as a
``VARCHAR(8)``: the habits of a system whose tables were first filled from
spreadsheet exports. Credit records share one table with a catalogue code.
"""

from __future__ import annotations

from gateway.core.types import Row
from gateway.synthetic.native.table import NativeTable, compact_date, plain

REGION = "ZJ"

GENDER = {"MALE": "男", "FEMALE": "女"}
SUBJECT = {"LEGAL_PERSON": "2", "NATURAL_PERSON": "1"}
CATALOGUE = {
    "ADMIN_PENALTY": "XZCF",
    "ADMIN_LICENSE": "XZXK",
    "DISHONEST_EXECUTEE": "SXBZXR",
    "COMMENDATION": "BZJL",
}


def _person(row: Row) -> tuple[object, ...]:
    return (
        row["id_number"],
        row["name"],
        GENDER[row["gender"]],
        compact_date(row["birth_date"]),
        row["ethnicity"],
        row["household_address"],
        row["phone"],
    )


def _residence(row: Row) -> tuple[object, ...]:
    return (row["person_id"], row["address"], compact_date(row["since"]))


def _insurance(row: Row) -> tuple[object, ...]:
    return (row["person_id"], row["insurance_type"], row["status"], compact_date(row["since"]))


def _enterprise(row: Row) -> tuple[object, ...]:
    return (
        row["uscc"],
        row["name"],
        row["entity_type"],
        row["status"],
        plain(row["registered_capital"]),
        compact_date(row["established_on"]),
        row["registration_authority"],
        row["address"],
        row["business_scope"],
        row["legal_rep_id"],
    )


def _credit(row: Row) -> tuple[object, ...]:
    return (
        row["id"],
        row["subject_id"],
        SUBJECT[row["subject_type"]],
        CATALOGUE[row["kind"]],
        row["title"],
        row["document_number"],
        row["authority"],
        compact_date(row["decided_on"]),
        compact_date(row["valid_until"]),
        plain(row["amount"]),
        row["detail"],
    )


TABLES: tuple[NativeTable, ...] = (
    NativeTable(
        "t_rk_jbxx",  # 人口基本信息
        "person",
        (
            ("sfzh", "varchar(18) NOT NULL"),  # 身份证号
            ("xm", "varchar(50) NOT NULL"),  # 姓名
            ("xb", "varchar(2)"),  # 性别
            ("csrq", "varchar(8)"),  # 出生日期 YYYYMMDD
            ("mz", "varchar(20)"),  # 民族
            ("hjdz", "varchar(200)"),  # 户籍地址
            ("lxdh", "varchar(20)"),  # 联系电话
        ),
        _person,
        ("CREATE UNIQUE INDEX t_rk_jbxx_sfzh ON t_rk_jbxx (sfzh)",),
    ),
    NativeTable(
        "t_rk_jzdj",  # 居住登记
        "residence",
        (("sfzh", "varchar(18) NOT NULL"), ("jzdz", "varchar(200)"), ("djrq", "varchar(8)")),
        _residence,
        ("CREATE INDEX t_rk_jzdj_sfzh ON t_rk_jzdj (sfzh)",),
    ),
    NativeTable(
        "t_sb_cbdj",  # 参保登记
        "social_insurance",
        (
            ("sfzh", "varchar(18) NOT NULL"),
            ("xzmc", "varchar(50)"),  # 险种名称
            ("cbzt", "varchar(20)"),  # 参保状态
            ("cbrq", "varchar(8)"),  # 参保日期
        ),
        _insurance,
        ("CREATE INDEX t_sb_cbdj_sfzh ON t_sb_cbdj (sfzh)",),
    ),
    NativeTable(
        "t_qy_djxx",  # 企业登记信息
        "enterprise",
        (
            ("tyxydm", "varchar(18) NOT NULL"),  # 统一信用代码
            ("qymc", "varchar(200) NOT NULL"),  # 企业名称
            ("qylx", "varchar(50)"),  # 企业类型
            ("jyzt", "varchar(20)"),  # 经营状态
            ("zczb", "varchar(32)"),  # 注册资本（万元）
            ("clrq", "varchar(8)"),  # 成立日期
            ("djjg", "varchar(100)"),  # 登记机关
            ("zs", "varchar(200)"),  # 住所
            ("jyfw", "text"),  # 经营范围
            ("fddbr_zjhm", "varchar(18)"),  # 法定代表人证件号码
        ),
        _enterprise,
        (
            "CREATE UNIQUE INDEX t_qy_djxx_tyxydm ON t_qy_djxx (tyxydm)",
            "CREATE INDEX t_qy_djxx_fddbr_zjhm ON t_qy_djxx (fddbr_zjhm)",
            'CREATE INDEX t_qy_djxx_qymc ON t_qy_djxx (qymc COLLATE "C", tyxydm COLLATE "C")',
        ),
    ),
    NativeTable(
        "t_xy_xyxx",  # 信用信息
        "credit_record",
        (
            ("xxbh", "varchar(32) NOT NULL"),  # 信息编号
            ("ztdm", "varchar(18) NOT NULL"),  # 主体代码
            ("ztlx", "varchar(1) NOT NULL"),  # 主体类型 1 自然人 2 法人
            ("xxlb", "varchar(8) NOT NULL"),  # 信息类别
            ("bt", "varchar(200)"),  # 标题
            ("wh", "varchar(100)"),  # 文号
            ("jg", "varchar(100)"),  # 机关
            ("jdrq", "varchar(8)"),  # 决定日期
            ("yxqz", "varchar(8)"),  # 有效期至
            ("je", "varchar(32)"),  # 金额（万元）
            ("nr", "text"),  # 内容
        ),
        _credit,
        ("CREATE INDEX t_xy_xyxx_ztdm ON t_xy_xyxx (ztdm)",),
    ),
)
