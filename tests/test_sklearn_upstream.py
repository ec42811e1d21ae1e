"""scikit-learn's own MLP test-suite, run against fastbp's estimators.

The installed scikit-learn's ``sklearn/neural_network/tests/test_mlp.py`` is read and executed
here with its ``from sklearn.neural_network import MLPClassifier, MLPRegressor`` pointed at
``fastbp``; pytest then collects its test functions from this module. This pins behaviour
(messages, warnings, edge cases, attribute semantics) to whatever scikit-learn version is
installed, without keeping a copy of its tests that could go stale.
"""
import importlib.util
from pathlib import Path

import pytest

sklearn = pytest.importorskip(
    "sklearn",
    reason="scikit-learn is an optional extra (fastbp[sklearn]); the test extra installs it")


def _upstream_source():
    spec = importlib.util.find_spec("sklearn.neural_network")
    path = Path(spec.origin).parent / "tests" / "test_mlp.py"
    if not path.exists():  # some distributions strip the tests
        return None
    return path.read_text()


_SOURCE = _upstream_source()
_IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"

if _SOURCE is None:
    pytest.skip("scikit-learn was installed without its tests", allow_module_level=True)
if _IMPORT not in _SOURCE:
    raise AssertionError(
        "sklearn/neural_network/tests/test_mlp.py no longer contains %r; "
        "update tests/test_sklearn_upstream.py" % _IMPORT
    )


@pytest.fixture
def global_random_seed():
    """scikit-learn's conftest fixture (its default seed, 42)."""
    return 42


exec(
    compile(
        _SOURCE.replace(_IMPORT, "from fastbp._sklearn import MLPClassifier, MLPRegressor"),
        "sklearn/neural_network/tests/test_mlp.py (against fastbp)",
        "exec",
    ),
    globals(),
)
