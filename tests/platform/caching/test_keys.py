"""Keys name the viewer and cannot be forged to reach another viewer's entry."""

from __future__ import annotations

import uuid

import pytest

from keel.platform.caching import (
    FOLDER_TREE_TAG,
    ResourceKey,
    entry_for,
    parse_resource_key,
    resource_key,
    resource_pattern,
    resource_tag,
    viewer_tag,
)

PRODUCT = uuid.UUID("0190f1e2-0000-7000-8000-000000000001")
ALICE = uuid.UUID("0190f1e2-0000-7000-8000-00000000000a")


def test_a_key_names_the_kind_the_resource_and_the_viewer() -> None:
    assert resource_key("product", PRODUCT, viewer=ALICE) == f"product:{PRODUCT}:{ALICE}"
    assert resource_key("product", PRODUCT, viewer=ALICE, variant="v1") == f"product:{PRODUCT}:{ALICE}:v1"


@pytest.mark.parametrize(
    ("resource_id", "viewer"),
    [("1:other", "alice"), ("1", "alice:bob"), ("*", "alice"), ("1", "*"), ("1", ""), ("[a]", "x")],
)
def test_parts_that_could_reach_another_entry_are_refused(resource_id: str, viewer: str) -> None:
    with pytest.raises(ValueError, match="cache key"):
        resource_key("product", resource_id, viewer=viewer)


def test_a_kind_is_a_lower_case_word() -> None:
    with pytest.raises(ValueError, match="kind"):
        resource_key("Product", PRODUCT, viewer=ALICE)


def test_patterns_select_one_resource_or_a_kind() -> None:
    assert resource_pattern("product", PRODUCT) == f"product:{PRODUCT}:*"
    assert resource_pattern("folder") == "folder:*"


def test_tags() -> None:
    assert resource_tag("folder", PRODUCT) == f"folder:{PRODUCT}"
    assert viewer_tag(ALICE) == f"viewer:{ALICE}"


def test_an_entry_carries_its_resource_and_viewer_tags_and_the_tree_tag_in_a_folder() -> None:
    loose = entry_for("product", PRODUCT, viewer=ALICE, in_folder_tree=False)
    assert loose.key == resource_key("product", PRODUCT, viewer=ALICE)
    assert loose.tags == (resource_tag("product", PRODUCT), viewer_tag(ALICE))
    filed = entry_for("product", PRODUCT, viewer=ALICE, in_folder_tree=True)
    assert filed.tags == (*loose.tags, FOLDER_TREE_TAG)


def test_a_key_parses_back_into_its_parts() -> None:
    key = resource_key("folder", PRODUCT, viewer=ALICE, variant="v1")
    assert parse_resource_key(key) == ResourceKey("folder", str(PRODUCT), str(ALICE), "v1")
    assert parse_resource_key(resource_key("folder", PRODUCT, viewer=ALICE)) == ResourceKey(
        "folder", str(PRODUCT), str(ALICE), ""
    )


@pytest.mark.parametrize("key", ["", "product", "product:1", "product:1:a:b:c", "Product:1:a", "product::a"])
def test_other_keys_do_not_parse(key: str) -> None:
    assert parse_resource_key(key) is None
