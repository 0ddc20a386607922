import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run the train-to-accuracy tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory):
    """gridseq's disk cache (the generate-image scoring classifiers) in a folder of this session, never the home's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRIDSEQ_CACHE_DIR", str(tmp_path_factory.mktemp("gridseq-cache")))
        yield


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: a second intra-op thread buys nothing, and on a shared machine oversubscribed
    OpenMP threads made these modules 5-30x slower. Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
