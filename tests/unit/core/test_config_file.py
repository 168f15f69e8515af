"""The models file read with lines: every mistake names the file, the line and what is
accepted (core/config_file.py, core/deployments.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidgate.core.config_file import ConfigError, ConfigErrors, read_located
from vidgate.core.deployments import load_deployments, read_deployments


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(text)
    return path


def test_read_located_gives_each_key_its_line() -> None:
    text = "a:\n  b: 1\n  c:\n    - x\n    - {d: 2}\nbase: &b {k: 1}\nuse:\n  <<: *b\n  z: 0\n"
    document, lines = read_located(text, "f.yaml")
    assert document["a"]["c"][1] == {"d": 2} and document["use"] == {"k": 1, "z": 0}
    assert lines.line(["a"]) == 1 and lines.line(["a", "b"]) == 2
    assert lines.line(["a", "c", 1]) == 5 and lines.line(["a", "c", 1, "d"]) == 5
    # A key that is not there is placed where its mapping is.
    assert lines.line(["a", "c", 1, "missing"]) == 5
    assert lines.where(["use", "z"]) == "f.yaml:9"
    assert lines.where(["nowhere"]) == "f.yaml"


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(ConfigError) as caught:
        read_located("a: 1\nb: [1, 2\nc: 3\n", "f.yaml")
    assert str(caught.value).startswith("f.yaml:")
    assert "not valid YAML" in str(caught.value)


def test_deployment_mistakes_name_file_line_and_accepted_keys(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        """
deployments:
  good:
    provider: luma
    credentials: {api_key: secret-value}
  typo:
    provider: luma
    base_ur: https://x
  wrong-type:
    provider: kling
    max_concurrency: lots
    timeout_s: -1
  not-a-mapping: 3
""",
    )
    with pytest.raises(ConfigErrors) as caught:
        load_deployments(path, {}, {})
    text = str(caught.value)
    assert (
        f"{path}:8: deployments.typo.base_ur: unknown key; accepted: provider, base_url, "
        "credentials, options, max_concurrency, timeout_s"
    ) in text
    assert f"{path}:11: deployments.wrong-type.max_concurrency: Input should be" in text
    assert f"{path}:12: deployments.wrong-type.timeout_s: Input should be greater than 0" in text
    assert f"{path}:13: deployment 'not-a-mapping' must be a mapping" in text
    # Values are never echoed: they may be secrets.
    assert "secret-value" not in text and "lots" not in text
    deployments, _, errors = read_deployments(path, {}, {})
    assert list(deployments) == ["good"] and len(errors) == 4


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match=r"nope\.yaml: cannot read the models file"):
        load_deployments(tmp_path / "nope.yaml", {}, {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A merged card's field, at its line of the operator's file.
        (
            "models:\n  kling-2.0:\n    description: a card\n    max_prompt_chars: lots\n",
            ":4: model 'kling-2.0' is invalid: max_prompt_chars: Input should be a valid integer",
        ),
        (
            "models:\n  kling-2.0:\n    description: a card\n    fps: [24, -1]\n",
            ":4: model 'kling-2.0' is invalid: fps: fps values must be positive",
        ),
        # An unknown key of a card, with the keys a card takes.
        (
            "models:\n  kling-2.0:\n    description: a card\n    speed: fast\n",
            ":4: model 'kling-2.0' is invalid: speed: unknown key; accepted: description, owned_by",
        ),
        # Upstream capability data, its unknown key at its line, with the accepted keys.
        (
            "upstreams:\n  kling:\n    kling-v9:\n      fps: [24]\n      frame_rate: 24\n",
            ":5: upstreams.kling model 'kling-v9' is invalid: frame_rate: unknown key; accepted:",
        ),
        # An id in remove that no model has, at its item's line.
        ("remove:\n  - luma-ray-2\n  - nope\n", ":3: cannot remove unknown model 'nope'"),
        # An unknown top-level key, with the accepted ones.
        (
            "models: {}\nmodles: {}\n",
            ":2: unknown top-level key(s) modles; accepted: deployments, models, projects,"
            " remove, upstreams",
        ),
    ],
)
def test_catalogue_mistakes_name_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    from vidgate.core.catalog import load_catalog

    path = _file(tmp_path, text)
    with pytest.raises(ValueError) as caught:
        load_catalog(path)
    assert f"{path}{expected}" in str(caught.value)
