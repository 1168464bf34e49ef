"""The resolution rules (model.resolution), each rule and each refusal on its own."""

from __future__ import annotations

from typing import Any

import pytest

from bindle_server.errors import InvalidInput
from bindle_server.model.resolution import (
    Feature,
    Selection,
    UnsatisfiableSelection,
    parse_features,
    resolve,
)
from tests.selection.invoices import Bindle, Part, multi_platform, spin_app


def _names(selection: Selection) -> list[str]:
    return [label.name or label.sha256 for label in selection.labels]


def _resolve(bindle: Bindle, groups: tuple[str, ...] = (), features: tuple[str, ...] = ()) -> Any:
    return resolve(bindle.invoice(), groups, parse_features(features))


def _refusal(bindle: Bindle, groups: tuple[str, ...] = (), features: tuple[str, ...] = ()) -> Any:
    with pytest.raises(UnsatisfiableSelection) as caught:
        _resolve(bindle, groups, features)
    return caught.value


# -- the global group, required groups and requires chains ------------------------------


def test_default_selection_of_spin_app_is_global_parcels_and_what_they_require() -> None:
    selection = _resolve(spin_app())
    assert _names(selection) == [
        "spin.toml",
        "hello.wasm",
        "static/index.html",
        "static/style.css",
    ]
    assert selection.groups == ("files-hello",)


def test_naming_a_group_adds_its_members_in_invoice_order() -> None:
    selection = _resolve(spin_app(), ("files-admin",))
    assert _names(selection)[-1] == "admin/panel.html"
    assert set(selection.groups) == {"files-admin", "files-hello"}


def test_invoice_without_groups_resolves_to_every_parcel() -> None:
    bindle = Bindle("plain", "1.0.0", (Part("a", b"a"), Part("b", b"b")), ())
    assert _names(_resolve(bindle)) == ["a", "b"]


def test_required_group_is_taken_without_being_named() -> None:
    bindle = Bindle(
        "req",
        "1.0.0",
        (Part("core", b"c", member_of=("base",)), Part("extra", b"e", member_of=("more",))),
        ({"name": "base", "required": True}, {"name": "more"}),
    )
    assert _names(_resolve(bindle)) == ["core"]


def test_requires_is_followed_transitively() -> None:
    # The default picks the first binary (linux-amd64), which needs libcrypto, which needs zlib.
    selection = _resolve(multi_platform())
    assert _names(selection) == [
        "README.md",
        "LICENSE",
        "bin/linux-amd64/tool",
        "lib/libcrypto.so",
        "lib/libz.so",
    ]
    assert set(selection.groups) == {"binary", "libcrypto", "zlib"}


def test_requires_cycle_terminates() -> None:
    bindle = Bindle(
        "cycle",
        "1.0.0",
        (
            Part("a", b"a", member_of=("ga",), requires=("gb",)),
            Part("b", b"b", member_of=("gb",), requires=("ga",)),
        ),
        ({"name": "ga"}, {"name": "gb"}),
    )
    assert _names(_resolve(bindle, ("ga",))) == ["a", "b"]


# -- oneOf -------------------------------------------------------------------------------


def test_one_of_takes_the_member_chosen_by_naming_its_platform_group() -> None:
    bindle = multi_platform()
    selection = _resolve(bindle, ("windows-amd64",))
    assert _names(selection) == ["README.md", "LICENSE", "bin/windows-amd64/tool.exe"]
    assert selection.chosen == {"binary": bindle.part("bin/windows-amd64/tool.exe").sha256}


def test_one_of_takes_the_first_member_the_features_admit() -> None:
    bindle = multi_platform()
    selection = _resolve(bindle, features=("platform.os=linux", "platform.arch=arm64"))
    assert "bin/linux-arm64/tool" in _names(selection)
    assert "bin/linux-amd64/tool" not in _names(selection)
    assert selection.chosen == {"binary": bindle.part("bin/linux-arm64/tool").sha256}


def test_one_of_with_two_members_named_is_refused_naming_the_rule() -> None:
    refusal = _refusal(multi_platform(), ("linux-amd64", "windows-amd64"))
    assert refusal.rule == "oneOf"
    assert "'binary'" in refusal.message and "takes 2" in refusal.message


def test_one_of_whose_members_the_features_all_exclude_is_refused() -> None:
    refusal = _refusal(multi_platform(), features=("platform.os=darwin",))
    assert refusal.rule == "oneOf"
    assert "platform.os=darwin" in refusal.message and "exclude all 3" in refusal.message


