"""Built-in upstream emulator: a deterministic stand-in for an OpenAI-compatible LLM provider.

It answers ``POST .../v1/chat/completions``, ``POST .../v1/responses``, ``POST .../v1/embeddings`` and
``GET .../v1/models`` in OpenAI's wire formats (plain and SSE streaming, tools, JSON modes) without
calling any real model, and can be steered per request through the extra ``emulator`` body field
(token counts, delays, failures) or through a ``/fail/<mode>/`` path prefix. Used by demos, tests
and benchmarks; never by real traffic.
The project mounts it at /emulator/ only with DEBUG or EMULATOR_ENABLED, and outside DEBUG only
behind EMULATOR_API_KEY. It imports nothing of the product.

Modules: ``core`` (pure Python, builds replies), ``embeddings`` and ``responses`` (those endpoints'
replies), ``wsgi`` (framework-free WSGI app and gevent server, ``manage.py run_emulator``),
``views``/``urls`` (thin Django adapter), ``checks`` (the ``check --deploy`` warning).
"""
