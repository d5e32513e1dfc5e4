"""service.common.serializers.Serializer: per-instance field copies without deep-copying what cannot change."""

import copy

from rest_framework import serializers

from service.common.serializers import Serializer, StrictCharField


class _Nested(serializers.Serializer):
    a = serializers.IntegerField()


class _Example(Serializer):
    name = StrictCharField(max_length=5, help_text="a name")
    kind = serializers.ChoiceField(choices=[("x", "X"), ("y", "Y")])
    tags = serializers.ListField(child=StrictCharField(max_length=3), default=list)
    nested = _Nested(many=True, required=False)
    fixed = serializers.JSONField(default={"k": [1]})


def test_each_instance_gets_its_own_fields_and_children():
    first, second = _Example(), _Example()
    for name in _Example._declared_fields:
        assert first.fields[name] is not second.fields[name]
        assert first.fields[name] is not _Example._declared_fields[name]
    assert first.fields["tags"].child is not second.fields["tags"].child
    assert first.fields["tags"].child.parent is first.fields["tags"]
    assert first.fields["nested"].child is not second.fields["nested"].child
    # A mutable argument is still copied: mutating one instance's default leaves the others alone.
    first.fields["fixed"].default["k"].append(2)
    assert second.fields["fixed"].default == {"k": [1]}
    assert _Example._declared_fields["fixed"].default == {"k": [1]}


def test_fields_are_the_ones_drf_deep_copy_makes():
    ours = _Example().fields
    drf = copy.deepcopy(_Example._declared_fields)
    assert list(ours) == list(drf)
    assert [repr(field) for field in ours.values()] == [repr(field) for field in drf.values()]


def test_validation_and_representation_unchanged():
    serializer = _Example(data={"name": "Ada", "kind": "x", "tags": ["a"], "nested": [{"a": 1}]})
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data["tags"] == ["a"]
    bad = _Example(data={"name": "toolong", "kind": "z", "tags": ["abcd"]})
    assert not bad.is_valid()
    assert set(bad.errors) == {"name", "kind", "tags"}
    assert _Example({"name": "Ada", "kind": "y", "tags": [], "nested": [{"a": 2}], "fixed": {}}).data == {
        "name": "Ada",
        "kind": "y",
        "tags": [],
        "nested": [{"a": 2}],
        "fixed": {},
    }