def test_needed_one_of_group_without_members_is_refused() -> None:
    bindle = Bindle(
        "empty-one-of",
        "1.0.0",
        (Part("a", b"a"),),
        ({"name": "pick", "required": True, "satisfiedBy": "oneOf"},),
    )
    refusal = _refusal(bindle)
    assert refusal.rule == "oneOf" and "no parcels" in refusal.message


def test_unsatisfiable_selection_is_invalid_input_so_the_api_answers_400() -> None:
    assert isinstance(_refusal(multi_platform(), ("nope",)), InvalidInput)


# -- optional and allOf ------------------------------------------------------------------


def test_optional_group_is_taken_only_when_named() -> None:
    bindle = multi_platform()
    assert "docs/manual.html" not in _names(_resolve(bindle))
    assert "docs/manual.html" in _names(_resolve(bindle, ("docs",)))


def test_required_optional_group_not_named_is_satisfied_by_none() -> None:
    bindle = Bindle(
        "opt",
        "1.0.0",
        (Part("a", b"a"), Part("o", b"o", member_of=("opt",))),
        ({"name": "opt", "required": True, "satisfiedBy": "optional"},),
    )
    selection = _resolve(bindle)
    assert _names(selection) == ["a"]
    assert selection.groups == ("opt",)


def test_all_of_group_whose_members_the_features_all_exclude_is_refused() -> None:
    refusal = _refusal(multi_platform(), ("linux-arm64",), ("platform.arch=amd64",))
    assert refusal.rule == "allOf"
    assert "'linux-arm64' is named" in refusal.message


def test_all_of_takes_only_the_members_the_features_admit() -> None:
    bindle = Bindle(
        "mixed",
        "1.0.0",
        (
            Part("x86", b"1", member_of=("libs",), feature={"cpu": {"arch": "x86"}}),
            Part("arm", b"2", member_of=("libs",), feature={"cpu": {"arch": "arm"}}),
            Part("any", b"3", member_of=("libs",)),
        ),
        ({"name": "libs", "required": True},),
    )
    assert _names(_resolve(bindle, features=("cpu.arch=arm",))) == ["arm", "any"]


# -- features ----------------------------------------------------------------------------


def test_features_drop_global_labels_declaring_another_value_and_keep_undeclared_ones() -> None:
    bindle = Bindle(
        "feat",
        "1.0.0",
        (
            Part("plain", b"p"),
            Part("debug", b"d", feature={"build": {"profile": "debug"}}),
            Part("release", b"r", feature={"build": {"profile": "release"}}),
        ),
        (),
    )
    assert _names(_resolve(bindle, features=("build.profile=release",))) == ["plain", "release"]


def test_feature_parse_splits_namespace_at_first_dot_and_value_at_first_equals() -> None:
    assert Feature.parse("wasm.os.name=a=b") == Feature("wasm", "os.name", "a=b")
    assert str(Feature.parse("a.b=")) == "a.b="


@pytest.mark.parametrize("text", ["nodot=1", "a.b", ".key=v", "ns.=v", ""])
def test_malformed_feature_is_refused_as_feature_syntax(text: str) -> None:
    with pytest.raises(UnsatisfiableSelection) as caught:
        Feature.parse(text)
    assert caught.value.rule == "feature syntax"
    assert "NS.KEY=VALUE" in caught.value.message


def test_two_values_for_one_feature_key_are_refused() -> None:
    with pytest.raises(UnsatisfiableSelection) as caught:
        parse_features(["platform.os=linux", "platform.os=windows"])
    assert caught.value.rule == "feature syntax" and "both" in caught.value.message


def test_repeating_the_same_feature_is_allowed() -> None:
    assert parse_features(["a.b=c", "a.b=c"]) == [Feature("a", "b", "c")]


# -- unknown groups ----------------------------------------------------------------------


def test_unknown_group_is_refused_listing_the_defined_ones() -> None:
    refusal = _refusal(spin_app(), ("files-nope",))
    assert refusal.rule == "unknown group"
    assert "'files-nope'" in refusal.message and "'files-hello'" in refusal.message
    assert refusal.message.startswith("unsatisfiable selection (unknown group)")


def test_size_is_the_sum_of_the_selected_labels() -> None:
    selection = _resolve(spin_app())
    assert selection.size == sum(label.size for label in selection.labels)
