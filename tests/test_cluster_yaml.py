"""cluster/*.yaml validate against the schema Ray ships for its cluster launcher."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"


def _schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


@pytest.mark.parametrize("path", sorted(CLUSTER.glob("*.yaml")), ids=lambda p: p.name)
def test_cluster_yaml_is_valid(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), _schema())


def test_schema_rejects_typos() -> None:
    doc = yaml.safe_load((CLUSTER / "onprem.yaml").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "setup_comands": []}, _schema())
