"""The framework examples of docs/diagnostics.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "diagnostics.md"


def examples() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Where you train") : text.index("## Gradient flow")]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return dict(zip(("lightning", "transformers", "loop"), blocks, strict=True))


@pytest.mark.parametrize("framework", ["lightning", "transformers", "loop"])
def test_docs_example_runs(framework, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{framework}"}
    exec(compile(examples()[framework], f"docs/diagnostics.md ({framework})", "exec"), namespace)
    if framework == "lightning":
        (monitor,) = [
            c for c in namespace["trainer"].callbacks if type(c).__name__ == "ActivationMonitor"
        ]
        assert (
            len(monitor.windows) == 4 and "activations/net.3/kurtosis" in monitor.windows[0].metrics
        )
    elif framework == "transformers":
        assert [w.step for w in namespace["monitor"].windows] == [5, 10]
    else:
        assert namespace["result"].revival is not None
        assert len(namespace["monitor"].windows) == 4
