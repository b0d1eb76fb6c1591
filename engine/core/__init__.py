"""The pure decision core: the request and decision models, fusion, conditions, the
manifest schema, what a loaded policy is, ``decide()`` and its summary sentence.

No I/O anywhere in this package (like OPA's ``topdown``): loading policies is
``engine.policy``, evaluating their logic is ``engine.backends``, and the service, API and
CLI are the edges that call ``decide``.
"""
