"""What a key may do (core/access.py): durations, model lists, roles, project names."""

from __future__ import annotations

import datetime as dt

import pytest

from vidgate.core.access import (
    check_model,
    check_project_name,
    check_writer,
    parse_expires_in,
    resolve_models,
)
from vidgate.core.catalog import load_catalog
from vidgate.core.errors import InvalidParameter, PermissionDenied


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("3600s", 3600), ("2w", 14 * 86400)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_expires_in(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "30", "d", "0d", "-1d", "1.5d", "30x", "30 d", "1y", "9999w"])
def test_bad_durations_name_the_parameter(text: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_expires_in(text, param="--expires-in")
    assert caught.value.param == "--expires-in"


def test_models_resolve_to_card_ids_once_each() -> None:
    catalog = load_catalog(None)
    card = next(c for c in catalog.models() if c.aliases)
    assert resolve_models(catalog, [card.aliases[0], card.id, "sandbox"]) == [card.id, "sandbox"]
    with pytest.raises(InvalidParameter) as caught:
        resolve_models(catalog, ["sandbox", "no-such-model"])
    assert caught.value.param == "models" and "no-such-model" in caught.value.message
    with pytest.raises(InvalidParameter):
        resolve_models(catalog, [])


def test_a_limited_key_is_refused_other_models() -> None:
    check_model(None, "kling-2.0", "kling-2.0")
    check_model(frozenset({"sandbox"}), "sandbox", "sandbox")
    with pytest.raises(PermissionDenied) as caught:
        check_model(frozenset({"sandbox"}), "kling-2.0", "kling-2")
    assert caught.value.code == "model_not_allowed"
    assert caught.value.status_code == 403 and caught.value.param == "model"
    assert "'kling-2'" in caught.value.message and "sandbox" in caught.value.message


def test_only_a_reader_is_read_only() -> None:
    for role in ("operator", "admin", "member"):
        check_writer(role)  # type: ignore[arg-type]
    with pytest.raises(PermissionDenied) as caught:
        check_writer("reader")
    assert caught.value.code == "read_only_key"


@pytest.mark.parametrize("name", ["acme", "team-a", "a.b_c", "A1", "x" * 64])
def test_project_names(name: str) -> None:
    assert check_project_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", ".x", "a b", "a/b", "x" * 65, "é", "a\n", "a\x00"])
def test_bad_project_names(name: str) -> None:
    with pytest.raises(InvalidParameter):
        check_project_name(name)
