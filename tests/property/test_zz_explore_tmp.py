import os
from hypothesis import given, settings
from tests.property.test_queries_reference import run_example, pool, ClientPool  # noqa
from tests.query_strategies import examples
from tests import reference as ref

def _ok(ex):
    for c in ref.walk(ex.query.filters):
        if c.prop == "__key__" and c.op == "=" and ex.query.kind is not None:
            return False
    return True

@settings(max_examples=int(os.environ.get("N", "100")))
@given(example=examples().filter(_ok))
def test_explore(pool, example):
    run_example(pool, example)
