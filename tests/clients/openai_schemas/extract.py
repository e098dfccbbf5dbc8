"""Extract OpenAI's chat-completion, model-list and error schemas from the published OpenAPI spec into one
self-contained JSON Schema (draft 2020-12) the client tests validate every response and stream chunk with.

    cd tests/clients/openai_schemas && python extract.py <spec>/openapi.json <commit> > openai.schema.json

The spec is https://github.com/openai/openai-openapi (openapi.json or openapi.yaml at the root). What changes:
`#/components/schemas/X` references become `#/$defs/X`; OpenAPI 3.0's `nullable: true`, still used by a few
properties of the 3.1 document, becomes `anyOf: [<schema>, {"type": "null"}]` (without it a stream chunk's
`finish_reason: null` would be rejected); descriptions, examples and vendor extensions are dropped, as they
do not take part in validation. Nothing else is touched: in particular no `additionalProperties` is added.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOTS = [
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "ListModelsResponse",
    "Model",
    "ErrorResponse",
]
COMPONENTS = "#/components/schemas/"
DROPPED = {"description", "example", "examples", "deprecated", "title", "discriminator"}


def referenced(schemas: dict[str, Any], roots: list[str]) -> list[str]:
    """The roots and every component they reference, transitively, in a stable order."""
    seen: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.removeprefix(COMPONENTS)
                if name not in seen:
                    seen.append(name)
                    walk(schemas[name])
            for key, value in node.items():
                if key != "$ref":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for root in roots:
        if root not in seen:
            seen.append(root)
            walk(schemas[root])
    return sorted(seen)


def converted(node: Any, *, in_properties: bool = False) -> Any:
    """The node as JSON Schema 2020-12 (see the module docstring)."""
    if isinstance(node, list):
        return [converted(item) for item in node]
    if not isinstance(node, dict):
        return node
    if in_properties:  # property names are data, not keywords
        return {name: converted(value) for name, value in node.items()}
    out = {}
    for key, value in node.items():
        if key in DROPPED or key.startswith("x-") or key == "nullable":
            continue
        if key == "$ref":
            out[key] = "#/$defs/" + value.removeprefix(COMPONENTS)
        else:
            out[key] = converted(value, in_properties=key in ("properties", "patternProperties"))
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def extract(spec: dict[str, Any], source: str) -> dict[str, Any]:
    schemas = spec["components"]["schemas"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": source,
        "$defs": {name: converted(schemas[name]) for name in referenced(schemas, ROOTS)},
    }


def main() -> None:
    path, commit = sys.argv[1], sys.argv[2]
    text = Path(path).read_text()
    if path.endswith(".json"):
        spec = json.loads(text)
    else:
        import yaml

        spec = yaml.safe_load(text)
    source = (
        f"Extracted by tests/clients/openai_schemas/extract.py from github.com/openai/openai-openapi, "
        f"{Path(path).name} at commit {commit} (info.version {spec['info']['version']})."
    )
    json.dump(extract(spec, source), sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
