"""Push keys: the push-only key or the admin key; blank keys are no keys; compared as bytes."""

from __future__ import annotations

from pathlib import Path

from fsml.serving.deps import push_denied
from pydantic import SecretStr

from tests.conftest import make_settings


def test_push_key_rules(tmp_path: Path) -> None:
    both = make_settings(tmp_path, api_key=SecretStr("admin"), push_api_key=SecretStr("pusher"))
    assert push_denied(both, "pusher") is None and push_denied(both, "admin") is None
    for given in (None, "", "   ", "pusher ", "PUSHER", "admi", "ädmin"):
        denied = push_denied(both, given)
        assert denied is not None and denied.status_code == 401, given
    blank = make_settings(tmp_path, api_key=SecretStr("  "), push_api_key=SecretStr(""))
    denied = push_denied(blank, "  ")
    assert denied is not None and "closed" in denied.detail
    assert "closed" in push_denied(make_settings(tmp_path), "x").detail
