"""liber.fuse.FuseLayer (PyTorch) against liber's C++ fuse layer (libtorch, the layer every
liber backbone trains with): the same reduction of the table, and the same output on the
same weights and inputs, for each architecture setting."""
import os

import numpy as np
import pytest

try:
    import torch
except ImportError:  # CI installs Debian's python3-torch: there a missing torch is a failure
    if os.environ.get("CI"):
        raise
    pytest.skip("liber.fuse needs PyTorch (Debian's python3-torch, the libtorch liber builds on)",
                allow_module_level=True)

import liber
from liber import _core
from liber.fuse import FuseLayer

QUERY = 12


def random_table(rows=40, width=24, seed=0):
    rng = np.random.default_rng(seed)
    # Correlated columns, so the principal directions are well separated.
    return (rng.normal(size=(rows, 6)) @ rng.normal(size=(6, width)) + 0.1 * rng.normal(size=(rows, width))).astype(np.float32)


def random_rows(batch, slots, n_rows, seed=1):
    """Right-aligned visible rows, -1 before them; sample 0 sees nothing, sample 1 everything."""
    rng = np.random.default_rng(seed)
    rows = np.full((batch, slots), -1, dtype=np.int64)
    for s in range(batch):
        visible = 0 if s == 0 else slots if s == 1 else rng.integers(0, slots + 1)
        if visible:
            rows[s, slots - visible:] = rng.integers(0, n_rows, visible)
    return rows


def twin_layers(table, **config):
    """The C++ layer with every parameter randomised, and the PyTorch layer given its state."""
    cpp = _core.CppFuseLayer(table, QUERY, **config)
    rng = np.random.default_rng(2)
    for name, value in cpp.state().items():
        if name not in ("row_mean", "row_top", "row_scale", "table"):  # buffers: fitted, frozen
            cpp.set_parameter(name, rng.normal(scale=0.5, size=value.shape).astype(np.float32))
    py = FuseLayer(table, QUERY, **config)
    state = {k: torch.from_numpy(v) for k, v in cpp.state().items()}
    assert set(state) == set(py.state_dict())  # the same names, nothing missing or extra
    py.load_state_dict(state, strict=True)
    return cpp, py


@pytest.mark.parametrize("reduced_dim", [8, 0, 100])  # PCA; none; k >= width (none)
def test_the_reduction_equals_the_cpp_layers(reduced_dim):
    table = random_table()
    cpp = _core.CppFuseLayer(table, QUERY, reduced_dim=reduced_dim).state()
    py = FuseLayer(table, QUERY, reduced_dim=reduced_dim)
    for name in ("row_mean", "row_top", "row_scale", "table"):
        got = getattr(py, name).float().numpy()
        assert got.shape == cpp[name].shape, name
        np.testing.assert_allclose(got, cpp[name], rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("config", [
    {},                                                  # FuseConfig's defaults: attention, item query
    {"interaction": True},
    {"fusion": "mean"},
    {"slots": 5, "hidden": 8, "fused_dim": 7, "reduced_dim": 0},
])
def test_forward_equals_the_cpp_layer_on_the_same_weights(config):
    table = random_table()
    cpp, py = twin_layers(table, **config)
    slots = config.get("slots", 16)
    rows = random_rows(64, slots, len(table))
    query = np.random.default_rng(3).normal(size=(64, QUERY)).astype(np.float32)
    want = cpp.forward(rows, query)
    with torch.no_grad():
        got = py(torch.from_numpy(rows), torch.from_numpy(query)).numpy()
    assert got.shape == want.shape == (64, config.get("fused_dim", 32))
    # Float32 sums in another order (the C++ kernel's): differences scale with the values.
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    np.testing.assert_array_equal(got[0], py.no_history.detach().numpy())  # nothing visible


def test_it_trains_without_nans_on_samples_with_no_history():
    table = random_table()
    py = FuseLayer(table, QUERY, slots=4)
    rows = torch.from_numpy(random_rows(32, 4, len(table)))
    query = torch.randn(32, QUERY, requires_grad=True)
    out = py(rows, query)
    out.square().mean().backward()
    grads = [p.grad for p in py.parameters()] + [query.grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert py.table.grad is None  # the table is a frozen buffer


def test_set_rows_reduces_new_rows_as_the_training_rows_were():
    table = random_table()
    py = FuseLayer(table[:30], QUERY, reduced_dim=8)
    before = py.table.clone()
    py.set_rows(table)  # partitions closed since: the same reduction, not a new fit
    assert py.table.shape == (40, before.shape[1])
    torch.testing.assert_close(py.table[:30], before)
    assert "table" in dict(py.named_buffers())


def test_on_a_store_table_with_the_join(fixture_store):
    path, events = fixture_store
    table = liber.open_store(path).interest_table("content")
    fuse = FuseLayer(table, QUERY, slots=4, reduced_dim=8)
    rows = liber.join(table, [u for u, *_ in events], np.array([t for *_, t, _ in events]), slots=fuse.slots)
    out = fuse(torch.from_numpy(rows), torch.randn(len(events), QUERY))
    assert out.shape == (len(events), 32) and torch.isfinite(out).all()


def test_bad_input_raises_a_clear_exception():
    table = random_table()
    py = FuseLayer(table, QUERY, slots=4)
    with pytest.raises(ValueError, match=r"rows must be \[batch, 4\]"):
        py(torch.zeros(3, 5, dtype=torch.long), torch.zeros(3, QUERY))
    with pytest.raises(ValueError, match="query must be"):
        py(torch.zeros(3, 4, dtype=torch.long), torch.zeros(3, QUERY + 1))
    with pytest.raises(ValueError, match="float32"):
        FuseLayer(table.astype(np.float64), QUERY)
    with pytest.raises(ValueError, match="unknown fusion"):
        FuseLayer(table, QUERY, fusion="max")
    with pytest.raises(TypeError):  # [partitions, width] only
        _core.CppFuseLayer(table[0], QUERY)
    cpp = _core.CppFuseLayer(table, QUERY, slots=4)
    with pytest.raises(IndexError, match="not a table row"):
        cpp.forward(np.full((2, 4), len(table), dtype=np.int64), np.zeros((2, QUERY), dtype=np.float32))
    with pytest.raises(RuntimeError, match="slots"):
        cpp.forward(np.zeros((2, 5), dtype=np.int64), np.zeros((2, QUERY), dtype=np.float32))
