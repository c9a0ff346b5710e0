"""MetricsJSONWriter: on resume, the lines of the iterations trained again are dropped."""
import json

from detectron2.utils.events import EventStorage

from vertspine.engine.writers import MetricsJSONWriter


def test_drop_from_keeps_earlier_lines_and_appends_after_them(tmp_path):
    path = tmp_path / "metrics.json"
    lines = [json.dumps({"iteration": i, "total_loss": float(i)}) for i in range(6)]
    path.write_text("\n".join(lines) + "\n" + '{"iteration": 6, "total_lo')  # cut by a kill
    writer = MetricsJSONWriter(str(path))
    assert writer.drop_from(4) == 3
    with EventStorage(start_iter=4) as storage:
        storage.put_scalar("total_loss", 40.0, smoothing_hint=False)
        writer.write()
    writer.close()
    written = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["iteration"] for r in written] == [0, 1, 2, 3, 4]
    assert written[-1]["total_loss"] == 40.0
