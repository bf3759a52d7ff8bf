"""The protobuf → domain conversion of `google.protobuf.Struct` fields (action args, context)."""

from __future__ import annotations

import math

import pytest
from google.protobuf import json_format, struct_pb2
from hypothesis import given
from hypothesis import strategies as st

from gavel.adapters.grpc import convert
from gavel.app.errors import InvalidRequest
from gavel.v1 import decision_pb2

json_leaves = (st.none() | st.booleans() | st.text(max_size=8)
               | st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53))
json_objects = st.dictionaries(st.text(max_size=6), st.recursive(
    json_leaves, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children,
                                                                                  max_size=4), max_leaves=20),
    max_size=6)


@given(json_objects)
def test_structs_convert_exactly_as_message_to_dict_does(document):
    message = struct_pb2.Struct()
    message.update(document)
    request = decision_pb2.DecideRequest(context=message)
    request.action.args.CopyFrom(message)
    converted = convert.decide_input(request)
    expected = json_format.MessageToDict(message)
    assert converted.context == expected
    assert converted.args == expected
    assert _typed(converted.context) == _typed(expected)  # 1.0 == 1 == True: compare the types too


def _typed(value):
    if isinstance(value, dict):
        return {key: _typed(member) for key, member in value.items()}
    if isinstance(value, list):
        return [_typed(member) for member in value]
    return (type(value).__name__, value)


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["args", "context"])
def test_nan_and_infinities_are_invalid_arguments_that_name_the_field(number, where):
    message = struct_pb2.Struct()
    message.update({"nested": {"list": [1, number]}})
    request = decision_pb2.DecideRequest()
    if where == "args":
        request.action.args.CopyFrom(message)
    else:
        request.context.CopyFrom(message)
    with pytest.raises(InvalidRequest) as info:
        convert.decide_input(request)
    field = "action.args" if where == "args" else "context"
    assert info.value.violations[0].field == field


def test_an_empty_value_reads_as_null():
    message = struct_pb2.Struct()
    message.fields["unset"].CopyFrom(struct_pb2.Value())
    assert convert.decide_input(decision_pb2.DecideRequest(context=message)).context == {"unset": None}
