"""Masking rules: what each keeps, and that no masked value ever equals the clear one."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.core.errors import ConfigError
from gateway.synthetic.divisions import DIVISIONS, STREETS
from policies.masks import (
    RULE_NAMES,
    build_rules,
    is_pseudonym,
    keyed_pseudonym,
    mask_address,
    mask_date,
    mask_id_number,
    mask_name,
    mask_phone,
    resolve_mask_secret,
)

SECRET = b"test-mask-secret-of-some-length-0123456789"


def test_id_number_keeps_only_the_area_code() -> None:
    # Not the sequence or the check character: with the year of a masked birth date
    # they would leave a few dozen candidates to try (see the reconstruction tests).
    assert mask_id_number("11010519491231002X") == "110105************"


def test_old_fifteen_digit_id_number_keeps_the_same_shape() -> None:
    assert mask_id_number("110105491231002") == "110105*********"


def test_short_id_number_is_hidden_entirely() -> None:
    assert mask_id_number("123456") == "******"


def test_name_keeps_the_surname() -> None:
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳修") == "欧**"
    assert mask_name("李") == "*"
    assert mask_name("") == ""


def test_phone_keeps_first_three_and_last_four_digits() -> None:
    assert mask_phone("13812345678") == "138****5678"


def test_phone_keeps_separators_in_place() -> None:
    assert mask_phone("021-64321234") == "021-****1234"
    # Digits are counted from the start, country code included.
    assert mask_phone("+86 138 1234 5678") == "+86 1** **** 5678"


def test_short_phone_has_every_digit_hidden() -> None:
    assert mask_phone("1234567") == "*******"


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("江苏省南京市玄武区中山路123号", "江苏省南京市玄武区***"),
        ("上海市徐汇区漕溪北路88号3栋", "上海市徐汇区***"),
        ("上海市浦东新区世纪大道100号", "上海市浦东新区***"),
        ("浙江省杭州市西湖区文三路90号", "浙江省杭州市西湖区***"),
        ("安徽省合肥市肥东县店埠镇1号", "安徽省合肥市肥东县***"),
        ("江苏省苏州市昆山市玉山镇5号", "江苏省苏州市昆山市***"),
    ],
)
def test_address_keeps_province_city_and_district(address: str, masked: str) -> None:
    assert mask_address(address) == masked


def test_every_synthetic_address_keeps_exactly_its_divisions() -> None:
    for region, divisions in DIVISIONS.items():
        for division in divisions:
            for street in STREETS[region]:
                address = f"{division.full_name}{street}123号4幢502室"
                assert mask_address(address) == f"{division.full_name}***", address


def test_address_street_is_not_taken_for_a_district() -> None:
    # "小区" ends in 区 but follows a street number: only province and city are kept.
    assert mask_address("江苏省南京市中山路1号小区") == "江苏省南京市***"


def test_unrecognised_address_keeps_nothing() -> None:
    assert mask_address("Room 5, 12 Nanjing Road") == "***"


def test_date_keeps_the_year() -> None:
    assert mask_date("1985-06-15") == "1985-**-**"
    assert mask_date(dt.date(1985, 6, 15)) == "1985-**-**"
    assert mask_date("15/06/1985") == "****-**-**"


def test_hash_is_deterministic_and_keyed() -> None:
    rules = build_rules(SECRET)
    first = rules["HASH"]("11010519491231002X")
    assert first == rules["HASH"]("11010519491231002X")
    assert first == build_rules(SECRET)["HASH"]("11010519491231002X")  # another region's gateway
    assert first != build_rules(b"another-secret")["HASH"]("11010519491231002X")
    assert len(first) == 32
    assert all(c in "0123456789abcdef" for c in first)


def test_hash_differs_for_different_values() -> None:
    assert keyed_pseudonym("a", secret=SECRET) != keyed_pseudonym("b", secret=SECRET)


def test_registry_holds_every_rule_with_the_secret_bound() -> None:
    assert set(build_rules(SECRET)) == RULE_NAMES


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ConfigError):
        build_rules(b"")


def test_without_a_configured_mask_secret_development_generates_a_fresh_one() -> None:
    assert resolve_mask_secret("configured", dev_mode=False) == b"configured"
    generated = {resolve_mask_secret(None, dev_mode=True) for _ in range(3)}
    assert len(generated) == 3  # none is a default anyone could read
    assert all(len(secret) >= 32 for secret in generated)
    with pytest.raises(ConfigError):
        resolve_mask_secret(None, dev_mode=False)
    with pytest.raises(ConfigError):
        resolve_mask_secret("", dev_mode=False)


# -- invariants for every input ----------------------------------------------

# Clear values never contain the fill character: a value already full of "*"
# would look masked whatever the rule does.
_TEXT = st.text(st.characters(blacklist_characters="*", blacklist_categories=("Cs",)))
_ID = st.from_regex(r"\A\d{17}[\dX]\Z")
_PHONE = st.from_regex(r"\A1[3-9]\d{9}\Z")
_DIVISIONS = st.sampled_from(
    ["江苏省南京市玄武区", "上海市徐汇区", "浙江省杭州市西湖区", "安徽省合肥市肥东县"]
)
_STREET = st.text(st.characters(whitelist_categories=("Lo", "Nd")), min_size=1, max_size=20)


@given(_ID)
def test_masked_id_keeps_the_area_code_and_hides_the_rest(value: str) -> None:
    masked = mask_id_number(value)
    assert len(masked) == len(value)
    assert masked[:6] == value[:6]
    assert masked[6:] == "*" * 12  # birth date, sequence and check character
    assert masked != value


@given(_TEXT.filter(lambda v: len(v) > 0))
def test_masked_id_never_equals_clear_value(value: str) -> None:
    assert mask_id_number(value) != value
    assert len(mask_id_number(value)) == len(value)


@given(_TEXT.filter(lambda v: len(v) > 0))
def test_masked_name_never_equals_clear_value(value: str) -> None:
    masked = mask_name(value)
    assert masked != value
    assert len(masked) == len(value)


@given(_PHONE)
def test_masked_phone_keeps_three_and_four(value: str) -> None:
    masked = mask_phone(value)
    assert masked == value[:3] + "****" + value[-4:]


@given(_TEXT.filter(lambda v: any(c.isdigit() for c in v)))
def test_masked_phone_never_equals_clear_value(value: str) -> None:
    masked = mask_phone(value)
    assert masked != value
    assert len(masked) == len(value)


@given(_DIVISIONS, _STREET)
def test_masked_address_keeps_divisions_and_drops_the_street(divisions: str, street: str) -> None:
    value = divisions + street
    assert mask_address(value) == f"{divisions}***"


@given(_TEXT)
def test_masked_address_never_equals_clear_value(value: str) -> None:
    assert mask_address(value) != value


@given(st.dates())
def test_masked_date_keeps_the_year_only(value: dt.date) -> None:
    masked = mask_date(value.isoformat())
    assert masked == f"{value.year:04d}-**-**"
    assert masked != value.isoformat()


@given(_TEXT, _TEXT)
def test_hash_never_equals_clear_value_and_separates_values(a: str, b: str) -> None:
    assume(not is_pseudonym(a) and not is_pseudonym(b))  # those are kept (see the next tests)
    rules = build_rules(SECRET)
    assert rules["HASH"](a) != a
    if a != b:
        assert rules["HASH"](a) != rules["HASH"](b)


# Idempotence: a gateway above a gateway masks values the lower one already masked, and
# must leave them as they are (the stricter decision wins; a mask never changes shape).
_ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)))
_MASKABLE = {
    "ID_NUMBER": st.one_of(_ID, _ANY_TEXT),
    "NAME": _ANY_TEXT,
    "PHONE": st.one_of(_PHONE, st.from_regex(r"\A0\d{2,3}-\d{7,8}\Z"), _ANY_TEXT),
    "ADDRESS": st.one_of(st.builds(str.__add__, _DIVISIONS, _STREET), _ANY_TEXT),
    "DATE": st.one_of(st.dates().map(dt.date.isoformat), st.dates(), _ANY_TEXT),
    "HASH": _ANY_TEXT,
}


def test_every_rule_has_an_idempotence_strategy() -> None:
    assert set(_MASKABLE) == RULE_NAMES


@pytest.mark.parametrize("rule", sorted(_MASKABLE))
@given(data=st.data())
def test_masking_a_masked_value_leaves_it_as_it_is(rule: str, data: st.DataObject) -> None:
    mask = build_rules(SECRET)[rule]
    once = mask(data.draw(_MASKABLE[rule]))
    assert mask(once) == once


def test_masked_examples_stay_as_they_are() -> None:
    rules = build_rules(SECRET)
    assert mask_phone("138****5678") == "138****5678"
    assert mask_phone("021-****1234") == "021-****1234"
    assert mask_id_number("110105************") == "110105************"
    assert mask_address("江苏省南京市玄武区***") == "江苏省南京市玄武区***"
    assert mask_date("1985-**-**") == "1985-**-**"
    pseudonym = rules["HASH"]("苏市监罚〔2023〕12号")
    assert is_pseudonym(pseudonym)
    assert rules["HASH"](pseudonym) == pseudonym
