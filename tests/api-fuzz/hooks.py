"""schemathesis hooks for `tests/api-fuzz/run`.

Whole floats. JSON Schema counts `1.0` as an integer, so schemathesis sends integers of a JSON
body spelled as floats now and then (`"category": 8530731156.0`). The server refuses them
("expected a whole number"), as Defender's .NET deserialisers refuse `1.0` for an `int`, and
the schema cannot say so: to JSON Schema `1.0` and `1` are the same value. Before each call
this hook writes such numbers without the fraction. The case stays exactly as valid or invalid
for the schema as it was generated, so no check is loosened; the refusal of `1.0` itself is
tested in Rust (crates/iocd-domain).
"""

import schemathesis


# Only where an integer of the API can be: beyond 64 bits no integer property accepts a value,
# and Python writes such a float with an exponent (1e+300), as any client would.
_LIMIT = 2**63


def _whole(value):
    if isinstance(value, float) and value.is_integer() and -_LIMIT <= value <= _LIMIT:
        return int(value)
    if isinstance(value, list):
        return [_whole(item) for item in value]
    if isinstance(value, dict):
        return {key: _whole(item) for key, item in value.items()}
    return value


@schemathesis.hook
def before_call(context, case, kwargs):
    if isinstance(case.body, (dict, list, float)):
        case.body = _whole(case.body)
