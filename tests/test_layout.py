"""The project's structural rule: one layer = one module = one derivation = one test file."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYER_STEMS = sorted(p.stem for p in (ROOT / "refdeblur" / "layers").glob("*.py")
                     if p.stem != "base" and not p.stem.startswith("_"))


def test_there_are_layers():
    assert {"conv2d", "tanh", "recombine", "edge_taper", "crop_pad",
            "kernel_quotient", "image_quotient", "resample"} <= set(LAYER_STEMS)


@pytest.mark.parametrize("stem", LAYER_STEMS)
def test_layer_has_derivation_and_test_file(stem):
    assert (ROOT / "derivations" / f"{stem}.md").is_file(), f"derivations/{stem}.md missing"
    assert (ROOT / "tests" / "layers" / f"test_{stem}.py").is_file(), \
        f"tests/layers/test_{stem}.py missing"


@pytest.mark.parametrize("stem", LAYER_STEMS)
def test_backward_cites_equations_of_its_derivation(stem):
    """Every equation label cited in the code exists in the derivation."""
    import re
    code = (ROOT / "refdeblur" / "layers" / f"{stem}.py").read_text()
    document = (ROOT / "derivations" / f"{stem}.md").read_text()
    cited = set(re.findall(r"#.*?\(([A-Z]\d+)\)", code))
    assert cited, f"{stem}.py cites no equation"
    missing = {label for label in cited if f"({label})" not in document}
    assert not missing, f"{stem}.py cites {sorted(missing)}, absent from {stem}.md"
