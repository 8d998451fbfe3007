import pytest

from stages.lib.atomic import atomic_path, write_json


def test_output_appears_only_when_complete(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    write_json(target, {"accuracy": 0.99})
    assert target.read_text() == '{\n  "accuracy": 0.99\n}\n'
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]


def test_failure_keeps_the_old_output_and_leaves_no_partial_file(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            assert temporary.suffix == ".keras" and temporary.parent == tmp_path
            temporary.write_text("half")
            raise RuntimeError("killed midway")
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]
